//! Plugin state in Valkey or Redis (`[store] url`), shared by every replica pointed
//! at the same server. Each key is `PREFIX:PLUGIN:KEY`.
//!
//! Connections are `redis`' [`ConnectionManager`]s: each multiplexes every call in
//! flight on one connection and reconnects by itself after the server went away,
//! so the pool is small (`[store] pool`) and nothing here manages reconnection.
//! Every call is bounded by the store timeout (and, by the caller, by the plugin's
//! own deadline), so a server that is down or slow costs a plugin at most that.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{StoreConfig, StoreError, StoreFuture};

/// Largest value stored in Valkey, in bytes: a bound on what one plugin call can
/// send over the shared connections.
pub const MAX_VALUE_BYTES: usize = 4 * 1024 * 1024;

/// The connection pool, shared by the plugins of the process.
pub struct Valkey {
    connections: Vec<ConnectionManager>,
    next: AtomicUsize,
    timeout: Duration,
    prefix: String,
    /// The URL without its password, for logs.
    address: String,
}

/// One plugin's keys in Valkey.
pub struct Namespace {
    valkey: Arc<Valkey>,
    /// `PREFIX:PLUGIN:`.
    prefix: String,
}

impl Valkey {
    /// Connections that connect on first use. Must be called within a Tokio runtime.
    pub fn new(config: &StoreConfig) -> Result<Self, StoreError> {
        let url = config.url.as_deref().unwrap_or_default();
        let client = redis::Client::open(url).map_err(from_redis)?;
        let timeout = Duration::from_millis(config.timeout_ms);
        // One quick retry per call at most: the call's deadline is the store
        // timeout, and the next call tries again anyway.
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(timeout);
        let connections: Vec<ConnectionManager> = (0..config.pool.max(1))
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), manager.clone()))
            .collect::<Result<_, _>>()
            .map_err(from_redis)?;
        connect_ahead(&connections);
        Ok(Valkey {
            connections,
            next: AtomicUsize::new(0),
            timeout,
            prefix: config.prefix.clone(),
            address: without_password(url),
        })
    }

    /// The server's address, without credentials.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The keys of the plugin named `plugin`.
    pub fn namespace(self: &Arc<Self>, plugin: &str) -> Namespace {
        Namespace {
            valkey: self.clone(),
            prefix: format!("{}:{plugin}:", self.prefix),
        }
    }

    /// The next connection, round robin (a clone is a handle to the same one).
    fn connection(&self) -> ConnectionManager {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[index].clone()
    }
}

/// Starts connecting in the background, so that the first plugin call does not
/// pay for it (within its deadline). A server that is down is only logged: calls
/// see it as `unavailable` and the connections retry.
fn connect_ahead(connections: &[ConnectionManager]) {
    for connection in connections {
        let mut connection = connection.clone();
        tokio::spawn(async move {
            let ping: redis::RedisResult<String> =
                redis::cmd("PING").query_async(&mut connection).await;
            if let Err(e) = ping {
                tracing::warn!("the plugin store is not reachable yet: {e}");
            }
        });
    }
}

impl Namespace {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs `cmd` on the next connection.
    async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: impl Into<Query>,
    ) -> Result<T, StoreError> {
        let mut connection = self.valkey.connection();
        let result = match cmd.into() {
            Query::Cmd(cmd) => cmd.query_async(&mut connection).await,
            Query::Pipe(pipe) => pipe.query_async(&mut connection).await,
        };
        result.map_err(from_redis)
    }
}

enum Query {
    Cmd(redis::Cmd),
    Pipe(redis::Pipeline),
}

impl From<redis::Cmd> for Query {
    fn from(cmd: redis::Cmd) -> Self {
        Query::Cmd(cmd)
    }
}

impl From<redis::Pipeline> for Query {
    fn from(pipe: redis::Pipeline) -> Self {
        Query::Pipe(pipe)
    }
}

/// Milliseconds for `PX`, which refuses 0: a zero TTL expires at the next
/// millisecond instead.
fn px(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl super::StateStore for Namespace {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(self.query(redis::cmd("GET").arg(self.key(key)).clone()))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if value.len() > MAX_VALUE_BYTES {
                return Err(StoreError::TooLarge);
            }
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.key(key)).arg(value);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(px(ttl));
            }
            self.query(cmd).await
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _removed: i64 = self
                .query(redis::cmd("DEL").arg(self.key(key)).clone())
                .await?;
            Ok(())
        })
    }

    fn increment<'a>(
        &'a self,
        key: &'a str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            let key = self.key(key);
            let Some(ttl) = ttl else {
                return self
                    .query(redis::cmd("INCRBY").arg(&key).arg(delta).clone())
                    .await;
            };
            // Creating the key with its expiry, only if absent, then adding, in one
            // transaction: no other client sees a counter without its expiry.
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("SET")
                .arg(&key)
                .arg(0)
                .arg("NX")
                .arg("PX")
                .arg(px(ttl))
                .ignore()
                .cmd("INCRBY")
                .arg(&key)
                .arg(delta);
            let (sum,): (i64,) = self.query(pipe).await?;
            Ok(sum)
        })
    }

    fn timeout(&self) -> Option<Duration> {
        Some(self.valkey.timeout)
    }
}

fn from_redis(e: redis::RedisError) -> StoreError {
    if e.is_timeout() {
        return StoreError::Timeout;
    }
    let text = e.to_string();
    if text.contains("not an integer") || text.contains("overflow") {
        return StoreError::NotANumber;
    }
    StoreError::Unavailable(text)
}

fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(invalid URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_hide_the_password() {
        assert_eq!(
            without_password("redis://user:secret@127.0.0.1:6379/0"),
            "redis://user:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            without_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn a_zero_ttl_is_one_millisecond() {
        assert_eq!(px(Duration::ZERO), 1);
        assert_eq!(px(Duration::from_secs(2)), 2000);
    }
}
