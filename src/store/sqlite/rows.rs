//! Row ↔ value mapping shared by the query files.
use super::super::*;
use super::job_cache::JobCache;
use super::sql_err;
use crate::domain::job::{FailureCode, JobStatus};
use crate::domain::money::MicroUsd;
use rusqlite::{Connection, OptionalExtension, Row};
use std::sync::Arc;
use uuid::Uuid;

pub use crate::store::codec::{to_time, to_us, QUEUE_POSITION_CAP};

pub fn uuid(text: String) -> Uuid {
    Uuid::parse_str(&text).unwrap_or_default()
}

pub const JOB_COLUMNS: &str =
    "id, account_id, kind, status, created_at, started_at, completed_at, request, seed, width, height, \
     price, price_tier, progress, attempts, engine, result, error_code, error_message, webhook_url, queued_at, \
     results_expired_at";
/// The index of `queued_at` in `JOB_COLUMNS`.
pub const QUEUED_AT: usize = 20;

fn bad_column(e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(e.to_string().into())
}

pub fn job_from_row(row: &Row) -> rusqlite::Result<Job> {
    let status: String = row.get(3)?;
    let request: String = row.get(7)?;
    let result: Option<String> = row.get(16)?;
    let error_code: Option<String> = row.get(17)?;
    Ok(Job {
        id: uuid(row.get(0)?),
        account_id: uuid(row.get(1)?),
        kind: row.get(2)?,
        status: JobStatus::parse(&status).ok_or_else(|| bad_column(format!("unknown status {status}")))?,
        created_at: to_time(row.get(4)?),
        started_at: row.get::<_, Option<i64>>(5)?.map(to_time),
        completed_at: row.get::<_, Option<i64>>(6)?.map(to_time),
        request: serde_json::from_str(&request).map_err(bad_column)?,
        seed: row.get(8)?,
        width: row.get(9)?,
        height: row.get(10)?,
        price: MicroUsd(row.get(11)?),
        price_tier_seconds: row.get(12)?,
        progress: row.get(13)?,
        attempts: row.get(14)?,
        engine: row.get(15)?,
        result: result.map(|r| serde_json::from_str(&r)).transpose().map_err(bad_column)?,
        failure: match error_code {
            Some(code) => Some(JobFailure {
                code: FailureCode::parse(&code).unwrap_or(FailureCode::InternalError),
                message: row.get::<_, Option<String>>(18)?.unwrap_or_default(),
            }),
            None => None,
        },
        webhook_url: row.get(19)?,
        queue_position: None,
        webhook: None,
        results_expired_at: row.get::<_, Option<i64>>(21)?.map(to_time),
    })
}

/// Loads a job by id (any account) with its place in line filled in.
pub fn load_job(conn: &Connection, id: Uuid) -> StoreResult<Option<Job>> {
    match load_unranked(conn, id)? {
        Some(mut job) => {
            job.queue_position = queue_position(conn, &job)?;
            if job.webhook_url.is_some() && job.status.is_terminal() {
                job.webhook = super::webhooks::state_of(conn, job.id)?;
            }
            Ok(Some(job))
        }
        None => Ok(None),
    }
}

fn load_unranked(conn: &Connection, id: Uuid) -> StoreResult<Option<Job>> {
    conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))
        .map_err(sql_err)?
        .query_row([id.to_string()], job_from_row)
        .optional()
        .map_err(sql_err)
}

pub fn queue_position(conn: &Connection, job: &Job) -> StoreResult<Option<u64>> {
    let ahead: i64 = match job.status {
        JobStatus::Queued => conn
            .prepare_cached(
                "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE status = ?3 \
                 AND queued_at < (SELECT queued_at FROM jobs WHERE id = ?1) LIMIT ?2)",
            )
            .map_err(sql_err)?
            .query_row(rusqlite::params![job.id.to_string(), QUEUE_POSITION_CAP, job.status.as_str()], |r| r.get(0))
            .map_err(sql_err)?,
        JobStatus::Backlogged => conn
            .prepare_cached(
                "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE account_id = ?1 AND status = ?4 \
                 AND created_at < ?2 LIMIT ?3)",
            )
            .map_err(sql_err)?
            .query_row(
                rusqlite::params![
                    job.account_id.to_string(),
                    to_us(job.created_at),
                    QUEUE_POSITION_CAP,
                    job.status.as_str()
                ],
                |r| r.get(0),
            )
            .map_err(sql_err)?,
        _ => return Ok(None),
    };
    Ok(Some(ahead as u64 + 1))
}

/// `queue_position` of each of a page of jobs (`queued_at`: each one's column), counted against
/// the queue's head (`queue_head`), where a walk per job would read up to `QUEUE_POSITION_CAP`
/// index entries each for every job of a page listed from the end of a long queue. The head is
/// read at most once per page, and not at all while the job cache holds a current one; one read
/// here is kept as of `generation`, taken before the page's read was sent to the reader (as
/// `shared_job` does), so it cannot be tagged newer than what it saw.
pub fn queue_positions(
    conn: &Connection,
    jobs: &mut [Job],
    queued_at: &[Option<i64>],
    cache: &JobCache,
    generation: u64,
) -> StoreResult<()> {
    let mut head: Option<Arc<[i64]>> = None;
    for (job, queued_at) in jobs.iter_mut().zip(queued_at) {
        job.queue_position = match (job.status, queued_at) {
            (JobStatus::Queued, Some(at)) => {
                let head = match &head {
                    Some(head) => head,
                    None => head.insert(match cache.queue_head() {
                        Some(cached) => cached,
                        None => {
                            let read = queue_head(conn)?;
                            cache.put_queue_head(read.clone(), generation);
                            read
                        }
                    }),
                };
                // The jobs queued before this one, as `queue_position` counts them (capped).
                let ahead = head.partition_point(|t| t < at);
                Some(ahead as u64 + 1)
            }
            _ => queue_position(conn, job)?,
        };
    }
    Ok(())
}

/// The queued times of the queue's first `QUEUE_POSITION_CAP` jobs, in order: `jobs_queue`
/// alone (a covering index scan).
fn queue_head(conn: &Connection) -> StoreResult<Arc<[i64]>> {
    let mut stmt = conn
        .prepare_cached("SELECT queued_at FROM jobs WHERE status = ?1 ORDER BY queued_at LIMIT ?2")
        .map_err(sql_err)?;
    let times = stmt
        .query_map(rusqlite::params![JobStatus::Queued.as_str(), QUEUE_POSITION_CAP], |r| r.get(0))
        .map_err(sql_err)?;
    times.collect::<Result<_, _>>().map_err(sql_err)
}

pub fn must_load(conn: &Connection, id: Uuid) -> StoreResult<Job> {
    load_job(conn, id)?.ok_or(StoreError::NotFound)
}
