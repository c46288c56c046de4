//! A bounded in-memory cache of remote object pieces (whole index objects and fixed-size chunks
//! of segment objects), evicting the least recently used once its byte budget is exceeded.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};

/// An object key and, for segment data, the chunk number (`u64::MAX` for a whole object).
pub type CacheKey = (String, u64);

pub struct Cache {
    capacity: u64,
    inner: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    entries: HashMap<CacheKey, (Bytes, u64)>,
    by_use: BTreeMap<u64, CacheKey>,
    tick: u64,
    bytes: u64,
}

impl Cache {
    pub fn new(capacity: u64) -> Cache {
        Cache {
            capacity,
            inner: Mutex::new(Lru::default()),
        }
    }

    pub fn get(&self, key: &CacheKey) -> Option<Bytes> {
        let mut l = self.inner.lock();
        l.tick += 1;
        let tick = l.tick;
        let (data, old) = match l.entries.get_mut(key) {
            Some((data, used)) => {
                let old = *used;
                *used = tick;
                (data.clone(), old)
            }
            None => {
                crate::metrics::tier_cache(false);
                return None;
            }
        };
        l.by_use.remove(&old);
        l.by_use.insert(tick, key.clone());
        crate::metrics::tier_cache(true);
        Some(data)
    }

    pub fn contains(&self, key: &CacheKey) -> bool {
        self.inner.lock().entries.contains_key(key)
    }

    pub fn insert(&self, key: CacheKey, data: Bytes) {
        if data.len() as u64 > self.capacity {
            return;
        }
        let mut l = self.inner.lock();
        l.tick += 1;
        let tick = l.tick;
        let len = data.len() as u64;
        if let Some((old, used)) = l.entries.insert(key.clone(), (data, tick)) {
            l.bytes -= old.len() as u64;
            l.by_use.remove(&used);
        }
        l.by_use.insert(tick, key);
        l.bytes += len;
        while l.bytes > self.capacity {
            let Some((_, victim)) = l.by_use.pop_first() else {
                break;
            };
            if let Some((old, _)) = l.entries.remove(&victim) {
                l.bytes -= old.len() as u64;
            }
        }
        crate::metrics::tier_cache_size(l.bytes);
    }

    /// Drops every entry whose key starts with `prefix` (a deleted segment or topic).
    pub fn forget(&self, prefix: &str) {
        let mut l = self.inner.lock();
        let doomed: Vec<(CacheKey, u64)> = l
            .entries
            .iter()
            .filter(|(k, _)| k.0.starts_with(prefix))
            .map(|(k, (_, used))| (k.clone(), *used))
            .collect();
        for (k, used) in doomed {
            if let Some((old, _)) = l.entries.remove(&k) {
                l.bytes -= old.len() as u64;
            }
            l.by_use.remove(&used);
        }
    }

    pub fn bytes(&self) -> u64 {
        self.inner.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_beyond_capacity() {
        let c = Cache::new(25);
        let k = |i: u64| ("seg".to_string(), i);
        c.insert(k(0), Bytes::from(vec![0; 10]));
        c.insert(k(1), Bytes::from(vec![1; 10]));
        assert!(c.get(&k(0)).is_some(), "touch 0 so 1 is the oldest");
        c.insert(k(2), Bytes::from(vec![2; 10]));
        assert!(c.contains(&k(0)) && c.contains(&k(2)));
        assert!(!c.contains(&k(1)));
        assert_eq!(c.bytes(), 20);
        c.insert(k(3), Bytes::from(vec![3; 100]));
        assert!(!c.contains(&k(3)), "larger than the whole cache: not kept");
        c.forget("seg");
        assert_eq!(c.bytes(), 0);
        assert!(c.get(&k(0)).is_none());
    }
}
