//! Accounts, API keys and the ledger.
use super::super::*;
use super::pg_err;
use super::rows::to_time;
use crate::domain::money::MicroUsd;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

pub async fn create(c: &mut PgConnection, id: Uuid, new: NewAccount, secret: String) -> StoreResult<Account> {
    sqlx::query(
        "INSERT INTO accounts (id, name, balance, held, max_concurrent, max_backlog, created_at, webhook_secret) \
         VALUES ($1, $2, 0, 0, $3, $4, ltx_now_us(), $5)",
    )
    .bind(id)
    .bind(&new.name)
    .bind(super::super::rules::check_max_concurrent(new.max_concurrent)? as i32)
    .bind(new.max_backlog as i32)
    .bind(secret)
    .execute(&mut *c)
    .await
    .map_err(pg_err)?;
    if new.credits.0 > 0 {
        credit(c, id, new.credits, "initial credits".into()).await?;
    }
    get(c, id, false).await
}

/// Taken by `create_first` for the rest of its transaction: replicas starting at once on one
/// database count the accounts one after the other (a count alone would show both none).
const FIRST_ACCOUNT_LOCK: i64 = 0x6c74_785f_6669_7273; // "ltx_firs"

/// `create` while there is no account at all; `None` when there is one.
pub async fn create_first(
    c: &mut PgConnection,
    id: Uuid,
    new: NewAccount,
    secret: String,
) -> StoreResult<Option<Account>> {
    // READ COMMITTED: the count after the lock sees what a replica that held it committed.
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(FIRST_ACCOUNT_LOCK).execute(&mut *c).await.map_err(pg_err)?;
    if count(&mut *c).await? > 0 {
        return Ok(None);
    }
    create(c, id, new, secret).await.map(Some)
}

/// `lock`: hold the account row until the transaction ends (every change to an account's money
/// or counters takes this lock first, so they serialise per account; a submit batch written
/// without it changes the row only if it is still the version it read, submit_batch.rs).
pub async fn get(c: &mut PgConnection, id: Uuid, lock: bool) -> StoreResult<Account> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let row = sqlx::query(&sql).bind(id).fetch_optional(c).await.map_err(pg_err)?.ok_or(StoreError::NotFound)?;
    account_from_row(&row)
}

/// What `account_from_row` reads.
pub const ACCOUNT_COLUMNS: &str = "id, name, balance, held, max_concurrent, max_backlog, created_at, active_jobs, \
     backlogged_jobs, webhook_secret, storage_bytes, storage_files, storage_bytes_quota, storage_files_quota, suspended, \
     rate_limit_per_minute";

pub fn account_from_row(row: &sqlx::postgres::PgRow) -> StoreResult<Account> {
    let int = |name: &str| row.try_get::<i32, _>(name).map(|v| v as u32).map_err(pg_err);
    let big = |name: &str| row.try_get::<i64, _>(name).map(|v| v as u64).map_err(pg_err);
    let own_quota = |name: &str| row.try_get::<Option<i64>, _>(name).map(|v| v.map(|v| v as u64)).map_err(pg_err);
    Ok(Account {
        id: row.try_get("id").map_err(pg_err)?,
        name: row.try_get("name").map_err(pg_err)?,
        balance: MicroUsd(row.try_get("balance").map_err(pg_err)?),
        held: MicroUsd(row.try_get("held").map_err(pg_err)?),
        max_concurrent: int("max_concurrent")?,
        max_backlog: int("max_backlog")?,
        created_at: to_time(row.try_get("created_at").map_err(pg_err)?),
        active_jobs: int("active_jobs")?,
        backlogged_jobs: int("backlogged_jobs")?,
        webhook_secret: row.try_get("webhook_secret").map_err(pg_err)?,
        storage: StorageUse { bytes: big("storage_bytes")?, files: big("storage_files")? },
        storage_quota: QuotaOverride {
            bytes: own_quota("storage_bytes_quota")?,
            files: own_quota("storage_files_quota")?,
        },
        suspended: row.try_get("suspended").map_err(pg_err)?,
        rate_limit_per_minute: own_rate_limit(row)?,
    })
}

pub async fn count(c: &mut PgConnection) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts").fetch_one(c).await.map_err(pg_err)?;
    Ok(n as u64)
}

pub async fn add_credits(c: &mut PgConnection, id: Uuid, amount: MicroUsd, note: String) -> StoreResult<Account> {
    // Checked here, under the row lock: PostgreSQL's own overflow error would name no rule.
    super::super::rules::credited_balance(&get(c, id, true).await?, amount)?;
    credit(c, id, amount, note).await?;
    get(c, id, false).await
}

