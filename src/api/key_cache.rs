//! A short-lived cache of API key records, so a poll costs one store read instead of two.
//! Only keys that exist are cached (random keys cannot fill it); a revocation made by another
//! process (the admin CLI) takes effect within the TTL.
use crate::store::KeyRecord;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Entries kept at most; the cache is cleared when full (simple, and keys are few).
const MAX_ENTRIES: usize = 10_000;

pub struct KeyCache {
    ttl: Duration,
    entries: RwLock<HashMap<Uuid, (KeyRecord, Instant)>>,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> KeyCache {
        KeyCache { ttl, entries: RwLock::new(HashMap::new()) }
    }

    pub fn get(&self, key_id: Uuid) -> Option<KeyRecord> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(&key_id).filter(|(_, at)| at.elapsed() < self.ttl).map(|(record, _)| record.clone())
    }

    pub fn put(&self, record: KeyRecord) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(record.key_id, (record, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> KeyRecord {
        KeyRecord { key_id: Uuid::new_v4(), account_id: Uuid::new_v4(), secret_hash: "h".into(), revoked: false }
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = KeyCache::new(Duration::from_millis(30));
        let r = record();
        cache.put(r.clone());
        assert_eq!(cache.get(r.key_id).map(|k| k.account_id), Some(r.account_id));
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get(r.key_id).is_none());
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = KeyCache::new(Duration::ZERO);
        let r = record();
        cache.put(r.clone());
        assert!(cache.get(r.key_id).is_none());
    }
}
