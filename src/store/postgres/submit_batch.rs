//! Group commit for submits on PostgreSQL. A submit holds its account's row lock through its
//! commit's fsync, so one account's submits ran one fsync after another (≈ 900/s here whatever
//! the concurrency). Instead, submits waiting at this replica are taken together — up to
//! `MAX_BATCH` — and decided with one commit: the same checks as one submit after another
//! (limits, balance, idempotency keys; submit_plan.rs), each against what the earlier submits of
//! the batch left, made in memory on rows read once. The batch costs the same few statements
//! whatever its size (submit_rows.rs).
//!
//! A batch is first decided on its accounts read without locks (with their newest jobs' times,
//! the clock and its idempotency keys) and written by one statement that commits by itself and
//! changes each account only if its row is still the version read: two round trips. If another
//! transaction changed one of the accounts in between (a settlement, another replica's batch),
//! that statement keeps nothing and the batch is decided again in a transaction that locks its
//! accounts first (BEGIN, the locks and the reads in one round trip, the write, COMMIT). Under
//! load a round trip, not PostgreSQL's work, was most of a batch's time: the transaction's five
//! (with the pool's ping) became two, and one account's submits went from ~10k/s to ~19k/s here.
//! When the batch before wrote all of its accounts (under load, one account's batches follow each
//! other), the batch is decided on what that one left and only written (submit_carry.rs): one
//! round trip, 1.12× the submits in an interleaved before/after (bench/RESULTS.md).
//!
//! Each caller is answered only after the commit. Refusals write nothing; any other database
//! error keeps nothing of the batch and its submits are run again one by one (nothing of it was
//! acknowledged). Batches lock and update accounts in id order, so concurrent batches, here or
//! on other replicas, queue up instead of deadlocking.
use super::rows::{load_watched, to_time};
use super::submit_carry::{AfterBatch, Carried};
use super::submit_plan::{self, Decision, Reads};
use super::{jobs, pg_err, submit_rows, transaction};
use crate::store::{Idempotency, Job, NewJob, StoreError, StoreResult, SubmitRefusal};
use sqlx::Connection as _;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Submits in one transaction at most.
const MAX_BATCH: usize = 64;
/// Batches in flight at once per replica (each on its own connection). One: submits that
/// arrive while a batch commits make the next batch, as in SQLite's group commit. Several only
/// split the arrivals into smaller batches that then queue on the same account rows, and it is
/// the batches' count, not their size, that costs PostgreSQL: one account's submits at 64
/// connections went from 6.6k/s (four batchers, ~6 submits per commit) to 9.8k/s (one, ~14),
/// PostgreSQL's CPU per batch ~1 ms; with the unlocked write below, two batchers made 9–10k/s
/// against one's ~14k (each batch then read the other's change and was decided again).
pub(super) const BATCHERS: usize = 1;

pub(super) type Outcome = StoreResult<Result<Job, SubmitRefusal>>;

pub(super) struct Pending {
    pub new: NewJob,
    pub reply: oneshot::Sender<Outcome>,
}

/// Starts the batchers, each on a thread of its own (see `batcher`); submits are sent to the
/// returned channel. A batcher stops once every sender is gone.
pub(super) fn spawn(pool: PgPool) -> StoreResult<flume::Sender<Pending>> {
    let (tx, rx) = flume::unbounded();
    let main = tokio::runtime::Handle::current();
    for _ in 0..BATCHERS {
        let (pool, rx, main) = (pool.clone(), rx.clone(), main.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Internal(format!("could not start the submit batcher: {e}")))?;
        std::thread::Builder::new()
            .name("ltx-submit-batcher".into())
            .spawn(move || runtime.block_on(batcher(pool, rx, main)))
            .map_err(|e| StoreError::Internal(format!("could not start the submit batcher: {e}")))?;
    }
    Ok(tx)
}

