//! The API replicas sharing the database: a heartbeat row each, to count the live ones.
use super::super::*;
use super::pg_err;
use sqlx::PgConnection;
use std::time::Duration;
use uuid::Uuid;

/// A replica gone this long is forgotten (its row is only noise by then).
const FORGET_AFTER_US: i64 = 3_600_000_000;

pub async fn count(c: &mut PgConnection, replica: Uuid, seen_within: Duration) -> StoreResult<u32> {
    sqlx::query(
        "INSERT INTO api_replicas (id, seen_at) VALUES ($1, ltx_now_us()) \
         ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at",
    )
    .bind(replica)
    .execute(&mut *c)
    .await
    .map_err(pg_err)?;
    sqlx::query("DELETE FROM api_replicas WHERE seen_at < ltx_now_us() - $1")
        .bind(FORGET_AFTER_US)
        .execute(&mut *c)
        .await
        .map_err(pg_err)?;
    let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_replicas WHERE seen_at >= ltx_now_us() - $1")
        .bind(seen_within.as_micros() as i64)
        .fetch_one(&mut *c)
        .await
        .map_err(pg_err)?;
    Ok(live.max(1) as u32)
}
