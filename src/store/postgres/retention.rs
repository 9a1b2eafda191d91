//! Retention on PostgreSQL: replicas' sweepers claim disjoint batches (`FOR UPDATE SKIP LOCKED`),
//! each hidden from the others until it is recorded or its claim lapses.
use super::super::*;
use super::library::{asset_from_row, ASSET_COLUMNS};
use super::rows::{to_time, to_us};
use super::{pg_err, PgStore};
use async_trait::async_trait;
use sqlx::{PgConnection, Row};
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

fn claim_us(claim_for: Duration) -> i64 {
    i64::try_from(claim_for.as_micros()).unwrap_or(i64::MAX)
}

pub async fn claim_expiring_results(
    c: &mut PgConnection,
    finished_before: OffsetDateTime,
    limit: u32,
    claim_for: Duration,
) -> StoreResult<Vec<ExpiringResult>> {
    // The predicate repeats the partial index's (jobs_results_due), so the oldest are read from it.
    let rows = sqlx::query(
        "UPDATE jobs SET results_claimed_until = ltx_now_us() + $3 WHERE id IN (SELECT id FROM jobs \
         WHERE result IS NOT NULL AND results_expired_at IS NULL AND completed_at < $1 \
         AND (results_claimed_until IS NULL OR results_claimed_until <= ltx_now_us()) \
         ORDER BY completed_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id, account_id, result",
    )
    .bind(to_us(finished_before))
    .bind(i64::from(limit))
    .bind(claim_us(claim_for))
    .fetch_all(c)
    .await
    .map_err(pg_err)?;
    rows.iter()
        .map(|row| {
            let job_id: Uuid = row.try_get("id").map_err(pg_err)?;
            let result: String = row.try_get("result").map_err(pg_err)?;
            let result: JobResult = serde_json::from_str(&result)
                .map_err(|e| StoreError::Internal(format!("unreadable result of job {job_id}: {e}")))?;
            Ok(ExpiringResult {
                job_id,
                account_id: row.try_get("account_id").map_err(pg_err)?,
                video_key: result.video_key,
                poster_key: result.poster_key,
            })
        })
        .collect()
}

pub async fn mark_result_expired(c: &mut PgConnection, result: ExpiringResult) -> StoreResult<bool> {
    // One time for both rows (`ltx_now_us()` moves on between calls).
    let marked: Option<i64> = sqlx::query_scalar(
        "UPDATE jobs SET results_expired_at = ltx_now_us(), results_claimed_until = NULL \
         WHERE id = $1 AND result IS NOT NULL AND results_expired_at IS NULL RETURNING results_expired_at",
    )
    .bind(result.job_id)
    .fetch_optional(&mut *c)
    .await
    .map_err(pg_err)?;
    let Some(at) = marked else { return Ok(false) };
    sqlx::query(
        "INSERT INTO expired_results (result_dir, job_id, expired_at) VALUES ($1, $2, $3) \
         ON CONFLICT (result_dir) DO NOTHING",
    )
    .bind(result.dir())
    .bind(result.job_id)
    .bind(at)
    .execute(c)
    .await
    .map_err(pg_err)?;
    Ok(true)
}

pub async fn result_expired_at(c: &mut PgConnection, dir: String) -> StoreResult<Option<OffsetDateTime>> {
    let at: Option<i64> = sqlx::query_scalar("SELECT expired_at FROM expired_results WHERE result_dir = $1")
        .bind(dir)
        .fetch_optional(c)
        .await
        .map_err(pg_err)?;
    Ok(at.map(to_time))
}

pub async fn claim_expiring_assets(
    c: &mut PgConnection,
    uploaded_before: OffsetDateTime,
    limit: u32,
    claim_for: Duration,
) -> StoreResult<Vec<Asset>> {
    let rows = sqlx::query(&format!(
        "UPDATE assets SET retention_claimed_until = ltx_now_us() + $3 WHERE id IN (SELECT id FROM assets \
         WHERE uploaded_at < $1 AND (retention_claimed_until IS NULL OR retention_claimed_until <= ltx_now_us()) \
         ORDER BY uploaded_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING {ASSET_COLUMNS}"
    ))
    .bind(to_us(uploaded_before))
    .bind(i64::from(limit))
    .bind(claim_us(claim_for))
    .fetch_all(c)
    .await
    .map_err(pg_err)?;
    let mut assets: Vec<Asset> = rows.iter().map(asset_from_row).collect::<Result<_, _>>().map_err(pg_err)?;
    // RETURNING gives no order: oldest first, as promised.
    assets.sort_by_key(|a| (a.uploaded_at, a.id));
    Ok(assets)
}

#[async_trait]
impl Retention for PgStore {
    async fn claim_expiring_results(
        &self,
        finished_before: OffsetDateTime,
        limit: u32,
        claim_for: Duration,
    ) -> StoreResult<Vec<ExpiringResult>> {
        self.tx(|c| Box::pin(claim_expiring_results(c, finished_before, limit, claim_for))).await
    }
    async fn mark_result_expired(&self, result: ExpiringResult) -> StoreResult<bool> {
        self.tx(|c| Box::pin(mark_result_expired(c, result.clone()))).await
    }
    async fn result_expired_at(&self, dir: String) -> StoreResult<Option<OffsetDateTime>> {
        self.read(|c| Box::pin(result_expired_at(c, dir))).await
    }
    async fn claim_expiring_assets(
        &self,
        uploaded_before: OffsetDateTime,
        limit: u32,
        claim_for: Duration,
    ) -> StoreResult<Vec<Asset>> {
        self.tx(|c| Box::pin(claim_expiring_assets(c, uploaded_before, limit, claim_for))).await
    }
}
