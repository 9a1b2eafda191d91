//! Group commit for submits on PostgreSQL. A submit holds its account's row lock through its
//! commit's fsync, so one account's submits ran one fsync after another (≈ 900/s here whatever
//! the concurrency). Instead, submits waiting at this replica are taken together — up to
//! `MAX_BATCH` — and decided in one transaction with one commit: the same checks as one submit
//! after another (limits, balance, idempotency keys; submit_plan.rs), each against what the
//! earlier submits of the batch left, made in memory on rows read once. The batch costs the
//! same few statements whatever its size (submit_rows.rs): lock and read its accounts, read
//! their newest jobs' times and the clock, read its idempotency keys (if any), write all it
//! accepted, read back the jobs it replays (if any).
//! Each caller is answered only after that commit. Refusals write nothing; any database error
//! rolls the batch back and its submits are run again one by one (nothing of it was
//! acknowledged). Batches lock accounts in id order, so concurrent batches, here or on other
//! replicas, queue up instead of deadlocking.
use super::rows::{load_watched, to_time};
use super::submit_plan::{self, Decision, Reads};
use super::{jobs, pg_err, submit_rows, transaction};
use crate::store::{Idempotency, Job, NewJob, StoreError, StoreResult, SubmitRefusal};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use tokio::sync::oneshot;
use uuid::Uuid;

/// Submits in one transaction at most.
const MAX_BATCH: usize = 64;
/// Batches in flight at once per replica (each on its own pooled connection). One: submits that
/// arrive while a batch commits make the next batch, as in SQLite's group commit. Several only
/// split the arrivals into smaller batches that then queue on the same account locks (every
/// batch holds its accounts' rows through its commit), and it is the batches' count, not their
/// size, that costs PostgreSQL: one account's submits at 64 connections went from 6.6k/s (four
/// batchers, ~6 submits per commit) to 9.8k/s (one, ~14), PostgreSQL's CPU per batch ~1 ms.
pub(super) const BATCHERS: usize = 1;

pub(super) type Outcome = StoreResult<Result<Job, SubmitRefusal>>;

pub(super) struct Pending {
    pub new: NewJob,
    pub reply: oneshot::Sender<Outcome>,
}

/// Starts the batchers; submits are sent to the returned channel.
pub(super) fn spawn(pool: PgPool) -> (flume::Sender<Pending>, Vec<tokio::task::JoinHandle<()>>) {
    let (tx, rx) = flume::unbounded();
    let tasks = (0..BATCHERS).map(|_| tokio::spawn(batcher(pool.clone(), rx.clone()))).collect();
    (tx, tasks)
}

async fn batcher(pool: PgPool, rx: flume::Receiver<Pending>) {
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
        match run_batch(&pool, &batch).await {
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
                for pending in batch {
                    let outcome = transaction(&pool, |c| Box::pin(jobs::submit(c, pending.new.clone()))).await;
                    let _ = pending.reply.send(outcome);
                }
            }
        }
    }
}

async fn run_batch(pool: &PgPool, batch: &[Pending]) -> StoreResult<Vec<Result<Job, SubmitRefusal>>> {
    let mut tx = pool.begin().await.map_err(pg_err)?;
    let decided = decide_and_write(&mut tx, batch.iter().map(|p| &p.new).collect()).await;
    let outcomes = match decided {
        Ok(outcomes) => outcomes,
        Err(e) => {
            // Now, not when the pool gets round to it: its submits, run again, wait on its locks.
            let _ = tx.rollback().await;
            return Err(e);
        }
    };
    tx.commit().await.map_err(pg_err)?;
    Ok(outcomes)
}

/// The batch (sorted by account) in the open transaction: reads, decides, writes.
async fn decide_and_write(c: &mut PgConnection, batch: Vec<&NewJob>) -> StoreResult<Vec<Result<Job, SubmitRefusal>>> {
    let mut ids: Vec<Uuid> = batch.iter().map(|n| n.account_id).collect();
    ids.dedup();
    let mut accounts = submit_rows::lock_accounts(c, &ids).await?;
    let (last_job, now_us) = submit_rows::last_jobs_and_now(c, &ids).await?;
    let keyed: Vec<(Uuid, &Idempotency)> =
        batch.iter().filter_map(|n| n.idempotency.as_ref().map(|i| (n.account_id, i))).collect();
    let keys = submit_rows::keys_seen(c, &keyed).await?;
    let plan = submit_plan::plan(batch.iter().copied(), Reads { accounts: &mut accounts, last_job, now_us, keys });
    let accepted: Vec<_> = batch
        .iter()
        .zip(&plan.decisions)
        .filter_map(|(new, d)| match d {
            Decision::Accept(a) => Some((*new, *a)),
            _ => None,
        })
        .collect();
    if !accepted.is_empty() {
        submit_rows::write(c, &accepted, &plan.changes, &plan.claims).await?;
    }
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
    batch
        .into_iter()
        .zip(plan.decisions)
        .map(|(new, decision)| match decision {
            Decision::Accept(a) => Ok(Ok(new.clone().accepted(a.status, to_time(a.created_at), a.backlogged_before))),
            Decision::Refuse(refusal) => Ok(Err(refusal)),
            Decision::Replay(job) => replays.get(&job).cloned().map(Ok).ok_or(StoreError::NotFound),
        })
        .collect()
}
