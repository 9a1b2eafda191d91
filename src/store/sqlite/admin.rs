//! The operator's capability on SQLite: admin tokens, suspension, listing accounts, usage over a
//! period and any account's job.
use super::accounts::{account_from_row, ACCOUNT_COLUMNS};
use super::actor::WriteCtx;
use super::rows::{load_job, to_us};
use super::{accounts, sql_err, SqliteStore};
use crate::domain::money::MicroUsd;
use crate::store::{Account, Admin, AdminTokenRecord, Job, PeriodUsage, StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use time::OffsetDateTime;
use uuid::Uuid;

fn create_token(ctx: &mut WriteCtx, id: Uuid, secret_hash: String, label: Option<String>) -> StoreResult<()> {
    let now = ctx.now_us();
    ctx.conn
        .execute(
            "INSERT INTO admin_tokens (id, secret_hash, label, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id.to_string(), secret_hash, label, now],
        )
        .map_err(sql_err)?;
    Ok(())
}

fn revoke_token(ctx: &mut WriteCtx, id: Uuid) -> StoreResult<bool> {
    let now = ctx.now_us();
    let n = ctx
        .conn
        .execute(
            "UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![id.to_string(), now],
        )
        .map_err(sql_err)?;
    Ok(n > 0)
}

fn token(conn: &Connection, id: Uuid) -> StoreResult<Option<AdminTokenRecord>> {
    conn.prepare_cached("SELECT secret_hash, revoked_at IS NOT NULL FROM admin_tokens WHERE id = ?1")
        .map_err(sql_err)?
        .query_row([id.to_string()], |r| Ok(AdminTokenRecord { id, secret_hash: r.get(0)?, revoked: r.get(1)? }))
        .optional()
        .map_err(sql_err)
}

fn list_accounts(conn: &Connection, before: Option<OffsetDateTime>, limit: u32) -> StoreResult<Vec<Account>> {
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE created_at < ?1 ORDER BY created_at DESC, id DESC LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    let before = before.map(to_us).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![before, i64::from(limit)], account_from_row).map_err(sql_err)?;
    rows.collect::<Result<_, _>>().map_err(sql_err)
}

fn set_suspended(ctx: &mut WriteCtx, id: Uuid, suspended: bool) -> StoreResult<Account> {
    let changed = ctx
        .conn
        .execute("UPDATE accounts SET suspended = ?2 WHERE id = ?1", params![id.to_string(), suspended])
        .map_err(sql_err)?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    accounts::get(ctx.conn, id)
}

fn usage_between(
    conn: &Connection,
    account: Uuid,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> StoreResult<PeriodUsage> {
    accounts::get(conn, account)?;
    let (id, from, to) = (account.to_string(), to_us(from), to_us(to));
    let mut usage = PeriodUsage::default();
    let mut stmt = conn
        .prepare_cached(
            "SELECT status, COUNT(*) FROM jobs WHERE account_id = ?1 AND created_at >= ?2 AND created_at < ?3 \
             GROUP BY status",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map(params![id, from, to], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
        .map_err(sql_err)?;
    for row in rows {
        let (status, n) = row.map_err(sql_err)?;
        usage.count(&status, n);
    }
    let (charged, credited): (i64, i64) = conn
        .query_row(
            "SELECT COALESCE(SUM(CASE WHEN kind = 'charge' THEN amount ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN kind = 'credit' THEN amount ELSE 0 END), 0) \
             FROM ledger WHERE account_id = ?1 AND created_at >= ?2 AND created_at < ?3",
            params![id, from, to],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql_err)?;
    usage.charged = MicroUsd(charged);
    usage.credited = MicroUsd(credited);
    Ok(usage)
}

#[async_trait]
impl Admin for SqliteStore {
    async fn create_admin_token(&self, id: Uuid, secret_hash: String, label: Option<String>) -> StoreResult<()> {
        self.actors.write(move |ctx| create_token(ctx, id, secret_hash, label)).await
    }
    async fn revoke_admin_token(&self, id: Uuid) -> StoreResult<bool> {
        self.actors.write(move |ctx| revoke_token(ctx, id)).await
    }
    async fn admin_token(&self, id: Uuid) -> StoreResult<Option<AdminTokenRecord>> {
        self.actors.read(move |c| token(c, id)).await
    }
    async fn list_accounts(&self, before: Option<OffsetDateTime>, limit: u32) -> StoreResult<Vec<Account>> {
        self.actors.read(move |c| list_accounts(c, before, limit)).await
    }
    async fn set_suspended(&self, id: Uuid, suspended: bool) -> StoreResult<Account> {
        self.actors.write(move |ctx| set_suspended(ctx, id, suspended)).await
    }
    async fn usage_between(&self, account: Uuid, from: OffsetDateTime, to: OffsetDateTime) -> StoreResult<PeriodUsage> {
        self.actors.read(move |c| usage_between(c, account, from, to)).await
    }
    async fn any_job(&self, id: Uuid) -> StoreResult<Option<Job>> {
        self.actors.read(move |c| load_job(c, id)).await
    }
}
