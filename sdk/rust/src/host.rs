//! What the host offers to plugins: logging and a key-value store shared by
//! all instances of the plugin.
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
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use super::Level;

    /// Key -> value and expiry.
    type Store = HashMap<String, (Vec<u8>, Option<Instant>)>;

    thread_local! {
        pub(super) static LOGS: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
        pub(super) static KV: RefCell<Store> = RefCell::new(HashMap::new());
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

    /// Empties this thread's key-value store.
    pub fn clear_kv() {
        imp::KV.with(|kv| kv.borrow_mut().clear());
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
}
