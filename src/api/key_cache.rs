//! A short-lived cache of API key lookups, so a poll costs one store read instead of two.
//! Unknown key ids are cached too, in a map of their own: otherwise a known id would answer
//! from memory while an unknown one always went to the store, and the time to a 401 would tell
//! which ids exist. Negatives are safe to keep: key ids are random UUIDs made when the key is,
//! so no id is looked up before it exists. Random ids can fill only the negative map, never
//! evict real keys. A revocation or a suspension made by another process (the admin CLI,
//! another replica) takes effect within the TTL; one made by this process's admin API, at once.
use crate::store::KeyRecord;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Entries kept at most in each map; a map is cleared when full (simple, and keys are few).
const MAX_ENTRIES: usize = 10_000;

/// What the cache knows of a key id.
#[derive(Clone, Debug)]
pub enum Cached {
    /// The store had this key (revoked or not) within the TTL.
    Known(Arc<KeyRecord>),
    /// The store had no key with this id within the TTL.
    Unknown,
    /// Not asked recently: ask the store.
    Miss,
}

pub struct KeyCache {
    ttl: Duration,
    known: RwLock<foldhash::HashMap<Uuid, (Arc<KeyRecord>, Instant)>>,
    unknown: RwLock<foldhash::HashMap<Uuid, Instant>>,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> KeyCache {
        KeyCache { ttl, known: RwLock::default(), unknown: RwLock::default() }
    }

    pub fn get(&self, key_id: Uuid) -> Cached {
        let fresh = |at: &Instant| at.elapsed() < self.ttl;
        // Both maps are read whatever the first says, so a hit costs the same either way.
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        let known = known.get(&key_id).filter(|(_, at)| fresh(at)).map(|(record, _)| record.clone());
        let unknown = self.unknown.read().unwrap_or_else(|e| e.into_inner()).get(&key_id).is_some_and(fresh);
        match (known, unknown) {
            (Some(record), _) => Cached::Known(record),
            (None, true) => Cached::Unknown,
            (None, false) => Cached::Miss,
        }
    }

    /// Remembers what the store answered for `key_id`: its record, or `None` for no such key.
    pub fn put(&self, key_id: Uuid, found: Option<&KeyRecord>) {
        if self.ttl.is_zero() {
            return;
        }
        match found {
            Some(record) => insert(&self.known, key_id, (Arc::new(record.clone()), Instant::now())),
            None => insert(&self.unknown, key_id, Instant::now()),
        }
    }
}

impl KeyCache {
    /// Drops the cached keys of `account_id` (the admin API suspended or unsuspended it): this
    /// process asks the store again at once; other processes within the TTL.
    pub fn forget_account(&self, account_id: Uuid) {
        self.known.write().unwrap_or_else(|e| e.into_inner()).retain(|_, (record, _)| record.account_id != account_id);
    }

    /// Drops the cached key (the admin API revoked it).
    pub fn forget_key(&self, key_id: Uuid) {
        self.known.write().unwrap_or_else(|e| e.into_inner()).remove(&key_id);
    }
}

fn insert<V>(map: &RwLock<foldhash::HashMap<Uuid, V>>, key_id: Uuid, value: V) {
    let mut entries = map.write().unwrap_or_else(|e| e.into_inner());
    if entries.len() >= MAX_ENTRIES {
        entries.clear();
    }
    entries.insert(key_id, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> KeyRecord {
        KeyRecord {
            key_id: Uuid::new_v4(),
            account_id: Uuid::new_v4(),
            secret_hash: "h".into(),
            revoked: false,
            account_suspended: false,
            rate_limit_per_minute: None,
        }
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = KeyCache::new(Duration::from_millis(30));
        let (r, absent) = (record(), Uuid::new_v4());
        cache.put(r.key_id, Some(&r));
        cache.put(absent, None);
        assert!(matches!(cache.get(r.key_id), Cached::Known(k) if k.account_id == r.account_id));
        assert!(matches!(cache.get(absent), Cached::Unknown));
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(cache.get(r.key_id), Cached::Miss));
        assert!(matches!(cache.get(absent), Cached::Miss));
    }

    #[test]
    fn forgetting_an_account_drops_only_its_keys() {
        let cache = KeyCache::new(Duration::from_secs(60));
        let (mine, other, revoked) = (record(), record(), record());
        for r in [&mine, &other, &revoked] {
            cache.put(r.key_id, Some(r));
        }
        cache.forget_account(mine.account_id);
        cache.forget_key(revoked.key_id);
        assert!(matches!(cache.get(mine.key_id), Cached::Miss), "the suspended account's key is read again");
        assert!(matches!(cache.get(revoked.key_id), Cached::Miss), "the revoked key is read again");
        assert!(matches!(cache.get(other.key_id), Cached::Known(_)), "other accounts keep their entries");
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = KeyCache::new(Duration::ZERO);
        let r = record();
        cache.put(r.key_id, Some(&r));
        cache.put(Uuid::new_v4(), None);
        assert!(matches!(cache.get(r.key_id), Cached::Miss));
    }

    #[test]
    fn unknown_ids_answer_from_memory_like_known_ones_and_cannot_evict_them() {
        let cache = KeyCache::new(Duration::from_secs(60));
        let r = record();
        cache.put(r.key_id, Some(&r));
        let first = Uuid::new_v4();
        cache.put(first, None);
        assert!(matches!(cache.get(first), Cached::Unknown), "a second try of an unknown id does not go to the store");
        for _ in 0..=MAX_ENTRIES {
            cache.put(Uuid::new_v4(), None);
        }
        let kept = matches!(cache.get(r.key_id), Cached::Known(k) if k.account_id == r.account_id);
        assert!(kept, "a flood of random ids leaves real keys cached");
        assert!(matches!(cache.get(first), Cached::Miss), "the negative map was cleared, not grown without bound");
    }
}
