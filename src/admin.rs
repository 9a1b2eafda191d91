//! Operator actions on accounts, keys, credits and limits: one implementation, returning JSON,
//! behind both the `admin` CLI (which prints it) and the admin HTTP API (`/admin/v1`, which
//! answers it). `serve` uses `create_account` for the first-run demo account; tests use them
//! directly.
mod accounts;
mod error;
mod jobs;
mod tokens;

pub use accounts::{ledger, list_accounts, set_suspended, usage_between};
pub use error::AdminError;
pub use jobs::{cancel_job, show_job};
pub use tokens::{create_admin_token, revoke_admin_token};

use crate::domain::api_key;
use crate::domain::money::MicroUsd;
use crate::store::{Account, Accounts, Keys, NewAccount, QuotaSetting, StorageQuota, StoreError, Workers};
use serde_json::{json, Value};
use uuid::Uuid;

/// What every admin action returns: its JSON, or why it did nothing.
pub type AdminResult = Result<Value, AdminError>;

pub const DEFAULT_MAX_CONCURRENT: u32 = 4;
pub const DEFAULT_MAX_BACKLOG: u32 = 100;

fn account_json(account: &Account) -> Value {
    json!({
        "account_id": account.id,
        "name": account.name,
        "balance_usd": account.balance,
        "held_usd": account.held,
        "available_usd": account.available(),
        "max_concurrent": account.max_concurrent,
        "max_backlog": account.max_backlog,
        "active_jobs": account.active_jobs,
        "backlogged_jobs": account.backlogged_jobs,
        "webhook_secret": account.webhook_secret,
        "storage": storage_json(account, None),
    })
}

/// What the account's uploads take and its storage quota (0: no limit). Without the server's
/// `defaults` (the admin CLI) a quota the account does not have of its own is `null`.
fn storage_json(account: &Account, defaults: Option<StorageQuota>) -> Value {
    let (bytes_quota, files_quota) = match defaults {
        Some(defaults) => {
            let quota = defaults.for_account(account.storage_quota);
            (Some(quota.bytes), Some(quota.files))
        }
        None => (account.storage_quota.bytes, account.storage_quota.files),
    };
    json!({
        "bytes_used": account.storage.bytes,
        "files_used": account.storage.files,
        "bytes_quota": bytes_quota,
        "files_quota": files_quota,
    })
}

/// The account as the operator sees it: `account_json` with its suspension and creation time.
fn operator_json(account: &Account) -> Value {
    let mut out = account_json(account);
    out["suspended"] = json!(account.suspended);
    out["created_at"] = json!(crate::job_view::rfc3339(account.created_at));
    // Its own request rate limit per key and minute; null: the server's --rate-limit-per-minute.
    out["rate_limit_per_minute"] = json!(account.rate_limit_per_minute);
    out
}

/// Creates an account with its first key; the JSON holds `api_key`, shown this once only.
pub async fn create_account(store: &(impl Accounts + Keys + ?Sized), new: NewAccount) -> AdminResult {
    if new.credits.0 < 0 {
        return Err(AdminError::Invalid("the initial credits must not be negative".into()));
    }
    let account = store.create_account(new).await?;
    let key = issue_key(store, account.id, Some("first key".into())).await?;
    let mut out = operator_json(&account);
    out["api_key"] = json!(key.0);
    out["key_id"] = json!(key.1);
    Ok(out)
}

/// `create_account` on a store with no account yet (the first start's demo account); `None`
/// when there is one, also when another replica starting at the same moment created it.
pub async fn create_first_account(
    store: &(impl Accounts + Keys + ?Sized),
    new: NewAccount,
) -> Result<Option<Value>, AdminError> {
    if new.credits.0 < 0 {
        return Err(AdminError::Invalid("the initial credits must not be negative".into()));
    }
    let Some(account) = store.create_first_account(new).await? else { return Ok(None) };
    let key = issue_key(store, account.id, Some("first key".into())).await?;
    let mut out = operator_json(&account);
    out["api_key"] = json!(key.0);
    out["key_id"] = json!(key.1);
    Ok(Some(out))
}

async fn issue_key(
    store: &(impl Keys + ?Sized),
    account_id: Uuid,
    label: Option<String>,
) -> Result<(String, Uuid), AdminError> {
    let key = api_key::generate();
    store.create_key(account_id, key.key_id, key.secret_hash, label).await?;
    Ok((key.token, key.key_id))
}

/// `account_report` for the operator (with its suspension and creation time); the CLI passes no
/// `storage_defaults` (it does not know the server's), the HTTP API passes its own.
pub async fn show_account(store: &dyn Accounts, id: Uuid, storage_defaults: Option<StorageQuota>) -> AdminResult {
    let mut out = account_report(store, id, storage_defaults).await.map_err(|e| not_found(e, id))?;
    let account = store.account(id).await.map_err(|e| not_found(e, id))?;
    out["suspended"] = json!(account.suspended);
    out["created_at"] = json!(crate::job_view::rfc3339(account.created_at));
    Ok(out)
}