/// Takes the submits waiting at this replica as batches, one after another. A batch is a
/// pipeline of round trips to PostgreSQL, each one waited on, so the batcher runs on a thread
/// and runtime of its own, with a connection of its own: on the server's runtime its wake-ups
/// queued behind the HTTP tasks that its previous batch had just answered (a round trip of
/// ~0.2 ms took ~0.55 ms under load; 16.2–17.5k submits/s against ~18k here). What it cannot
/// decide in a batch runs on the pool, on the server's runtime (`main`).
async fn batcher(pool: PgPool, rx: flume::Receiver<Pending>, main: tokio::runtime::Handle) {
    let (mut conn, mut carried) = (None, Carried::default());
    while let Ok(first) = rx.recv_async().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // A stable sort keeps one account's submits in arrival order.
        batch.sort_by_key(|p| p.new.account_id);
        match run_batch(&pool, &mut conn, &mut carried, &batch).await {
            Ok(outcomes) => {
                for (pending, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = pending.reply.send(Ok(outcome));
                }
            }
            // The database is unreachable: running them again one by one would only wait longer.
            Err(StoreError::Unavailable(why)) => {
                for pending in batch {
                    let _ = pending.reply.send(Err(StoreError::Unavailable(why.clone())));
                }
            }
            Err(e) => {
                if batch.len() > 1 {
                    tracing::debug!(error = %e, size = batch.len(), "a submit batch failed; running its submits alone");
                }
                let pool = pool.clone();
                let alone = main.spawn(async move {
                    for pending in batch {
                        let outcome = transaction(&pool, |c| Box::pin(jobs::submit(c, pending.new.clone()))).await;
                        let _ = pending.reply.send(outcome);
                    }
                });
                // Waited for, so that later batches come after them as before.
                let _ = alone.await;
            }
        }
    }
    // The store is gone: say goodbye rather than drop the socket.
    if let Some(c) = conn {
        let _ = sqlx::Connection::close(c.connection).await;
    }
}

/// Runs one batch on the batcher's connection, opening one when it has none: first decided on
/// rows read without locks and written by one statement that commits by itself (two round
/// trips), and when an account changed between the two (the statement then keeps nothing),
/// again in a transaction under the accounts' locks. A connection that fails is dropped
/// (closing it rolls back whatever it had open); when it fails in a batch's first round trip
/// (nothing written yet, as when the database restarted while it sat idle between batches), the
/// batch runs once more on a fresh one.
async fn run_batch(
    pool: &PgPool,
    conn: &mut Option<Connection>,
    carried: &mut Carried,
    batch: &[Pending],
) -> StoreResult<Vec<Result<Job, SubmitRefusal>>> {
    let news: Vec<&NewJob> = batch.iter().map(|p| &p.new).collect();
    let mut fresh = false;
    loop {
        if let Some(old) = conn.take_if(|c| c.opened.elapsed() > CONNECTION_LIFETIME) {
            let _ = sqlx::Connection::close(old.connection).await;
        }
        // Idle for a while, it is pinged first (as the pool pinged each connection it handed
        // out): a link dropped silently must not hold the batch until TCP gives up on it.
        if let Some(c) = conn.as_mut().filter(|c| c.used.elapsed() > IDLE_PING) {
            if !matches!(tokio::time::timeout(CONNECT_TIMEOUT, c.connection.ping()).await, Ok(Ok(()))) {
                *conn = None;
            }
        }
        let c = match conn {
            Some(c) => &mut c.connection,
            None => {
                fresh = true;
                let opened = Instant::now();
                &mut conn.insert(Connection { connection: connect(pool).await?, opened, used: opened }).connection
            }
        };
        let outcome = match unlocked(c, &news, carried).await {
            Err(Step::Later(StoreError::Conflict(_))) => {
                metrics::counter!("ltx_submit_batches_total", "path" => "locked").increment(1);
                locked(c, &news).await
            }
            other => other,
        };
        if let Some(c) = conn.as_mut() {
            c.used = Instant::now();
        }
        let step = match outcome {
            Ok(outcomes) => return Ok(outcomes),
            Err(step) => step,
        };
        let unavailable =
            matches!(step, Step::First(StoreError::Unavailable(_)) | Step::Later(StoreError::Unavailable(_)));
        if unavailable || matches!(step, Step::Broken(_)) {
            *conn = None;
        }
        if fresh || !matches!(step, Step::First(StoreError::Unavailable(_))) {
            return Err(step.into_error());
        }
    }
}

/// The batcher's connection: the pool's settings, and always the generic plan of each of its
/// prepared statements. PostgreSQL planned the batch's statements afresh for each batch (their
/// arrays' contents differ every time, so the generic plan never looked cheaper); half of the
/// ~0.4 ms a read took was planning, and ~18k submits/s here against ~14k without. On tables of
/// any size, each of its statements' generic plans reaches accounts and keys through their
/// primary keys and newest jobs through `jobs_account_created` (EXPLAIN, bench/RESULTS.md).
async fn connect(pool: &PgPool) -> StoreResult<PgConnection> {
    let options = pool.connect_options().as_ref().clone().options([("plan_cache_mode", "force_generic_plan")]);
    match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::Connection::connect_with(&options)).await {
        Ok(connected) => connected.map_err(pg_err),
        Err(_) => Err(StoreError::Unavailable("connecting to the database timed out".into())),
    }
}

