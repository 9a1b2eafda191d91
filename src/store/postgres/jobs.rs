//! Jobs as their owner sees them: submit (job + hold in one transaction), read, list, cancel,
//! and the billing and backlog steps every terminal transition shares.
use super::super::*;
use super::accounts;
use super::rows::{must_load, ranked_job_from_row, select_ranked_page, select_ranked_unplaced, to_time, to_us};
use super::transitions::{carry_out, end_job, refused};
use super::{notify, pg_err, QUEUE_CHANNEL, WEBHOOK_CHANNEL};
use crate::domain::job::JobStatus;
use crate::domain::lifecycle::{self, Event, MoneyMove, Refused, SlotChange};
use crate::domain::money::MicroUsd;
use crate::store::codec::status_sql;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

pub async fn submit(c: &mut PgConnection, new: NewJob) -> StoreResult<Result<Job, SubmitRefusal>> {
    // The account lock serialises this account's submits across replicas: limits, balance and
    // idempotency keys are checked against what every earlier submit left.
    let mut account = accounts::get(c, new.account_id, true).await?;
    submit_locked(c, &mut account, new).await
}

/// A submit for an account this transaction has already locked, whose row `account` holds; it
/// is kept equal to the row (hold and counters). The one-by-one path: a batch of submits makes
/// the same checks in memory (submit_plan.rs) and writes them in one statement (submit_rows.rs).
async fn submit_locked(
    c: &mut PgConnection,
    account: &mut Account,
    new: NewJob,
) -> StoreResult<Result<Job, SubmitRefusal>> {
    if let Some(idem) = &new.idempotency {
        if let Some(replay) = idempotent_replay(c, new.account_id, idem).await? {
            return Ok(replay);
        }
    }
    let status = match lifecycle::admit(&account.load(), new.price) {
        Ok(status) => status,
        Err(refusal) => return Ok(Err(refusal.into())),
    };
    let (money, slots) = lifecycle::admission_effects(status, new.price);
    let created_at = insert_job(c, &new, status, money, slots).await?;
    let backlogged_before = account.backlogged_jobs;
    account.held = MicroUsd(account.held.0 + money.held);
    account.active_jobs = account.active_jobs.saturating_add_signed(slots.active);
    account.backlogged_jobs = account.backlogged_jobs.saturating_add_signed(slots.backlogged);
    claim_idempotency_key(c, &new).await?;
    Ok(Ok(new.accepted(status, to_time(created_at), backlogged_before)))
}

/// The first job of an `Idempotency-Key` still inside its window: the same body gets it back,
/// another body is refused. `None`: the key is free.
async fn idempotent_replay(
    c: &mut PgConnection,
    account: Uuid,
    idem: &Idempotency,
) -> StoreResult<Option<Result<Job, SubmitRefusal>>> {
    let seen: Option<(String, Uuid, i64)> = sqlx::query_as(
        "SELECT fingerprint, job_id, ltx_now_us() - created_at FROM idempotency_keys WHERE account_id = $1 AND key = $2",
    )
    .bind(account)
    .bind(&idem.key)
    .fetch_optional(&mut *c)
    .await
    .map_err(pg_err)?;
    let Some((fingerprint, job_id, age_us)) = seen else { return Ok(None) };
    if age_us >= idem.window.as_micros() as i64 {
        return Ok(None);
    }
    if fingerprint != idem.fingerprint {
        return Ok(Some(Err(SubmitRefusal::IdempotencyConflict { job_id })));
    }
    Ok(Some(Ok(must_load(c, job_id).await?)))
}

