//! What a plugin instance's store holds, and the `host` (`log`, `kv-*`) and `store`
//! interfaces of the WIT implemented over it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::{self, Level, WitStoreError};
use super::limits::MemoryLimiter;
use super::message_view::MessageView;
use super::outbound_http::{HttpPolicy, OutboundHttp};
use super::store::{MAX_KEY_BYTES, StateStore, StoreError, StoreFuture};
use super::tag::PluginTag;
use crate::log_output::log_plugin_line;

/// The data of one instance's `Store`.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// The message lent to the `intercept` call in progress, if any.
    lent: Option<MessageView>,
    pub(super) limiter: MemoryLimiter,
    tag: Arc<PluginTag>,
    /// `None` when the configuration says `kv = false`.
    store: Option<Arc<dyn StateStore>>,
    /// When the call in progress (`init` or `intercept`) must end: store calls
    /// end by then too.
    deadline: Option<Instant>,
    http_ctx: WasiHttpCtx,
    http: OutboundHttp,
}

impl HostState {
    pub fn new(
        wasi: WasiCtx,
        memory_bytes: usize,
        tag: Arc<PluginTag>,
        store: Option<Arc<dyn StateStore>>,
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
            store,
            deadline: None,
        }
    }

    /// The plugin's store and the call's deadline, borrowed apart from the rest of
    /// the state: a future holding them holds no reference to the (non-`Sync`)
    /// `HostState`, and so can be sent between threads.
    fn store_access(&self) -> StoreAccess<'_> {
        StoreAccess {
            store: self.store.as_deref(),
            deadline: self.deadline,
        }
    }

    /// Starts a call (`init` or `intercept`) that must end within `timeout`: its
    /// memory count starts over, and its store calls and outbound HTTP requests end
    /// by then too (the epoch deadline stops guest code only).
    pub fn start_call(&mut self, timeout: Duration) {
        self.limiter.reset();
        // One clock read per call: this runs before every plugin call.
        let now = Instant::now();
        self.deadline = now.checked_add(timeout);
        self.http.set_deadline(now, timeout);
    }

    /// Logs a failed `kv-*` call, which the plugin cannot see: `outcome` says
    /// what the plugin got instead (`kv-set ignored`).
    fn kv_failed(&self, outcome: &str, error: &StoreError) {
        tracing::warn!(target: "interpose::plugin", plugin = &*self.tag.get(), "{outcome}: {error}");
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
        let level = match level {
            Level::Trace => tracing::Level::TRACE,
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
            Level::Warn => tracing::Level::WARN,
            Level::Error => tracing::Level::ERROR,
        };
        // Formatting the line waits for its batch to be written (see `log_output`),
        // off the message's path.
        log_plugin_line(level, &self.tag.get(), &message);
    }

    async fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        // Without a store (`kv = false`), reads find nothing, as they always did.
        self.store.as_ref()?;
        match self.store_access().run(&key, |store| store.get(&key)).await {
            Ok(value) => value,
            Err(e) => {
                self.kv_failed("kv-get found nothing", &e);
                None
            }
        }
    }

    async fn kv_set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) {
        let ttl = ttl_ms.map(Duration::from_millis);
        if let Err(e) = self
            .store_access()
            .run(&key, |store| store.set(&key, value, ttl))
            .await
        {
            self.kv_failed("kv-set ignored", &e);
        }
    }

    async fn kv_delete(&mut self, key: String) {
        if self.store.is_none() {
            return;
        }
        if let Err(e) = self
            .store_access()
            .run(&key, |store| store.delete(&key))
            .await
        {
            self.kv_failed("kv-delete ignored", &e);
        }
    }
}

impl bindings::StoreHost for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, WitStoreError> {
        Ok(self
            .store_access()
            .run(&key, |store| store.get(&key))
            .await?)
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), WitStoreError> {
        let ttl = ttl_ms.map(Duration::from_millis);
        Ok(self
            .store_access()
            .run(&key, |store| store.set(&key, value, ttl))
            .await?)
    }

    async fn delete(&mut self, key: String) -> Result<(), WitStoreError> {
        Ok(self
            .store_access()
            .run(&key, |store| store.delete(&key))
            .await?)
    }

    async fn increment(
        &mut self,
        key: String,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> Result<i64, WitStoreError> {
        let ttl = ttl_ms.map(Duration::from_millis);
        Ok(self
            .store_access()
            .run(&key, |store| store.increment(&key, delta, ttl))
            .await?)
    }
}

