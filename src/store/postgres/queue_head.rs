//! A replica's copy of the queue's first jobs, against which the job cache (job_cache.rs) counts
//! queued jobs' places in line, patched with the moves the store announces instead of being read
//! again after each.
use super::job_cache::TTL;
use std::time::Instant;
use uuid::Uuid;

/// How many of the queue's first jobs a head holds when read: twice the cap, so that it still
/// holds the cap's worth after as many jobs leave the queue as the cap, patched by their
/// notifications, before it must be read again.
pub const HEAD_LEN: i64 = 2 * crate::store::codec::QUEUE_POSITION_CAP;

/// The queue's first jobs, as (queued time, id) in order: exactly its first `entries.len()`, or
/// all of it when `whole`.
pub struct Head {
    pub(super) entries: Vec<(i64, Uuid)>,
    pub(super) whole: bool,
    /// The seq it is true at: while it is not older than the last queue move.
    pub(super) seq: u64,
    /// When it was read: like an entry, it is read again after [`TTL`] however it was patched
    /// (what a LISTEN connection that died silently would otherwise leave current for good).
    read_at: Instant,
}

impl Head {
    /// A head as read from the store (at most [`HEAD_LEN`] entries, in order), true at `seq`.
    pub fn read(entries: Vec<(i64, Uuid)>, seq: u64) -> Head {
        let whole = (entries.len() as i64) < HEAD_LEN;
        Head { entries, whole, seq, read_at: Instant::now() }
    }

    pub fn is_current(&self, queue_seq: u64) -> bool {
        self.seq >= queue_seq && self.read_at.elapsed() < TTL
    }

    /// Applies a job's move in the queue. Idempotent, so a move the read already saw (its
    /// notification arrived after the read) changes nothing.
    pub fn apply(&mut self, id: Uuid, left: Option<i64>, entered: Option<i64>) {
        if let Some(at) = left {
            if let Ok(i) = self.entries.binary_search(&(at, id)) {
                self.entries.remove(i);
            }
        }
        if let Some(at) = entered {
            // Past the last entry it is behind what the head holds (unless it holds everything).
            let within = self.whole || self.entries.last().is_some_and(|&last| (at, id) < last);
            if let (true, Err(i)) = (within, self.entries.binary_search(&(at, id))) {
                self.entries.insert(i, (at, id));
            }
        }
        // A whole queue that grew past a read's length is kept as its first part.
        if self.entries.len() > HEAD_LEN as usize {
            self.entries.truncate(HEAD_LEN as usize);
            self.whole = false;
        }
    }

    /// How many queued jobs were queued before `queued_at` (capped), when the head can tell.
    pub fn ahead_of(&self, queued_at: i64) -> Option<usize> {
        let cap = crate::store::codec::QUEUE_POSITION_CAP as usize;
        let ahead = self.entries.partition_point(|&(at, _)| at < queued_at);
        // A time past the last entry may have jobs beyond the head before it too.
        let told = self.whole || ahead < self.entries.len() || ahead >= cap;
        told.then_some(ahead.min(cap))
    }
}