/// Only an accepted submit claims its key: a refused one may be retried with it.
async fn claim_idempotency_key(c: &mut PgConnection, new: &NewJob) -> StoreResult<()> {
    let Some(idem) = &new.idempotency else { return Ok(()) };
    sqlx::query(
        "INSERT INTO idempotency_keys (account_id, key, fingerprint, job_id, created_at) \
         VALUES ($1, $2, $3, $4, ltx_now_us()) ON CONFLICT (account_id, key) DO UPDATE \
         SET fingerprint = EXCLUDED.fingerprint, job_id = EXCLUDED.job_id, created_at = EXCLUDED.created_at",
    )
    .bind(new.account_id)
    .bind(&idem.key)
    .bind(&idem.fingerprint)
    .bind(new.id)
    .execute(c)
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// The job row, what admission does to the account, the hold's ledger entry and the workers'
/// wake-up, in one statement while the account row is locked (each round trip held it longer).
/// `created_at` is strictly after the account's previous job, so it pages the account's jobs
/// without ties whatever the replicas' clocks say. Returns it.
async fn insert_job(
    c: &mut PgConnection,
    new: &NewJob,
    status: JobStatus,
    money: MoneyMove,
    slots: SlotChange,
) -> StoreResult<i64> {
    let queued = status == JobStatus::Queued;
    let request = serde_json::to_string(&new.request).map_err(|e| StoreError::Internal(e.to_string()))?;
    sqlx::query_scalar(
        "WITH t AS (SELECT GREATEST(ltx_now_us(), \
                      COALESCE((SELECT MAX(created_at) + 1 FROM jobs WHERE account_id = $2), 0)) AS now), \
         job AS (INSERT INTO jobs (id, account_id, kind, status, created_at, updated_at, queued_at, request, style_key, \
                   seed, width, height, price, price_tier, hold, webhook_url) \
                 SELECT $1, $2, $3, $4, t.now, t.now, CASE WHEN $5 THEN t.now END, $6, $7, $8, $9, $10, $11, $12, $11, $13 \
                 FROM t RETURNING created_at), \
         account AS (UPDATE accounts SET held = held + $17, balance = balance + $18, active_jobs = active_jobs + $14, \
                       backlogged_jobs = backlogged_jobs + $15 WHERE id = $2), \
         hold AS (INSERT INTO ledger (account_id, kind, amount, job_id, created_at) \
                  VALUES ($2, $19, $11, $1, ltx_now_us())) \
         SELECT job.created_at FROM job LEFT JOIN (SELECT pg_notify($16, '') WHERE $5) wake ON true",
    )
    .bind(new.id)
    .bind(new.account_id)
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
    .bind(slots.active)
    .bind(slots.backlogged)
    .bind(QUEUE_CHANNEL)
    .bind(money.held)
    .bind(money.balance)
    .bind(LedgerKind::Hold.as_str())
    .fetch_one(&mut *c)
    .await
    .map_err(pg_err)
}

/// The account's jobs, newest first. Each filter has its own statement, so that even a generic
/// plan walks an index from the cursor down and stops at the page, however many jobs the
/// account has: (account, created_at), (account, status, created_at), or with `kinds` one
/// (account, kind, created_at) walk per kind, merged (a kind filter over the account's index
/// would read every job of other kinds first). The status is a literal (one statement per
/// status): a generic plan then knows how rare it is, where a parameter's average selectivity
/// can make the planner filter the account's whole index for a status none of its jobs has.
/// A page of the account's jobs, each with its `queued_at`; queued jobs' places in line counted
/// only when `place_queued` (the job cache counts them otherwise).
pub async fn list(
    c: &mut PgConnection,
    account: Uuid,
    query: JobQuery,
    place_queued: bool,
) -> StoreResult<Vec<(Job, Option<i64>)>> {
    // $1 account, $2 before; with kinds asked, $3 the limit and $4 the kinds
    let status = query.status.map(|s| format!(" AND status = {}", status_sql(s))).unwrap_or_default();
    let mut kinds = query.kinds.clone();
    kinds.sort();
    kinds.dedup();
    let pick = if kinds.is_empty() {
        format!("j.account_id = $1 AND j.created_at < $2{status}")
    } else {
        let per_kind: Vec<String> = (1..=kinds.len())
            .map(|i| {
                format!(
                    "(SELECT id FROM jobs WHERE account_id = $1 AND kind = ($4::text[])[{i}] AND created_at < $2{status} \
                     ORDER BY created_at DESC LIMIT $3)"
                )
            })
            .collect();
        format!("j.id IN ({})", per_kind.join(" UNION ALL "))
    };
    let select = if place_queued { select_ranked_page() } else { select_ranked_unplaced() };
    // Without kinds the limit is written into the statement (a number the API bounded): with a
    // parameter for it, PostgreSQL costs the generic plan at a tenth of the account's jobs and so
    // planned every page afresh, for longer the more jobs the account has (0.08 ms a page at
    // a million, more than running it); with the number, the generic plan is as cheap and kept.
    let limit = if kinds.is_empty() { query.limit.to_string() } else { "$3".to_owned() };
    let sql = format!("{select} WHERE {pick} ORDER BY j.created_at DESC LIMIT {limit}");
    let mut select = sqlx::query(&sql).bind(account).bind(query.before.map(to_us).unwrap_or(i64::MAX));
    if !kinds.is_empty() {
        // Planned afresh with the kinds' values (an unnamed statement): the generic plan of a
        // kind parameter in a store where one kind is common filters the account's index instead.
        select = select.bind(i64::from(query.limit)).bind(&kinds).persistent(false);
    }
    let rows = select.fetch_all(&mut *c).await.map_err(pg_err)?;
    rows.iter().map(|row| Ok((ranked_job_from_row(row)?, row.try_get("queued_at").map_err(pg_err)?))).collect()
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
    let t = match lifecycle::apply(status, Event::Cancel) {
        Ok(t) => t,
        Err(Refused::Terminal(status)) => return Ok(Err(CancelRefusal::AlreadyTerminal(status))),
        Err(other) => return Err(refused(other)),
    };
    // Clearing the lease is what tells a running worker to stop: its next heartbeat is refused.
    end_job(c, id, &t, None).await?;
    carry_out(c, id, account, &t).await?;
    Ok(Ok(must_load(c, id).await?))
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
