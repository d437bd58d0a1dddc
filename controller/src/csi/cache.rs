//! A TTL cache with single-flight: concurrent lookups of one key share one fetch, and its result.
//!
//! Keys always include the caller's identity (see [`super::identity::IdentityKey`]): a value fetched with one
//! identity's token is never served to another, so the cache cannot bypass Key Vault's authorization.
//! Errors are shared with the callers already waiting, then forgotten: the next mount asks Key Vault again.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

/// How a lookup was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A fresh cached value.
    Hit,
    /// Joined a fetch already in flight.
    Coalesced,
    /// Fetched.
    Miss,
}

impl Lookup {
    /// Metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Coalesced => "coalesced",
            Lookup::Miss => "miss",
        }
    }
}

struct Entry<V, E> {
    ttl: Duration,
    cell: OnceCell<(Instant, Result<Arc<V>, E>)>,
}

impl<V, E> Entry<V, E> {
    fn fresh(&self, now: Instant) -> bool {
        match self.cell.get() {
            None => true, // in flight
            Some((at, Ok(_))) => now.duration_since(*at) < self.ttl,
            Some((_, Err(_))) => false,
        }
    }
}

/// The cache. `V` is shared read-only between mounts; `E` is cloned to every waiter.
pub struct Cache<K, V, E> {
    map: Mutex<HashMap<K, Arc<Entry<V, E>>>>,
    max_entries: usize,
}

impl<K: Hash + Eq + Clone, V, E: Clone> Cache<K, V, E> {
    /// A cache holding at most `max_entries` keys (expired ones are swept first when it is full).
    pub fn new(max_entries: usize) -> Self {
        Self { map: Mutex::new(HashMap::new()), max_entries: max_entries.max(1) }
    }

    /// Returns the cached value of `key`, or runs `fetch` (once for all concurrent callers) and caches its
    /// success for `ttl`.
    pub async fn get_or_fetch<F, Fut>(&self, key: &K, ttl: Duration, fetch: F) -> (Result<Arc<V>, E>, Lookup)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, E>>,
    {
        let now = Instant::now();
        let (entry, mut lookup) = {
            // Poisoning only follows a panic while holding the lock, and no code below can panic with it held.
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(key) {
                Some(e) if e.fresh(now) => {
                    let lookup = if e.cell.initialized() { Lookup::Hit } else { Lookup::Coalesced };
                    (e.clone(), lookup)
                }
                _ => {
                    if map.len() >= self.max_entries {
                        map.retain(|_, e| e.fresh(now));
                        if map.len() >= self.max_entries {
                            map.clear();
                        }
                    }
                    let e = Arc::new(Entry { ttl, cell: OnceCell::new() });
                    map.insert(key.clone(), e.clone());
                    (e, Lookup::Miss)
                }
            }
        };
        let mut ran = false;
        let (_, result) = entry
            .cell
            .get_or_init(|| {
                ran = true;
                async move { (Instant::now(), fetch().await.map(Arc::new)) }
            })
            .await;
        if ran {
            // A coalesced waiter whose leader was cancelled ran the fetch itself.
            lookup = Lookup::Miss;
        }
        if result.is_err() {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            if map.get(key).is_some_and(|e| Arc::ptr_eq(e, &entry)) {
                map.remove(key);
            }
        }
        (result.clone(), lookup)
    }

    /// Number of keys held (fresh or not).
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn single_flight_and_ttl() {
        let cache: Arc<Cache<&str, u32, String>> = Arc::new(Cache::new(16));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let cache = cache.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch(&"k", Duration::from_secs(60), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(7)
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(*t.await.unwrap().0.unwrap(), 7);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let (_, l) = cache.get_or_fetch(&"k", Duration::from_secs(60), || async { Ok(8) }).await;
        assert_eq!(l, Lookup::Hit);
        // Zero TTL: always refetched.
        let (v, l) = cache.get_or_fetch(&"z", Duration::ZERO, || async { Ok(1) }).await;
        assert_eq!((*v.unwrap(), l), (1, Lookup::Miss));
        let (v, l) = cache.get_or_fetch(&"z", Duration::ZERO, || async { Ok(2) }).await;
        assert_eq!((*v.unwrap(), l), (2, Lookup::Miss));
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let cache: Cache<&str, u32, String> = Cache::new(16);
        let (r, _) = cache.get_or_fetch(&"k", Duration::from_secs(60), || async { Err("boom".into()) }).await;
        assert!(r.is_err());
        let (r, l) = cache.get_or_fetch(&"k", Duration::from_secs(60), || async { Ok(1) }).await;
        assert_eq!((*r.unwrap(), l), (1, Lookup::Miss));
    }
}
