//! Row ↔ value mapping shared by the query files.
use super::super::*;
use super::pg_err;
use crate::domain::job::{FailureCode, JobStatus};
use crate::domain::money::MicroUsd;
use crate::store::codec::status_sql;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

pub use crate::store::codec::{to_time, to_us};

pub const JOB_COLUMNS: &str =
    "id, account_id, kind, status, created_at, started_at, completed_at, request, seed, width, height, \
     price, price_tier, progress, attempts, engine, result, error_code, error_message, webhook_url, \
     results_expired_at";

fn bad_column(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("unreadable job row: {e}"))
}

pub fn job_from_row(row: &PgRow) -> StoreResult<Job> {
    let get_err = |e: sqlx::Error| bad_column(e);
    let status: String = row.try_get("status").map_err(get_err)?;
    let request: String = row.try_get("request").map_err(get_err)?;
    let result: Option<String> = row.try_get("result").map_err(get_err)?;
    let error_code: Option<String> = row.try_get("error_code").map_err(get_err)?;
    let opt_time = |name: &str| -> StoreResult<Option<OffsetDateTime>> {
        Ok(row.try_get::<Option<i64>, _>(name).map_err(get_err)?.map(to_time))
    };
    Ok(Job {
        id: row.try_get("id").map_err(get_err)?,
        account_id: row.try_get("account_id").map_err(get_err)?,
        kind: row.try_get("kind").map_err(get_err)?,
        status: JobStatus::parse(&status).ok_or_else(|| bad_column(format!("unknown status {status}")))?,
        created_at: to_time(row.try_get("created_at").map_err(get_err)?),
        started_at: opt_time("started_at")?,
        completed_at: opt_time("completed_at")?,
        request: serde_json::from_str(&request).map_err(bad_column)?,
        seed: row.try_get::<i64, _>("seed").map_err(get_err)? as u32,
        width: row.try_get::<i32, _>("width").map_err(get_err)? as u32,
        height: row.try_get::<i32, _>("height").map_err(get_err)? as u32,
        price: MicroUsd(row.try_get("price").map_err(get_err)?),
        price_tier_seconds: row.try_get::<i32, _>("price_tier").map_err(get_err)? as u32,
        progress: row.try_get("progress").map_err(get_err)?,
        attempts: row.try_get::<i32, _>("attempts").map_err(get_err)? as u32,
        engine: row.try_get("engine").map_err(get_err)?,
        result: result.map(|r| serde_json::from_str(&r)).transpose().map_err(bad_column)?,
        failure: match error_code {
            Some(code) => Some(JobFailure {
                code: FailureCode::parse(&code).unwrap_or(FailureCode::InternalError),
                message: row.try_get::<Option<String>, _>("error_message").map_err(get_err)?.unwrap_or_default(),
            }),
            None => None,
        },
        webhook_url: row.try_get("webhook_url").map_err(get_err)?,
        queue_position: None,
        webhook: None,
        results_expired_at: opt_time("results_expired_at")?,
    })
}

/// The number of jobs ahead of row `j` (capped), computed in the same statement that reads the
/// job, so reading a job is one round trip: the global FIFO while queued, the account's FIFO
/// while backlogged. `$CAP` is replaced by the cap, `QUEUED` and `BACKLOGGED` by those statuses'
/// literals (a literal, so the partial index on queued jobs applies).
const AHEAD: &str = "CASE j.status \
    WHEN QUEUED THEN (SELECT COUNT(*) FROM (SELECT 1 FROM jobs q WHERE q.status = QUEUED \
        AND q.queued_at < j.queued_at LIMIT $CAP) ahead_q) \
    WHEN BACKLOGGED THEN (SELECT COUNT(*) FROM (SELECT 1 FROM jobs b WHERE b.account_id = j.account_id \
        AND b.status = BACKLOGGED AND b.created_at < j.created_at LIMIT $CAP) ahead_b) \
    END AS ahead";

/// `SELECT <job columns>, <ahead> FROM jobs j` — add the WHERE clause.
pub fn select_ranked() -> String {
    static SELECT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let ahead = AHEAD
            .replace("$CAP", &crate::store::codec::QUEUE_POSITION_CAP.to_string())
            .replace("BACKLOGGED", &status_sql(JobStatus::Backlogged))
            .replace("QUEUED", &status_sql(JobStatus::Queued));
        format!("SELECT {JOB_COLUMNS}, j.queued_at, {ahead} FROM jobs j")
    });
    SELECT.clone()
}

/// `select_ranked()` for a page of jobs: the queued times of the queue's head (its first
/// `QUEUE_POSITION_CAP` entries of `jobs_queue`) are read once, when a first queued row needs
/// them, and each queued row finds its place among them by binary search (`width_bucket` counts
/// the sorted bounds ≤ its argument), instead of a walk of the index per row: a page listed from
/// the end of a long queue walked the whole capped head once per job.
pub fn select_ranked_page() -> String {
    static SELECT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let head = format!(
            "WITH head AS MATERIALIZED (SELECT array_agg(queued_at ORDER BY queued_at) AS at FROM ({}) h)",
            *SELECT_QUEUE_HEAD
        );
        // (`queued_at - 1`: the bounds before it, as the walk's `<` counts them; the head's times
        // are whole microseconds)
        let search = "(SELECT width_bucket(j.queued_at - 1, head.at) FROM head)";
        format!("{head} {}", select_ranked_with_queued_count(search))
    });
    SELECT.clone()
}

