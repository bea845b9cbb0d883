//! What a plugin instance's store holds, and the `host` interface of the WIT
//! (`log`, `kv-*`) implemented over it.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::{self, Level};
use super::kv::KvStore;
use super::limits::MemoryLimiter;
use super::message_view::MessageView;
use super::outbound_http::{HttpPolicy, OutboundHttp};
use super::sandbox::PluginTag;

/// Longest key accepted by `kv-set`; longer ones are ignored with a warning.
const MAX_KV_KEY: usize = 1024;

/// The data of one instance's `Store`.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// The message lent to the `intercept` call in progress, if any.
    lent: Option<MessageView>,
    pub(super) limiter: MemoryLimiter,
    tag: Arc<PluginTag>,
    /// `None` when the configuration says `kv = false`.
    kv: Option<Arc<KvStore>>,
    http_ctx: WasiHttpCtx,
    http: OutboundHttp,
}

impl HostState {
    pub fn new(
        wasi: WasiCtx,
        memory_bytes: usize,
        tag: Arc<PluginTag>,
        kv: Option<Arc<KvStore>>,
        http: Arc<HttpPolicy>,
    ) -> Self {
        HostState {
            wasi,
            table: ResourceTable::new(),
            lent: None,
            limiter: MemoryLimiter::new(memory_bytes),
            http: OutboundHttp::new(http, tag.clone()),
            http_ctx: WasiHttpCtx::new(),
            tag,
            kv,
        }
    }

    /// Starts a call that must end within `timeout`: outbound HTTP requests made
    /// during it end by then too (the epoch deadline stops guest code only).
    pub fn start_call(&mut self, timeout: Duration) {
        self.limiter.reset();
        self.http.set_deadline(timeout);
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::LendsMessages for HostState {
    fn lent(&mut self) -> &mut Option<MessageView> {
        &mut self.lent
    }
}

impl bindings::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let plugin = self.tag.get();
        let plugin = &*plugin;
        // The text as the `message` field, not a format string: it is escaped and
        // written in one piece, without going through `fmt` (see `log_output::Fields`).
        let message = message.as_str();
        match level {
            Level::Trace => tracing::trace!(target: "interpose::plugin", message, plugin),
            Level::Debug => tracing::debug!(target: "interpose::plugin", message, plugin),
            Level::Info => tracing::info!(target: "interpose::plugin", message, plugin),
            Level::Warn => tracing::warn!(target: "interpose::plugin", message, plugin),
            Level::Error => tracing::error!(target: "interpose::plugin", message, plugin),
        }
    }

    fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        self.kv.as_ref()?.get(&key)
    }

    fn kv_set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) {
        let Some(kv) = &self.kv else {
            tracing::warn!(target: "interpose::plugin", plugin = &*self.tag.get(), "kv-set ignored: the key-value store is not granted (`kv = false`)");
            return;
        };
        if key.len() > MAX_KV_KEY {
            tracing::warn!(target: "interpose::plugin", plugin = &*self.tag.get(), "kv-set ignored: a key of {} bytes is over {MAX_KV_KEY}", key.len());
            return;
        }
        if let Err(e) = kv.set(&key, value, ttl_ms.map(Duration::from_millis)) {
            tracing::warn!(target: "interpose::plugin", plugin = &*self.tag.get(), "kv-set ignored: {e}");
        }
    }

    fn kv_delete(&mut self, key: String) {
        if let Some(kv) = &self.kv {
            kv.delete(&key);
        }
    }
}

/// A linker with WASI (nothing granted unless the store's context grants it),
/// `wasi:http` (every request checked against the plugin's `http` grant, see
/// [`super::outbound_http`]) and the `types` and `host` interfaces. Imports a component has beyond these are added per component as
/// traps (see [`super::engine::PluginRuntime::link`]).
pub fn base_linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::add_to_linker(&mut linker)?;
    Ok(linker)
}
