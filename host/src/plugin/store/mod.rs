//! Plugin state: the store behind the WIT `store` interface and the older
//! `host.kv-*` functions. One [`Store`] per plugin, its keys private to it; in the
//! proxy's memory by default ([`memory`]), or in Valkey/Redis with `[store] url`
//! ([`valkey`]), where every replica pointed at the same server shares it.

pub mod memory;
pub mod valkey;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

pub use memory::KvStore;
pub use valkey::Valkey;

use crate::config::DEFAULT_STORE_MEMORY_BYTES;
pub use crate::config::StoreConfig;

/// Longest key a plugin may use, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a store call failed; what the plugin sees as the WIT `store-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("the store did not answer in time")]
    Timeout,
    #[error("the key or value is over the store's limits")]
    TooLarge,
    #[error("the value is not a decimal 64-bit integer, or the sum overflows")]
    NotANumber,
    #[error("the key-value store is not granted (`kv = false`)")]
    Denied,
}

/// What a store call returns.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// One plugin's key-value store. Keys are the plugin's own: the implementation
/// keeps them apart from other plugins'.
pub trait StateStore: Send + Sync {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;

    /// Stores `value`, expiring after `ttl` when given.
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()>;

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()>;

    /// Adds `delta` to the integer at `key`, atomically; a new key starts at 0 and
    /// expires after `ttl`, which later increments leave alone.
    fn increment<'a>(
        &'a self,
        key: &'a str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, i64>;

    /// The longest one call may take; `None` for a store that answers at once.
    fn timeout(&self) -> Option<Duration>;
}

/// Where the plugins of one process keep their state: opens each plugin's store.
#[derive(Clone)]
pub enum Stores {
    /// A bounded store in memory per plugin.
    Memory { capacity: usize },
    /// One Valkey/Redis connection pool shared by every plugin.
    Valkey(Arc<Valkey>),
}

impl Default for Stores {
    fn default() -> Self {
        Stores::Memory {
            capacity: DEFAULT_STORE_MEMORY_BYTES,
        }
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stores::Memory { capacity } => write!(f, "memory ({capacity} bytes per plugin)"),
            Stores::Valkey(valkey) => write!(f, "valkey ({})", valkey.address()),
        }
    }
}

impl Stores {
    /// The stores `config` describes. Valkey is connected to lazily, on first use,
    /// so the proxy starts (and serves, its plugins seeing `unavailable`) while
    /// the server is down.
    pub fn new(config: &StoreConfig) -> Result<Self, StoreError> {
        match &config.url {
            None => Ok(Stores::Memory {
                capacity: config.memory_bytes,
            }),
            Some(_) => Ok(Stores::Valkey(Arc::new(Valkey::new(config)?))),
        }
    }

    /// The store of the plugin named `plugin`.
    pub fn open(&self, plugin: &str) -> Arc<dyn StateStore> {
        match self {
            Stores::Memory { capacity } => Arc::new(KvStore::new(*capacity)),
            Stores::Valkey(valkey) => Arc::new(valkey.namespace(plugin)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_plugin_has_its_own_memory_store() {
        let stores = Stores::default();
        let (a, b) = (stores.open("a"), stores.open("b"));
        a.set("k", b"1".to_vec(), None).await.unwrap();
        assert_eq!(a.get("k").await, Ok(Some(b"1".to_vec())));
        assert_eq!(b.get("k").await, Ok(None));
        assert_eq!(a.increment("n", 2, None).await, Ok(2));
        a.delete("k").await.unwrap();
        assert_eq!(a.get("k").await, Ok(None));
        assert_eq!(a.timeout(), None);
    }
}
