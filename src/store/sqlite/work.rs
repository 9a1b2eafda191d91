//! The worker side: leasing, heartbeats, results and failures (fenced by lease id), and the
//! scheduler's sweep of expired leases and overrunning jobs.
use super::super::*;
use super::actor::WriteCtx;
use super::jobs::{charge_hold, count_transition, promote_backlog, release_hold};
use super::rows::{must_load, uuid};
use super::sql_err;
use crate::domain::job::{FailureCode, JobStatus};
use rusqlite::{params, OptionalExtension};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

fn micros(d: Duration) -> i64 {
    d.as_micros().min(i64::MAX as u128) as i64
}

/// How far down the queue a worker looks for a job whose LoRA set it already has resident.
const PREFERENCE_WINDOW: i64 = 16;

/// The oldest job among the first `PREFERENCE_WINDOW` queued whose LoRA set is one of `?2` (a
/// JSON array), while the oldest queued job was queued after `?3` (it has not waited too long).
const PICK_PREFERRED: &str = "SELECT id FROM (SELECT id, style_key, queued_at, MIN(queued_at) OVER () AS oldest \
     FROM (SELECT id, style_key, queued_at FROM jobs WHERE status = 'queued' ORDER BY queued_at LIMIT ?1)) \
     WHERE style_key IN (SELECT value FROM json_each(?2)) AND oldest > ?3 ORDER BY queued_at LIMIT 1";

pub fn lease(ctx: &mut WriteCtx, worker: WorkerLease, ttl: Duration) -> StoreResult<Option<Lease>> {
    let mut next: Option<String> = None;
    if !worker.resident_style_sets.is_empty() && !worker.affinity_max_wait.is_zero() {
        let sets =
            serde_json::to_string(&worker.resident_style_sets).map_err(|e| StoreError::Internal(e.to_string()))?;
        let queued_after = ctx.now_us() - micros(worker.affinity_max_wait);
        // The single writer makes this check-then-update atomic.
        next = ctx
            .conn
            .prepare_cached(PICK_PREFERRED)
            .map_err(sql_err)?
            .query_row(params![PREFERENCE_WINDOW, sets, queued_after], |r| r.get(0))
            .optional()
            .map_err(sql_err)?;
    }
    if next.is_none() {
        next = ctx
            .conn
            .prepare_cached("SELECT id FROM jobs WHERE status = 'queued' ORDER BY queued_at LIMIT 1")
            .map_err(sql_err)?
            .query_row([], |r| r.get(0))
            .optional()
            .map_err(sql_err)?;
    }
    let Some(id) = next else { return Ok(None) };
    let now = ctx.now_us();
    let lease_id = Uuid::new_v4();
    ctx.conn
        .prepare_cached(
            "UPDATE jobs SET status = 'scheduled', worker = ?2, lease_id = ?3, lease_expires_at = ?4, attempts = attempts + 1, \
             started_at = COALESCE(started_at, ?5), updated_at = ?5, progress = 0 WHERE id = ?1",
        )
        .map_err(sql_err)?
        .execute(params![id, worker.name, lease_id.to_string(), now + micros(ttl), now])
        .map_err(sql_err)?;
    let job_id = uuid(id);
    Ok(Some(Lease { lease: LeaseRef { job_id, lease_id }, job: must_load(ctx.conn, job_id)? }))
}