async fn credit(c: &mut PgConnection, id: Uuid, amount: MicroUsd, note: String) -> StoreResult<()> {
    sqlx::query("UPDATE accounts SET balance = balance + $2 WHERE id = $1")
        .bind(id)
        .bind(amount.0)
        .execute(&mut *c)
        .await
        .map_err(pg_err)?;
    record(c, id, LedgerKind::Credit, amount, None, Some(note)).await
}

pub async fn record(
    c: &mut PgConnection,
    account: Uuid,
    kind: LedgerKind,
    amount: MicroUsd,
    job: Option<Uuid>,
    note: Option<String>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO ledger (account_id, kind, amount, job_id, note, created_at) VALUES ($1, $2, $3, $4, $5, ltx_now_us())",
    )
    .bind(account)
    .bind(kind.as_str())
    .bind(amount.0)
    .bind(job)
    .bind(note)
    .execute(c)
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub async fn set_limits(
    c: &mut PgConnection,
    id: Uuid,
    max_concurrent: Option<u32>,
    max_backlog: Option<u32>,
) -> StoreResult<Account> {
    let before = get(c, id, true).await?;
    let max_concurrent = super::super::rules::check_max_concurrent(max_concurrent.unwrap_or(before.max_concurrent))?;
    sqlx::query("UPDATE accounts SET max_concurrent = $2, max_backlog = $3 WHERE id = $1")
        .bind(id)
        .bind(max_concurrent as i32)
        .bind(max_backlog.unwrap_or(before.max_backlog) as i32)
        .execute(&mut *c)
        .await
        .map_err(pg_err)?;
    // A raised limit frees slots at once.
    super::transitions::promote_backlog(c, id).await?;
    get(c, id, false).await
}

pub async fn create_key(
    c: &mut PgConnection,
    account_id: Uuid,
    key_id: Uuid,
    secret_hash: String,
    label: Option<String>,
) -> StoreResult<()> {
    get(c, account_id, false).await?;
    sqlx::query(
        "INSERT INTO api_keys (id, account_id, secret_hash, label, created_at) VALUES ($1, $2, $3, $4, ltx_now_us())",
    )
    .bind(key_id)
    .bind(account_id)
    .bind(secret_hash)
    .bind(label)
    .execute(c)
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub async fn revoke_key(c: &mut PgConnection, key_id: Uuid) -> StoreResult<bool> {
    let done = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ltx_now_us()) WHERE id = $1")
        .bind(key_id)
        .execute(c)
        .await
        .map_err(pg_err)?;
    Ok(done.rows_affected() > 0)
}

pub async fn key(c: &mut PgConnection, key_id: Uuid) -> StoreResult<Option<KeyRecord>> {
    // The account's suspension is read with the key (one query), so the key cache holds it too.
    let row = sqlx::query(
        "SELECT k.account_id, k.secret_hash, k.revoked_at IS NOT NULL AS revoked, a.suspended, \
         a.rate_limit_per_minute FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.id = $1",
    )
    .bind(key_id)
    .fetch_optional(c)
    .await
    .map_err(pg_err)?;
    row.map(|r| {
        Ok(KeyRecord {
            key_id,
            account_id: r.try_get("account_id").map_err(pg_err)?,
            secret_hash: r.try_get("secret_hash").map_err(pg_err)?,
            revoked: r.try_get("revoked").map_err(pg_err)?,
            account_suspended: r.try_get("suspended").map_err(pg_err)?,
            rate_limit_per_minute: own_rate_limit(&r)?,
        })
    })
    .transpose()
}

pub async fn ledger(c: &mut PgConnection, account_id: Uuid, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
    let rows = sqlx::query(
        "SELECT kind, amount, job_id, note, created_at FROM ledger WHERE account_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(account_id)
    .bind(i64::from(limit))
    .fetch_all(c)
    .await
    .map_err(pg_err)?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get("kind").map_err(pg_err)?;
            Ok(LedgerEntry {
                kind: LedgerKind::parse(&kind).unwrap_or(LedgerKind::Credit),
                amount: MicroUsd(r.try_get("amount").map_err(pg_err)?),
                job_id: r.try_get("job_id").map_err(pg_err)?,
                note: r.try_get("note").map_err(pg_err)?,
                created_at: to_time(r.try_get("created_at").map_err(pg_err)?),
            })
        })
        .collect()
}

