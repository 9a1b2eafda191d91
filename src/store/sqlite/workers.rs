//! Worker tokens and the registry of live workers.
use super::super::*;
use super::actor::WriteCtx;
use super::rows::to_time;
use super::sql_err;
use rusqlite::{params, Connection, OptionalExtension};
use std::time::Duration;
use uuid::Uuid;

pub fn create_token(ctx: &mut WriteCtx, id: Uuid, secret_hash: String, label: Option<String>) -> StoreResult<()> {
    let now = ctx.now_us();
    ctx.conn
        .execute(
            "INSERT INTO worker_tokens (id, secret_hash, label, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id.to_string(), secret_hash, label, now],
        )
        .map_err(sql_err)?;
    Ok(())
}

pub fn revoke_token(ctx: &mut WriteCtx, id: Uuid) -> StoreResult<bool> {
    let now = ctx.now_us();
    let n = ctx
        .conn
        .execute(
            "UPDATE worker_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![id.to_string(), now],
        )
        .map_err(sql_err)?;
    Ok(n > 0)
}

pub fn token(conn: &Connection, id: Uuid) -> StoreResult<Option<WorkerTokenRecord>> {
    conn.prepare_cached("SELECT secret_hash, revoked_at IS NOT NULL FROM worker_tokens WHERE id = ?1")
        .map_err(sql_err)?
        .query_row([id.to_string()], |r| Ok(WorkerTokenRecord { id, secret_hash: r.get(0)?, revoked: r.get(1)? }))
        .optional()
        .map_err(sql_err)
}

pub fn record(ctx: &mut WriteCtx, info: WorkerInfo) -> StoreResult<()> {
    let now = ctx.now_us();
    let json = serde_json::to_string(&info).map_err(|e| StoreError::Internal(e.to_string()))?;
    ctx.conn
        .prepare_cached(
            "INSERT INTO workers (name, info, last_seen) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET info = excluded.info, last_seen = excluded.last_seen",
        )
        .map_err(sql_err)?
        .execute(params![info.name, json, now])
        .map_err(sql_err)?;
    Ok(())
}

pub fn touch(ctx: &mut WriteCtx, name: String) -> StoreResult<()> {
    let now = ctx.now_us();
    ctx.conn
        .prepare_cached("UPDATE workers SET last_seen = ?2 WHERE name = ?1")
        .map_err(sql_err)?
        .execute(params![name, now])
        .map_err(sql_err)?;
    Ok(())
}

pub fn live(conn: &Connection, seen_within: Duration) -> StoreResult<Vec<WorkerRecord>> {
    let since = super::rows::to_us(time::OffsetDateTime::now_utc()) - seen_within.as_micros() as i64;
    let mut stmt = conn
        .prepare_cached("SELECT info, last_seen FROM workers WHERE last_seen >= ?1 ORDER BY name")
        .map_err(sql_err)?;
    let rows = stmt.query_map([since], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(sql_err)?;
    let mut live = Vec::new();
    for row in rows {
        let (info, last_seen) = row.map_err(sql_err)?;
        live.push(WorkerRecord {
            info: serde_json::from_str(&info).map_err(|e| StoreError::Internal(e.to_string()))?,
            last_seen: to_time(last_seen),
        });
    }
    Ok(live)
}
