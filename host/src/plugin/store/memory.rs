//! The store in the proxy's memory, the default: one per plugin, shared by all its
//! instances and versions, bounded in size, entries optionally expiring.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{StateStore, StoreError, StoreFuture};

/// Bytes counted per entry on top of its key and value, so that many tiny entries
/// are bounded too.
const ENTRY_OVERHEAD: usize = 64;

/// A bounded map from string keys to byte values.
#[derive(Debug)]
pub struct KvStore {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Eviction order: entries with a TTL first, soonest expiry first; then entries
    /// without one, oldest first.
    order: BTreeSet<(EvictKey, String)>,
    used: usize,
    next_seq: u64,
}

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    key: EvictKey,
}

/// (no TTL, expiry, insertion sequence): sorts as described on [`Inner::order`].
type EvictKey = (bool, Option<Instant>, u64);

/// Why a value was not stored.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("a value of {size} bytes does not fit in the store's {capacity} bytes")]
pub struct TooLarge {
    pub size: usize,
    pub capacity: usize,
}

/// Why an increment failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IncrementError {
    #[error("the value is not a decimal 64-bit integer, or the sum overflows")]
    NotANumber,
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
}

impl Default for KvStore {
    fn default() -> Self {
        KvStore::new(crate::config::DEFAULT_STORE_MEMORY_BYTES)
    }
}

impl KvStore {
    pub fn new(capacity: usize) -> Self {
        KvStore {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut inner = self.lock();
        let entry = inner.entries.get(key)?;
        if is_expired(&entry.key, Instant::now()) {
            inner.remove(key);
            return None;
        }
        Some(entry.value.clone())
    }

    /// Stores `value`, evicting entries (soonest to expire first) to make room.
    pub fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), TooLarge> {
        let expires = ttl.and_then(|ttl| Instant::now().checked_add(ttl));
        self.insert(&mut self.lock(), key, value, expires)
    }

    /// Adds `delta` to the decimal integer at `key` and returns the sum. A missing
    /// (or expired) key counts as 0 and is created expiring after `ttl`; an existing
    /// one keeps its expiry. One lock for the read and the write: atomic.
    pub fn increment(
        &self,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, IncrementError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let (current, expires) = match inner.entries.get(key) {
            Some(entry) if !is_expired(&entry.key, now) => {
                let text = std::str::from_utf8(&entry.value).ok();
                let value = text.and_then(|t| t.parse::<i64>().ok());
                (value.ok_or(IncrementError::NotANumber)?, entry.key.1)
            }
            _ => (0, ttl.and_then(|ttl| now.checked_add(ttl))),
        };
        let sum = current
            .checked_add(delta)
            .ok_or(IncrementError::NotANumber)?;
        self.insert(&mut inner, key, sum.to_string().into_bytes(), expires)?;
        Ok(sum)
    }

    /// Replaces the entry at `key`, evicting others (soonest to expire first) to
    /// make room.
    fn insert(
        &self,
        inner: &mut Inner,
        key: &str,
        value: Vec<u8>,
        expires: Option<Instant>,
    ) -> Result<(), TooLarge> {
        let size = cost(key, &value);
        if size > self.capacity {
            return Err(TooLarge {
                size,
                capacity: self.capacity,
            });
        }
        inner.remove(key);
        while inner.used + size > self.capacity {
            let Some((_, victim)) = inner.order.first().cloned() else {
                break;
            };
            inner.remove(&victim);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let evict_key = (expires.is_none(), expires, seq);
        inner.order.insert((evict_key, key.to_owned()));
        inner.entries.insert(
            key.to_owned(),
            Entry {
                value,
                key: evict_key,
            },
        );
        inner.used += size;
        Ok(())
    }

    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Bytes in use, overhead included.
    pub fn used(&self) -> usize {
        self.lock().used
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the map consistent enough to go on.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn remove(&mut self, key: &str) {
        if let Some(entry) = self.entries.remove(key) {
            self.order.remove(&(entry.key, key.to_owned()));
            self.used -= cost(key, &entry.value);
        }
    }
}

/// Answers at once: the futures are ready when made.
impl StateStore for KvStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(std::future::ready(Ok(KvStore::get(self, key))))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        let stored = KvStore::set(self, key, value, ttl).map_err(|_| StoreError::TooLarge);
        Box::pin(std::future::ready(stored))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        KvStore::delete(self, key);
        Box::pin(std::future::ready(Ok(())))
    }