/// As long as the pool waits for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The batcher's connection is opened again after this long, so that no plan it made on small
/// tables (a new database) outlives the tables' growth by long, whatever autovacuum's analyses.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// A connection unused for this long is pinged before a batch.
const IDLE_PING: Duration = Duration::from_secs(10);

/// The batcher's connection, when it was opened and last used.
struct Connection {
    connection: PgConnection,
    opened: Instant,
    used: Instant,
}

/// The batch decided on its accounts as the previous batch left them (submit_carry.rs) or as
/// read without locks, and written with a check that each is still that version (submit_rows.rs
/// `write`). A batch decided on carried accounts is read and decided again when one of them
/// changed since, or when it would refuse a submit (a refusal writes nothing, so nothing would
/// check what it was decided on). What it leaves is carried to the next batch.
async fn unlocked(
    c: &mut PgConnection,
    news: &[&NewJob],
    carried: &mut Carried,
) -> Result<Vec<Result<Job, SubmitRefusal>>, Step> {
    let ids = account_ids(news);
    if let Some((read, versions)) = carried.take(&ids) {
        match decide_and_write(c, news, read, Basis::Carried(versions)).await {
            Ok(Attempt::Written(decided)) => {
                metrics::counter!("ltx_submit_batches_total", "path" => "carried").increment(1);
                return Ok(decided.carry_into(carried));
            }
            Ok(Attempt::UnderLocks) => return Err(Step::Later(under_locks())),
            Ok(Attempt::ReadAgain) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(Step::Later(e)),
        }
    }
    let (read, versions) = submit_rows::read_unlocked(c, &ids).await.map_err(Step::First)?;
    match decide_and_write(c, news, read, Basis::Read(versions)).await.map_err(Step::Later)? {
        Attempt::Written(decided) => {
            metrics::counter!("ltx_submit_batches_total", "path" => "unlocked").increment(1);
            Ok(decided.carry_into(carried))
        }
        Attempt::ReadAgain | Attempt::UnderLocks => Err(Step::Later(under_locks())),
    }
}

/// What sends a batch to be decided under its accounts' locks (`run_batch`).
fn under_locks() -> StoreError {
    StoreError::Conflict("a batch to decide under locks".into())
}

/// The batch in a transaction of its own that locks its accounts first.
async fn locked(c: &mut PgConnection, news: &[&NewJob]) -> Result<Vec<Result<Job, SubmitRefusal>>, Step> {
    let decided = match submit_rows::begin_and_lock(c, &account_ids(news)).await {
        Ok(read) => match decide_and_write(c, news, read, Basis::Locked).await {
            Ok(Attempt::Written(decided)) => Ok(decided.outcomes),
            Ok(_) => Err(Step::Later(StoreError::Internal("a batch under locks asked for locks".into()))),
            Err(e) => Err(Step::Later(e)),
        },
        Err(e) => Err(Step::First(e)),
    };
    match decided {
        Ok(outcomes) => simple(c, "COMMIT").await.map(|()| outcomes).map_err(|e| Step::Broken(pg_err(e))),
        // Rolled back now, not later: its submits, run again, would wait on its locks.
        Err(step) => match simple(c, "ROLLBACK").await {
            Ok(()) => Err(step),
            Err(_) => Err(Step::Broken(step.into_error())),
        },
    }
}

/// The batch's accounts, each once (the batch is sorted by account).
fn account_ids(news: &[&NewJob]) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = news.iter().map(|n| n.account_id).collect();
    ids.dedup();
    ids
}

/// A statement without parameters (a simple query: `&str` carries no arguments).
async fn simple(c: &mut PgConnection, sql: &'static str) -> sqlx::Result<()> {
    sqlx::Executor::execute(c, sql).await.map(|_| ())
}

/// Where a batch failed: in its first round trip (nothing written yet), after it, or so that
/// its connection cannot be trusted with another batch (a failed commit or rollback).
enum Step {
    First(StoreError),
    Later(StoreError),
    Broken(StoreError),
}

impl Step {
    fn into_error(self) -> StoreError {
        match self {
            Step::First(e) | Step::Later(e) | Step::Broken(e) => e,
        }
    }
}

/// What a batch is decided on: its accounts as the previous batch left them or as read without
/// locks (each with the version its write checks), or as read under their locks.
enum Basis {
    Carried(submit_rows::Versions),
    Read(submit_rows::Versions),
    Locked,
}

