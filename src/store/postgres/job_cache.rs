//! Jobs this replica read recently, answered from memory until the store says they changed.
//!
//! Every change to a job row (or its webhook deliveries), by any replica or the admin CLI, makes
//! PostgreSQL send the job's id on `ltx_jobs` when its transaction commits (triggers,
//! schema_job_notify.sql; what a notification says: job_notice.rs); the LISTEN task hands each id to [`JobCache::invalidate`]. So an
//! entry is never older than the last notification this replica received, and a poll sees a
//! change made elsewhere within one notification's trip.
//!
//! Three rules keep it from ever answering stale:
//! - A read that started before a change and finishes after its notification must not be
//!   stored: each load takes a [`Ticket`] first, and a notification leaves a tombstone (the
//!   id's last change) that outranks older tickets.
//! - A queued or backlogged job shows its place in line, which moves when any other job enters
//!   or leaves the queue: such a place holds only while no notification flagged a queue change.
//!   After one, a queued job's row is still true (its own changes name it), so only its place
//!   is counted again, against a copy of the queue's head ([`JobCache::put_head`]) rather than
//!   once per poll (a fleet's queue moves with every lease and submit, and at depth counting a
//!   place walks up to 1,000 entries of the queue's index). A notification says how its job
//!   entered or left the queue (schema_job_notify_moves.sql: submits, leases, hand-backs,
//!   promotions), and the copy is patched with it; it is read again only after a move left
//!   unsaid (a job inserted one by one or deleted; this replica's own change, before its
//!   notification) or once as many jobs left it as it held beyond the cap. A backlogged job is
//!   read again.
//! - While the LISTEN connection is down notifications are lost: the cache is emptied and
//!   stores nothing until it listens again, and a load that began before cannot be stored after.
//!
//! Entries and the head's copy also expire after [`TTL`], which bounds what a connection that
//! dies silently (no reset reaches us) could cost. Bounded in entries and approximate bytes.
use super::job_notice::Change;
use super::queue_head::Head;
use crate::domain::job::JobStatus;
use crate::store::Job;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long an entry may be answered without being read again, notifications or not.
pub const TTL: Duration = Duration::from_secs(5);
const MAX_ENTRIES: usize = 50_000;
const MAX_BYTES: usize = 64 << 20;
/// Tombstones kept before they are forgotten at once (loads older than that are then refused).
const MAX_TOMBSTONES: usize = 100_000;

/// Taken before a load from the store; a load may be cached only under the ticket it began with.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    epoch: u64,
    seq: u64,
}

struct Entry {
    job: Arc<Job>,
    /// When it was queued (µs), for counting its place again.
    queued_at: Option<i64>,
    /// The seq its place in line was counted at (the ticket it was loaded under, or the head's).
    seq: u64,
    at: Instant,
    bytes: usize,
}

/// A move in the queue, kept so that a head read while it happened can have it applied.
struct Move {
    seq: u64,
    id: Uuid,
    left: Option<i64>,
    entered: Option<i64>,
}
/// Moves kept for heads in flight: more than arrive during one read of the head.
const MAX_MOVES: usize = 4096;

/// What the cache has of a job.
pub enum Lookup {
    /// True as it is.
    Hit(Arc<Job>),
    /// Its row is true, but its place in line moved and the cache holds no current copy of the
    /// queue's head: read one ([`JobCache::put_head`]) and look again.
    NeedsHead,
    /// Not held, or no longer true: read it.
    Miss,
}

#[derive(Default)]
struct State {
    /// False while the LISTEN connection is down: nothing is answered or stored.
    listening: bool,
    /// Bumped when notifications may have been missed; tickets of an older epoch are refused.
    epoch: u64,
    /// Bumped by every notification.
    seq: u64,
    /// The seq of the last notification that may have moved a queue.
    queue_seq: u64,
    /// The seq of the last one that moved the FIFO queue in a way unsaid (a head cannot be patched).
    unsaid_move_seq: u64,
    /// The latest moves that can patch a head, oldest first; those up to `moves_forgotten_up_to`
    /// were dropped.
    moves: std::collections::VecDeque<Move>,
    moves_forgotten_up_to: u64,
    entries: foldhash::HashMap<Uuid, Entry>,
    bytes: usize,
    head: Option<Head>,
    /// id → the seq of its last change, for loads still in flight.
    tombstones: foldhash::HashMap<Uuid, u64>,
    /// Tombstones up to this seq were forgotten: a ticket older than it is refused.
    forgotten_up_to: u64,
}

