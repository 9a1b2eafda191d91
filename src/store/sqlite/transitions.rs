//! Saving what `domain::lifecycle` decides: the rows a job's transition writes besides its own
//! status (the account's money and counters, the ledger, the webhook outbox, the backlog's
//! promotions, the workers' wake-up), all inside the caller's write transaction.
use super::super::*;
use super::accounts::record;
use super::actor::WriteCtx;
use super::sql_err;
use crate::domain::job::{FailureCode, JobStatus};
use crate::domain::lifecycle::{self, Event, MoneyMove, Refused, SlotChange, Transition};
use crate::domain::money::MicroUsd;
use rusqlite::params;
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

/// The signals a write wakes once it commits.
#[derive(Clone)]
pub struct Wake {
    pub queue: Arc<Notify>,
    pub webhooks: Arc<Notify>,
}

/// Wakes the workers once the write commits: a job became leasable.
pub fn wake_workers(ctx: &mut WriteCtx, queue: &Arc<Notify>) {
    let queue = queue.clone();
    ctx.after_commit(move || queue.notify_waiters());
}

/// A lifecycle refusal where the store expected the event to apply.
pub fn refused(refusal: Refused) -> StoreError {
    match refusal {
        Refused::LeaseLost => StoreError::LeaseLost,
        other => StoreError::Internal(format!("lifecycle refused: {other:?}")),
    }
}

/// Adds to the account's money and counters.
pub fn move_account(ctx: &WriteCtx, account: Uuid, money: MoneyMove, slots: SlotChange) -> StoreResult<()> {
    if money == MoneyMove::default() && slots == SlotChange::default() {
        return Ok(());
    }
    ctx.conn
        .prepare_cached(
            "UPDATE accounts SET held = held + ?2, balance = balance + ?3, active_jobs = active_jobs + ?4, \
             backlogged_jobs = backlogged_jobs + ?5 WHERE id = ?1",
        )
        .map_err(sql_err)?
        .execute(params![account.to_string(), money.held, money.balance, slots.active, slots.backlogged])
        .map_err(sql_err)?;
    Ok(())
}

/// Writes a job's end (cancelled or failed; completion writes its result itself): its status,
/// its failure if any, and no lease.
pub fn end_job(ctx: &mut WriteCtx, job: Uuid, t: &Transition, message: Option<&str>) -> StoreResult<()> {
    let now = ctx.now_us();
    ctx.conn
        .prepare_cached(
            "UPDATE jobs SET status = ?2, completed_at = ?3, updated_at = ?3, error_code = ?4, error_message = ?5, \
             lease_id = NULL, lease_expires_at = NULL WHERE id = ?1",
        )
        .map_err(sql_err)?
        .execute(params![job.to_string(), t.to.as_str(), now, t.failure.map(FailureCode::as_str), message])
        .map_err(sql_err)?;
    Ok(())
}

/// Puts a leased job back in the queue (handed back or its lease expired).
pub fn requeue(ctx: &mut WriteCtx, job: Uuid, t: &Transition) -> StoreResult<()> {
    let now = ctx.now_us();
    ctx.conn
        .prepare_cached(
            "UPDATE jobs SET status = ?2, queued_at = ?3, updated_at = ?3, progress = 0, lease_id = NULL, \
             lease_expires_at = NULL, worker = NULL, attempts = attempts + ?4 WHERE id = ?1",
        )
        .map_err(sql_err)?
        .execute(params![job.to_string(), t.to.as_str(), now, t.attempts])
        .map_err(sql_err)?;
    Ok(())
}

/// Carries out what a transition does beyond the job's own row: its hold settled, the account's
/// counters moved, its webhook queued, the account's backlog moved up, the workers woken.
pub fn carry_out(ctx: &mut WriteCtx, job: Uuid, account: Uuid, t: &Transition, wake: &Wake) -> StoreResult<()> {
    let money = match t.settle {
        Some(settlement) => settle_hold(ctx, job, account, settlement, lifecycle::settlement_note(t))?,
        None => MoneyMove::default(),
    };
    move_account(ctx, account, money, t.slots)?;
    if t.webhook {
        super::webhooks::enqueue(ctx, job, &wake.webhooks)?;
    }
    if t.frees_slot() {
        promote_backlog(ctx, account, &wake.queue)?;
    }
    if t.wakes_workers {
        wake_workers(ctx, &wake.queue);
    }
    Ok(())
}

/// Takes the job's hold off it and records the settlement in the ledger; returns what it does
/// to the account.
fn settle_hold(
    ctx: &mut WriteCtx,
    job: Uuid,
    account: Uuid,
    settlement: lifecycle::Settlement,
    note: &str,
) -> StoreResult<MoneyMove> {
    let hold: i64 = ctx
        .conn
        .prepare_cached("SELECT hold FROM jobs WHERE id = ?1")
        .map_err(sql_err)?
        .query_row([job.to_string()], |r| r.get(0))
        .map_err(sql_err)?;
    ctx.conn
        .prepare_cached("UPDATE jobs SET hold = 0 WHERE id = ?1")
        .map_err(sql_err)?
        .execute([job.to_string()])
        .map_err(sql_err)?;
    if hold == 0 {
        return Ok(MoneyMove::default());
    }
    record(ctx, account, settlement.into(), MicroUsd(hold), Some(job), Some(note.to_owned()))?;
    Ok(lifecycle::settle(MicroUsd(hold), settlement))
}

/// Moves the account's oldest backlogged jobs to `queued` while it has free slots.
pub fn promote_backlog(ctx: &mut WriteCtx, account: Uuid, queue: &Arc<Notify>) -> StoreResult<u32> {
    let (max, active, backlogged): (u32, u32, u32) = ctx
        .conn
        .prepare_cached("SELECT max_concurrent, active_jobs, backlogged_jobs FROM accounts WHERE id = ?1")
        .map_err(sql_err)?
        .query_row([account.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(sql_err)?;
    let n = lifecycle::promotions(max, active, backlogged);
    if n == 0 {
        return Ok(0);
    }
    let t = lifecycle::apply(JobStatus::Backlogged, Event::Promote).map_err(refused)?;
    let mut promoted = 0;
    for _ in 0..n {
        // One at a time: each gets its own `queued_at`, so the queue keeps the backlog's order.
        let now = ctx.now_us();
        promoted += ctx
            .conn
            .prepare_cached(
                "UPDATE jobs SET status = ?3, queued_at = ?4, updated_at = ?4 WHERE id = \
                 (SELECT id FROM jobs WHERE account_id = ?1 AND status = ?2 ORDER BY created_at LIMIT 1)",
            )
            .map_err(sql_err)?
            .execute(params![account.to_string(), JobStatus::Backlogged.as_str(), t.to.as_str(), now])
            .map_err(sql_err)? as i32;
    }
    let slots = SlotChange { active: t.slots.active * promoted, backlogged: t.slots.backlogged * promoted };
    move_account(ctx, account, MoneyMove::default(), slots)?;
    if promoted > 0 && t.wakes_workers {
        wake_workers(ctx, queue);
    }
    Ok(promoted as u32)
}