pub fn lease_is_held(conn: &rusqlite::Connection, lease: LeaseRef) -> StoreResult<bool> {
    let status: Option<String> = conn
        .prepare_cached("SELECT status FROM jobs WHERE id = ?1 AND lease_id = ?2")
        .map_err(sql_err)?
        .query_row(params![lease.job_id.to_string(), lease.lease_id.to_string()], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    Ok(status.and_then(|s| JobStatus::parse(&s)).is_some_and(JobStatus::is_leased))
}

/// The status of the job if `lease` still holds it, else `LeaseLost`.
fn held_status(ctx: &WriteCtx, lease: LeaseRef) -> StoreResult<JobStatus> {
    let status: Option<String> = ctx
        .conn
        .prepare_cached("SELECT status FROM jobs WHERE id = ?1 AND lease_id = ?2")
        .map_err(sql_err)?
        .query_row(params![lease.job_id.to_string(), lease.lease_id.to_string()], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    status.and_then(|s| JobStatus::parse(&s)).filter(|s| s.is_leased()).ok_or(StoreError::LeaseLost)
}

pub fn heartbeat(ctx: &mut WriteCtx, lease: LeaseRef, update: Progress, ttl: Duration) -> StoreResult<()> {
    let current = held_status(ctx, lease)?;
    let status = if current.worker_may_move_to(update.status) { update.status } else { current };
    let now = ctx.now_us();
    ctx.conn
        .prepare_cached(
            "UPDATE jobs SET status = ?2, progress = MAX(0.0, MIN(1.0, ?3)), engine = COALESCE(?4, engine), \
             lease_expires_at = ?5, updated_at = ?6 WHERE id = ?1",
        )
        .map_err(sql_err)?
        .execute(params![
            lease.job_id.to_string(),
            status.as_str(),
            update.progress,
            update.engine,
            now + micros(ttl),
            now
        ])
        .map_err(sql_err)?;
    Ok(())
}

pub fn publish_preview(ctx: &mut WriteCtx, lease: LeaseRef, preview: JobResult) -> StoreResult<()> {
    held_status(ctx, lease)?;
    let now = ctx.now_us();
    let json = serde_json::to_string(&preview).map_err(|e| StoreError::Internal(e.to_string()))?;
    ctx.conn
        .execute(
            "UPDATE jobs SET status = 'intermediate-complete', result = ?2, updated_at = ?3 WHERE id = ?1",
            params![lease.job_id.to_string(), json, now],
        )
        .map_err(sql_err)?;
    Ok(())
}

fn account_of(ctx: &WriteCtx, job: Uuid) -> StoreResult<Uuid> {
    ctx.conn
        .query_row("SELECT account_id FROM jobs WHERE id = ?1", [job.to_string()], |r| r.get::<_, String>(0))
        .map(uuid)
        .map_err(sql_err)
}

pub fn complete(
    ctx: &mut WriteCtx,
    lease: LeaseRef,
    result: JobResult,
    signal: Arc<Notify>,
    hooks: Arc<Notify>,
) -> StoreResult<Job> {
    held_status(ctx, lease)?;
    let now = ctx.now_us();
    let result_json = serde_json::to_string(&result).map_err(|e| StoreError::Internal(e.to_string()))?;
    ctx.conn
        .execute(
            "UPDATE jobs SET status = 'completed', progress = 1.0, completed_at = ?2, updated_at = ?2, result = ?3, engine = ?4, \
             lease_id = NULL, lease_expires_at = NULL WHERE id = ?1",
            params![lease.job_id.to_string(), now, result_json, result.engine],
        )
        .map_err(sql_err)?;
    charge_hold(ctx, lease.job_id)?;
    super::webhooks::enqueue(ctx, lease.job_id, &hooks)?;
    let account = account_of(ctx, lease.job_id)?;
    count_transition(ctx, account, -1, 0)?;
    promote_backlog(ctx, account, &signal)?;
    must_load(ctx.conn, lease.job_id)
}

pub fn fail(
    ctx: &mut WriteCtx,
    lease: LeaseRef,
    code: FailureCode,
    message: String,
    signal: Arc<Notify>,
    hooks: Arc<Notify>,
) -> StoreResult<Job> {
    held_status(ctx, lease)?;
    fail_job(ctx, lease.job_id, code, &message, &signal, &hooks)?;
    must_load(ctx.conn, lease.job_id)
}

fn fail_job(
    ctx: &mut WriteCtx,
    job: Uuid,
    code: FailureCode,
    message: &str,
    signal: &Arc<Notify>,
    hooks: &Arc<Notify>,
) -> StoreResult<()> {
    let now = ctx.now_us();
    ctx.conn
        .execute(
            "UPDATE jobs SET status = 'failed', completed_at = ?2, updated_at = ?2, error_code = ?3, error_message = ?4, \
             lease_id = NULL, lease_expires_at = NULL WHERE id = ?1",
            params![job.to_string(), now, code.as_str(), message],
        )
        .map_err(sql_err)?;
    release_hold(ctx, job, code.as_str())?;
    super::webhooks::enqueue(ctx, job, hooks)?;
    // Only leased (slot-holding) jobs fail here.
    let account = account_of(ctx, job)?;
    count_transition(ctx, account, -1, 0)?;
    promote_backlog(ctx, account, signal)?;
    Ok(())
}

fn requeue(ctx: &mut WriteCtx, job: Uuid, refund_attempt: bool, signal: &Arc<Notify>) -> StoreResult<()> {
    let now = ctx.now_us();
    ctx.conn
        .execute(
            "UPDATE jobs SET status = 'queued', queued_at = ?2, updated_at = ?2, progress = 0, lease_id = NULL, \
             lease_expires_at = NULL, worker = NULL, attempts = attempts - ?3 WHERE id = ?1",
            params![job.to_string(), now, i64::from(refund_attempt)],
        )
        .map_err(sql_err)?;
    let signal = signal.clone();
    ctx.after_commit(move || signal.notify_waiters());
    Ok(())
}

pub fn hand_back(ctx: &mut WriteCtx, lease: LeaseRef, signal: Arc<Notify>) -> StoreResult<()> {
    held_status(ctx, lease)?;
    requeue(ctx, lease.job_id, true, &signal)
}

pub fn sweep(
    ctx: &mut WriteCtx,
    max_attempts: u32,
    max_run_time: Duration,
    signal: Arc<Notify>,
    hooks: Arc<Notify>,
) -> StoreResult<SweepReport> {
    let now = ctx.now_us();
    let mut report = SweepReport::default();
    let overrun: Vec<String> = ctx
        .conn
        .prepare_cached(
            "SELECT id FROM jobs WHERE status IN ('scheduled', 'processing', 'sampling', 'intermediate-complete') AND started_at < ?1",
        )
        .map_err(sql_err)?
        .query_map([now - micros(max_run_time)], |r| r.get(0))
        .map_err(sql_err)?
        .collect::<Result<_, _>>()
        .map_err(sql_err)?;
    for id in overrun {
        let id = uuid(id);
        let message = format!("The job ran longer than the maximum run time of {} s.", max_run_time.as_secs());
        fail_job(ctx, id, FailureCode::Timeout, &message, &signal, &hooks)?;
        report.failed.push(id);
    }
    let expired: Vec<(String, u32)> = ctx
        .conn
        .prepare_cached(
            "SELECT id, attempts FROM jobs WHERE status IN ('scheduled', 'processing', 'sampling', 'intermediate-complete') \
             AND lease_expires_at < ?1",
        )
        .map_err(sql_err)?
        .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql_err)?
        .collect::<Result<_, _>>()
        .map_err(sql_err)?;
    for (id, attempts) in expired {
        let id = uuid(id);
        if attempts >= max_attempts {
            let message = format!("The worker running this job stopped responding ({attempts} attempts).");
            fail_job(ctx, id, FailureCode::WorkerLost, &message, &signal, &hooks)?;
            report.failed.push(id);
        } else {
            requeue(ctx, id, false, &signal)?;
            report.requeued.push(id);
        }
    }
    Ok(report)
}