/// `select_ranked()` without the places of queued jobs (`ahead` is NULL for them): the caller
/// counts them from `queued_at` against the job cache's copy of the queue's head.
pub fn select_ranked_unplaced() -> String {
    static SELECT: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| select_ranked_with_queued_count("NULL::bigint"));
    SELECT.clone()
}

/// `select_ranked()` with its count of the queued jobs ahead replaced by `count`.
fn select_ranked_with_queued_count(count: &str) -> String {
    let (queued, cap) = (status_sql(JobStatus::Queued), crate::store::codec::QUEUE_POSITION_CAP);
    let walk = format!(
        "(SELECT COUNT(*) FROM (SELECT 1 FROM jobs q WHERE q.status = {queued} \
         AND q.queued_at < j.queued_at LIMIT {cap}) ahead_q)"
    );
    let per_row = select_ranked();
    assert!(per_row.contains(&walk), "select_ranked() no longer has the queued count to replace");
    per_row.replacen(&walk, count, 1)
}

/// A row of `select_ranked()` with its place in line filled in.
pub fn ranked_job_from_row(row: &PgRow) -> StoreResult<Job> {
    let mut job = job_from_row(row)?;
    let ahead: Option<i64> = row.try_get("ahead").map_err(bad_column)?;
    job.queue_position = ahead.map(|n| n as u64 + 1);
    Ok(job)
}

/// Loads a job by id (any account) with its place in line and webhook state filled in.
pub async fn load_job(c: &mut PgConnection, id: Uuid) -> StoreResult<Option<Job>> {
    Ok(load_job_in_line(c, id).await?.map(|(job, _)| job))
}

/// `load_job`, with the job's `queued_at` (µs; `None` when it never was queued): what its place in
/// line is counted from.
pub async fn load_job_in_line(c: &mut PgConnection, id: Uuid) -> StoreResult<Option<(Job, Option<i64>)>> {
    let row = sqlx::query(&format!("{} WHERE j.id = $1", select_ranked()))
        .bind(id)
        .fetch_optional(&mut *c)
        .await
        .map_err(pg_err)?;
    let Some(row) = row else { return Ok(None) };
    let mut job = ranked_job_from_row(&row)?;
    let queued_at: Option<i64> = row.try_get("queued_at").map_err(bad_column)?;
    if job.webhook_url.is_some() && job.status.is_terminal() {
        job.webhook = super::webhooks::state_of(c, job.id).await?;
    }
    Ok(Some((job, queued_at)))
}

/// The queued times of the queue's head, in order: its first `QUEUE_POSITION_CAP` entries, what
/// a queued job's place is counted against (the walk in `select_ranked`).
static SELECT_QUEUE_HEAD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT queued_at FROM jobs WHERE status = {} ORDER BY queued_at LIMIT {}",
        status_sql(JobStatus::Queued),
        crate::store::codec::QUEUE_POSITION_CAP
    )
});

/// The queue's first `queue_head::HEAD_LEN` jobs as (queued time, id), in that order (ids break
/// ties, so that the head is exactly a prefix of the queue, which moves announced later patch).
pub async fn queue_head(c: &mut PgConnection) -> StoreResult<Vec<(i64, Uuid)>> {
    static SELECT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT queued_at, id FROM jobs WHERE status = {} ORDER BY queued_at, id LIMIT {}",
            status_sql(JobStatus::Queued),
            super::queue_head::HEAD_LEN
        )
    });
    sqlx::query_as(&SELECT).fetch_all(c).await.map_err(pg_err)
}

/// Loads the jobs of these (account, id) pairs in one query, each as `load_job` would.
pub async fn load_watched(c: &mut PgConnection, keys: &[(Uuid, Uuid)]) -> StoreResult<Vec<Job>> {
    let ids: Vec<Uuid> = keys.iter().map(|k| k.1).collect();
    let wanted: std::collections::HashSet<&(Uuid, Uuid)> = keys.iter().collect();
    let rows = sqlx::query(&format!("{} WHERE j.id = ANY($1)", select_ranked()))
        .bind(&ids)
        .fetch_all(&mut *c)
        .await
        .map_err(pg_err)?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in rows {
        let mut job = ranked_job_from_row(&row)?;
        if !wanted.contains(&(job.account_id, job.id)) {
            continue;
        }
        if job.webhook_url.is_some() && job.status.is_terminal() {
            job.webhook = super::webhooks::state_of(c, job.id).await?;
        }
        jobs.push(job);
    }
    Ok(jobs)
}

pub async fn must_load(c: &mut PgConnection, id: Uuid) -> StoreResult<Job> {
    load_job(c, id).await?.ok_or(StoreError::NotFound)
}
