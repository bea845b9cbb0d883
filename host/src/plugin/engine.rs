//! The process's one wasmtime [`Engine`], its epoch ticker and the linker every
//! plugin is instantiated against.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceType};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::PluginPre;
use super::compile_cache::{self, CompileCache, Origin};
use super::host_api::{self, HostState};
use super::limits::EPOCH_TICK;
use super::store::Stores;
use crate::config::Sha256;

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled plugins are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Where plugins keep their state.
    pub stores: Stores,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: compile_cache::default_cache_dir(),
            stores: Stores::default(),
        }
    }
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the WebAssembly runtime: {0:#}")]
pub struct RuntimeError(wasmtime::Error);

/// The engine, shared by all plugins of the process.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<CompileCache>,
    stores: Stores,
    /// Stops the ticker thread when the runtime is dropped.
    _ticker: EpochTicker,
}

impl PluginRuntime {
    pub fn new(options: RuntimeOptions) -> Result<Arc<Self>, RuntimeError> {
        let engine = match Engine::new(&engine_config(true)) {
            Ok(engine) => engine,
            Err(e) => {
                // The pooling allocator reserves address space up front; some
                // sandboxes refuse that. Instances then cost more to create.
                tracing::warn!("pooling allocator unavailable ({e:#}); using on-demand allocation");
                Engine::new(&engine_config(false)).map_err(RuntimeError)?
            }
        };
        let cache = options
            .cache_dir
            .and_then(|dir| CompileCache::open(&dir, &engine));
        let linker = host_api::base_linker(&engine).map_err(RuntimeError)?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(Arc::new(PluginRuntime {
            engine,
            linker,
            cache,
            stores: options.stores,
            _ticker: ticker,
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Where the plugins of this runtime keep their state.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Maps the component for `wasm` (whose digest is `sha256`) from the cache, or
    /// compiles it and stores it there. Blocking; `name` is for the logs.
    pub fn load_or_compile(
        &self,
        name: &str,
        wasm: &[u8],
        sha256: &Sha256,
    ) -> wasmtime::Result<(Component, Origin)> {
        compile_cache::load_or_compile(&self.engine, self.cache.as_ref(), name, wasm, sha256)
    }

    /// [`Self::load_or_compile`] off the async threads.
    pub(super) async fn compile(
        &self,
        name: String,
        wasm: Arc<[u8]>,
        sha256: Sha256,
    ) -> wasmtime::Result<Component> {
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || {
            compile_cache::load_or_compile(&engine, cache.as_ref(), &name, &wasm, &sha256)
                .map(|(component, _)| component)
        })
        .await
        .map_err(|e| wasmtime::Error::msg(format!("the compiler thread failed: {e}")))?
    }

    /// Links a component against WASI (with `wasi:http`) and the host interface.
    /// Imports neither provides become functions that trap when called.
    ///
    /// Not `Linker::define_unknown_imports_as_traps`: it defines stubs under the
    /// exact version a guest imports (`wasi:cli/stdout@0.2.6`), which shadows the
    /// semver-compatible WASI the linker already has and breaks stdout, env, files.
    pub(super) fn link(&self, component: &Component) -> wasmtime::Result<PluginPre<HostState>> {
        let mut linker = self.linker.clone();
        let ty = component.component_type();
        for (name, import) in ty.imports(&self.engine) {
            if is_provided(name) {
                continue;
            }
            stub_import(&mut linker, &self.engine, name, import.ty)?;
        }
        PluginPre::new(linker.instantiate_pre(component)?)
    }
}

/// Whether the base linker defines `import`: the WASI 0.2 interfaces wasmtime-wasi
/// and wasmtime-wasi-http implement, and the plugin `host` interface.
fn is_provided(import: &str) -> bool {
    const WASI_P2: &[&str] = &[
        "cli",
        "clocks",
        "filesystem",
        "http",
        "io",
        "random",
        "sockets",
    ];
    if import.starts_with("interpose:plugin/") {
        return true;
    }
    let Some(rest) = import.strip_prefix("wasi:") else {
        return false;
    };
    let (package, version) = match rest.split_once('@') {
        Some((path, version)) => (path.split('/').next().unwrap_or(path), version),
        None => return false,
    };
    WASI_P2.contains(&package) && version.starts_with("0.2.")
}

/// Defines `name` (a function, or an instance of functions and resources) so that
/// calling any of it traps with a clear message.
fn stub_import(
    linker: &mut Linker<HostState>,
    engine: &Engine,
    name: &str,
    item: ComponentItem,
) -> wasmtime::Result<()> {
    match item {
        ComponentItem::ComponentFunc(_) => {
            let what = format!("`{name}` is not available to plugins");
            linker.root().func_new(name, move |_, _, _, _| {
                Err(wasmtime::Error::msg(what.clone()))
            })
        }
        ComponentItem::ComponentInstance(instance) => {
            let mut stubs = linker.instance(name)?;
            for (export, item) in instance.exports(engine) {
                match item.ty {
                    ComponentItem::ComponentFunc(_) => {
                        let what = format!("`{name}#{export}` is not available to plugins");
                        stubs.func_new(export, move |_, _, _, _| {
                            Err(wasmtime::Error::msg(what.clone()))
                        })?;
                    }
                    ComponentItem::Resource(_) => {
                        stubs.resource(export, ResourceType::host::<()>(), |_, _| Ok(()))?;
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        _ => Err(wasmtime::Error::msg(format!(
            "imports `{name}`, which is neither a function nor an interface"
        ))),
    }
}

fn engine_config(pooling: bool) -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        // Adds 1-2 µs to every call_async and is not used (no component-model async).
        .concurrency_support(false)
        .memory_init_cow(true);
    // Names guest functions in `perf report` (/tmp/perf-PID.map), for profiling.
    if std::env::var_os("INTERPOSE_PERF_MAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if pooling {
        let mut pool = PoolingAllocationConfig::new();
        // A component is several core instances (guest, WASI adapter, shims).
        pool.total_component_instances(1000)
            .total_core_instances(8000)
            .total_memories(1000)
            .total_tables(4000)
            .total_stacks(1000)
            .max_memory_size(
                usize::try_from(crate::config::MAX_MEMORY_MB << 20).unwrap_or(usize::MAX),
            )
            .max_tables_per_module(4);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Advances the engine's epoch every [`EPOCH_TICK`] so that call deadlines fire.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("interpose-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| {
                tracing::error!(
                    "cannot start the epoch ticker; plugin deadlines will not fire: {e}"
                )
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
