//! The worker side: leasing (`FOR UPDATE SKIP LOCKED`: concurrent workers never wait for each
//! other or take the same job), heartbeats, results and failures fenced by lease id, and the
//! scheduler's sweep of expired leases and overrunning jobs.
use super::super::*;
use super::jobs::{count_transition, lock_job, owner, promote_backlog, settle_hold};
use super::rows::{job_from_row, must_load, JOB_COLUMNS};
use super::{accounts, notify, pg_err, QUEUE_CHANNEL};
use crate::domain::job::{FailureCode, JobStatus};
use sqlx::PgConnection;
use std::time::Duration;
use uuid::Uuid;

fn micros(d: Duration) -> i64 {
    d.as_micros().min(i64::MAX as u128) as i64
}

/// How far down the queue a worker looks for a job whose LoRA set it already has resident.
const PREFERENCE_WINDOW: i64 = 16;

/// Picks the oldest job near the head of the queue that the worker can start without a LoRA
/// switch ($4: its resident LoRA sets), while the oldest queued job has been queued for less
/// than $6 microseconds (no job waits longer than that for affinity). The outer
/// `status = 'queued'` is checked again once the row is locked (another leaser may have taken
/// it meanwhile).
const PICK_PREFERRED: &str = "SELECT id FROM jobs WHERE status = 'queued' AND id = ( \
    SELECT id FROM (SELECT id, style_key, queued_at, min(queued_at) OVER () AS oldest \
                    FROM (SELECT id, style_key, queued_at FROM jobs WHERE status = 'queued' \
                          ORDER BY queued_at LIMIT $5) queue_head) head \
    WHERE style_key = ANY($4) AND oldest > ltx_now_us() - $6 ORDER BY queued_at LIMIT 1) \
    FOR UPDATE SKIP LOCKED";
const PICK_OLDEST: &str =
    "SELECT id FROM jobs WHERE status = 'queued' ORDER BY queued_at LIMIT 1 FOR UPDATE SKIP LOCKED";

pub async fn lease(c: &mut PgConnection, worker: WorkerLease, ttl: Duration) -> StoreResult<Option<Lease>> {
    let prefer = !worker.resident_style_sets.is_empty() && !worker.affinity_max_wait.is_zero();
    let picks: &[&str] = if prefer { &[PICK_PREFERRED, PICK_OLDEST] } else { &[PICK_OLDEST] };
    for &pick in picks {
        let lease_id = Uuid::new_v4();
        // Pick, lock and lease in one statement: one round trip per lease.
        let sql = format!(
            "UPDATE jobs SET status = 'scheduled', worker = $1, lease_id = $2, lease_expires_at = ltx_now_us() + $3, \
             attempts = attempts + 1, started_at = COALESCE(started_at, ltx_now_us()), updated_at = ltx_now_us(), \
             progress = 0 WHERE id = ({pick}) RETURNING {JOB_COLUMNS}"
        );
        let mut query = sqlx::query(&sql).bind(&worker.name).bind(lease_id).bind(micros(ttl));
        if pick == PICK_PREFERRED {
            let max_wait = micros(worker.affinity_max_wait);
            query = query.bind(&worker.resident_style_sets).bind(PREFERENCE_WINDOW).bind(max_wait);
        }
        let row = query.fetch_optional(&mut *c).await.map_err(pg_err)?;
        if let Some(row) = row {
            // Leased: no place in line, no webhook yet.
            let job = job_from_row(&row)?;
            return Ok(Some(Lease { lease: LeaseRef { job_id: job.id, lease_id }, job }));
        }
    }
    Ok(None)
}

pub async fn lease_is_held(c: &mut PgConnection, lease: LeaseRef) -> StoreResult<bool> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1 AND lease_id = $2")
        .bind(lease.job_id)
        .bind(lease.lease_id)
        .fetch_optional(c)
        .await
        .map_err(pg_err)?;
    Ok(status.and_then(|s| JobStatus::parse(&s)).is_some_and(JobStatus::is_leased))
}

/// Locks the job and returns its status if `lease` still holds it, else `LeaseLost`.
async fn held_status(c: &mut PgConnection, lease: LeaseRef) -> StoreResult<JobStatus> {
    match lock_job(c, lease.job_id).await? {
        Some((_, status, Some(held))) if held == lease.lease_id && status.is_leased() => Ok(status),
        _ => Err(StoreError::LeaseLost),
    }
}

