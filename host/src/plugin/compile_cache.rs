//! Where compiled plugins are kept between runs, so that a start does not recompile
//! (seconds for a Python or JavaScript component) and loads what it needs by mapping
//! a file.
//!
//! An entry is `compiled/<engine>/<sha256 of the .wasm>.cwasm` under the cache
//! directory: `<engine>` is a digest of everything that makes compiled code fit an
//! engine (wasmtime's version, the compiler's target and flags, the engine's
//! settings; [`Engine::precompile_compatibility_hash`]), so `interpose plugin build`,
//! `interpose check` and `interpose run` all find one entry for one file. An entry is
//! wasmtime's own serialized component, loaded with [`Component::deserialize_file`],
//! which maps it: a cached start reads none of it up front, copies nothing, and the
//! plugin's initial memory (tens of MiB for Python) is mapped copy-on-write straight
//! from it. Entries are never modified in place: each is written to a temporary file
//! and renamed over, so a mapped entry stays whole while another process replaces it.
//!
//! Not wasmtime's `Config::cache`: that one stores entries compressed, so each load
//! reads, decompresses and copies the whole artifact into fresh memory (hundreds of
//! milliseconds for a Python plugin) instead of mapping it.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sha2::Digest;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::config::Sha256;

/// The environment variable that overrides the cache directory. Empty disables the
/// cache.
pub const CACHE_DIR_ENV: &str = "INTERPOSE_CACHE_DIR";

/// Past this total size of entries, storing one deletes the least recently used
/// others. A Python entry is about 40 MiB, a Rust one well under 1 MiB.
pub const MAX_CACHE_BYTES: u64 = 1 << 30;

/// A temporary file older than this was left by a process that died while writing.
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

const ENTRY_EXTENSION: &str = "cwasm";

/// The cache directory: `$INTERPOSE_CACHE_DIR`, else `$XDG_CACHE_HOME/interpose`, else
/// `~/.cache/interpose`. `None` when the cache is turned off or no home is known.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV) {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("interpose"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|home| PathBuf::from(home).join(".cache").join("interpose"))
}

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Mapped from the cache.
    Cached,
    /// Compiled now (and stored in the cache when there is one).
    Compiled,
}

/// The compiled-plugin cache of one engine.
#[derive(Clone)]
pub struct CompileCache {
    /// All engines' entries: `<root>/compiled`.
    compiled: PathBuf,
    /// This engine's entries: `<compiled>/<engine>`.
    dir: PathBuf,
}

