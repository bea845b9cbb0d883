//! Where compiled plugins are kept between runs, so a restart does not recompile
//! (seconds for Python and JavaScript components).
//!
//! This uses wasmtime's own cache (`Config::cache`) rather than `Component::serialize`
//! plus `deserialize_file`: loading an artifact is `unsafe` (it is native code trusted
//! as is), and the workspace forbids `unsafe`. Wasmtime's cache makes that same trust
//! decision inside wasmtime, keys each entry by a SHA-256 of the `.wasm` bytes, the
//! compiler settings and the wasmtime version, stores it compressed, and bounds the
//! directory's size with a background cleaner. What it costs against a hand-made
//! cache: an artifact is read and decompressed instead of mapped (tens of
//! milliseconds for a 35 MiB Python artifact, once per load).

use std::path::PathBuf;

/// The environment variable that overrides the cache directory. Empty disables the
/// cache.
pub const CACHE_DIR_ENV: &str = "INTERPOSE_CACHE_DIR";

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

/// A wasmtime cache in `dir`, or `None` (with a warning) when it cannot be set up:
/// the proxy then compiles every time, which is slower but correct.
pub fn open(dir: PathBuf) -> Option<wasmtime::Cache> {
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::warn!(
            "compiled-plugin cache disabled: cannot create {}: {e}",
            dir.display()
        );
        return None;
    }
    let mut config = wasmtime::CacheConfig::new();
    config.with_directory(&dir);
    match wasmtime::Cache::new(config) {
        Ok(cache) => {
            tracing::debug!("compiled-plugin cache in {}", dir.display());
            Some(cache)
        }
        Err(e) => {
            tracing::warn!("compiled-plugin cache disabled: {}: {e:#}", dir.display());
            None
        }
    }
}