#[derive(Default)]
pub struct JobCache {
    state: Mutex<State>,
}

fn is_in_line(status: JobStatus) -> bool {
    matches!(status, JobStatus::Queued | JobStatus::Backlogged)
}

/// What a job costs in memory, roughly: its request and result dominate.
fn approx_bytes(job: &Job) -> usize {
    let r = &job.request;
    let text = |s: &Option<String>| s.as_deref().map_or(0, str::len);
    let request = r.prompt.len() + text(&r.start_image) + text(&r.start_video) + text(&r.end_image);
    let result = job.result.as_ref().map_or(0, |r| text(&r.enhanced_prompt));
    1024 + request + result + job.failure.as_ref().map_or(0, |f| f.message.len())
}

impl JobCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ticket(&self) -> Ticket {
        let state = self.lock();
        Ticket { epoch: state.epoch, seq: state.seq }
    }

    /// The job if it is cached and still true (its place in line counted again if need be).
    pub fn get(&self, id: Uuid) -> Option<Arc<Job>> {
        match self.lookup(id) {
            Lookup::Hit(job) => Some(job),
            Lookup::NeedsHead | Lookup::Miss => None,
        }
    }

    /// What the cache has of the job; a queued job whose place moved has it counted again
    /// against the queue's head when the cache holds a current one.
    pub fn lookup(&self, id: Uuid) -> Lookup {
        let mut guard = self.lock();
        let state = &mut *guard;
        if !state.listening {
            return Lookup::Miss;
        }
        let Some(entry) = state.entries.get_mut(&id) else { return Lookup::Miss };
        if entry.at.elapsed() >= TTL {
            return Lookup::Miss;
        }
        if !is_in_line(entry.job.status) || entry.seq >= state.queue_seq {
            return Lookup::Hit(entry.job.clone());
        }
        let (JobStatus::Queued, Some(queued_at)) = (entry.job.status, entry.queued_at) else {
            return Lookup::Miss;
        };
        // As the store counts it: the queued jobs queued before this one, up to the cap.
        let Some((head, ahead)) = state
            .head
            .as_ref()
            .filter(|h| h.is_current(state.queue_seq))
            .and_then(|h| Some((h, h.ahead_of(queued_at)?)))
        else {
            return Lookup::NeedsHead;
        };
        let mut job = Job::clone(&entry.job);
        job.queue_position = Some(ahead as u64 + 1);
        entry.job = Arc::new(job);
        entry.seq = head.seq;
        Lookup::Hit(entry.job.clone())
    }

    /// The places in line of queued jobs queued at these times, as the store counts them, when the
    /// cache holds a current copy of the queue's head that tells them all.
    pub fn places(&self, queued_at: &[i64]) -> Option<Vec<u64>> {
        let state = self.lock();
        let head = state.head.as_ref().filter(|h| state.listening && h.is_current(state.queue_seq))?;
        queued_at.iter().map(|&at| head.ahead_of(at).map(|ahead| ahead as u64 + 1)).collect()
    }

    /// Keeps `job` (queued at `queued_at`), read from the store after `ticket` was taken, unless
    /// it may have changed since. A place in line that may have moved since is counted again
    /// when the job is next looked up.
    pub fn put(&self, job: Arc<Job>, queued_at: Option<i64>, ticket: Ticket) {
        let mut state = self.lock();
        let changed_since = state.tombstones.get(&job.id).is_some_and(|&seq| seq > ticket.seq);
        if !state.listening || ticket.epoch != state.epoch || ticket.seq < state.forgotten_up_to || changed_since {
            return;
        }
        let bytes = approx_bytes(&job);
        if state.entries.len() >= MAX_ENTRIES || state.bytes + bytes > MAX_BYTES {
            state.evict();
        }
        let id = job.id;
        state.bytes += bytes;
        let entry = Entry { job, queued_at, seq: ticket.seq, at: Instant::now(), bytes };
        if let Some(old) = state.entries.insert(id, entry) {
            state.bytes -= old.bytes;
        }
    }

    /// Keeps the queue's head (its first [`HEAD_LEN`](super::queue_head::HEAD_LEN) jobs at most,
    /// as (queued time, id) in order), read from the store after `ticket` was taken, with the
    /// moves announced since applied; unless one since was unsaid.
    pub fn put_head(&self, entries: Vec<(i64, Uuid)>, ticket: Ticket) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let unsaid_since = state.unsaid_move_seq > ticket.seq || state.moves_forgotten_up_to > ticket.seq;
        if !state.listening || ticket.epoch != state.epoch || unsaid_since {
            return;
        }
        let mut head = Head::read(entries, state.seq);
        for m in state.moves.iter().filter(|m| m.seq > ticket.seq) {
            head.apply(m.id, m.left, m.entered);
        }
        state.head = Some(head);
    }

    /// Applies one notification.
    pub fn invalidate(&self, changes: &[Change]) {
        let mut guard = self.lock();
        let state = &mut *guard;
        for change in changes {
            state.seq += 1;
            let seq = state.seq;
            match *change {
                Change::Job { id, queue } => {
                    state.forget(id, seq);
                    if queue {
                        state.queue_moved_unsaid(seq);
                    }
                }
                Change::Everything => state.drop_all(),
                Change::Queues => state.queue_moved_unsaid(seq),
                Change::Moved { id, left, entered } => {
                    state.forget(id, seq);
                    if let Some(head) = state.head.as_mut().filter(|h| h.is_current(state.queue_seq)) {
                        head.apply(id, left, entered);
                        head.seq = seq;
                    }
                    state.queue_seq = seq;
                    if state.moves.len() >= MAX_MOVES {
                        state.moves_forgotten_up_to = state.moves.pop_front().map_or(seq, |m| m.seq);
                    }
                    state.moves.push_back(Move { seq, id, left, entered });
                }
            }
        }
    }

    /// The LISTEN connection is lost: answer and keep nothing until [`JobCache::listening`].
    pub fn deaf(&self) {
        let mut state = self.lock();
        state.listening = false;
        state.drop_all();
    }

    /// LISTEN is (again) in place: what is read from now on is kept true by notifications.
    pub fn listening(&self) {
        let mut state = self.lock();
        state.drop_all();
        state.listening = true;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

impl State {
    /// Drops the job's entry, and any load of it in flight.
    fn forget(&mut self, id: Uuid, seq: u64) {
        if let Some(old) = self.entries.remove(&id) {
            self.bytes -= old.bytes;
        }
        if self.tombstones.len() >= MAX_TOMBSTONES {
            self.tombstones.clear();
            self.forgotten_up_to = seq;
        }
        self.tombstones.insert(id, seq);
    }

    /// A queue moved in a way no head can be patched with: it must be read again.
    fn queue_moved_unsaid(&mut self, seq: u64) {
        self.queue_seq = seq;
        self.unsaid_move_seq = seq;
    }

    /// Forgets every entry, and every load in flight (they may hold what a lost notification changed).
    fn drop_all(&mut self) {
        self.epoch += 1;
        self.entries.clear();
        self.head = None;
        self.moves.clear();
        self.bytes = 0;
        self.tombstones.clear();
        self.forgotten_up_to = self.seq;
    }

    /// Makes room: drops expired entries, then arbitrary ones down to 3/4 of the bounds.
    fn evict(&mut self) {
        self.entries.retain(|_, e| e.at.elapsed() < TTL);
        let (max_entries, max_bytes) = (MAX_ENTRIES * 3 / 4, MAX_BYTES * 3 / 4);
        let mut bytes: usize = self.entries.values().map(|e| e.bytes).sum();
        if self.entries.len() > max_entries || bytes > max_bytes {
            let mut excess = self.entries.len().saturating_sub(max_entries);
            self.entries.retain(|_, e| {
                if excess > 0 || bytes > max_bytes {
                    excess = excess.saturating_sub(1);
                    bytes -= e.bytes;
                    false
                } else {
                    true
                }
            });
        }
        self.bytes = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::super::queue_head::HEAD_LEN;
    use super::*;

    fn job(status: JobStatus) -> Arc<Job> {
        Arc::new(crate::store::fixtures::job(status))
    }

    /// A head of jobs queued at these times (whole: shorter than a read's limit).
    fn head(times: &[i64]) -> Vec<(i64, Uuid)> {
        let mut entries: Vec<_> = times.iter().map(|&at| (at, Uuid::new_v4())).collect();
        entries.sort();
        entries
    }

    fn place(cache: &JobCache, id: Uuid) -> Option<u64> {
        match cache.lookup(id) {
            Lookup::Hit(job) => job.queue_position,
            Lookup::NeedsHead => panic!("the head should have told"),
            Lookup::Miss => panic!("the job should be held"),
        }
    }

    fn listening() -> JobCache {
        let cache = JobCache::default();
        cache.listening();
        cache
    }

    #[test]
    fn a_job_read_before_any_change_is_answered_until_it_changes() {
        let cache = listening();
        let running = job(JobStatus::Sampling);
        cache.put(running.clone(), None, cache.ticket());
        assert_eq!(cache.get(running.id).map(|j| j.id), Some(running.id));
        // Another job's change leaves it.
        cache.invalidate(&[Change::Job { id: Uuid::new_v4(), queue: true }]);
        assert!(cache.get(running.id).is_some());
        cache.invalidate(&[Change::Job { id: running.id, queue: false }]);
        assert!(cache.get(running.id).is_none());
    }

    #[test]
    fn a_load_overtaken_by_its_jobs_notification_is_not_kept() {
        let cache = listening();
        let running = job(JobStatus::Sampling);
        let ticket = cache.ticket();
        // The job changes (and its notification arrives) while the load is in flight.
        cache.invalidate(&[Change::Job { id: running.id, queue: false }]);
        cache.put(running.clone(), None, ticket);
        assert!(cache.get(running.id).is_none());
        // A load begun after the notification is kept.
        cache.put(running.clone(), None, cache.ticket());
        assert!(cache.get(running.id).is_some());
    }

    #[test]
    fn a_queued_jobs_place_is_counted_again_against_the_head_once_a_queue_moved() {
        let cache = listening();
        let queued = job(JobStatus::Queued);
        cache.put(queued.clone(), Some(500), cache.ticket());
        assert!(matches!(cache.lookup(queued.id), Lookup::Hit(_)));
        // Progress of some running job does not move the queue...
        cache.invalidate(&[Change::Job { id: Uuid::new_v4(), queue: false }]);
        assert!(matches!(cache.lookup(queued.id), Lookup::Hit(_)));
        // ...a lease of another job does: its place is counted again, against a head read after it.
        cache.invalidate(&[Change::Job { id: Uuid::new_v4(), queue: true }]);
        assert!(matches!(cache.lookup(queued.id), Lookup::NeedsHead));
        let stale = cache.ticket();
        cache.invalidate(&[Change::Job { id: Uuid::new_v4(), queue: true }]);
        cache.put_head(head(&[100, 200]), stale);
        assert!(matches!(cache.lookup(queued.id), Lookup::NeedsHead), "a head read before the last move is not kept");
        cache.put_head(head(&[100, 200, 500, 600]), cache.ticket());
        let Lookup::Hit(placed) = cache.lookup(queued.id) else { panic!("the head is current") };
        assert_eq!(placed.queue_position, Some(3), "two queued before it");
        assert_eq!(placed.id, queued.id);
        assert!(matches!(cache.lookup(queued.id), Lookup::Hit(j) if Arc::ptr_eq(&j, &placed)), "counted once per move");
        // Its own change still drops it.
        cache.invalidate(&[Change::Job { id: queued.id, queue: true }]);
        assert!(matches!(cache.lookup(queued.id), Lookup::Miss));
    }

    #[test]
    fn a_place_is_capped_like_the_stores_count_and_a_backlogged_job_is_read_again() {
        let cache = listening();
        let (far, backlogged) = (job(JobStatus::Queued), job(JobStatus::Backlogged));
        cache.put(far.clone(), Some(i64::MAX), cache.ticket());
        cache.put(backlogged.clone(), None, cache.ticket());
        cache.invalidate(&[Change::Queues]);
        let cap = crate::store::codec::QUEUE_POSITION_CAP;
        cache.put_head(head(&(0..cap).collect::<Vec<_>>()), cache.ticket());
        let Lookup::Hit(placed) = cache.lookup(far.id) else { panic!("the head is current") };
        assert_eq!(placed.queue_position, Some(cap as u64 + 1), "more than the cap ahead");
        assert!(matches!(cache.lookup(backlogged.id), Lookup::Miss), "its place is counted in its account's backlog");
        // A lost connection drops the head with everything else.
        cache.deaf();
        cache.listening();
        cache.put(far.clone(), Some(i64::MAX), cache.ticket());
        cache.invalidate(&[Change::Queues]);
        assert!(matches!(cache.lookup(far.id), Lookup::NeedsHead));
    }

    #[test]
    fn moves_the_store_announces_patch_the_head_without_reading_it_again() {
        let cache = listening();
        let queued = job(JobStatus::Queued);
        cache.put(queued.clone(), Some(500), cache.ticket());
        cache.invalidate(&[Change::Queues]);
        let entries = head(&[100, 200, 300, 500]);
        cache.put_head(entries.clone(), cache.ticket());
        assert_eq!(place(&cache, queued.id), Some(4));
        // The first job is leased, and one handed back enters behind this one: no read needed.
        let (first, second) = (entries[0], entries[1]);
        cache.invalidate(&[Change::Moved { id: first.1, left: Some(first.0), entered: None }]);
        assert_eq!(place(&cache, queued.id), Some(3));
        cache.invalidate(&[Change::Moved { id: Uuid::new_v4(), left: None, entered: Some(900) }]);
        assert_eq!(place(&cache, queued.id), Some(3));
        // One enters ahead of it (a job queued again with its old time, say)...
        cache.invalidate(&[Change::Moved { id: Uuid::new_v4(), left: None, entered: Some(150) }]);
        assert_eq!(place(&cache, queued.id), Some(4));
        // ...and a move announced again (its read raced its notification) counts once.
        cache.invalidate(&[Change::Moved { id: second.1, left: Some(second.0), entered: None }]);
        cache.invalidate(&[Change::Moved { id: second.1, left: Some(second.0), entered: None }]);
        assert_eq!(place(&cache, queued.id), Some(3));
        // A head that held the whole queue holds its first HEAD_LEN jobs once it grows past them.
        for at in 1_000..1_000 + HEAD_LEN {
            cache.invalidate(&[Change::Moved { id: Uuid::new_v4(), left: None, entered: Some(at) }]);
        }
        assert_eq!(place(&cache, queued.id), Some(3));
        let state = cache.lock();
        let head = state.head.as_ref().expect("patched, not dropped");
        assert_eq!((head.entries.len() as i64, head.whole), (HEAD_LEN, false));
        drop(state);
        // A move the store could not say (an insert one by one) needs the head read again.
        cache.invalidate(&[Change::Queues]);
        assert!(matches!(cache.lookup(queued.id), Lookup::NeedsHead));
    }

    #[test]
    fn a_page_of_queued_times_is_placed_against_a_current_head_only() {
        let cache = listening();
        assert_eq!(cache.places(&[5]), None, "no head yet");
        cache.put_head(head(&[100, 200, 300]), cache.ticket());
        assert_eq!(cache.places(&[150, 300, 900]), Some(vec![2, 3, 4]));
        cache.invalidate(&[Change::Queues]);
        assert_eq!(cache.places(&[150]), None, "a move left unsaid");
    }

    #[test]
    fn a_head_read_while_jobs_moved_has_their_moves_applied() {
        let cache = listening();
        let queued = job(JobStatus::Queued);
        cache.put(queued.clone(), Some(500), cache.ticket());
        let entries = head(&[100, 200, 300]);
        let ticket = cache.ticket();
        // The first job leaves during the read, whose snapshot may or may not include it.
        let first = entries[0];
        cache.invalidate(&[Change::Moved { id: first.1, left: Some(first.0), entered: None }]);
        cache.put_head(entries.clone(), ticket);
        assert_eq!(place(&cache, queued.id), Some(3), "did not include it");
        cache.invalidate(&[Change::Queues]);
        let ticket = cache.ticket();
        cache.invalidate(&[Change::Moved { id: first.1, left: Some(first.0), entered: None }]);
        cache.put_head(entries[1..].to_vec(), ticket);
        assert_eq!(place(&cache, queued.id), Some(3), "included it");
        // One that cannot be applied refuses the read.
        let ticket = cache.ticket();
        cache.invalidate(&[Change::Queues]);
        cache.put_head(entries, ticket);
        assert!(matches!(cache.lookup(queued.id), Lookup::NeedsHead));
    }

    #[test]
    fn a_head_that_holds_part_of_the_queue_tells_places_only_as_far_as_it_knows() {
        let cap = crate::store::codec::QUEUE_POSITION_CAP;
        let cache = listening();
        let (near, far) = (job(JobStatus::Queued), job(JobStatus::Queued));
        cache.put(near.clone(), Some(10), cache.ticket());
        cache.put(far.clone(), Some(i64::MAX), cache.ticket());
        cache.invalidate(&[Change::Queues]);
        // A read of a longer queue: HEAD_LEN entries, more behind them.
        let entries = head(&(0..HEAD_LEN).collect::<Vec<_>>());
        cache.put_head(entries.clone(), cache.ticket());
        assert_eq!(place(&cache, near.id), Some(11));
        assert_eq!(place(&cache, far.id), Some(cap as u64 + 1));
        // Jobs entering behind the head's last entry are not held (others may be before them).
        cache.invalidate(&[Change::Moved { id: Uuid::new_v4(), left: None, entered: Some(HEAD_LEN + 5) }]);
        assert_eq!(place(&cache, far.id), Some(cap as u64 + 1));
        // As jobs leave, the far job stays past the cap while the head holds the cap's worth...
        for &(at, id) in &entries[..(HEAD_LEN - cap) as usize] {
            cache.invalidate(&[Change::Moved { id, left: Some(at), entered: None }]);
        }
        assert_eq!(place(&cache, far.id), Some(cap as u64 + 1));
        // ...and once it holds less, the head must be read again for it (not for one it covers).
        let (at, id) = entries[(HEAD_LEN - cap) as usize];
        let read_before = cache.ticket();
        cache.invalidate(&[Change::Moved { id, left: Some(at), entered: None }]);
        assert!(matches!(cache.lookup(far.id), Lookup::NeedsHead));
        let near_the_end = job(JobStatus::Queued);
        cache.put(near_the_end.clone(), Some(HEAD_LEN - 1), read_before);
        assert_eq!(place(&cache, near_the_end.id), Some(cap as u64 - 1), "the head's other cap - 2 are ahead");
    }

    #[test]
    fn raised_limits_drop_what_is_in_line_and_keep_the_rest() {
        let cache = listening();
        let (backlogged, done) = (job(JobStatus::Backlogged), job(JobStatus::Completed));
        cache.put(backlogged.clone(), None, cache.ticket());
        cache.put(done.clone(), None, cache.ticket());
        cache.invalidate(&[Change::Queues]);
        assert!(cache.get(backlogged.id).is_none(), "it may have been promoted");
        assert!(cache.get(done.id).is_some());
    }

    #[test]
    fn while_deaf_nothing_is_answered_or_kept_and_older_loads_stay_out() {
        let cache = listening();
        let done = job(JobStatus::Completed);
        cache.put(done.clone(), None, cache.ticket());
        let before = cache.ticket();
        cache.deaf();
        assert!(cache.get(done.id).is_none());
        cache.put(done.clone(), None, cache.ticket());
        assert_eq!(cache.len(), 0);
        cache.listening();
        // A load that began before the connection was lost may hold a missed change.
        cache.put(done.clone(), None, before);
        assert!(cache.get(done.id).is_none());
        cache.put(done.clone(), None, cache.ticket());
        assert!(cache.get(done.id).is_some());
    }

    #[test]
    fn everything_drops_every_entry_and_every_load_in_flight() {
        let cache = listening();
        let done = job(JobStatus::Completed);
        cache.put(done.clone(), None, cache.ticket());
        let ticket = cache.ticket();
        cache.invalidate(&[Change::Everything]);
        assert!(cache.get(done.id).is_none());
        cache.put(done.clone(), None, ticket);
        assert!(cache.get(done.id).is_none());
    }

    #[test]
    fn forgotten_tombstones_refuse_the_loads_they_could_have_caught() {
        let cache = listening();
        let done = job(JobStatus::Completed);
        let ticket = cache.ticket();
        for _ in 0..=MAX_TOMBSTONES {
            cache.invalidate(&[Change::Job { id: Uuid::new_v4(), queue: false }]);
        }
        cache.put(done.clone(), None, ticket);
        assert!(cache.get(done.id).is_none());
    }

    #[test]
    fn entries_are_bounded() {
        let cache = listening();
        for _ in 0..MAX_ENTRIES + 10 {
            cache.put(job(JobStatus::Completed), None, cache.ticket());
        }
        assert!(cache.len() <= MAX_ENTRIES);
    }
}