/// How deciding a batch ended.
enum Attempt {
    Written(Box<Decided>),
    /// Decided on carried accounts, it refused a submit: read them and decide again.
    ReadAgain,
    /// It replays an idempotency key: decide it again under locks.
    UnderLocks,
}

/// A decided and written batch: its answers, and what it leaves for the next (submit_carry.rs).
struct Decided {
    outcomes: Vec<Result<Job, SubmitRefusal>>,
    after: AfterBatch,
    written: Option<submit_rows::Written>,
}

impl Decided {
    /// Its answers, once what it left is carried (for a batch decided on versions, that is, one
    /// whose write committed by itself). A batch that wrote nothing (all refused) carries nothing.
    fn carry_into(self, carried: &mut Carried) -> Vec<Result<Job, SubmitRefusal>> {
        match self.written {
            Some(submit_rows::Written { version: Some(version), now_us: Some(now_us) }) => {
                carried.remember(self.after, &version, now_us)
            }
            _ => carried.forget(),
        }
        self.outcomes
    }
}

/// Decides the batch (sorted by account) on what was read, and writes what it accepted.
async fn decide_and_write(
    c: &mut PgConnection,
    batch: &[&NewJob],
    read: submit_rows::AccountReads,
    basis: Basis,
) -> StoreResult<Attempt> {
    let submit_rows::AccountReads { mut accounts, mut last_job, now_us } = read;
    let keyed: Vec<(Uuid, &Idempotency)> =
        batch.iter().filter_map(|n| n.idempotency.as_ref().map(|i| (n.account_id, i))).collect();
    let keys = submit_rows::keys_seen(c, &keyed).await?;
    let reads = Reads { accounts: &mut accounts, last_job: &mut last_job, now_us, keys };
    let plan = submit_plan::plan(batch.iter().copied(), reads);
    let accepted: Vec<_> = batch
        .iter()
        .zip(&plan.decisions)
        .filter_map(|(new, d)| match d {
            Decision::Accept(a) => Some((*new, *a)),
            _ => None,
        })
        .collect();
    let (carried, versions) = match basis {
        Basis::Carried(v) => (true, Some(v)),
        Basis::Read(v) => (false, Some(v)),
        Basis::Locked => (false, None),
    };
    if versions.is_some() && plan.decisions.iter().any(|d| matches!(d, Decision::Replay(_))) {
        // A replay reads its job after the write; read without locks, the write has committed
        // by then, and a failed read could not roll the batch back. Rare: run it under locks.
        return Ok(Attempt::UnderLocks);
    }
    let refuses =
        |d: &Decision| matches!(d, Decision::Refuse(r) if !matches!(r, SubmitRefusal::IdempotencyConflict { .. }));
    if carried && plan.decisions.iter().any(refuses) {
        return Ok(Attempt::ReadAgain);
    }
    let written = match accepted.is_empty() {
        true => None,
        false => {
            let written = submit_rows::write(c, &accepted, &plan.changes, &plan.claims, versions.as_ref()).await;
            if let Err(StoreError::Conflict(_)) = written {
                metrics::counter!("ltx_submit_batch_conflicts_total").increment(1);
            }
            Some(written?)
        }
    };
    // Replays read their job once this batch's jobs are written (it may be one of them).
    let replayed: Vec<(Uuid, Uuid)> = batch
        .iter()
        .zip(&plan.decisions)
        .filter_map(|(new, d)| match d {
            Decision::Replay(job) => Some((new.account_id, *job)),
            _ => None,
        })
        .collect();
    let mut replays: HashMap<Uuid, Job> = HashMap::new();
    if !replayed.is_empty() {
        replays = load_watched(c, &replayed).await?.into_iter().map(|j| (j.id, j)).collect();
    }
    let outcomes = batch
        .iter()
        .zip(plan.decisions)
        .map(|(new, decision)| match decision {
            Decision::Accept(a) => {
                Ok(Ok((*new).clone().accepted(a.status, to_time(a.created_at), a.backlogged_before)))
            }
            Decision::Refuse(refusal) => Ok(Err(refusal)),
            Decision::Replay(job) => replays.get(&job).cloned().map(Ok).ok_or(StoreError::NotFound),
        })
        .collect::<StoreResult<_>>()?;
    let changed = plan.changes.keys().copied().collect();
    let after = AfterBatch { accounts, last_job, versions: versions.unwrap_or_default(), changed };
    Ok(Attempt::Written(Box::new(Decided { outcomes, after, written })))
}