pub async fn usage(c: &mut PgConnection, account_id: Uuid) -> StoreResult<Usage> {
    let mut usage = Usage::default();
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM jobs WHERE account_id = $1 GROUP BY status")
        .bind(account_id)
        .fetch_all(&mut *c)
        .await
        .map_err(pg_err)?;
    for row in rows {
        let status: String = row.try_get("status").map_err(pg_err)?;
        let n = row.try_get::<i64, _>("n").map_err(pg_err)? as u64;
        usage.count(&status, n);
    }
    let week_ago = super::rows::to_us(time::OffsetDateTime::now_utc() - time::Duration::days(7));
    let (recent, total): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN created_at >= $2 THEN amount ELSE 0 END), 0)::bigint, \
         COALESCE(SUM(amount), 0)::bigint FROM ledger WHERE account_id = $1 AND kind = 'charge'",
    )
    .bind(account_id)
    .bind(week_ago)
    .fetch_one(c)
    .await
    .map_err(pg_err)?;
    usage.charged_last_7_days = MicroUsd(recent);
    usage.charged_total = MicroUsd(total);
    Ok(usage)
}

pub async fn rotate_webhook_secret(c: &mut PgConnection, id: Uuid, secret: String) -> StoreResult<Account> {
    let done = sqlx::query("UPDATE accounts SET webhook_secret = $2 WHERE id = $1")
        .bind(id)
        .bind(secret)
        .execute(&mut *c)
        .await
        .map_err(pg_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    get(c, id, false).await
}

pub async fn set_storage_quota(
    c: &mut PgConnection,
    id: Uuid,
    bytes: Option<QuotaSetting>,
    files: Option<QuotaSetting>,
) -> StoreResult<Account> {
    let own = get(c, id, true).await?.storage_quota;
    let as_sql = |n: Option<u64>| n.map(|n| n.min(i64::MAX as u64) as i64);
    sqlx::query("UPDATE accounts SET storage_bytes_quota = $2, storage_files_quota = $3 WHERE id = $1")
        .bind(id)
        .bind(as_sql(QuotaSetting::apply(bytes, own.bytes)))
        .bind(as_sql(QuotaSetting::apply(files, own.files)))
        .execute(&mut *c)
        .await
        .map_err(pg_err)?;
    get(c, id, false).await
}

/// Counts one more stored file of `bytes` against the account, unless it does not fit its quota
/// (its own, else `defaults`). The row lock taken by the read is held until the transaction that
/// inserts the file's row ends, so concurrent uploads of one account are checked one at a time.
pub async fn take_storage(c: &mut PgConnection, id: Uuid, bytes: u64, defaults: StorageQuota) -> StoreResult<()> {
    let account = get(c, id, true).await?;
    crate::store::admit(defaults.for_account(account.storage_quota), account.storage, bytes)
        .map_err(StoreError::StorageQuotaExceeded)?;
    sqlx::query(
        "UPDATE accounts SET storage_bytes = storage_bytes + $2, storage_files = storage_files + 1 WHERE id = $1",
    )
    .bind(id)
    .bind(bytes as i64)
    .execute(c)
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// Gives back what a deleted file took.
pub async fn free_storage(c: &mut PgConnection, id: Uuid, bytes: u64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE accounts SET storage_bytes = GREATEST(storage_bytes - $2, 0), \
         storage_files = GREATEST(storage_files - 1, 0) WHERE id = $1",
    )
    .bind(id)
    .bind(bytes as i64)
    .execute(c)
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// Gives the account its own request rate limit per key and minute (0: none), or with `None`
/// has it follow the operator's default again.
pub async fn set_rate_limit(c: &mut PgConnection, id: Uuid, per_minute: Option<u32>) -> StoreResult<Account> {
    let done = sqlx::query("UPDATE accounts SET rate_limit_per_minute = $2 WHERE id = $1")
        .bind(id)
        .bind(per_minute.map(i64::from))
        .execute(&mut *c)
        .await
        .map_err(pg_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    get(c, id, false).await
}

/// The account's own rate limit as stored (the column's CHECK keeps it non-negative).
fn own_rate_limit(row: &sqlx::postgres::PgRow) -> StoreResult<Option<u32>> {
    let stored = row.try_get::<Option<i64>, _>("rate_limit_per_minute").map_err(pg_err)?;
    Ok(stored.map(|n| n.clamp(0, i64::from(u32::MAX)) as u32))
}
