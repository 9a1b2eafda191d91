//! Jobs read recently, served from memory while nothing has been written since. Every committed
//! write batch bumps a generation and so invalidates every entry: coherent within this process
//! without tracking which write touched which job. Writes from other processes (the admin CLI
//! raising limits, which can promote backlogged jobs) are seen within the TTL.
use crate::store::Job;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

const MAX_ENTRIES: usize = 10_000;

/// A job, the write generation it was read in, and when.
type Entry = (Arc<Job>, u64, Instant);

pub struct JobCache {
    generation: AtomicU64,
    ttl: Duration,
    entries: RwLock<foldhash::HashMap<Uuid, Entry>>,
}

impl JobCache {
    pub fn new(ttl: Duration) -> JobCache {
        JobCache { generation: AtomicU64::new(0), ttl, entries: RwLock::default() }
    }

    /// Read before loading from the store, so a write that lands during the load invalidates it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn get(&self, id: Uuid) -> Option<Arc<Job>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let (job, generation, at) = entries.get(&id)?;
        (*generation == self.generation() && at.elapsed() < self.ttl).then(|| job.clone())
    }

    pub fn put(&self, job: Arc<Job>, generation: u64) {
        if generation != self.generation() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let current = self.generation();
            entries.retain(|_, (_, g, _)| *g == current);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(job.id, (job, generation, Instant::now()));
    }
}
