//! `/admin/v1/jobs/{id}`: any account's job, shown (`GET`) or cancelled (`DELETE`).
use super::auth::Operator;
use super::path_id;
use crate::admin;
use crate::api::error::ApiError;
use crate::api::AppState;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::Value;

pub async fn show(State(state): State<AppState>, _: Operator, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(admin::show_job(&*state.store, Some(&state.results), path_id(&id, "job")?).await?))
}

pub async fn cancel(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id, "job")?;
    let out = admin::cancel_job(&*state.store, Some(&state.results), id).await?;
    tracing::info!(admin_token = %operator.token_id, job = %id, "admin: job cancelled");
    Ok(Json(out))
}
