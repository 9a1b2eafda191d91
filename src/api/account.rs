//! `GET /account` (additive): balance, holds, limits and recent usage of the calling account.
use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

pub async fn show(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let account = state.store.account(caller.account_id).await?;
    let usage = state.store.usage(caller.account_id).await?;
    let ledger = state.store.ledger(caller.account_id, 20).await?;
    Ok(Json(json!({
        "account_id": account.id,
        "name": account.name,
        "balance_usd": account.balance,
        "held_usd": account.held,
        "available_usd": account.available(),
        "max_concurrent": account.max_concurrent,
        "max_backlog": account.max_backlog,
        "active_jobs": account.active_jobs,
        "backlogged_jobs": account.backlogged_jobs,
        "usage": usage,
        "recent_ledger": ledger,
    })))
}
