//! Jobs as their owner sees them: submit (job + hold in one transaction), read, list, cancel,
//! and the billing and backlog steps every terminal transition shares.
use super::super::*;
use super::accounts::{self, record};
use super::rows::{must_load, ranked_job_from_row, select_ranked, to_time, to_us};
use super::{notify, pg_err, QUEUE_CHANNEL, WEBHOOK_CHANNEL};
use crate::domain::job::JobStatus;
use crate::domain::money::MicroUsd;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// Moves the account's counters when one of its jobs changes between slot-holding,
/// backlogged and terminal. The caller holds the account's lock.
pub async fn count_transition(c: &mut PgConnection, account: Uuid, active: i32, backlogged: i32) -> StoreResult<()> {
    sqlx::query(
        "UPDATE accounts SET active_jobs = active_jobs + $2, backlogged_jobs = backlogged_jobs + $3 WHERE id = $1",
    )
    .bind(account)
    .bind(active)
    .bind(backlogged)
    .execute(c)
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub async fn submit(c: &mut PgConnection, new: NewJob) -> StoreResult<Result<Job, SubmitRefusal>> {
    // The account lock serialises this account's submits across replicas: limits, balance and
    // idempotency keys are checked against what every earlier submit left.
    let mut account = accounts::get(c, new.account_id, true).await?;
    submit_locked(c, &mut account, new).await
}

/// A submit for an account this transaction has already locked, whose row `account` holds; it
/// is kept equal to the row (hold and counters), so a batch of one account's submits reads
/// the row once.
pub async fn submit_locked(
    c: &mut PgConnection,
    account: &mut Account,
    new: NewJob,
) -> StoreResult<Result<Job, SubmitRefusal>> {
    if let Some(idem) = &new.idempotency {
        let seen: Option<(String, Uuid, i64)> = sqlx::query_as(
            "SELECT fingerprint, job_id, ltx_now_us() - created_at FROM idempotency_keys WHERE account_id = $1 AND key = $2",
        )
        .bind(new.account_id)
        .bind(&idem.key)
        .fetch_optional(&mut *c)
        .await
        .map_err(pg_err)?;
        if let Some((fingerprint, job_id, age_us)) = seen {
            if age_us < idem.window.as_micros() as i64 {
                if fingerprint != idem.fingerprint {
                    return Ok(Err(SubmitRefusal::IdempotencyConflict { job_id }));
                }
                return Ok(Ok(must_load(c, job_id).await?));
            }
        }
    }
    if account.available() < new.price {
        return Ok(Err(SubmitRefusal::InsufficientBalance { price: new.price, available: account.available() }));
    }
    let (active, backlogged) = (account.active_jobs, account.backlogged_jobs);
    let status = if active < account.max_concurrent {
        JobStatus::Queued
    } else if backlogged < account.max_backlog {
        JobStatus::Backlogged
    } else {
        return Ok(Err(SubmitRefusal::BacklogFull {
            max_concurrent: account.max_concurrent,
            max_backlog: account.max_backlog,
        }));
    };
    let queued = status == JobStatus::Queued;
    let request = serde_json::to_string(&new.request).map_err(|e| StoreError::Internal(e.to_string()))?;
    // One statement while the account row is locked (each round trip held it longer): the job,
    // the hold on the account, its ledger entry and the wake-up for workers. `created_at` is
    // strictly after the account's previous job, so it pages the account's jobs without ties
    // whatever the replicas' clocks say.
    let created_at: i64 = sqlx::query_scalar(
        "WITH t AS (SELECT GREATEST(ltx_now_us(), \
                      COALESCE((SELECT MAX(created_at) + 1 FROM jobs WHERE account_id = $2), 0)) AS now), \
         job AS (INSERT INTO jobs (id, account_id, kind, status, created_at, updated_at, queued_at, request, style_key, \
                   seed, width, height, price, price_tier, hold, webhook_url) \
                 SELECT $1, $2, $3, $4, t.now, t.now, CASE WHEN $5 THEN t.now END, $6, $7, $8, $9, $10, $11, $12, $11, $13 \
                 FROM t RETURNING created_at), \
         account AS (UPDATE accounts SET held = held + $11, active_jobs = active_jobs + $14, \
                       backlogged_jobs = backlogged_jobs + $15 WHERE id = $2), \
         hold AS (INSERT INTO ledger (account_id, kind, amount, job_id, created_at) \
                  VALUES ($2, 'hold', $11, $1, ltx_now_us())) \
         SELECT job.created_at FROM job LEFT JOIN (SELECT pg_notify($16, '') WHERE $5) wake ON true",
    )
    .bind(new.id)
    .bind(account.id)
    .bind(&new.kind)
    .bind(status.as_str())
    .bind(queued)
    .bind(request)
    .bind(crate::store::codec::style_set_key(&new.request.styles))
    .bind(i64::from(new.seed))
    .bind(new.width as i32)
    .bind(new.height as i32)
    .bind(new.price.0)
    .bind(new.price_tier_seconds as i32)
    .bind(&new.webhook_url)
    .bind(i32::from(queued))
    .bind(i32::from(!queued))
    .bind(QUEUE_CHANNEL)
    .fetch_one(&mut *c)
    .await
    .map_err(pg_err)?;
    account.held = MicroUsd(account.held.0 + new.price.0);
    if queued {
        account.active_jobs += 1;
    } else {
        account.backlogged_jobs += 1;
    }
    if let Some(idem) = &new.idempotency {
        // Only an accepted submit claims its key: a refused one may be retried with it.
        sqlx::query(
            "INSERT INTO idempotency_keys (account_id, key, fingerprint, job_id, created_at) \
             VALUES ($1, $2, $3, $4, ltx_now_us()) ON CONFLICT (account_id, key) DO UPDATE \
             SET fingerprint = EXCLUDED.fingerprint, job_id = EXCLUDED.job_id, created_at = EXCLUDED.created_at",
        )
        .bind(new.account_id)
        .bind(&idem.key)
        .bind(&idem.fingerprint)
        .bind(new.id)
        .execute(&mut *c)
        .await
        .map_err(pg_err)?;
    }
    Ok(Ok(Job {
        id: new.id,
        account_id: account.id,
        kind: new.kind,
        status,
        created_at: to_time(created_at),
        started_at: None,
        completed_at: None,
        request: new.request,
        seed: new.seed,
        width: new.width,
        height: new.height,
        price: new.price,
        price_tier_seconds: new.price_tier_seconds,
        progress: 0.0,
        attempts: 0,
        engine: None,
        result: None,
        failure: None,
        webhook_url: new.webhook_url,
        queue_position: (!queued).then_some(u64::from(backlogged) + 1),
        webhook: None,
    }))
}

pub async fn list(c: &mut PgConnection, account: Uuid, query: JobQuery) -> StoreResult<Vec<Job>> {
    let rows = sqlx::query(&format!(
        "{} WHERE j.account_id = $1 AND j.created_at < $2 \
         AND ($3::text IS NULL OR j.status = $3) AND (cardinality($4::text[]) = 0 OR j.kind = ANY($4)) \
         ORDER BY j.created_at DESC LIMIT $5",
        select_ranked()
    ))
    .bind(account)
    .bind(query.before.map(to_us).unwrap_or(i64::MAX))
    .bind(query.status.map(|s| s.as_str()))
    .bind(&query.kinds)
    .bind(i64::from(query.limit))
    .fetch_all(&mut *c)
    .await
    .map_err(pg_err)?;
    rows.iter().map(ranked_job_from_row).collect()
}

/// The owner and status of a job, with the job row locked (the caller holds the account lock).
pub async fn lock_job(c: &mut PgConnection, id: Uuid) -> StoreResult<Option<(Uuid, JobStatus, Option<Uuid>)>> {
    let row = sqlx::query("SELECT account_id, status, lease_id FROM jobs WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(pg_err)?;
    row.map(|r| {
        let status: String = r.try_get("status").map_err(pg_err)?;
        Ok((
            r.try_get("account_id").map_err(pg_err)?,
            JobStatus::parse(&status).ok_or_else(|| StoreError::Internal(format!("unknown status {status}")))?,
            r.try_get("lease_id").map_err(pg_err)?,
        ))
    })
    .transpose()
}

/// The account a job belongs to (never changes, so it is read without a lock).
pub async fn owner(c: &mut PgConnection, id: Uuid) -> StoreResult<Option<Uuid>> {
    sqlx::query_scalar("SELECT account_id FROM jobs WHERE id = $1").bind(id).fetch_optional(c).await.map_err(pg_err)
}

pub async fn cancel(c: &mut PgConnection, account: Uuid, id: Uuid) -> StoreResult<Result<Job, CancelRefusal>> {
    if owner(c, id).await? != Some(account) {
        return Ok(Err(CancelRefusal::NotFound));
    }
    accounts::get(c, account, true).await?;
    let Some((_, status, _)) = lock_job(c, id).await? else {
        return Ok(Err(CancelRefusal::NotFound));
    };
    if status.is_terminal() {
        return Ok(Err(CancelRefusal::AlreadyTerminal(status)));
    }
    // Clearing the lease is what tells a running worker to stop: its next heartbeat is refused.
    sqlx::query(
        "UPDATE jobs SET status = 'cancelled', completed_at = ltx_now_us(), updated_at = ltx_now_us(), lease_id = NULL, \
         lease_expires_at = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *c)
    .await
    .map_err(pg_err)?;
    settle_hold(c, id, LedgerKind::Release, "cancelled").await?;
    super::webhooks::enqueue(c, id).await?;
    let was_backlogged = status == JobStatus::Backlogged;
    count_transition(c, account, -i32::from(!was_backlogged), -i32::from(was_backlogged)).await?;
    promote_backlog(c, account).await?;
    Ok(Ok(must_load(c, id).await?))
}

/// The job's hold becomes a charge (`Charge`) or goes back to the account (`Release`).
/// The caller holds the account lock.
pub async fn settle_hold(c: &mut PgConnection, job: Uuid, kind: LedgerKind, note: &str) -> StoreResult<()> {
    let (account, hold): (Uuid, i64) = sqlx::query_as("SELECT account_id, hold FROM jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&mut *c)
        .await
        .map_err(pg_err)?;
    if hold == 0 {
        return Ok(());
    }
    let balance_change = if kind == LedgerKind::Charge { hold } else { 0 };
    sqlx::query("UPDATE accounts SET held = held - $2, balance = balance - $3 WHERE id = $1")
        .bind(account)
        .bind(hold)
        .bind(balance_change)
        .execute(&mut *c)
        .await
        .map_err(pg_err)?;
    sqlx::query("UPDATE jobs SET hold = 0 WHERE id = $1").bind(job).execute(&mut *c).await.map_err(pg_err)?;
    record(c, account, kind, MicroUsd(hold), Some(job), Some(note.to_owned())).await
}

/// Moves the account's oldest backlogged jobs to `queued` while it has free slots. The caller
/// holds the account lock.
pub async fn promote_backlog(c: &mut PgConnection, account: Uuid) -> StoreResult<u32> {
    let promoted = sqlx::query(
        "UPDATE jobs SET status = 'queued', queued_at = ltx_now_us(), updated_at = ltx_now_us() WHERE id IN ( \
         SELECT id FROM jobs WHERE account_id = $1 AND status = 'backlogged' \
         ORDER BY created_at LIMIT (SELECT GREATEST(max_concurrent - active_jobs, 0) FROM accounts WHERE id = $1))",
    )
    .bind(account)
    .execute(&mut *c)
    .await
    .map_err(pg_err)?
    .rows_affected() as i32;
    if promoted > 0 {
        count_transition(c, account, promoted, -promoted).await?;
        notify(c, QUEUE_CHANNEL).await?;
    }
    Ok(promoted as u32)
}

pub async fn usable_styles(c: &mut PgConnection, account: Uuid, ids: Vec<String>) -> StoreResult<Vec<String>> {
    let usable: Vec<String> =
        sqlx::query_scalar("SELECT id FROM styles WHERE id = ANY($1) AND (public OR account_id = $2)")
            .bind(&ids)
            .bind(account)
            .fetch_all(c)
            .await
            .map_err(pg_err)?;
    // In the order asked.
    Ok(ids.into_iter().filter(|id| usable.contains(id)).collect())
}

pub async fn counts_by_status(c: &mut PgConnection) -> StoreResult<Vec<(JobStatus, u64)>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetch_all(c).await.map_err(pg_err)?;
    let mut counts: Vec<(JobStatus, u64)> = JobStatus::ALL.iter().map(|s| (*s, 0)).collect();
    for (status, n) in rows {
        if let Some(slot) = counts.iter_mut().find(|(s, _)| s.as_str() == status) {
            slot.1 = n as u64;
        }
    }
    Ok(counts)
}

/// Wakes webhook dispatchers on every replica once the transaction commits.
pub async fn notify_webhooks(c: &mut PgConnection) -> StoreResult<()> {
    notify(c, WEBHOOK_CHANNEL).await
}
