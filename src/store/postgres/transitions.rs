//! Saving what `domain::lifecycle` decides: the rows a job's transition writes besides its own
//! status (the account's money and counters, the ledger, the webhook outbox, the backlog's
//! promotions, the workers' wake-up), all inside the caller's transaction, which holds the
//! account's lock.
use super::super::*;
use super::accounts::record;
use super::{notify, pg_err, QUEUE_CHANNEL};
use crate::domain::job::{FailureCode, JobStatus};
use crate::domain::lifecycle::{self, Event, MoneyMove, Refused, SlotChange, Transition};
use crate::domain::money::MicroUsd;
use sqlx::PgConnection;
use uuid::Uuid;

/// A lifecycle refusal where the store expected the event to apply.
pub fn refused(refusal: Refused) -> StoreError {
    match refusal {
        Refused::LeaseLost => StoreError::LeaseLost,
        other => StoreError::Internal(format!("lifecycle refused: {other:?}")),
    }
}

/// Adds to the account's money and counters.
pub async fn move_account(c: &mut PgConnection, account: Uuid, money: MoneyMove, slots: SlotChange) -> StoreResult<()> {
    if money == MoneyMove::default() && slots == SlotChange::default() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE accounts SET held = held + $2, balance = balance + $3, active_jobs = active_jobs + $4, \
         backlogged_jobs = backlogged_jobs + $5 WHERE id = $1",
    )
    .bind(account)
    .bind(money.held)
    .bind(money.balance)
    .bind(slots.active)
    .bind(slots.backlogged)
    .execute(c)
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// Writes a job's end (cancelled or failed; completion writes its result itself): its status,
/// its failure if any, and no lease.
pub async fn end_job(c: &mut PgConnection, job: Uuid, t: &Transition, message: Option<&str>) -> StoreResult<()> {
    sqlx::query(
        "UPDATE jobs SET status = $2, completed_at = ltx_now_us(), updated_at = ltx_now_us(), error_code = $3, \
         error_message = $4, lease_id = NULL, lease_expires_at = NULL WHERE id = $1",
    )
    .bind(job)
    .bind(t.to.as_str())
    .bind(t.failure.map(FailureCode::as_str))
    .bind(message)
    .execute(c)
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// Puts a leased job back in the queue (handed back or its lease expired) and wakes the workers.
pub async fn requeue(c: &mut PgConnection, job: Uuid, t: &Transition) -> StoreResult<()> {
    sqlx::query(
        "UPDATE jobs SET status = $2, queued_at = ltx_now_us(), updated_at = ltx_now_us(), progress = 0, \
         lease_id = NULL, lease_expires_at = NULL, worker = NULL, attempts = attempts + $3 WHERE id = $1",
    )
    .bind(job)
    .bind(t.to.as_str())
    .bind(t.attempts)
    .execute(&mut *c)
    .await
    .map_err(pg_err)?;
    if t.wakes_workers {
        notify(c, QUEUE_CHANNEL).await?;
    }
    Ok(())
}

/// Carries out what a transition does beyond the job's own row: its hold settled, the account's
/// counters moved, its webhook queued, the account's backlog moved up.
pub async fn carry_out(c: &mut PgConnection, job: Uuid, account: Uuid, t: &Transition) -> StoreResult<()> {
    let money = match t.settle {
        Some(settlement) => settle_hold(c, job, account, settlement, lifecycle::settlement_note(t)).await?,
        None => MoneyMove::default(),
    };
    move_account(c, account, money, t.slots).await?;
    if t.webhook {
        super::webhooks::enqueue(c, job).await?;
    }
    if t.frees_slot() {
        promote_backlog(c, account).await?;
    }
    Ok(())
}

/// Takes the job's hold off it and records the settlement in the ledger; returns what it does
/// to the account.
async fn settle_hold(
    c: &mut PgConnection,
    job: Uuid,
    account: Uuid,
    settlement: lifecycle::Settlement,
    note: &str,
) -> StoreResult<MoneyMove> {
    // `old` is the row as the statement found it: its hold before this update.
    let hold: i64 = sqlx::query_scalar(
        "UPDATE jobs j SET hold = 0 FROM jobs old WHERE j.id = $1 AND old.id = $1 RETURNING old.hold",
    )
    .bind(job)
    .fetch_one(&mut *c)
    .await
    .map_err(pg_err)?;
    if hold == 0 {
        return Ok(MoneyMove::default());
    }
    record(c, account, settlement.into(), MicroUsd(hold), Some(job), Some(note.to_owned())).await?;
    Ok(lifecycle::settle(MicroUsd(hold), settlement))
}

/// Moves the account's oldest backlogged jobs to `queued` while it has free slots. The caller
/// holds the account lock.
pub async fn promote_backlog(c: &mut PgConnection, account: Uuid) -> StoreResult<u32> {
    let (max, active, backlogged): (i32, i32, i32) =
        sqlx::query_as("SELECT max_concurrent, active_jobs, backlogged_jobs FROM accounts WHERE id = $1")
            .bind(account)
            .fetch_one(&mut *c)
            .await
            .map_err(pg_err)?;
    let n = lifecycle::promotions(max.max(0) as u32, active.max(0) as u32, backlogged.max(0) as u32);
    if n == 0 {
        return Ok(0);
    }
    let t = lifecycle::apply(JobStatus::Backlogged, Event::Promote).map_err(refused)?;
    let promoted = sqlx::query(
        "UPDATE jobs SET status = $3, queued_at = ltx_now_us(), updated_at = ltx_now_us() WHERE id IN ( \
         SELECT id FROM jobs WHERE account_id = $1 AND status = $2 ORDER BY created_at LIMIT $4)",
    )
    .bind(account)
    .bind(JobStatus::Backlogged.as_str())
    .bind(t.to.as_str())
    .bind(i64::from(n))
    .execute(&mut *c)
    .await
    .map_err(pg_err)?
    .rows_affected() as i32;
    let slots = SlotChange { active: t.slots.active * promoted, backlogged: t.slots.backlogged * promoted };
    move_account(c, account, MoneyMove::default(), slots).await?;
    if promoted > 0 && t.wakes_workers {
        notify(c, QUEUE_CHANNEL).await?;
    }
    Ok(promoted as u32)
}
