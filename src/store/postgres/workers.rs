//! Worker tokens and the registry of live workers.
use super::super::*;
use super::pg_err;
use super::rows::to_time;
use sqlx::PgConnection;
use std::time::Duration;
use uuid::Uuid;

pub async fn create_token(
    c: &mut PgConnection,
    id: Uuid,
    secret_hash: String,
    label: Option<String>,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO worker_tokens (id, secret_hash, label, created_at) VALUES ($1, $2, $3, ltx_now_us())")
        .bind(id)
        .bind(secret_hash)
        .bind(label)
        .execute(c)
        .await
        .map_err(pg_err)?;
    Ok(())
}

pub async fn revoke_token(c: &mut PgConnection, id: Uuid) -> StoreResult<bool> {
    let done = sqlx::query("UPDATE worker_tokens SET revoked_at = COALESCE(revoked_at, ltx_now_us()) WHERE id = $1")
        .bind(id)
        .execute(c)
        .await
        .map_err(pg_err)?;
    Ok(done.rows_affected() > 0)
}

pub async fn token(c: &mut PgConnection, id: Uuid) -> StoreResult<Option<WorkerTokenRecord>> {
    let row: Option<(String, bool)> =
        sqlx::query_as("SELECT secret_hash, revoked_at IS NOT NULL FROM worker_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(pg_err)?;
    Ok(row.map(|(secret_hash, revoked)| WorkerTokenRecord { id, secret_hash, revoked }))
}

pub async fn record(c: &mut PgConnection, info: WorkerInfo) -> StoreResult<()> {
    let json = serde_json::to_string(&info).map_err(|e| StoreError::Internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO workers (name, info, last_seen) VALUES ($1, $2, ltx_now_us()) \
         ON CONFLICT (name) DO UPDATE SET info = EXCLUDED.info, last_seen = EXCLUDED.last_seen",
    )
    .bind(&info.name)
    .bind(json)
    .execute(c)
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub async fn touch(c: &mut PgConnection, name: String) -> StoreResult<()> {
    sqlx::query("UPDATE workers SET last_seen = ltx_now_us() WHERE name = $1")
        .bind(name)
        .execute(c)
        .await
        .map_err(pg_err)?;
    Ok(())
}

pub async fn live(c: &mut PgConnection, seen_within: Duration) -> StoreResult<Vec<WorkerRecord>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT info, last_seen FROM workers WHERE last_seen >= ltx_now_us() - $1 ORDER BY name")
            .bind(seen_within.as_micros() as i64)
            .fetch_all(c)
            .await
            .map_err(pg_err)?;
    rows.into_iter()
        .map(|(info, last_seen)| {
            Ok(WorkerRecord {
                info: serde_json::from_str(&info).map_err(|e| StoreError::Internal(e.to_string()))?,
                last_seen: to_time(last_seen),
            })
        })
        .collect()
}