    fn increment<'a>(
        &'a self,
        key: &'a str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, i64> {
        let sum = KvStore::increment(self, key, delta, ttl).map_err(|e| match e {
            IncrementError::NotANumber => StoreError::NotANumber,
            IncrementError::TooLarge(_) => StoreError::TooLarge,
        });
        Box::pin(std::future::ready(sum))
    }

    fn timeout(&self) -> Option<Duration> {
        None
    }
}

fn cost(key: &str, value: &[u8]) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

fn is_expired(key: &EvictKey, now: Instant) -> bool {
    key.1.is_some_and(|at| at <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_delete() {
        let kv = KvStore::default();
        kv.set("a", b"1".to_vec(), None).unwrap();
        assert_eq!(kv.get("a").as_deref(), Some(&b"1"[..]));
        kv.set("a", b"22".to_vec(), None).unwrap();
        assert_eq!(kv.get("a").as_deref(), Some(&b"22"[..]));
        kv.delete("a");
        assert_eq!(kv.get("a"), None);
        assert_eq!(kv.used(), 0);
    }

    #[test]
    fn expired_entries_are_gone() {
        let kv = KvStore::default();
        kv.set("a", b"1".to_vec(), Some(Duration::ZERO)).unwrap();
        assert_eq!(kv.get("a"), None);
        kv.set("b", b"1".to_vec(), Some(Duration::from_secs(60)))
            .unwrap();
        assert!(kv.get("b").is_some());
    }

    #[test]
    fn evicts_soonest_to_expire_then_oldest() {
        let kv = KvStore::new(3 * (ENTRY_OVERHEAD + 2));
        kv.set("p", b"1".to_vec(), None).unwrap();
        kv.set("l", b"1".to_vec(), Some(Duration::from_secs(600)))
            .unwrap();
        kv.set("s", b"1".to_vec(), Some(Duration::from_secs(60)))
            .unwrap();
        kv.set("n", b"1".to_vec(), None).unwrap();
        assert_eq!(kv.get("s"), None, "soonest expiry goes first");
        kv.set("m", b"1".to_vec(), None).unwrap();
        assert_eq!(kv.get("l"), None, "then the next to expire");
        kv.set("o", b"1".to_vec(), None).unwrap();
        assert_eq!(kv.get("p"), None, "then the oldest without a TTL");
        assert!(kv.get("n").is_some() && kv.get("m").is_some() && kv.get("o").is_some());
    }

    #[test]
    fn increment_counts_from_zero_and_keeps_the_first_expiry() {
        let kv = KvStore::default();
        let minute = Some(Duration::from_secs(60));
        assert_eq!(kv.increment("n", 1, minute), Ok(1));
        assert_eq!(kv.increment("n", 5, None), Ok(6));
        assert_eq!(kv.increment("n", -10, minute), Ok(-4));
        assert_eq!(kv.get("n").as_deref(), Some(&b"-4"[..]));
        let expiry = |kv: &KvStore| kv.lock().entries["n"].key.1;
        let first = expiry(&kv);
        assert!(first.is_some());
        kv.increment("n", 1, Some(Duration::from_secs(600)))
            .unwrap();
        assert_eq!(
            expiry(&kv),
            first,
            "later increments leave the expiry alone"
        );
    }

    #[test]
    fn increment_starts_again_after_the_window() {
        let kv = KvStore::default();
        assert_eq!(kv.increment("w", 3, Some(Duration::ZERO)), Ok(3));
        assert_eq!(kv.increment("w", 1, Some(Duration::from_secs(60))), Ok(1));
    }

    #[test]
    fn increment_refuses_text_and_overflow() {
        let kv = KvStore::default();
        kv.set("t", b"abc".to_vec(), None).unwrap();
        assert_eq!(kv.increment("t", 1, None), Err(IncrementError::NotANumber));
        assert_eq!(kv.get("t").as_deref(), Some(&b"abc"[..]), "left as it was");
        kv.set("m", i64::MAX.to_string().into_bytes(), None)
            .unwrap();
        assert_eq!(kv.increment("m", 1, None), Err(IncrementError::NotANumber));
    }

    #[test]
    fn concurrent_increments_lose_nothing() {
        let kv = std::sync::Arc::new(KvStore::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let kv = kv.clone();
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        kv.increment("c", 1, None).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(kv.get("c").as_deref(), Some(&b"1000"[..]));
    }

    #[test]
    fn value_larger_than_the_store_is_refused() {
        let kv = KvStore::new(100);
        assert_eq!(
            kv.set("k", vec![0; 100], None),
            Err(TooLarge {
                size: 165,
                capacity: 100
            })
        );
    }
}
