//! The worker side: leasing, heartbeats, results and failures (fenced by lease id), and the
//! scheduler's sweep of expired leases and overrunning jobs.
use super::super::*;
use super::actor::WriteCtx;
use super::rows::{must_load, uuid};
use super::sql_err;
use super::transitions::{carry_out, end_job, refused, requeue, wake_workers, Wake};
use crate::domain::job::{FailureCode, JobStatus};
use crate::domain::lifecycle::{self, Event, LeaseCheck, Transition};
use crate::store::codec::LEASED_STATUSES;
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
/// `?4`: the `queued` status.
const PICK_PREFERRED: &str = "SELECT id FROM (SELECT id, style_key, queued_at, MIN(queued_at) OVER () AS oldest \
     FROM (SELECT id, style_key, queued_at FROM jobs WHERE status = ?4 ORDER BY queued_at LIMIT ?1)) \
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
            .query_row(params![PREFERENCE_WINDOW, sets, queued_after, JobStatus::Queued.as_str()], |r| r.get(0))
            .optional()
            .map_err(sql_err)?;
    }
    if next.is_none() {
        next = ctx
            .conn
            .prepare_cached("SELECT id FROM jobs WHERE status = ?1 ORDER BY queued_at LIMIT 1")
            .map_err(sql_err)?
            .query_row([JobStatus::Queued.as_str()], |r| r.get(0))
            .optional()
            .map_err(sql_err)?;
    }
    let Some(id) = next else { return Ok(None) };
    let t = lifecycle::apply(JobStatus::Queued, Event::Lease).map_err(refused)?;
    let now = ctx.now_us();
    let lease_id = Uuid::new_v4();
    ctx.conn
        .prepare_cached(
            "UPDATE jobs SET status = ?6, worker = ?2, lease_id = ?3, lease_expires_at = ?4, attempts = attempts + ?7, \
             started_at = COALESCE(started_at, ?5), updated_at = ?5, progress = 0 WHERE id = ?1",
        )
        .map_err(sql_err)?
        .execute(params![id, worker.name, lease_id.to_string(), now + micros(ttl), now, t.to.as_str(), t.attempts])
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
    let status = lifecycle::apply(current, Event::Progress(update.status)).map_err(refused)?.to;
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
    let t = lifecycle::apply(held_status(ctx, lease)?, Event::Preview).map_err(refused)?;
    let now = ctx.now_us();
    let json = serde_json::to_string(&preview).map_err(|e| StoreError::Internal(e.to_string()))?;
    ctx.conn
        .execute(
            "UPDATE jobs SET status = ?4, result = ?2, updated_at = ?3 WHERE id = ?1",
            params![lease.job_id.to_string(), json, now, t.to.as_str()],
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
    let t = lifecycle::apply(held_status(ctx, lease)?, Event::Complete).map_err(refused)?;
    let now = ctx.now_us();
    let result_json = serde_json::to_string(&result).map_err(|e| StoreError::Internal(e.to_string()))?;
    ctx.conn
        .execute(
            "UPDATE jobs SET status = ?5, progress = 1.0, completed_at = ?2, updated_at = ?2, result = ?3, engine = ?4, \
             lease_id = NULL, lease_expires_at = NULL WHERE id = ?1",
            params![lease.job_id.to_string(), now, result_json, result.engine, t.to.as_str()],
        )
        .map_err(sql_err)?;
    let account = account_of(ctx, lease.job_id)?;
    carry_out(ctx, lease.job_id, account, &t, &Wake { queue: signal, webhooks: hooks })?;
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
    let t = lifecycle::apply(held_status(ctx, lease)?, Event::Fail(code)).map_err(refused)?;
    end(ctx, lease.job_id, &t, &message, &Wake { queue: signal, webhooks: hooks })?;
    must_load(ctx.conn, lease.job_id)
}

/// A leased job ends without a result (failed by its worker or the sweep).
fn end(ctx: &mut WriteCtx, job: Uuid, t: &Transition, message: &str, wake: &Wake) -> StoreResult<()> {
    end_job(ctx, job, t, Some(message))?;
    let account = account_of(ctx, job)?;
    carry_out(ctx, job, account, t, wake)
}

pub fn hand_back(ctx: &mut WriteCtx, lease: LeaseRef, signal: Arc<Notify>) -> StoreResult<()> {
    let t = lifecycle::apply(held_status(ctx, lease)?, Event::HandBack).map_err(refused)?;
    requeue(ctx, lease.job_id, &t)?;
    wake_workers(ctx, &signal);
    Ok(())
}

pub fn sweep(
    ctx: &mut WriteCtx,
    max_attempts: u32,
    max_run_time: Duration,
    signal: Arc<Notify>,
    hooks: Arc<Notify>,
) -> StoreResult<SweepReport> {
    let wake = Wake { queue: signal, webhooks: hooks };
    let now = ctx.now_us();
    let mut report = SweepReport::default();
    let leased: Vec<(String, String, u32, bool, bool)> = ctx
        .conn
        .prepare_cached(&format!(
            "SELECT id, status, attempts, COALESCE(started_at < ?1, 0), COALESCE(lease_expires_at < ?2, 0) FROM jobs \
             WHERE status IN {LEASED_STATUSES} AND (started_at < ?1 OR lease_expires_at < ?2) ORDER BY queued_at"
        ))
        .map_err(sql_err)?
        .query_map([now - micros(max_run_time), now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .map_err(sql_err)?
        .collect::<Result<_, _>>()
        .map_err(sql_err)?;
    for (id, status, attempts, overran, expired) in leased {
        let id = uuid(id);
        let Some(event) = lifecycle::sweep_event(LeaseCheck { attempts, overran, expired }, max_attempts) else {
            continue;
        };
        let status =
            JobStatus::parse(&status).ok_or_else(|| StoreError::Internal(format!("unknown status {status}")))?;
        let t = lifecycle::apply(status, event).map_err(refused)?;
        if t.to.is_terminal() {
            end(ctx, id, &t, &lifecycle::sweep_failure_message(event, max_run_time), &wake)?;
            report.failed.push(id);
        } else {
            requeue(ctx, id, &t)?;
            wake_workers(ctx, &wake.queue);
            report.requeued.push(id);
        }
    }
    Ok(report)
}
