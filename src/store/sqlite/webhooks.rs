//! The webhook outbox: rows added in the same transaction as a job's terminal state, claimed by
//! dispatchers, and their outcomes.
use super::super::*;
use super::actor::WriteCtx;
use super::rows::{to_time, to_us, uuid};
use super::sql_err;
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// Adds the delivery of a job that just became terminal, if it asked for a webhook.
pub fn enqueue(ctx: &mut WriteCtx, job: Uuid, signal: &Arc<Notify>) -> StoreResult<()> {
    let now = ctx.now_us();
    let added = ctx
        .conn
        .prepare_cached(
            "INSERT INTO webhook_deliveries (id, job_id, account_id, url, status, next_attempt_at, created_at, updated_at) \
             SELECT ?2, id, account_id, webhook_url, ?4, ?3, ?3, ?3 FROM jobs WHERE id = ?1 AND webhook_url IS NOT NULL",
        )
        .map_err(sql_err)?
        .execute(params![
            job.to_string(),
            format!("msg_{}", Uuid::new_v4().simple()),
            now,
            DeliveryStatus::Pending.as_str()
        ])
        .map_err(sql_err)?;
    if added > 0 {
        let signal = signal.clone();
        ctx.after_commit(move || signal.notify_waiters());
    }
    Ok(())
}

pub fn claim_due(ctx: &mut WriteCtx, limit: u32, claim_for: Duration) -> StoreResult<Vec<WebhookDelivery>> {
    let now = ctx.now_us();
    let due: Vec<WebhookDelivery> = ctx
        .conn
        .prepare_cached(
            "SELECT id, job_id, account_id, url, attempts, created_at FROM webhook_deliveries \
             WHERE status = ?3 AND next_attempt_at <= ?1 ORDER BY next_attempt_at LIMIT ?2",
        )
        .map_err(sql_err)?
        .query_map(params![now, limit, DeliveryStatus::Pending.as_str()], |r| {
            Ok(WebhookDelivery {
                id: r.get(0)?,
                job_id: uuid(r.get(1)?),
                account_id: uuid(r.get(2)?),
                url: r.get(3)?,
                attempts: r.get::<_, u32>(4)? + 1,
                created_at: to_time(r.get(5)?),
            })
        })
        .map_err(sql_err)?
        .collect::<Result<_, _>>()
        .map_err(sql_err)?;
    let hidden_until = now + claim_for.as_micros() as i64;
    for delivery in &due {
        ctx.conn
            .prepare_cached(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?2, updated_at = ?3 WHERE id = ?1",
            )
            .map_err(sql_err)?
            .execute(params![delivery.id, hidden_until, now])
            .map_err(sql_err)?;
    }
    Ok(due)
}

pub fn record(ctx: &mut WriteCtx, id: String, outcome: WebhookOutcome) -> StoreResult<()> {
    let now = ctx.now_us();
    let (status, http) = (outcome.delivery_status(), outcome.http_status());
    let next = outcome.retry_at().map(to_us).unwrap_or(now);
    ctx.conn
        .prepare_cached(
            "UPDATE webhook_deliveries SET status = ?2, last_status = ?3, last_error = ?4, next_attempt_at = ?5, updated_at = ?6 \
             WHERE id = ?1 AND status = ?7",
        )
        .map_err(sql_err)?
        .execute(params![id, status.as_str(), http, outcome.into_error(), next, now, DeliveryStatus::Pending.as_str()])
        .map_err(sql_err)?;
    Ok(())
}

/// The latest delivery of a job, as the job shows it.
pub fn state_of(conn: &Connection, job: Uuid) -> StoreResult<Option<WebhookState>> {
    conn.prepare_cached(
        "SELECT status, attempts, last_status, last_error, next_attempt_at FROM webhook_deliveries \
         WHERE job_id = ?1 ORDER BY created_at DESC LIMIT 1",
    )
    .map_err(sql_err)?
    .query_row([job.to_string()], |r| {
        let status: String = r.get(0)?;
        let pending = status == DeliveryStatus::Pending.as_str();
        Ok(WebhookState {
            status,
            attempts: r.get(1)?,
            last_status: r.get(2)?,
            last_error: r.get(3)?,
            next_attempt_at: if pending { Some(to_time(r.get(4)?)) } else { None },
        })
    })
    .optional()
    .map_err(sql_err)
}
