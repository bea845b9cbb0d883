//! What the host offers to plugins: logging and a key-value store shared by
//! all instances of the plugin (and, with `[store] url`, by every replica): the
//! [`store`] functions, which report failures, and the older `kv_*` ones, which
//! do not.
//!
//! In a Wasm build these call the host. In a native build (unit tests) they use
//! an in-memory stand-in per thread, which [`testing`] lets tests inspect.

use std::time::Duration;

/// Log levels, as in `tracing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very verbose detail.
    Trace,
    /// Detail for debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected but handled.
    Warn,
    /// Something failed.
    Error,
}

/// Writes one line to the proxy's log, tagged with the plugin's name.
pub fn log(level: Level, message: &str) {
    imp::log(level, message);
}

/// [`log`] at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// [`log`] at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Reads a value from the plugin's key-value store. The store is shared by all
/// instances of the plugin (instances are pooled, so their memories are not),
/// lives as long as the proxy process, and is private to the plugin.
pub fn kv_get(key: &str) -> Option<Vec<u8>> {
    imp::kv_get(key)
}

/// Stores a value, optionally expiring after `ttl` (millisecond resolution).
/// The store is bounded; when full, the entries closest to expiry are evicted
/// first.
pub fn kv_set(key: &str, value: &[u8], ttl: Option<Duration>) {
    let ttl_ms = ttl.map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
    imp::kv_set(key, value, ttl_ms);
}

/// Removes a value; does nothing when the key is absent.
pub fn kv_delete(key: &str) {
    imp::kv_delete(key);
}

/// The plugin's key-value store, with errors a plugin can act on (since WIT
/// 0.1.1). Keys are private to the plugin; `kv_*` above use the same store.
pub mod store {
    use std::time::Duration;

    use super::imp;

    /// Why a store call failed.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum StoreError {
        /// The store cannot be reached or refused the call; the text says why.
        Unavailable(String),
        /// No answer within the store's timeout or the plugin's deadline.
        Timeout,
        /// The key or value is over the store's limits.
        TooLarge,
        /// `increment` on a value that is not a decimal 64-bit integer, or an
        /// overflowing sum.
        NotANumber,
        /// The configuration does not grant the plugin a store (`kv = false`).
        Denied,
    }

    impl std::fmt::Display for StoreError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                StoreError::Unavailable(why) => write!(f, "the store is unavailable: {why}"),
                StoreError::Timeout => f.write_str("the store did not answer in time"),
                StoreError::TooLarge => f.write_str("the key or value is over the store's limits"),
                StoreError::NotANumber => f.write_str("the value is not a 64-bit integer"),
                StoreError::Denied => f.write_str("the store is not granted to this plugin"),
            }
        }
    }

    impl std::error::Error for StoreError {}

    pub(super) fn ttl_ms(ttl: Option<Duration>) -> Option<u64> {
        ttl.map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
    }

    /// Reads a value; `None` when the key is absent or expired.
    pub fn get(key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        imp::store_get(key)
    }

    /// Stores a value, expiring after `ttl` (millisecond resolution) when given.
    pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        imp::store_set(key, value, ttl_ms(ttl))
    }

    /// Removes a value; succeeds when the key is absent.
    pub fn delete(key: &str) -> Result<(), StoreError> {
        imp::store_delete(key)
    }

    /// Adds `delta` to the integer at `key` and returns the sum, atomically
    /// across instances and replicas. A missing key counts as 0 and is created
    /// expiring after `ttl`; later increments leave its expiry alone (a counter
    /// of calls in a window ends with the window).
    pub fn increment(key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, StoreError> {
        imp::store_increment(key, delta, ttl_ms(ttl))
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Level;
    use crate::__private::bindings::interpose::plugin::host as wit;

    pub fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        };
        wit::log(level, message);
    }

    pub fn kv_get(key: &str) -> Option<Vec<u8>> {
        wit::kv_get(key)
    }

    pub fn kv_set(key: &str, value: &[u8], ttl_ms: Option<u64>) {
        wit::kv_set(key, value, ttl_ms);
    }

    pub fn kv_delete(key: &str) {
        wit::kv_delete(key);
    }

    use super::store::StoreError;
    use crate::__private::bindings::interpose::plugin::store as wit_store;

    fn error(e: wit_store::StoreError) -> StoreError {
        match e {
            wit_store::StoreError::Unavailable(why) => StoreError::Unavailable(why),
            wit_store::StoreError::Timeout => StoreError::Timeout,
            wit_store::StoreError::TooLarge => StoreError::TooLarge,
            wit_store::StoreError::NotANumber => StoreError::NotANumber,
            wit_store::StoreError::Denied => StoreError::Denied,
        }
    }

    pub fn store_get(key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        wit_store::get(key).map_err(error)
    }

    pub fn store_set(key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), StoreError> {
        wit_store::set(key, value, ttl_ms).map_err(error)
    }

    pub fn store_delete(key: &str) -> Result<(), StoreError> {
        wit_store::delete(key).map_err(error)
    }

    pub fn store_increment(key: &str, delta: i64, ttl_ms: Option<u64>) -> Result<i64, StoreError> {
        wit_store::increment(key, delta, ttl_ms).map_err(error)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use super::Level;
    use super::store::StoreError;

    /// Key -> value and expiry.
    type Store = HashMap<String, (Vec<u8>, Option<Instant>)>;

    thread_local! {
        pub(super) static LOGS: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
        pub(super) static KV: RefCell<Store> = RefCell::new(HashMap::new());
        /// The error every `store` call returns, set by `testing::fail_store`.
        pub(super) static FAULT: RefCell<Option<StoreError>> = const { RefCell::new(None) };
    }

    fn fault() -> Result<(), StoreError> {
        FAULT.with(|fault| fault.borrow().clone().map_or(Ok(()), Err))
    }

    pub fn store_get(key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        fault()?;
        Ok(kv_get(key))
    }

    pub fn store_set(key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), StoreError> {
        fault()?;
        kv_set(key, value, ttl_ms);
        Ok(())
    }

    pub fn store_delete(key: &str) -> Result<(), StoreError> {
        fault()?;
        kv_delete(key);
        Ok(())
    }

    pub fn store_increment(key: &str, delta: i64, ttl_ms: Option<u64>) -> Result<i64, StoreError> {
        fault()?;
        let current = match kv_get(key) {
            None => None,
            Some(bytes) => Some(
                std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|text| text.parse::<i64>().ok())
                    .ok_or(StoreError::NotANumber)?,
            ),
        };
        let sum = current
            .unwrap_or(0)
            .checked_add(delta)
            .ok_or(StoreError::NotANumber)?;
        // A new key takes the TTL; an existing one keeps its expiry.
        let expiry = match current {
            None => ttl_ms.map(|ms| Instant::now() + Duration::from_millis(ms)),
            Some(_) => KV.with(|kv| kv.borrow().get(key).and_then(|(_, expiry)| *expiry)),
        };
        KV.with(|kv| {
            kv.borrow_mut()
                .insert(key.to_owned(), (sum.to_string().into_bytes(), expiry))
        });
        Ok(sum)
    }

    pub fn log(level: Level, message: &str) {
        LOGS.with(|logs| logs.borrow_mut().push((level, message.to_owned())));
    }

    pub fn kv_get(key: &str) -> Option<Vec<u8>> {
        KV.with(|kv| {
            let mut kv = kv.borrow_mut();
            match kv.get(key) {
                Some((_, Some(expiry))) if *expiry <= Instant::now() => {
                    kv.remove(key);
                    None
                }
                Some((value, _)) => Some(value.clone()),
                None => None,
            }
        })
    }

    pub fn kv_set(key: &str, value: &[u8], ttl_ms: Option<u64>) {
        let expiry = ttl_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
        KV.with(|kv| {
            kv.borrow_mut()
                .insert(key.to_owned(), (value.to_vec(), expiry))
        });
    }

    pub fn kv_delete(key: &str) {
        KV.with(|kv| kv.borrow_mut().remove(key));
    }
}

