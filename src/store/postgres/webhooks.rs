//! The webhook outbox: rows added in the same transaction as a job's terminal state, claimed by
//! dispatchers on any replica (`SKIP LOCKED`), and their outcomes.
use super::super::*;
use super::pg_err;
use super::rows::{to_time, to_us};
use sqlx::{PgConnection, Row};
use std::time::Duration;
use uuid::Uuid;

/// Adds the delivery of a job that just became terminal, if it asked for a webhook.
pub async fn enqueue(c: &mut PgConnection, job: Uuid) -> StoreResult<()> {
    let added = sqlx::query(
        "INSERT INTO webhook_deliveries (id, job_id, account_id, url, status, next_attempt_at, created_at, updated_at) \
         SELECT $2, id, account_id, webhook_url, $3, ltx_now_us(), ltx_now_us(), ltx_now_us() FROM jobs \
         WHERE id = $1 AND webhook_url IS NOT NULL",
    )
    .bind(job)
    .bind(format!("msg_{}", Uuid::new_v4().simple()))
    .bind(DeliveryStatus::Pending.as_str())
    .execute(&mut *c)
    .await
    .map_err(pg_err)?
    .rows_affected();
    if added > 0 {
        super::jobs::notify_webhooks(c).await?;
    }
    Ok(())
}

pub async fn claim_due(c: &mut PgConnection, limit: u32, claim_for: Duration) -> StoreResult<Vec<WebhookDelivery>> {
    // The pending status is written into the statement: the partial index `webhook_deliveries_due`
    // applies only to a statement that names it.
    static CLAIM: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ltx_now_us() + $2, \
             updated_at = ltx_now_us() WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = '{}' \
             AND next_attempt_at <= ltx_now_us() ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, job_id, account_id, url, attempts, created_at",
            DeliveryStatus::Pending.as_str()
        )
    });
    let rows = sqlx::query(&CLAIM)
        .bind(i64::from(limit))
        .bind(claim_for.as_micros() as i64)
        .fetch_all(c)
        .await
        .map_err(pg_err)?;
    rows.iter()
        .map(|r| {
            Ok(WebhookDelivery {
                id: r.try_get("id").map_err(pg_err)?,
                job_id: r.try_get("job_id").map_err(pg_err)?,
                account_id: r.try_get("account_id").map_err(pg_err)?,
                url: r.try_get("url").map_err(pg_err)?,
                attempts: r.try_get::<i32, _>("attempts").map_err(pg_err)? as u32,
                created_at: to_time(r.try_get("created_at").map_err(pg_err)?),
            })
        })
        .collect()
}

pub async fn record(c: &mut PgConnection, id: String, outcome: WebhookOutcome) -> StoreResult<()> {
    let (status, http, next) = (outcome.delivery_status(), outcome.http_status(), outcome.retry_at().map(to_us));
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $2, last_status = $3, last_error = $4, \
         next_attempt_at = COALESCE($5, ltx_now_us()), updated_at = ltx_now_us() WHERE id = $1 AND status = $6",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(http.map(i32::from))
    .bind(outcome.into_error())
    .bind(next)
    .bind(DeliveryStatus::Pending.as_str())
    .execute(c)
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// The latest delivery of a job, as the job shows it.
pub async fn state_of(c: &mut PgConnection, job: Uuid) -> StoreResult<Option<WebhookState>> {
    let row = sqlx::query(
        "SELECT status, attempts, last_status, last_error, next_attempt_at FROM webhook_deliveries \
         WHERE job_id = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(job)
    .fetch_optional(c)
    .await
    .map_err(pg_err)?;
    row.map(|r| {
        let status: String = r.try_get("status").map_err(pg_err)?;
        let pending = status == DeliveryStatus::Pending.as_str();
        Ok(WebhookState {
            attempts: r.try_get::<i32, _>("attempts").map_err(pg_err)? as u32,
            last_status: r.try_get::<Option<i32>, _>("last_status").map_err(pg_err)?.map(|s| s as u16),
            last_error: r.try_get("last_error").map_err(pg_err)?,
            next_attempt_at: if pending { Some(to_time(r.try_get("next_attempt_at").map_err(pg_err)?)) } else { None },
            status,
        })
    })
    .transpose()
}
