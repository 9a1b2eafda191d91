//! The worker side: leasing (`FOR UPDATE SKIP LOCKED`: concurrent workers never wait for each
//! other or take the same job), heartbeats, results and failures fenced by lease id, and the
//! scheduler's sweep of expired leases and overrunning jobs.
use super::super::*;
use super::jobs::{lock_job, owner};
use super::rows::{job_from_row, must_load, JOB_COLUMNS};
use super::transitions::{carry_out, end_job, refused, requeue};
use super::{accounts, pg_err};
use crate::domain::job::{FailureCode, JobStatus};
use crate::domain::lifecycle::{self, Event, LeaseCheck};
use crate::store::codec::{status_sql, LEASED_STATUSES};
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
/// (`QUEUED` is the queued status's literal: the statement must name it for the partial index
/// `jobs_queue` to apply.)
const PICK_PREFERRED: &str = "SELECT id FROM jobs WHERE status = QUEUED AND id = ( \
    SELECT id FROM (SELECT id, style_key, queued_at, min(queued_at) OVER () AS oldest \
                    FROM (SELECT id, style_key, queued_at FROM jobs WHERE status = QUEUED \
                          ORDER BY queued_at LIMIT $5) queue_head) head \
    WHERE style_key = ANY($4) AND oldest > ltx_now_us() - $6 ORDER BY queued_at LIMIT 1) \
    FOR UPDATE SKIP LOCKED";
const PICK_OLDEST: &str = "SELECT id FROM jobs WHERE status = QUEUED ORDER BY queued_at LIMIT 1 FOR UPDATE SKIP LOCKED";

pub async fn lease(c: &mut PgConnection, worker: WorkerLease, ttl: Duration) -> StoreResult<Option<Lease>> {
    let prefer = !worker.resident_style_sets.is_empty() && !worker.affinity_max_wait.is_zero();
    let picks: &[&str] = if prefer { &[PICK_PREFERRED, PICK_OLDEST] } else { &[PICK_OLDEST] };
    let t = lifecycle::apply(JobStatus::Queued, Event::Lease).map_err(refused)?;
    for &pick in picks {
        let lease_id = Uuid::new_v4();
        // Pick, lock and lease in one statement: one round trip per lease.
        let pick = pick.replace("QUEUED", &status_sql(JobStatus::Queued));
        let sql = format!(
            "UPDATE jobs SET status = {to}, worker = $1, lease_id = $2, lease_expires_at = ltx_now_us() + $3, \
             attempts = attempts + {attempts}, started_at = COALESCE(started_at, ltx_now_us()), updated_at = ltx_now_us(), \
             progress = 0 WHERE id = ({pick}) RETURNING {JOB_COLUMNS}",
            to = status_sql(t.to),
            attempts = t.attempts,
        );
        let preferred = pick.contains("ANY($4)");
        let mut query = sqlx::query(&sql).bind(&worker.name).bind(lease_id).bind(micros(ttl));
        if preferred {
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
    let status = lifecycle::apply(current, Event::Progress(update.status)).map_err(refused)?.to;
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
    let t = lifecycle::apply(held_status(c, lease).await?, Event::Preview).map_err(refused)?;
    let json = serde_json::to_string(&preview).map_err(|e| StoreError::Internal(e.to_string()))?;
    sqlx::query("UPDATE jobs SET status = $3, result = $2, updated_at = ltx_now_us() WHERE id = $1")
        .bind(lease.job_id)
        .bind(json)
        .bind(t.to.as_str())
        .execute(c)
        .await
        .map_err(pg_err)?;
    Ok(())
}

/// Takes the account lock, then checks the lease (the order every money-moving transaction
/// uses); returns the account and the job's status.
async fn lock_for_outcome(c: &mut PgConnection, lease: LeaseRef) -> StoreResult<(Uuid, JobStatus)> {
    let account = owner(c, lease.job_id).await?.ok_or(StoreError::LeaseLost)?;
    accounts::get(c, account, true).await?;
    Ok((account, held_status(c, lease).await?))
}

pub async fn complete(c: &mut PgConnection, lease: LeaseRef, result: JobResult) -> StoreResult<Job> {
    let (account, status) = lock_for_outcome(c, lease).await?;
    let t = lifecycle::apply(status, Event::Complete).map_err(refused)?;
    let result_json = serde_json::to_string(&result).map_err(|e| StoreError::Internal(e.to_string()))?;
    sqlx::query(
        "UPDATE jobs SET status = $4, progress = 1.0, completed_at = ltx_now_us(), updated_at = ltx_now_us(), \
         result = $2, engine = $3, lease_id = NULL, lease_expires_at = NULL WHERE id = $1",
    )
    .bind(lease.job_id)
    .bind(result_json)
    .bind(&result.engine)
    .bind(t.to.as_str())
    .execute(&mut *c)
    .await
    .map_err(pg_err)?;
    carry_out(c, lease.job_id, account, &t).await?;
    must_load(c, lease.job_id).await
}

pub async fn fail(c: &mut PgConnection, lease: LeaseRef, code: FailureCode, message: String) -> StoreResult<Job> {
    let (account, status) = lock_for_outcome(c, lease).await?;
    let t = lifecycle::apply(status, Event::Fail(code)).map_err(refused)?;
    end_job(c, lease.job_id, &t, Some(&message)).await?;
    carry_out(c, lease.job_id, account, &t).await?;
    must_load(c, lease.job_id).await
}

pub async fn hand_back(c: &mut PgConnection, lease: LeaseRef) -> StoreResult<()> {
    let t = lifecycle::apply(held_status(c, lease).await?, Event::HandBack).map_err(refused)?;
    requeue(c, lease.job_id, &t).await
}

/// Leased jobs whose lease expired or that ran too long, with their accounts (read unlocked).
pub async fn sweep_candidates(c: &mut PgConnection, max_run_time: Duration) -> StoreResult<Vec<(Uuid, Uuid)>> {
    sqlx::query_as(&format!(
        "SELECT id, account_id FROM jobs WHERE status IN {LEASED_STATUSES} \
         AND (lease_expires_at < ltx_now_us() OR started_at < ltx_now_us() - $1)"
    ))
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
    let Some(status) = JobStatus::parse(&status).filter(|s| s.is_leased()) else { return Ok(None) };
    let check = LeaseCheck { attempts: attempts.max(0) as u32, overran, expired };
    let Some(event) = lifecycle::sweep_event(check, max_attempts) else { return Ok(None) };
    let t = lifecycle::apply(status, event).map_err(refused)?;
    if t.to.is_terminal() {
        end_job(c, job, &t, Some(&lifecycle::sweep_failure_message(event, max_run_time))).await?;
        carry_out(c, job, account, &t).await?;
        Ok(Some(Swept::Failed))
    } else {
        requeue(c, job, &t).await?;
        Ok(Some(Swept::Requeued))
    }
}