/// Native builds only: inspect what a plugin logged and stored. Each test
/// thread has its own log and store, so tests running in parallel do not see
/// each other's.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use super::{Level, imp};

    /// Takes the lines logged on this thread so far.
    pub fn take_logs() -> Vec<(Level, String)> {
        imp::LOGS.with(|logs| std::mem::take(&mut *logs.borrow_mut()))
    }

    /// Empties this thread's key-value store, and ends a [`fail_store`].
    pub fn clear_kv() {
        imp::KV.with(|kv| kv.borrow_mut().clear());
        fail_store(None);
    }

    /// Makes every [`store`](super::store) call on this thread fail with `error`
    /// until called with `None`: how a test sees what its plugin does when the
    /// store is down.
    pub fn fail_store(error: Option<super::store::StoreError>) {
        imp::FAULT.with(|fault| *fault.borrow_mut() = error);
    }

    /// The number of entries in this thread's key-value store that have not
    /// expired.
    pub fn kv_len() -> usize {
        let now = std::time::Instant::now();
        imp::KV.with(|kv| {
            kv.borrow()
                .values()
                .filter(|(_, expiry)| expiry.is_none_or(|at| at > now))
                .count()
        })
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn native_stand_in_logs_and_stores() {
        testing::clear_kv();
        info("hello");
        log(Level::Error, "bad");
        assert_eq!(
            testing::take_logs(),
            [(Level::Info, "hello".into()), (Level::Error, "bad".into())]
        );
        assert!(testing::take_logs().is_empty());

        assert_eq!(kv_get("k"), None);
        kv_set("k", b"v1", None);
        kv_set("short", b"x", Some(Duration::from_millis(1)));
        assert_eq!(kv_get("k").as_deref(), Some(&b"v1"[..]));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(kv_get("short"), None, "expired");
        assert_eq!(testing::kv_len(), 1);
        kv_delete("k");
        kv_delete("absent");
        assert_eq!(kv_get("k"), None);
    }

    #[test]
    fn native_store_increments_and_fails_on_demand() {
        testing::clear_kv();
        let minute = Some(Duration::from_secs(60));
        assert_eq!(store::increment("n", 2, minute), Ok(2));
        assert_eq!(store::increment("n", 3, None), Ok(5));
        assert_eq!(store::get("n"), Ok(Some(b"5".to_vec())));
        store::set("t", b"text", None).unwrap();
        assert_eq!(
            store::increment("t", 1, None),
            Err(store::StoreError::NotANumber)
        );
        testing::fail_store(Some(store::StoreError::Timeout));
        assert_eq!(store::get("n"), Err(store::StoreError::Timeout));
        assert_eq!(
            store::increment("n", 1, None),
            Err(store::StoreError::Timeout)
        );
        testing::clear_kv();
        assert_eq!(store::delete("n"), Ok(()));
        assert_eq!(store::get("n"), Ok(None));
    }
}
