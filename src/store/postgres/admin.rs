//! The operator's capability on PostgreSQL: admin tokens, suspension, listing accounts, usage
//! over a period and any account's job.
use super::accounts::{self, account_from_row, ACCOUNT_COLUMNS};
use super::rows::{load_job, to_us};
use super::{pg_err, PgStore};
use crate::domain::money::MicroUsd;
use crate::store::{Account, Admin, AdminTokenRecord, Job, PeriodUsage, StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

async fn create_token(c: &mut PgConnection, id: Uuid, secret_hash: String, label: Option<String>) -> StoreResult<()> {
    sqlx::query("INSERT INTO admin_tokens (id, secret_hash, label, created_at) VALUES ($1, $2, $3, ltx_now_us())")
        .bind(id)
        .bind(secret_hash)
        .bind(label)
        .execute(c)
        .await
        .map_err(pg_err)?;
    Ok(())
}

async fn revoke_token(c: &mut PgConnection, id: Uuid) -> StoreResult<bool> {
    let done = sqlx::query("UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, ltx_now_us()) WHERE id = $1")
        .bind(id)
        .execute(c)
        .await
        .map_err(pg_err)?;
    Ok(done.rows_affected() > 0)
}

async fn token(c: &mut PgConnection, id: Uuid) -> StoreResult<Option<AdminTokenRecord>> {
    let row: Option<(String, bool)> =
        sqlx::query_as("SELECT secret_hash, revoked_at IS NOT NULL FROM admin_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(pg_err)?;
    Ok(row.map(|(secret_hash, revoked)| AdminTokenRecord { id, secret_hash, revoked }))
}

async fn list_accounts(c: &mut PgConnection, before: Option<OffsetDateTime>, limit: u32) -> StoreResult<Vec<Account>> {
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE created_at < $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    );
    let rows = sqlx::query(&sql)
        .bind(before.map(to_us).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await
        .map_err(pg_err)?;
    rows.iter().map(account_from_row).collect()
}

async fn set_suspended(c: &mut PgConnection, id: Uuid, suspended: bool) -> StoreResult<Account> {
    let done = sqlx::query("UPDATE accounts SET suspended = $2 WHERE id = $1")
        .bind(id)
        .bind(suspended)
        .execute(&mut *c)
        .await
        .map_err(pg_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    accounts::get(c, id, false).await
}

async fn usage_between(
    c: &mut PgConnection,
    account: Uuid,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> StoreResult<PeriodUsage> {
    accounts::get(c, account, false).await?;
    let (from, to) = (to_us(from), to_us(to));
    let mut usage = PeriodUsage::default();
    let rows = sqlx::query(
        "SELECT status, COUNT(*) AS n FROM jobs WHERE account_id = $1 AND created_at >= $2 AND created_at < $3 \
         GROUP BY status",
    )
    .bind(account)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *c)
    .await
    .map_err(pg_err)?;
    for row in rows {
        let status: String = row.try_get("status").map_err(pg_err)?;
        usage.count(&status, row.try_get::<i64, _>("n").map_err(pg_err)? as u64);
    }
    let (charged, credited): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN kind = 'charge' THEN amount ELSE 0 END), 0)::bigint, \
         COALESCE(SUM(CASE WHEN kind = 'credit' THEN amount ELSE 0 END), 0)::bigint \
         FROM ledger WHERE account_id = $1 AND created_at >= $2 AND created_at < $3",
    )
    .bind(account)
    .bind(from)
    .bind(to)
    .fetch_one(c)
    .await
    .map_err(pg_err)?;
    usage.charged = MicroUsd(charged);
    usage.credited = MicroUsd(credited);
    Ok(usage)
}

#[async_trait]
impl Admin for PgStore {
    async fn create_admin_token(&self, id: Uuid, secret_hash: String, label: Option<String>) -> StoreResult<()> {
        self.tx(|c| Box::pin(create_token(c, id, secret_hash.clone(), label.clone()))).await
    }
    async fn revoke_admin_token(&self, id: Uuid) -> StoreResult<bool> {
        self.tx(|c| Box::pin(revoke_token(c, id))).await
    }
    async fn admin_token(&self, id: Uuid) -> StoreResult<Option<AdminTokenRecord>> {
        self.read(|c| Box::pin(token(c, id))).await
    }
    async fn list_accounts(&self, before: Option<OffsetDateTime>, limit: u32) -> StoreResult<Vec<Account>> {
        self.read(|c| Box::pin(list_accounts(c, before, limit))).await
    }
    async fn set_suspended(&self, id: Uuid, suspended: bool) -> StoreResult<Account> {
        self.tx(|c| Box::pin(set_suspended(c, id, suspended))).await
    }
    async fn usage_between(&self, account: Uuid, from: OffsetDateTime, to: OffsetDateTime) -> StoreResult<PeriodUsage> {
        self.read(|c| Box::pin(usage_between(c, account, from, to))).await
    }
    async fn any_job(&self, id: Uuid) -> StoreResult<Option<Job>> {
        self.read(|c| Box::pin(load_job(c, id))).await
    }
}
