//! Jobs read recently, and the queue's head, served from memory while nothing has been written
//! since. Every committed write batch bumps a generation and so invalidates every entry: coherent
//! within this process without tracking which write touched which job. Writes from other processes (the admin CLI
//! raising limits, which can promote backlogged jobs) are seen within the TTL.
use crate::store::Job;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

const MAX_ENTRIES: usize = 10_000;

/// A job, the write generation it was read in, and when.
type Entry = (Arc<Job>, u64, Instant);
/// The queue's head (its first jobs' queued times), the generation it was read in, and when.
type Head = (Arc<[i64]>, u64, Instant);

pub struct JobCache {
    generation: AtomicU64,
    ttl: Duration,
    entries: RwLock<foldhash::HashMap<Uuid, Entry>>,
    /// The queue's head as `rows::queue_head` read it, kept on the same terms as a job: every
    /// page of `GET /jobs` with a queued job on it counts places against it, and reading it
    /// walks up to `QUEUE_POSITION_CAP` index entries (with a million jobs queued a page cost
    /// 1.5 times what it did on an empty store, 1.1 times with the head kept: bench/deep_queue).
    head: Mutex<Option<Head>>,
}

impl JobCache {
    pub fn new(ttl: Duration) -> JobCache {
        JobCache { generation: AtomicU64::new(0), ttl, entries: RwLock::default(), head: Mutex::default() }
    }

    /// Read before loading from the store, so a write that lands during the load invalidates it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether what was read in `generation` at `at` may still be served: no write committed
    /// since, and younger than the TTL (for other processes' writes).
    fn fresh(&self, generation: u64, at: &Instant) -> bool {
        generation == self.generation() && at.elapsed() < self.ttl
    }

    pub fn get(&self, id: Uuid) -> Option<Arc<Job>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let (job, generation, at) = entries.get(&id)?;
        self.fresh(*generation, at).then(|| job.clone())
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

    /// The queue's head, if read since the last write (and within the TTL).
    pub fn queue_head(&self) -> Option<Arc<[i64]>> {
        let head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        let (times, generation, at) = head.as_ref()?;
        self.fresh(*generation, at).then(|| times.clone())
    }

    /// Keeps a head read in `generation` (taken before the read), unless a write came since.
    pub fn put_queue_head(&self, times: Arc<[i64]>, generation: u64) {
        let mut head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        // (checked under the lock, so a head read earlier never replaces one read later)
        if generation == self.generation() {
            *head = Some((times, generation, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_head_is_kept_until_the_next_write_and_never_from_before_it() {
        let cache = JobCache::new(Duration::from_secs(60));
        assert_eq!(cache.queue_head(), None);
        let read_in = cache.generation();
        cache.put_queue_head(Arc::from([1, 2, 3]), read_in);
        assert_eq!(cache.queue_head().as_deref(), Some(&[1, 2, 3][..]));
        cache.invalidate_all();
        assert_eq!(cache.queue_head(), None, "a write since the read");
        // Read before that write, kept after it: refused.
        cache.put_queue_head(Arc::from([1, 2, 3]), read_in);
        assert_eq!(cache.queue_head(), None);
        cache.put_queue_head(Arc::from([2, 3]), cache.generation());
        assert_eq!(cache.queue_head().as_deref(), Some(&[2, 3][..]));

        let brief = JobCache::new(Duration::ZERO);
        brief.put_queue_head(Arc::from([1]), brief.generation());
        assert_eq!(brief.queue_head(), None, "past the TTL (writes from other processes)");
    }
}
