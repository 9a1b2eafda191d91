//! `GET /account` (additive): balance, holds, limits and recent usage of the calling account.
use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::Value;

pub async fn show(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let defaults = state.config.default_storage_quota();
    Ok(Json(crate::admin::account_report(&*state.store, caller.account_id, Some(defaults)).await?))
}
