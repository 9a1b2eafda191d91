//! Group commit for submits on PostgreSQL. A submit holds its account's row lock through its
//! commit's fsync, so one account's submits ran one fsync after another (≈ 900/s here whatever
//! the concurrency). Instead, submits waiting at this replica are taken together — up to
//! `MAX_BATCH` — and run one after another in one transaction with one commit: the same checks
//! against what each earlier submit left (limits, balance, idempotency keys), each account's row
//! locked and read once, one fsync for all.
//! Each caller is answered only after that commit. Refusals write nothing, so they need no
//! savepoint; any database error rolls the batch back and its submits are run again one by one
//! (nothing of it was acknowledged). Batches lock accounts in id order, so concurrent batches,
//! here or on other replicas, queue up instead of deadlocking.
use super::{accounts, jobs, pg_err, transaction};
use crate::store::{Account, Job, NewJob, StoreError, StoreResult, SubmitRefusal};
use sqlx::PgPool;
use tokio::sync::oneshot;

/// Submits in one transaction at most (each is two or three statements).
const MAX_BATCH: usize = 64;
/// Batches committing at once per replica (each on its own pooled connection).
pub(super) const BATCHERS: usize = 4;

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
    let mut outcomes = Vec::with_capacity(batch.len());
    // The batch is sorted by account: each account is locked and read once.
    let mut locked: Option<Account> = None;
    for pending in batch {
        let account = match &mut locked {
            Some(account) if account.id == pending.new.account_id => account,
            _ => locked.insert(accounts::get(&mut tx, pending.new.account_id, true).await?),
        };
        outcomes.push(jobs::submit_locked(&mut tx, account, pending.new.clone()).await?);
    }
    tx.commit().await.map_err(pg_err)?;
    Ok(outcomes)
}