pub async fn heartbeat(c: &mut PgConnection, lease: LeaseRef, update: Progress, ttl: Duration) -> StoreResult<()> {
    let current = held_status(c, lease).await?;
    let status = if current.worker_may_move_to(update.status) { update.status } else { current };
    sqlx::query(
        "UPDATE jobs SET status = $2, progress = GREATEST(0.0, LEAST(1.0, $3)), engine = COALESCE($4, engine), \
         lease_expires_at = ltx_now_us() + $5, updated_at = ltx_now_us() WHERE id = $1",
    )
    .bind(lease.job_id)
    .bind(status.as_str())
    .bind(update.progress)
    .bind(update.engine)
    .bind(micros(ttl))
    .execute(c)
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub async fn publish_preview(c: &mut PgConnection, lease: LeaseRef, preview: JobResult) -> StoreResult<()> {
    held_status(c, lease).await?;
    let json = serde_json::to_string(&preview).map_err(|e| StoreError::Internal(e.to_string()))?;
    sqlx::query(
        "UPDATE jobs SET status = 'intermediate-complete', result = $2, updated_at = ltx_now_us() WHERE id = $1",
    )
    .bind(lease.job_id)
    .bind(json)
    .execute(c)
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// Takes the account lock, then checks the lease (the order every money-moving transaction uses).
async fn lock_for_outcome(c: &mut PgConnection, lease: LeaseRef) -> StoreResult<Uuid> {
    let account = owner(c, lease.job_id).await?.ok_or(StoreError::LeaseLost)?;
    accounts::get(c, account, true).await?;
    held_status(c, lease).await?;
    Ok(account)
}

pub async fn complete(c: &mut PgConnection, lease: LeaseRef, result: JobResult) -> StoreResult<Job> {
    let account = lock_for_outcome(c, lease).await?;
    let result_json = serde_json::to_string(&result).map_err(|e| StoreError::Internal(e.to_string()))?;
    sqlx::query(
        "UPDATE jobs SET status = 'completed', progress = 1.0, completed_at = ltx_now_us(), updated_at = ltx_now_us(), \
         result = $2, engine = $3, lease_id = NULL, lease_expires_at = NULL WHERE id = $1",
    )
    .bind(lease.job_id)
    .bind(result_json)
    .bind(&result.engine)
    .execute(&mut *c)
    .await
    .map_err(pg_err)?;
    settle_hold(c, lease.job_id, LedgerKind::Charge, "completed").await?;
    finish(c, lease.job_id, account).await?;
    must_load(c, lease.job_id).await
}

pub async fn fail(c: &mut PgConnection, lease: LeaseRef, code: FailureCode, message: String) -> StoreResult<Job> {
    let account = lock_for_outcome(c, lease).await?;
    fail_job(c, lease.job_id, account, code, &message).await?;
    must_load(c, lease.job_id).await
}

/// A leased job fails: no charge. The caller holds the account and job locks.
async fn fail_job(c: &mut PgConnection, job: Uuid, account: Uuid, code: FailureCode, message: &str) -> StoreResult<()> {
    sqlx::query(
        "UPDATE jobs SET status = 'failed', completed_at = ltx_now_us(), updated_at = ltx_now_us(), error_code = $2, \
         error_message = $3, lease_id = NULL, lease_expires_at = NULL WHERE id = $1",
    )
    .bind(job)
    .bind(code.as_str())
    .bind(message)
    .execute(&mut *c)
    .await
    .map_err(pg_err)?;
    settle_hold(c, job, LedgerKind::Release, code.as_str()).await?;
    finish(c, job, account).await
}

/// What every end of a leased job shares: its webhook, its slot freed, the backlog moved up.
async fn finish(c: &mut PgConnection, job: Uuid, account: Uuid) -> StoreResult<()> {
    super::webhooks::enqueue(c, job).await?;
    count_transition(c, account, -1, 0).await?;
    promote_backlog(c, account).await?;
    Ok(())
}

async fn requeue(c: &mut PgConnection, job: Uuid, refund_attempt: bool) -> StoreResult<()> {
    sqlx::query(
        "UPDATE jobs SET status = 'queued', queued_at = ltx_now_us(), updated_at = ltx_now_us(), progress = 0, \
         lease_id = NULL, lease_expires_at = NULL, worker = NULL, attempts = attempts - $2 WHERE id = $1",
    )
    .bind(job)
    .bind(i32::from(refund_attempt))
    .execute(&mut *c)
    .await
    .map_err(pg_err)?;
    notify(c, QUEUE_CHANNEL).await
}

pub async fn hand_back(c: &mut PgConnection, lease: LeaseRef) -> StoreResult<()> {
    held_status(c, lease).await?;
    requeue(c, lease.job_id, true).await
}

/// Leased jobs whose lease expired or that ran too long, with their accounts (read unlocked).
pub async fn sweep_candidates(c: &mut PgConnection, max_run_time: Duration) -> StoreResult<Vec<(Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT id, account_id FROM jobs WHERE status IN ('scheduled', 'processing', 'sampling', 'intermediate-complete') \
         AND (lease_expires_at < ltx_now_us() OR started_at < ltx_now_us() - $1)",
    )
    .bind(micros(max_run_time))
    .fetch_all(c)
    .await
    .map_err(pg_err)
}

pub enum Swept {
    Requeued,
    Failed,
}

/// Settles one sweep candidate, checking again under the locks.
pub async fn sweep_one(
    c: &mut PgConnection,
    job: Uuid,
    account: Uuid,
    max_attempts: u32,
    max_run_time: Duration,
) -> StoreResult<Option<Swept>> {
    accounts::get(c, account, true).await?;
    let row: Option<(String, i32, bool, bool)> = sqlx::query_as(
        "SELECT status, attempts, COALESCE(started_at < ltx_now_us() - $2, false), \
         COALESCE(lease_expires_at < ltx_now_us(), false) FROM jobs WHERE id = $1 FOR UPDATE",
    )
    .bind(job)
    .bind(micros(max_run_time))
    .fetch_optional(&mut *c)
    .await
    .map_err(pg_err)?;
    let Some((status, attempts, overran, expired)) = row else { return Ok(None) };
    if !JobStatus::parse(&status).is_some_and(JobStatus::is_leased) {
        return Ok(None);
    }
    if overran {
        let message = format!("The job ran longer than the maximum run time of {} s.", max_run_time.as_secs());
        fail_job(c, job, account, FailureCode::Timeout, &message).await?;
        return Ok(Some(Swept::Failed));
    }
    if !expired {
        return Ok(None);
    }
    if attempts as u32 >= max_attempts {
        let message = format!("The worker running this job stopped responding ({attempts} attempts).");
        fail_job(c, job, account, FailureCode::WorkerLost, &message).await?;
        Ok(Some(Swept::Failed))
    } else {
        requeue(c, job, false).await?;
        Ok(Some(Swept::Requeued))
    }
}
