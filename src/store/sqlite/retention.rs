//! Retention on SQLite: one writer, so a claim is a read and an update in its transaction.
use super::super::*;
use super::actor::WriteCtx;
use super::library::{asset_from_row, ASSET_COLUMNS};
use super::rows::{to_time, to_us, uuid};
use super::{sql_err, SqliteStore};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use std::time::Duration;
use time::OffsetDateTime;

fn claim_us(claim_for: Duration) -> i64 {
    i64::try_from(claim_for.as_micros()).unwrap_or(i64::MAX)
}

pub fn claim_expiring_results(
    ctx: &mut WriteCtx,
    finished_before: OffsetDateTime,
    limit: u32,
    claim_for: Duration,
) -> StoreResult<Vec<ExpiringResult>> {
    let now = ctx.now_us();
    // The predicate repeats the partial index's (jobs_results_due), so the oldest are read from it.
    let due: Vec<(String, String, String)> = ctx
        .conn
        .prepare_cached(
            "SELECT id, account_id, result FROM jobs WHERE result IS NOT NULL AND results_expired_at IS NULL \
             AND completed_at < ?1 AND (results_claimed_until IS NULL OR results_claimed_until <= ?2) \
             ORDER BY completed_at LIMIT ?3",
        )
        .map_err(sql_err)?
        .query_map(params![to_us(finished_before), now, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(sql_err)?
        .collect::<Result<_, _>>()
        .map_err(sql_err)?;
    let mut claimed = Vec::with_capacity(due.len());
    for (id, account_id, result) in due {
        ctx.conn
            .prepare_cached("UPDATE jobs SET results_claimed_until = ?2 WHERE id = ?1")
            .map_err(sql_err)?
            .execute(params![id, now.saturating_add(claim_us(claim_for))])
            .map_err(sql_err)?;
        let result: JobResult = serde_json::from_str(&result)
            .map_err(|e| StoreError::Internal(format!("unreadable result of job {id}: {e}")))?;
        claimed.push(ExpiringResult {
            job_id: uuid(id),
            account_id: uuid(account_id),
            video_key: result.video_key,
            poster_key: result.poster_key,
        });
    }
    Ok(claimed)
}

pub fn mark_result_expired(ctx: &mut WriteCtx, result: ExpiringResult) -> StoreResult<bool> {
    let now = ctx.now_us();
    let marked = ctx
        .conn
        .prepare_cached(
            "UPDATE jobs SET results_expired_at = ?2, results_claimed_until = NULL \
             WHERE id = ?1 AND result IS NOT NULL AND results_expired_at IS NULL",
        )
        .map_err(sql_err)?
        .execute(params![result.job_id.to_string(), now])
        .map_err(sql_err)?;
    if marked == 0 {
        return Ok(false);
    }
    ctx.conn
        .prepare_cached("INSERT OR IGNORE INTO expired_results (result_dir, job_id, expired_at) VALUES (?1, ?2, ?3)")
        .map_err(sql_err)?
        .execute(params![result.dir(), result.job_id.to_string(), now])
        .map_err(sql_err)?;
    Ok(true)
}

pub fn result_expired_at(conn: &Connection, dir: String) -> StoreResult<Option<OffsetDateTime>> {
    conn.prepare_cached("SELECT expired_at FROM expired_results WHERE result_dir = ?1")
        .map_err(sql_err)?
        .query_row([dir], |r| r.get::<_, i64>(0))
        .optional()
        .map_err(sql_err)
        .map(|at| at.map(to_time))
}

pub fn claim_expiring_assets(
    ctx: &mut WriteCtx,
    uploaded_before: OffsetDateTime,
    limit: u32,
    claim_for: Duration,
) -> StoreResult<Vec<Asset>> {
    let now = ctx.now_us();
    let due: Vec<Asset> = ctx
        .conn
        .prepare_cached(&format!(
            "SELECT {ASSET_COLUMNS} FROM assets WHERE uploaded_at < ?1 \
             AND (retention_claimed_until IS NULL OR retention_claimed_until <= ?2) ORDER BY uploaded_at LIMIT ?3"
        ))
        .map_err(sql_err)?
        .query_map(params![to_us(uploaded_before), now, limit], asset_from_row)
        .map_err(sql_err)?
        .collect::<Result<_, _>>()
        .map_err(sql_err)?;
    for asset in &due {
        ctx.conn
            .prepare_cached("UPDATE assets SET retention_claimed_until = ?2 WHERE id = ?1")
            .map_err(sql_err)?
            .execute(params![asset.id.to_string(), now.saturating_add(claim_us(claim_for))])
            .map_err(sql_err)?;
    }
    Ok(due)
}

#[async_trait]
impl Retention for SqliteStore {
    async fn claim_expiring_results(
        &self,
        finished_before: OffsetDateTime,
        limit: u32,
        claim_for: Duration,
    ) -> StoreResult<Vec<ExpiringResult>> {
        self.actors.write(move |ctx| claim_expiring_results(ctx, finished_before, limit, claim_for)).await
    }
    async fn mark_result_expired(&self, result: ExpiringResult) -> StoreResult<bool> {
        self.actors.write(move |ctx| mark_result_expired(ctx, result)).await
    }
    async fn result_expired_at(&self, dir: String) -> StoreResult<Option<OffsetDateTime>> {
        self.actors.read(move |c| result_expired_at(c, dir)).await
    }
    async fn claim_expiring_assets(
        &self,
        uploaded_before: OffsetDateTime,
        limit: u32,
        claim_for: Duration,
    ) -> StoreResult<Vec<Asset>> {
        self.actors.write(move |ctx| claim_expiring_assets(ctx, uploaded_before, limit, claim_for)).await
    }
}
