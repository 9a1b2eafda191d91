//! Accounts, API keys and the ledger.
use super::super::*;
use super::actor::WriteCtx;
use super::rows::{to_time, uuid};
use super::sql_err;
use crate::domain::money::MicroUsd;
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

pub fn create(ctx: &mut WriteCtx, new: NewAccount) -> StoreResult<Account> {
    let id = Uuid::new_v4();
    let now = ctx.now_us();
    ctx.conn
        .execute(
            "INSERT INTO accounts (id, name, balance, held, max_concurrent, max_backlog, created_at, webhook_secret) \
             VALUES (?1, ?2, 0, 0, ?3, ?4, ?5, ?6)",
            params![
                id.to_string(),
                new.name,
                super::super::rules::check_max_concurrent(new.max_concurrent)?,
                new.max_backlog,
                now,
                crate::domain::webhook::new_secret()
            ],
        )
        .map_err(sql_err)?;
    if new.credits.0 > 0 {
        credit(ctx, id, new.credits, "initial credits".into())?;
    }
    get(ctx.conn, id)
}

/// `create` while there is no account at all; `None` when there is one.
pub fn create_first(ctx: &mut WriteCtx, new: NewAccount) -> StoreResult<Option<Account>> {
    if count(ctx.conn)? > 0 {
        return Ok(None);
    }
    create(ctx, new).map(Some)
}

