//! Plugin state: the store behind the WIT `store` interface and the older
//! `host.kv-*` functions. One [`Store`] per plugin, its keys private to it; in the
//! proxy's memory by default ([`memory`]), or in Valkey/Redis with `[store] url`
//! ([`valkey`]), where every replica pointed at the same server shares it.

pub mod memory;
pub mod valkey;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

pub use memory::{DEFAULT_KV_CAPACITY, KvStore};
pub use valkey::Valkey;

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

/// The `[store]` table of the configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `redis://HOST:PORT[/DB]` (or `rediss://`, `redis+unix://`): plugin state in
    /// Valkey or Redis. Unset: in the proxy's memory.
    #[serde(default)]
    pub url: Option<String>,
    /// The deadline of one store call, in milliseconds (Valkey only).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Connections to Valkey, each multiplexing every call in flight on it.
    #[serde(default = "default_pool")]
    pub pool: usize,
    /// The first part of every key in Valkey: `PREFIX:PLUGIN:KEY`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The bound on one plugin's store in memory, in bytes (memory only).
    #[serde(default = "default_memory_bytes")]
    pub memory_bytes: usize,
}

/// Most connections `pool` may ask for.
pub const MAX_POOL: usize = 64;

fn default_timeout_ms() -> u64 {
    100
}

fn default_pool() -> usize {
    2
}

fn default_prefix() -> String {
    "interpose".into()
}

fn default_memory_bytes() -> usize {
    DEFAULT_KV_CAPACITY
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            timeout_ms: default_timeout_ms(),
            pool: default_pool(),
            prefix: default_prefix(),
            memory_bytes: default_memory_bytes(),
        }
    }
}

impl StoreConfig {
    /// The checks serde cannot make; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        if self.timeout_ms == 0 {
            return Err("`timeout_ms` must be at least 1".into());
        }
        if !(1..=MAX_POOL).contains(&self.pool) {
            return Err(format!("`pool` must be from 1 to {MAX_POOL}"));
        }
        if let Some(url) = &self.url {
            redis::Client::open(url.as_str())
                .map_err(|e| format!("`url` is not a Valkey/Redis URL: {e}"))?;
        }
        Ok(())
    }
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
            capacity: DEFAULT_KV_CAPACITY,
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

    #[test]
    fn config_defaults_and_checks() {
        let config: StoreConfig = toml::from_str("").unwrap();
        assert_eq!(config, StoreConfig::default());
        assert_eq!((config.timeout_ms, config.pool), (100, 2));
        let bad = |text: &str| {
            let config: StoreConfig = toml::from_str(text).unwrap();
            config.check().unwrap_err()
        };
        assert_eq!(bad("timeout_ms = 0"), "`timeout_ms` must be at least 1");
        assert_eq!(bad("pool = 0"), "`pool` must be from 1 to 64");
        assert!(bad("url = \"http://x\"").starts_with("`url` is not a Valkey/Redis URL"));
        let ok: StoreConfig = toml::from_str("url = \"redis://127.0.0.1:6379\"").unwrap();
        assert_eq!(ok.check(), Ok(()));
    }

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