impl CompileCache {
    /// The cache in `root` for `engine`, or `None` (with a warning) when its
    /// directory cannot be created: the proxy then compiles every time, which is
    /// slower but correct.
    pub fn open(root: &Path, engine: &Engine) -> Option<Self> {
        let compiled = root.join("compiled");
        let dir = compiled.join(engine_key(engine));
        let created = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir);
        if let Err(e) = created {
            tracing::warn!(
                "compiled-plugin cache disabled: cannot create {}: {e}",
                dir.display()
            );
            return None;
        }
        if let Err(why) = private(&dir) {
            tracing::warn!("compiled-plugin cache disabled: {}: {why}", dir.display());
            return None;
        }
        tracing::debug!("compiled-plugin cache in {}", dir.display());
        Some(CompileCache { compiled, dir })
    }

    /// The entry for the `.wasm` file whose digest is `sha256`.
    pub fn entry(&self, sha256: &Sha256) -> PathBuf {
        self.dir.join(format!("{sha256}.{ENTRY_EXTENSION}"))
    }

    /// The cached component, if there is a usable entry. An entry wasmtime refuses
    /// (say, written by another build with the same engine settings) is a miss, and
    /// is replaced when the component is compiled again.
    fn load(&self, engine: &Engine, sha256: &Sha256) -> Option<Component> {
        let entry = self.entry(sha256);
        if !entry.is_file() {
            return None;
        }
        match map_entry(engine, &entry) {
            Ok(component) => {
                // Its modification time is its last use, for the eviction order.
                touch(&entry);
                Some(component)
            }
            Err(e) => {
                tracing::debug!("cannot use the cached {}: {e:#}", entry.display());
                None
            }
        }
    }

    /// Writes `component` as the entry for `sha256`, then evicts the least recently
    /// used entries past [`MAX_CACHE_BYTES`].
    fn store(&self, component: &Component, sha256: &Sha256) -> anyhow::Result<()> {
        let bytes = component.serialize()?;
        let mut file = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)?;
        file.write_all(&bytes)?;
        // On disk before the rename: a crash must leave no entry with holes in it.
        file.as_file().sync_all()?;
        file.persist(self.entry(sha256))?;
        self.evict(MAX_CACHE_BYTES);
        Ok(())
    }

    /// Deletes the least recently used entries (of every engine) until the rest fit
    /// in `limit` bytes, and temporary files left by dead writers. Best effort: the
    /// cache is shared with other processes, which may delete the same files.
    pub fn evict(&self, limit: u64) {
        let mut entries = Vec::new();
        let engines = std::fs::read_dir(&self.compiled).into_iter().flatten();
        for engine_dir in engines.flatten() {
            for file in std::fs::read_dir(engine_dir.path()).into_iter().flatten() {
                let Ok(file) = file else { continue };
                let path = file.path();
                let Ok(meta) = file.metadata() else { continue };
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                if path.extension().is_some_and(|e| e == ENTRY_EXTENSION) {
                    entries.push((modified, meta.len(), path));
                } else if file.file_name().to_string_lossy().starts_with(".tmp-")
                    && modified.elapsed().is_ok_and(|age| age > STALE_TEMPORARY)
                {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= limit {
                break;
            }
            // A process that has the entry mapped keeps its pages: unlinking a
            // file does not take them away.
            if std::fs::remove_file(&path).is_ok() {
                tracing::debug!("compiled-plugin cache: evicted {}", path.display());
            }
            total = total.saturating_sub(len);
        }
    }
}

/// Whether only this process's user can put files in `dir` (and so entries there
/// were written by interpose running as that user).
fn private(dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "owned by uid {}, not by this user (uid {me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "other users may write there (mode {:o})",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

/// Maps an entry the cache wrote.
#[allow(unsafe_code)]
fn map_entry(engine: &Engine, entry: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize_file` runs the native code in the file as it is, and
    // requires that the file is never modified while mapped. Entries are only ever
    // written by `CompileCache::store`, from wasmtime's own `serialize`, complete and
    // synced before an atomic rename; none is written in place. Wasmtime checks the
    // header (its version, the compiler's target and settings) and refuses an entry
    // made for another engine. The directory is the user's own (like the binary
    // itself, whoever can write there can already run code as the user), which
    // `CompileCache::open` checks.
    unsafe { Component::deserialize_file(engine, entry) }
}

/// Sets an entry's modification time to now (failures only age it).
fn touch(entry: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(entry) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// The component for `wasm`: mapped from `cache` when it holds an entry, else
/// compiled (and stored there). Blocking: seconds when it compiles. `name` is for the
/// logs, which say which way it went and how long it took.
pub fn load_or_compile(
    engine: &Engine,
    cache: Option<&CompileCache>,
    name: &str,
    wasm: &[u8],
    sha256: &Sha256,
) -> wasmtime::Result<(Component, Origin)> {
    let started = Instant::now();
    if let Some(component) = cache.and_then(|cache| cache.load(engine, sha256)) {
        tracing::debug!(
            plugin = name,
            "loaded the compiled plugin from the cache in {:.1?}",
            started.elapsed()
        );
        return Ok((component, Origin::Cached));
    }
    match cache {
        Some(_) => tracing::info!(
            plugin = name,
            "compiling plugin {name} (first start after a change; later starts use the cache)"
        ),
        None => tracing::info!(
            plugin = name,
            "compiling plugin {name} (the compiled-plugin cache is off: every start compiles)"
        ),
    }
    let component = Component::new(engine, wasm)?;
    tracing::info!(
        plugin = name,
        "compiled plugin {name} in {:.1?}",
        started.elapsed()
    );
    if let Some(cache) = cache
        && let Err(e) = cache.store(&component, sha256)
    {
        tracing::warn!(
            plugin = name,
            "cannot store the compiled plugin in {}: {e:#}",
            cache.dir.display()
        );
    }
    Ok((component, Origin::Compiled))
}

/// A digest of `engine`'s compatibility hash: compiled code from one engine loads
/// in another exactly when their keys are equal.
fn engine_key(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(sha2::Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..12])
}

/// Feeds a `Hash` into SHA-256: stable across processes, unlike `DefaultHasher`'s
/// random keys.
struct Sha256Hasher(sha2::Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Only the digest is used.
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_engine() -> Engine {
        Engine::new(wasmtime::Config::new().wasm_component_model(true)).expect("engine")
    }

    /// The smallest component: its header (the wasm magic, component layer 1).
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    #[test]
    fn a_compiled_component_is_stored_then_mapped_from_the_cache() {
        let root = tempfile::tempdir().unwrap();
        let engine = new_engine();
        let cache = CompileCache::open(root.path(), &engine).expect("cache");
        let wasm = EMPTY_COMPONENT;
        let sha = Sha256::of(wasm);
        let (_, origin) = load_or_compile(&engine, Some(&cache), "p", wasm, &sha).unwrap();
        assert_eq!(origin, Origin::Compiled);
        assert!(cache.entry(&sha).is_file());
        // A second engine with the same settings (another process) finds it.
        let other = new_engine();
        let cache = CompileCache::open(root.path(), &other).expect("cache");
        let (_, origin) = load_or_compile(&other, Some(&cache), "p", wasm, &sha).unwrap();
        assert_eq!(origin, Origin::Cached);
    }

    #[test]
    fn engines_with_other_settings_do_not_share_entries() {
        let plain = new_engine();
        let fuel = Engine::new(
            wasmtime::Config::new()
                .wasm_component_model(true)
                .consume_fuel(true),
        )
        .unwrap();
        assert_ne!(engine_key(&plain), engine_key(&fuel));
        assert_eq!(engine_key(&plain), engine_key(&new_engine()));
    }

    #[test]
    fn an_unusable_entry_is_a_miss_and_is_replaced() {
        let root = tempfile::tempdir().unwrap();
        let engine = new_engine();
        let cache = CompileCache::open(root.path(), &engine).expect("cache");
        let wasm = EMPTY_COMPONENT;
        let sha = Sha256::of(wasm);
        std::fs::write(cache.entry(&sha), b"not an ELF file").unwrap();
        let (_, origin) = load_or_compile(&engine, Some(&cache), "p", wasm, &sha).unwrap();
        assert_eq!(origin, Origin::Compiled);
        let (_, origin) = load_or_compile(&engine, Some(&cache), "p", wasm, &sha).unwrap();
        assert_eq!(origin, Origin::Cached);
    }

    #[test]
    fn a_directory_other_users_may_write_to_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let engine = new_engine();
        let cache = CompileCache::open(root.path(), &engine).expect("cache");
        std::fs::set_permissions(&cache.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(CompileCache::open(root.path(), &engine).is_none());
        std::fs::set_permissions(&cache.dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(CompileCache::open(root.path(), &engine).is_some());
    }

    #[test]
    fn eviction_deletes_the_least_recently_used_entries_and_stale_temporaries() {
        let root = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(root.path(), &new_engine()).expect("cache");
        let old_engine = root.path().join("compiled").join("an-older-wasmtime");
        std::fs::create_dir_all(&old_engine).unwrap();
        let day = Duration::from_secs(86_400);
        let aged = |path: &Path, days: u32, len: usize| {
            std::fs::write(path, vec![0u8; len]).unwrap();
            let file = std::fs::File::options().append(true).open(path).unwrap();
            file.set_modified(SystemTime::now() - day * days).unwrap();
        };
        let oldest = old_engine.join(format!("a.{ENTRY_EXTENSION}"));
        let older = cache.dir.join(format!("b.{ENTRY_EXTENSION}"));
        let newest = cache.dir.join(format!("c.{ENTRY_EXTENSION}"));
        let dead_write = cache.dir.join(".tmp-dead");
        let live_write = cache.dir.join(".tmp-live");
        aged(&oldest, 3, 100);
        aged(&older, 2, 100);
        aged(&newest, 1, 100);
        aged(&dead_write, 1, 10);
        aged(&live_write, 0, 10);
        cache.evict(150);
        assert!(!oldest.exists() && !older.exists());
        assert!(newest.exists());
        assert!(!dead_write.exists());
        assert!(
            live_write.exists(),
            "a temporary being written is left alone"
        );
    }
}
