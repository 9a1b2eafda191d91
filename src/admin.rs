//! Operator actions on accounts, keys, credits and limits. The `admin` CLI prints their JSON;
//! `serve` uses `create_account` for the first-run demo account; tests use them directly.
use crate::domain::api_key;
use crate::domain::money::MicroUsd;
use crate::store::{Account, Accounts, Keys, NewAccount, QuotaSetting, StorageQuota, StoreError, Workers};
use serde_json::{json, Value};
use uuid::Uuid;

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

/// Creates an account with its first key; the JSON holds `api_key`, shown this once only.
pub async fn create_account(store: &(impl Accounts + Keys + ?Sized), new: NewAccount) -> anyhow::Result<Value> {
    let account = store.create_account(new).await?;
    let key = issue_key(store, account.id, Some("first key".into())).await?;
    let mut out = account_json(&account);
    out["api_key"] = json!(key.0);
    out["key_id"] = json!(key.1);
    Ok(out)
}

async fn issue_key(
    store: &(impl Keys + ?Sized),
    account_id: Uuid,
    label: Option<String>,
) -> anyhow::Result<(String, Uuid)> {
    let key = api_key::generate();
    store.create_key(account_id, key.key_id, key.secret_hash, label).await?;
    Ok((key.token, key.key_id))
}

pub async fn show_account(store: &dyn Accounts, id: Uuid) -> anyhow::Result<Value> {
    account_report(store, id, None).await.map_err(|e| not_found(e, id))
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

pub async fn add_credits(store: &dyn Accounts, id: Uuid, amount: MicroUsd, note: String) -> anyhow::Result<Value> {
    let account = store.add_credits(id, amount, note).await.map_err(|e| not_found(e, id))?;
    Ok(account_json(&account))
}

pub async fn create_key(
    store: &(impl Accounts + Keys + ?Sized),
    id: Uuid,
    label: Option<String>,
) -> anyhow::Result<Value> {
    store.account(id).await.map_err(|e| not_found(e, id))?;
    let (token, key_id) = issue_key(store, id, label).await?;
    Ok(json!({ "account_id": id, "key_id": key_id, "api_key": token }))
}

pub async fn revoke_key(store: &dyn Keys, key_id: Uuid) -> anyhow::Result<Value> {
    if !store.revoke_key(key_id).await? {
        anyhow::bail!("no key with id {key_id}");
    }
    Ok(json!({ "key_id": key_id, "revoked": true }))
}

pub async fn set_limits(
    store: &dyn Accounts,
    id: Uuid,
    max_concurrent: Option<u32>,
    max_backlog: Option<u32>,
) -> anyhow::Result<Value> {
    let account = store.set_limits(id, max_concurrent, max_backlog).await.map_err(|e| not_found(e, id))?;
    Ok(account_json(&account))
}

/// Gives the account its own storage quota per kind given (`QuotaSetting::Default`: the
/// server's default again).
pub async fn set_storage_quota(
    store: &dyn Accounts,
    id: Uuid,
    bytes: Option<QuotaSetting>,
    files: Option<QuotaSetting>,
) -> anyhow::Result<Value> {
    let account = store.set_storage_quota(id, bytes, files).await.map_err(|e| not_found(e, id))?;
    Ok(account_json(&account))
}

fn not_found(e: StoreError, id: Uuid) -> anyhow::Error {
    match e {
        StoreError::NotFound => anyhow::anyhow!("no account with id {id}"),
        other => other.into(),
    }
}

pub async fn rotate_webhook_secret(store: &dyn Accounts, id: Uuid) -> anyhow::Result<Value> {
    let account = store.rotate_webhook_secret(id).await.map_err(|e| not_found(e, id))?;
    Ok(account_json(&account))
}

pub async fn create_worker_token(store: &dyn Workers, label: Option<String>) -> anyhow::Result<Value> {
    let token = crate::domain::api_key::generate();
    store.create_worker_token(token.key_id, token.secret_hash, label.clone()).await?;
    Ok(json!({ "token_id": token.key_id, "worker_token": token.token, "label": label }))
}

pub async fn revoke_worker_token(store: &dyn Workers, id: Uuid) -> anyhow::Result<Value> {
    if !store.revoke_worker_token(id).await? {
        anyhow::bail!("no worker token with id {id}");
    }
    Ok(json!({ "token_id": id, "revoked": true }))
}