pub fn get(conn: &Connection, id: Uuid) -> StoreResult<Account> {
    conn.prepare_cached(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1"))
        .map_err(sql_err)?
        .query_row([id.to_string()], account_from_row)
        .optional()
        .map_err(sql_err)?
        .ok_or(StoreError::NotFound)
}

/// What `account_from_row` reads, in its order.
pub const ACCOUNT_COLUMNS: &str = "id, name, balance, held, max_concurrent, max_backlog, created_at, active_jobs, \
     backlogged_jobs, webhook_secret, storage_bytes, storage_files, storage_bytes_quota, storage_files_quota, suspended, \
     rate_limit_per_minute";

pub fn account_from_row(r: &rusqlite::Row) -> rusqlite::Result<Account> {
    Ok(Account {
        id: uuid(r.get(0)?),
        name: r.get(1)?,
        balance: MicroUsd(r.get(2)?),
        held: MicroUsd(r.get(3)?),
        max_concurrent: r.get(4)?,
        max_backlog: r.get(5)?,
        created_at: to_time(r.get(6)?),
        active_jobs: r.get(7)?,
        backlogged_jobs: r.get(8)?,
        webhook_secret: r.get(9)?,
        storage: StorageUse { bytes: r.get::<_, i64>(10)? as u64, files: r.get::<_, i64>(11)? as u64 },
        storage_quota: QuotaOverride {
            bytes: r.get::<_, Option<i64>>(12)?.map(|n| n as u64),
            files: r.get::<_, Option<i64>>(13)?.map(|n| n as u64),
        },
        suspended: r.get(14)?,
        rate_limit_per_minute: r.get::<_, Option<i64>>(15)?.map(per_minute),
    })
}

pub fn count(conn: &Connection) -> StoreResult<u64> {
    conn.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(sql_err)
}

pub fn add_credits(ctx: &mut WriteCtx, id: Uuid, amount: MicroUsd, note: String) -> StoreResult<Account> {
    // Checked here, before the UPDATE: SQLite's own overflow error would name no rule.
    super::super::rules::credited_balance(&get(ctx.conn, id)?, amount)?;
    credit(ctx, id, amount, note)?;
    get(ctx.conn, id)
}

fn credit(ctx: &mut WriteCtx, id: Uuid, amount: MicroUsd, note: String) -> StoreResult<()> {
    ctx.conn
        .execute("UPDATE accounts SET balance = balance + ?2 WHERE id = ?1", params![id.to_string(), amount.0])
        .map_err(sql_err)?;
    record(ctx, id, LedgerKind::Credit, amount, None, Some(note))
}

pub fn record(
    ctx: &mut WriteCtx,
    account: Uuid,
    kind: LedgerKind,
    amount: MicroUsd,
    job: Option<Uuid>,
    note: Option<String>,
) -> StoreResult<()> {
    let now = ctx.now_us();
    ctx.conn
        .prepare_cached(
            "INSERT INTO ledger (account_id, kind, amount, job_id, note, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(sql_err)?
        .execute(params![account.to_string(), kind.as_str(), amount.0, job.map(|j| j.to_string()), note, now])
        .map_err(sql_err)?;
    Ok(())
}

pub fn set_limits(
    ctx: &mut WriteCtx,
    id: Uuid,
    max_concurrent: Option<u32>,
    max_backlog: Option<u32>,
    signal: Arc<Notify>,
) -> StoreResult<Account> {
    let before = get(ctx.conn, id)?;
    let max_concurrent = super::super::rules::check_max_concurrent(max_concurrent.unwrap_or(before.max_concurrent))?;
    ctx.conn
        .execute(
            "UPDATE accounts SET max_concurrent = ?2, max_backlog = ?3 WHERE id = ?1",
            params![id.to_string(), max_concurrent, max_backlog.unwrap_or(before.max_backlog)],
        )
        .map_err(sql_err)?;
    // A raised limit frees slots at once.
    super::transitions::promote_backlog(ctx, id, &signal)?;
    get(ctx.conn, id)
}

pub fn create_key(
    ctx: &mut WriteCtx,
    account_id: Uuid,
    key_id: Uuid,
    secret_hash: String,
    label: Option<String>,
) -> StoreResult<()> {
    get(ctx.conn, account_id)?;
    let now = ctx.now_us();
    ctx.conn
        .execute(
            "INSERT INTO api_keys (id, account_id, secret_hash, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key_id.to_string(), account_id.to_string(), secret_hash, label, now],
        )
        .map_err(sql_err)?;
    Ok(())
}

pub fn revoke_key(ctx: &mut WriteCtx, key_id: Uuid) -> StoreResult<bool> {
    let now = ctx.now_us();
    let exists = ctx
        .conn
        .execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![key_id.to_string(), now],
        )
        .map_err(sql_err)?;
    Ok(exists > 0)
}

pub fn key(conn: &Connection, key_id: Uuid) -> StoreResult<Option<KeyRecord>> {
    // The account's suspension is read with the key (one query), so the key cache holds it too.
    conn.prepare_cached(
        "SELECT k.account_id, k.secret_hash, k.revoked_at IS NOT NULL, a.suspended, a.rate_limit_per_minute \
         FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.id = ?1",
    )
    .map_err(sql_err)?
    .query_row([key_id.to_string()], |r| {
        Ok(KeyRecord {
            key_id,
            account_id: uuid(r.get(0)?),
            secret_hash: r.get(1)?,
            revoked: r.get(2)?,
            account_suspended: r.get(3)?,
            rate_limit_per_minute: r.get::<_, Option<i64>>(4)?.map(per_minute),
        })
    })
    .optional()
    .map_err(sql_err)
}

pub fn ledger(conn: &Connection, account_id: Uuid, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT kind, amount, job_id, note, created_at FROM ledger WHERE account_id = ?1 ORDER BY id DESC LIMIT ?2",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map(params![account_id.to_string(), limit], |r| {
            let kind: String = r.get(0)?;
            Ok(LedgerEntry {
                kind: LedgerKind::parse(&kind).unwrap_or(LedgerKind::Credit),
                amount: MicroUsd(r.get(1)?),
                job_id: r.get::<_, Option<String>>(2)?.map(uuid),
                note: r.get(3)?,
                created_at: to_time(r.get(4)?),
            })
        })
        .map_err(sql_err)?;
    rows.collect::<Result<_, _>>().map_err(sql_err)
}