/// Balance, holds, limits, usage and the 20 latest ledger entries: what `admin account show`
/// prints and `GET /account` returns (the server passes its default storage quota, so the quota
/// shown is the one that applies).
pub async fn account_report(
    store: &dyn Accounts,
    id: Uuid,
    storage_defaults: Option<StorageQuota>,
) -> Result<Value, StoreError> {
    let account = store.account(id).await?;
    let mut out = account_json(&account);
    out["storage"] = storage_json(&account, storage_defaults);
    out["usage"] = json!(store.usage(id).await?);
    out["recent_ledger"] = json!(store.ledger(id, 20).await?);
    Ok(out)
}

/// Credits (or with a negative amount, takes back) `amount`, recorded in the ledger with `note`.
pub async fn add_credits(store: &dyn Accounts, id: Uuid, amount: MicroUsd, note: String) -> AdminResult {
    if note.trim().is_empty() {
        return Err(AdminError::Invalid("a credit needs a reason (it is kept in the ledger)".into()));
    }
    let account = store.add_credits(id, amount, note).await.map_err(|e| not_found(e, id))?;
    Ok(operator_json(&account))
}

pub async fn create_key(store: &(impl Accounts + Keys + ?Sized), id: Uuid, label: Option<String>) -> AdminResult {
    store.account(id).await.map_err(|e| not_found(e, id))?;
    let (token, key_id) = issue_key(store, id, label).await?;
    Ok(json!({ "account_id": id, "key_id": key_id, "api_key": token }))
}

pub async fn revoke_key(store: &dyn Keys, key_id: Uuid) -> AdminResult {
    if !store.revoke_key(key_id).await? {
        return Err(AdminError::NotFound(format!("no key with id {key_id}")));
    }
    Ok(json!({ "key_id": key_id, "revoked": true }))
}

pub async fn set_limits(
    store: &dyn Accounts,
    id: Uuid,
    max_concurrent: Option<u32>,
    max_backlog: Option<u32>,
) -> AdminResult {
    let account = store.set_limits(id, max_concurrent, max_backlog).await.map_err(|e| not_found(e, id))?;
    Ok(operator_json(&account))
}

/// Gives the account its own request rate limit per API key and minute (0: none), or with
/// `None` has it follow the server's `--rate-limit-per-minute` again. Servers apply it once
/// their key cache has let go of the account's keys (`--key-cache-secs`).
pub async fn set_rate_limit(store: &dyn Accounts, id: Uuid, per_minute: Option<u32>) -> AdminResult {
    let account = store.set_rate_limit(id, per_minute).await.map_err(|e| not_found(e, id))?;
    Ok(operator_json(&account))
}

/// Revokes the key if it is one of the account's (the admin API names both).
pub async fn revoke_key_of(store: &dyn Keys, account_id: Uuid, key_id: Uuid) -> AdminResult {
    match store.key(key_id).await? {
        Some(key) if key.account_id == account_id => revoke_key(store, key_id).await,
        _ => Err(AdminError::NotFound(format!("the account {account_id} has no key with id {key_id}"))),
    }
}

/// Gives the account its own storage quota per kind given (`QuotaSetting::Default`: the
/// server's default again).
pub async fn set_storage_quota(
    store: &dyn Accounts,
    id: Uuid,
    bytes: Option<QuotaSetting>,
    files: Option<QuotaSetting>,
) -> AdminResult {
    let account = store.set_storage_quota(id, bytes, files).await.map_err(|e| not_found(e, id))?;
    Ok(operator_json(&account))
}

/// A store error about account `id`, with the account named when there is none.
fn not_found(e: StoreError, id: Uuid) -> AdminError {
    match e {
        StoreError::NotFound => AdminError::NotFound(format!("no account with id {id}")),
        other => other.into(),
    }
}

pub async fn rotate_webhook_secret(store: &dyn Accounts, id: Uuid) -> AdminResult {
    let account = store.rotate_webhook_secret(id).await.map_err(|e| not_found(e, id))?;
    Ok(operator_json(&account))
}

pub async fn create_worker_token(store: &dyn Workers, label: Option<String>) -> AdminResult {
    let token = crate::domain::api_key::generate();
    store.create_worker_token(token.key_id, token.secret_hash, label.clone()).await?;
    Ok(json!({ "token_id": token.key_id, "worker_token": token.token, "label": label }))
}

pub async fn revoke_worker_token(store: &dyn Workers, id: Uuid) -> AdminResult {
    if !store.revoke_worker_token(id).await? {
        return Err(AdminError::NotFound(format!("no worker token with id {id}")));
    }
    Ok(json!({ "token_id": id, "revoked": true }))
}