impl From<StoreError> for WitStoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(why) => WitStoreError::Unavailable(why),
            StoreError::Timeout => WitStoreError::Timeout,
            StoreError::TooLarge => WitStoreError::TooLarge,
            StoreError::NotANumber => WitStoreError::NotANumber,
            StoreError::Denied => WitStoreError::Denied,
        }
    }
}

/// What one store call needs: see [`HostState::store_access`].
struct StoreAccess<'a> {
    store: Option<&'a dyn StateStore>,
    deadline: Option<Instant>,
}

impl<'a> StoreAccess<'a> {
    /// Runs `call` on the plugin's store within the store's timeout and what is
    /// left of the plugin's deadline.
    async fn run<T>(
        self,
        key: &str,
        call: impl FnOnce(&'a dyn StateStore) -> StoreFuture<'a, T>,
    ) -> Result<T, StoreError> {
        let store = self.store.ok_or(StoreError::Denied)?;
        if key.len() > MAX_KEY_BYTES {
            return Err(StoreError::TooLarge);
        }
        let Some(timeout) = store.timeout() else {
            return call(store).await;
        };
        let left = self
            .deadline
            .map_or(timeout, |at| at.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            // The plugin's deadline has passed: its call is about to be stopped.
            return Err(StoreError::Timeout);
        }
        tokio::time::timeout(timeout.min(left), call(store))
            .await
            .unwrap_or(Err(StoreError::Timeout))
    }
}

/// A linker with WASI (nothing granted unless the store's context grants it),
/// `wasi:http` (every request checked against the plugin's `http` grant, see
/// [`super::outbound_http`]) and the `types`, `host` and `store` interfaces. Imports
/// a component has beyond these are added per component as traps (see
/// [`super::engine::PluginRuntime::link`]).
pub fn base_linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::add_to_linker(&mut linker)?;
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::store::KvStore;

    /// A store that answers after `delay`, within a `timeout` of its own.
    struct Slow {
        delay: Duration,
        timeout: Duration,
    }

    impl StateStore for Slow {
        fn get<'a>(&'a self, _key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                Ok(Some(b"late".to_vec()))
            })
        }
        fn set<'a>(&'a self, _: &'a str, _: Vec<u8>, _: Option<Duration>) -> StoreFuture<'a, ()> {
            unreachable!("not called")
        }
        fn delete<'a>(&'a self, _: &'a str) -> StoreFuture<'a, ()> {
            unreachable!("not called")
        }
        fn increment<'a>(
            &'a self,
            _: &'a str,
            _: i64,
            _: Option<Duration>,
        ) -> StoreFuture<'a, i64> {
            unreachable!("not called")
        }
        fn timeout(&self) -> Option<Duration> {
            Some(self.timeout)
        }
    }

    fn slow(delay_ms: u64, timeout_ms: u64) -> Slow {
        Slow {
            delay: Duration::from_millis(delay_ms),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    async fn get(store: &Slow, deadline: Option<Instant>) -> Result<Option<Vec<u8>>, StoreError> {
        let access = StoreAccess {
            store: Some(store),
            deadline,
        };
        access.run("k", |s| s.get("k")).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_call_ends_at_the_store_timeout_or_the_plugin_deadline() {
        assert_eq!(get(&slow(10, 100), None).await, Ok(Some(b"late".to_vec())));
        let began = tokio::time::Instant::now();
        assert_eq!(
            get(&slow(10_000, 100), None).await,
            Err(StoreError::Timeout)
        );
        assert_eq!(began.elapsed(), Duration::from_millis(100));
        // The plugin's deadline, 30 ms away, comes first.
        let began = tokio::time::Instant::now();
        let deadline = Instant::now() + Duration::from_millis(30);
        assert_eq!(
            get(&slow(10_000, 100), Some(deadline)).await,
            Err(StoreError::Timeout)
        );
        assert!(began.elapsed() <= Duration::from_millis(30));
        // Past the deadline already: no call at all.
        let past = Instant::now().checked_sub(Duration::from_millis(1));
        assert_eq!(get(&slow(0, 100), past).await, Err(StoreError::Timeout));
    }

    #[tokio::test]
    async fn no_store_is_denied_and_long_keys_are_too_large() {
        let store = KvStore::default();
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        let none = StoreAccess {
            store: None,
            deadline: None,
        };
        assert_eq!(none.run("k", |s| s.get("k")).await, Err(StoreError::Denied));
        let some = StoreAccess {
            store: Some(&store),
            deadline: None,
        };
        assert_eq!(
            some.run(&long, |s| s.get(&long)).await,
            Err(StoreError::TooLarge)
        );
    }
}