pub fn usage(conn: &Connection, account_id: Uuid) -> StoreResult<Usage> {
    let mut usage = Usage::default();
    let mut stmt = conn
        .prepare_cached("SELECT status, COUNT(*) FROM jobs WHERE account_id = ?1 GROUP BY status")
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([account_id.to_string()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
        .map_err(sql_err)?;
    for row in rows {
        let (status, n) = row.map_err(sql_err)?;
        usage.count(&status, n);
    }
    let week_ago = super::rows::to_us(time::OffsetDateTime::now_utc() - time::Duration::days(7));
    let (recent, total): (i64, i64) = conn
        .query_row(
            "SELECT COALESCE(SUM(CASE WHEN created_at >= ?2 THEN amount ELSE 0 END), 0), COALESCE(SUM(amount), 0) \
             FROM ledger WHERE account_id = ?1 AND kind = 'charge'",
            params![account_id.to_string(), week_ago],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql_err)?;
    usage.charged_last_7_days = MicroUsd(recent);
    usage.charged_total = MicroUsd(total);
    Ok(usage)
}

pub fn rotate_webhook_secret(ctx: &mut WriteCtx, id: Uuid) -> StoreResult<Account> {
    let changed = ctx
        .conn
        .execute(
            "UPDATE accounts SET webhook_secret = ?2 WHERE id = ?1",
            params![id.to_string(), crate::domain::webhook::new_secret()],
        )
        .map_err(sql_err)?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    get(ctx.conn, id)
}

pub fn set_storage_quota(
    ctx: &mut WriteCtx,
    id: Uuid,
    bytes: Option<QuotaSetting>,
    files: Option<QuotaSetting>,
) -> StoreResult<Account> {
    let own = get(ctx.conn, id)?.storage_quota;
    let as_sql = |n: Option<u64>| n.map(|n| n.min(i64::MAX as u64) as i64);
    ctx.conn
        .execute(
            "UPDATE accounts SET storage_bytes_quota = ?2, storage_files_quota = ?3 WHERE id = ?1",
            params![
                id.to_string(),
                as_sql(QuotaSetting::apply(bytes, own.bytes)),
                as_sql(QuotaSetting::apply(files, own.files))
            ],
        )
        .map_err(sql_err)?;
    get(ctx.conn, id)
}

/// Counts one more stored file of `bytes` against the account, unless it does not fit its quota
/// (its own, else `defaults`). Runs on the writer, in the transaction that inserts the row.
pub fn take_storage(ctx: &mut WriteCtx, id: Uuid, bytes: u64, defaults: StorageQuota) -> StoreResult<()> {
    let account = get(ctx.conn, id)?;
    crate::store::admit(defaults.for_account(account.storage_quota), account.storage, bytes)
        .map_err(StoreError::StorageQuotaExceeded)?;
    ctx.conn
        .execute(
            "UPDATE accounts SET storage_bytes = storage_bytes + ?2, storage_files = storage_files + 1 WHERE id = ?1",
            params![id.to_string(), bytes as i64],
        )
        .map_err(sql_err)?;
    Ok(())
}

/// Gives back what a deleted file took.
pub fn free_storage(ctx: &mut WriteCtx, id: Uuid, bytes: u64) -> StoreResult<()> {
    ctx.conn
        .execute(
            "UPDATE accounts SET storage_bytes = MAX(storage_bytes - ?2, 0), storage_files = MAX(storage_files - 1, 0) \
             WHERE id = ?1",
            params![id.to_string(), bytes as i64],
        )
        .map_err(sql_err)?;
    Ok(())
}

/// Gives the account its own request rate limit per key and minute (0: none), or with `None`
/// has it follow the operator's default again.
pub fn set_rate_limit(ctx: &mut WriteCtx, id: Uuid, per_minute: Option<u32>) -> StoreResult<Account> {
    get(ctx.conn, id)?;
    ctx.conn
        .execute("UPDATE accounts SET rate_limit_per_minute = ?2 WHERE id = ?1", params![id.to_string(), per_minute])
        .map_err(sql_err)?;
    get(ctx.conn, id)
}

/// A stored rate limit (the column's CHECK keeps it non-negative).
fn per_minute(stored: i64) -> u32 {
    stored.clamp(0, i64::from(u32::MAX)) as u32
}
