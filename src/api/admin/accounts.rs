//! `/admin/v1/accounts…`: create, list, show, limits and quotas, suspension, credits, the
//! ledger, usage over a period, API keys.
use super::auth::Operator;
use super::path_id;
use crate::admin;
use crate::api::error::ApiError;
use crate::api::json_body::StrictJson;
use crate::api::page::Page;
use crate::api::AppState;
use crate::domain::money::MicroUsd;
use crate::store::{NewAccount, QuotaSetting};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

type Answer = Result<Json<Value>, ApiError>;

/// The body as `T`; an unknown field is refused rather than ignored (a misspelt limit would
/// otherwise change nothing and answer 200).
fn body_as<T: DeserializeOwned>(body: Result<StrictJson, ApiError>) -> Result<T, ApiError> {
    let StrictJson(value) = body?;
    serde_json::from_value(value).map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}.")))
}

fn account_id(raw: &str) -> Result<Uuid, ApiError> {
    path_id(raw, "account")
}

/// A dollar amount given as a JSON string (`"5.25"`, as amounts are shown) or number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Usd {
    Text(String),
    Number(serde_json::Number),
}

impl Usd {
    fn parse(&self, field: &str) -> Result<MicroUsd, ApiError> {
        let text = match self {
            Usd::Text(text) => text.clone(),
            Usd::Number(n) => n.to_string(),
        };
        MicroUsd::parse_usd(&text).map_err(|why| ApiError::bad_request(format!("`{field}`: {why}.")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccountBody {
    name: String,
    credits_usd: Option<Usd>,
    max_concurrent: Option<u32>,
    max_backlog: Option<u32>,
}

pub async fn create(
    State(state): State<AppState>,
    operator: Operator,
    body: Result<StrictJson, ApiError>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: NewAccountBody = body_as(body)?;
    if body.name.trim().is_empty() || body.name.chars().count() > 200 {
        return Err(ApiError::bad_request("`name` must be 1 to 200 characters."));
    }
    let credits = match &body.credits_usd {
        Some(usd) => usd.parse("credits_usd")?,
        None => MicroUsd::ZERO,
    };
    let new = NewAccount {
        name: body.name,
        credits,
        max_concurrent: body.max_concurrent.unwrap_or(admin::DEFAULT_MAX_CONCURRENT),
        max_backlog: body.max_backlog.unwrap_or(admin::DEFAULT_MAX_BACKLOG),
    };
    let out = admin::create_account(&*state.store, new).await?;
    tracing::info!(admin_token = %operator.token_id, account = %out["account_id"], "admin: account created");
    Ok((StatusCode::CREATED, Json(out)))
}

#[derive(Deserialize)]
pub struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
}

pub async fn list(State(state): State<AppState>, _: Operator, Query(params): Query<ListParams>) -> Answer {
    let page = Page::parse(params.limit.as_deref(), params.cursor.as_deref())?;
    Ok(Json(admin::list_accounts(&*state.store, page.before, page.limit).await?))
}

pub async fn show(State(state): State<AppState>, _: Operator, Path(id): Path<String>) -> Answer {
    let defaults = state.config.default_storage_quota();
    Ok(Json(admin::show_account(&*state.store, account_id(&id)?, Some(defaults)).await?))
}

/// A storage quota: a number (0: no limit) or `"default"` (the server's).
#[derive(Deserialize)]
#[serde(untagged)]
enum Quota {
    Limit(u64),
    Named(String),
}

impl Quota {
    fn setting(&self, field: &str) -> Result<QuotaSetting, ApiError> {
        match self {
            Quota::Limit(n) if *n <= i64::MAX as u64 => Ok(QuotaSetting::Limit(*n)),
            Quota::Named(name) if name == "default" => Ok(QuotaSetting::Default),
            _ => Err(ApiError::bad_request(format!(
                "`{field}` must be a number from 0 (no limit) to {} or \"default\".",
                i64::MAX
            ))),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    max_concurrent: Option<u32>,
    max_backlog: Option<u32>,
    storage_bytes_quota: Option<Quota>,
    storage_files_quota: Option<Quota>,
}

/// Limits and storage quotas; each field given is changed, the others are kept.
pub async fn update(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
    body: Result<StrictJson, ApiError>,
) -> Answer {
    let id = account_id(&id)?;
    let patch: AccountPatch = body_as(body)?;
    let bytes = patch.storage_bytes_quota.as_ref().map(|q| q.setting("storage_bytes_quota")).transpose()?;
    let files = patch.storage_files_quota.as_ref().map(|q| q.setting("storage_files_quota")).transpose()?;
    let limits = patch.max_concurrent.is_some() || patch.max_backlog.is_some();
    if !limits && bytes.is_none() && files.is_none() {
        return Err(ApiError::bad_request(
            "Give at least one of `max_concurrent`, `max_backlog`, `storage_bytes_quota`, `storage_files_quota`.",
        ));
    }
    let store = &*state.store;
    let mut out = Value::Null;
    if limits {
        out = admin::set_limits(store, id, patch.max_concurrent, patch.max_backlog).await?;
    }
    if bytes.is_some() || files.is_some() {
        out = admin::set_storage_quota(store, id, bytes, files).await?;
    }
    tracing::info!(admin_token = %operator.token_id, account = %id, "admin: limits changed");
    Ok(Json(out))
}

pub async fn suspend(state: State<AppState>, operator: Operator, id: Path<String>) -> Answer {
    set_suspended(state, operator, id, true).await
}

pub async fn unsuspend(state: State<AppState>, operator: Operator, id: Path<String>) -> Answer {
    set_suspended(state, operator, id, false).await
}

async fn set_suspended(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
    suspended: bool,
) -> Answer {
    let id = account_id(&id)?;
    let out = admin::set_suspended(&*state.store, id, suspended).await?;
    // At once in this process; other replicas within the key cache's TTL.
    state.key_cache.forget_account(id);
    tracing::info!(admin_token = %operator.token_id, account = %id, suspended, "admin: suspension changed");
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditBody {
    amount_usd: Usd,
    reason: String,
}

/// Adds (or with a negative amount, takes back) credits; the reason is kept in the ledger.
pub async fn credit(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
    body: Result<StrictJson, ApiError>,
) -> Answer {
    let id = account_id(&id)?;
    let body: CreditBody = body_as(body)?;
    let amount = body.amount_usd.parse("amount_usd")?;
    if body.reason.chars().count() > 500 {
        return Err(ApiError::bad_request("`reason` must be at most 500 characters."));
    }
    let out = admin::add_credits(&*state.store, id, amount, body.reason).await?;
    tracing::info!(admin_token = %operator.token_id, account = %id, amount = %amount, "admin: credits added");
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct LedgerParams {
    limit: Option<String>,
}

pub async fn ledger(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
    Query(params): Query<LedgerParams>,
) -> Answer {
    let page = Page::parse(params.limit.as_deref(), None)?;
    Ok(Json(admin::ledger(&*state.store, account_id(&id)?, page.limit).await?))
}

#[derive(Deserialize)]
pub struct UsageParams {
    from: Option<String>,
    to: Option<String>,
}

/// Usage in `[from, to)`; `to` defaults to now.
pub async fn usage(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
    Query(params): Query<UsageParams>,
) -> Answer {
    let id = account_id(&id)?;
    let time = |field: &str, text: Option<&str>| -> Result<Option<OffsetDateTime>, ApiError> {
        text.map(|t| {
            OffsetDateTime::parse(t, &Rfc3339)
                .map_err(|_| ApiError::bad_request(format!("`{field}` must be an RFC 3339 date-time.")))
        })
        .transpose()
    };
    let from = time("from", params.from.as_deref())?.ok_or_else(|| ApiError::bad_request("`from` is required."))?;
    let to = time("to", params.to.as_deref())?.unwrap_or_else(OffsetDateTime::now_utc);
    Ok(Json(admin::usage_between(&*state.store, id, from, to).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    label: Option<String>,
}

/// A new API key for the account; the JSON holds `api_key`, shown this once only. The body
/// (`{"label": …}`) is optional.
pub async fn create_key(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = account_id(&id)?;
    let body: NewKeyBody = if body.is_empty() {
        NewKeyBody::default()
    } else {
        let value = crate::api::json_body::parse(&body)?;
        serde_json::from_value(value).map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}.")))?
    };
    let out = admin::create_key(&*state.store, id, body.label).await?;
    tracing::info!(admin_token = %operator.token_id, account = %id, key = %out["key_id"], "admin: key created");
    Ok((StatusCode::CREATED, Json(out)))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    operator: Operator,
    Path((id, key_id)): Path<(String, String)>,
) -> Answer {
    let (id, key_id) = (account_id(&id)?, path_id(&key_id, "key")?);
    let out = admin::revoke_key_of(&*state.store, id, key_id).await?;
    state.key_cache.forget_key(key_id);
    tracing::info!(admin_token = %operator.token_id, account = %id, key = %key_id, "admin: key revoked");
    Ok(Json(out))
}
