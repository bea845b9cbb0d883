//! The plugin runtime: WebAssembly components, sandboxed, in a chain that every
//! forwarded message walks.
//!
//! The life of a plugin: its file is read (and checked against its sha256 pin),
//! compiled once (or loaded from the compiled-artifact cache), linked against WASI
//! with nothing granted but its configured grants and the `host` interface, and
//! pre-instantiated. Instances are made ahead, each in its own store, `init`ialized
//! with the plugin's configuration, and kept in a pool; a call takes one, runs under
//! a deadline and a memory cap, and gives it back. See [`InterceptorChain`].
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use interpose::config::PluginConfig;
//! use interpose::plugin;
//!
//! let plugins = vec![PluginConfig::from_path("plugins/redact.wasm")];
//! let chain = plugin::load_chain(plugins, 16 * 1024 * 1024).await?;
//! # Ok(()) }
//! ```

mod bindings;
mod chain;
mod compile_cache;
mod engine;
mod filter;
mod health;
mod host_api;
mod limits;
mod message_view;
pub mod oci;
mod outbound_http;
mod pool;
mod reload;
mod sandbox;
mod slot;
mod stats;
pub mod store;
mod tag;
pub mod trust;
mod version;

use std::sync::Arc;

pub use bindings::Manifest;
pub use chain::{InterceptorChain, PluginStep, StepObserver, plugin_error};
pub use compile_cache::{CACHE_DIR_ENV, Origin, default_cache_dir};
pub use engine::{PluginRuntime, RuntimeError, RuntimeOptions};
pub use filter::{Filter, Interest};
pub use health::{FAILURE_WINDOW, MAX_CONSECUTIVE_FAILURES, MAX_FAILURES_IN_WINDOW};
pub use limits::EPOCH_TICK;
pub use limits::{Failure, Limits};
pub use message_view::{LentMessage, MessageView};
pub use reload::POLL_INTERVAL;
pub use stats::Outcome;
pub use version::{LoadError, LoadProblem, PluginVersion};

use crate::config::PluginConfig;
use crate::session::intercept::{PassAll, SharedInterceptor};

/// Why the plugin chain could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("cannot set up the plugin store: {0}")]
    Store(#[from] store::StoreError),
    /// A plugin of a server's own chain.
    #[error("server `{server}`: {source}")]
    Server {
        server: String,
        source: Box<LoadError>,
    },
}

/// Builds the chain for `plugins` (in order) on a new runtime with default options
/// (plugin state in memory), and starts watching the plugin files for changes.
/// Keep one chain per process (the runtime holds the process's engine).
pub async fn load_chain(
    plugins: Vec<PluginConfig>,
    max_message_bytes: usize,
) -> Result<Arc<InterceptorChain>, ChainError> {
    let runtime = PluginRuntime::new(RuntimeOptions::default())?;
    let chain = InterceptorChain::load(runtime, plugins, max_message_bytes).await?;
    chain.watch(POLL_INTERVAL);
    Ok(chain)
}

/// The chains of a gateway: the global one, between the client and the gateway, and
/// each server's own, between the gateway and that server.
pub struct Chains {
    pub global: SharedInterceptor,
    /// In the order the servers were given; `None` for a server without plugins.
    pub servers: Vec<Option<SharedInterceptor>>,
}

/// Builds the global chain and each server's own (`servers`: its name and plugins,
/// in order) on one runtime, each plugin with its own pools as in one chain and its
/// state where `store` says, and starts watching the plugin files. Without any
/// plugin, no runtime is started: the global chain is [`PassAll`] and no server has
/// a chain.
pub async fn load_chains(
    global: Vec<PluginConfig>,
    servers: Vec<(String, Vec<PluginConfig>)>,
    max_message_bytes: usize,
    store: &store::StoreConfig,
) -> Result<Chains, ChainError> {
    if global.is_empty() && servers.iter().all(|(_, plugins)| plugins.is_empty()) {
        return Ok(Chains {
            global: Arc::new(PassAll),
            servers: servers.iter().map(|_| None).collect(),
        });
    }
    let runtime = PluginRuntime::new(RuntimeOptions {
        stores: store::Stores::new(store)?,
        ..RuntimeOptions::default()
    })?;
    let load = |plugins| InterceptorChain::load(runtime.clone(), plugins, max_message_bytes);
    let global: SharedInterceptor = if global.is_empty() {
        Arc::new(PassAll)
    } else {
        let chain = load(global).await?;
        chain.watch(POLL_INTERVAL);
        chain
    };
    let mut chains = Vec::with_capacity(servers.len());
    for (server, plugins) in servers {
        if plugins.is_empty() {
            chains.push(None);
            continue;
        }
        let chain = load(plugins).await.map_err(|source| ChainError::Server {
            server,
            source: Box::new(source),
        })?;
        chain.watch(POLL_INTERVAL);
        chains.push(Some(chain as SharedInterceptor));
    }
    Ok(Chains {
        global,
        servers: chains,
    })
}

/// Puts the compiled form of the plugin file at `path` in the compiled-plugin cache,
/// where `interpose run` and `interpose check` look for it (same engine settings,
/// same file digest), so that their first start after a build maps it instead of
/// compiling. Blocking (seconds for a Python or JavaScript component). `None` when
/// the cache is off; otherwise whether the file was already there or compiled now.
pub fn precompile(path: &std::path::Path) -> Result<Option<Origin>, ChainError> {
    let options = RuntimeOptions::default();
    if options.cache_dir.is_none() {
        return Ok(None);
    }
    let config = PluginConfig::from_path(path);
    let fail = |problem| LoadError::new(&config, problem);
    let wasm = std::fs::read(path).map_err(|cause| fail(LoadProblem::Read(cause)))?;
    let sha256 = crate::config::Sha256::of(&wasm);
    let runtime = PluginRuntime::new(options)?;
    let (_, origin) = runtime
        .load_or_compile(&config.display_name(), &wasm, &sha256)
        .map_err(|e| fail(LoadProblem::Compile(limits::first_line(&e))))?;
    Ok(Some(origin))
}

/// Why `--config` / `--plugin` could not be turned into an interceptor.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Chain(#[from] ChainError),
}

/// The interceptor for `interpose run`: the plugins of `config_file` (if any) then
/// those of `--plugin` (in flag order) as a watched [`InterceptorChain`], or
/// [`crate::session::intercept::PassAll`] when there are none.
pub async fn interceptor_from_args(
    config_file: Option<&std::path::Path>,
    cli_plugins: &[std::path::PathBuf],
    max_message_bytes: usize,
) -> Result<SharedInterceptor, SetupError> {
    let plugins = crate::config::plugin_list(config_file, cli_plugins)?;
    if plugins.is_empty() {
        return Ok(Arc::new(PassAll));
    }
    let store = crate::config::store_config(config_file)?;
    let runtime = PluginRuntime::new(RuntimeOptions {
        stores: store::Stores::new(&store).map_err(ChainError::from)?,
        ..RuntimeOptions::default()
    })
    .map_err(ChainError::from)?;
    let chain = InterceptorChain::load(runtime, plugins, max_message_bytes)
        .await
        .map_err(ChainError::from)?;
    chain.watch(POLL_INTERVAL);
    Ok(chain)
}
