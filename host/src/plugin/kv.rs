//! The key-value store behind the `kv-*` host imports: one per plugin, shared by all
//! its instances and versions, bounded in size, entries optionally expiring.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default bound on one plugin's store: keys and values, plus 64 bytes per entry.
pub const DEFAULT_KV_CAPACITY: usize = 16 * 1024 * 1024;

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

impl Default for KvStore {
    fn default() -> Self {
        KvStore::new(DEFAULT_KV_CAPACITY)
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
        let size = cost(key, &value);
        if size > self.capacity {
            return Err(TooLarge {
                size,
                capacity: self.capacity,
            });
        }
        let now = Instant::now();
        let expires = ttl.and_then(|ttl| now.checked_add(ttl));
        let mut inner = self.lock();
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
