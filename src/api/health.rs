use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

/// The process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The store answers.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready", "store": "ok" }))),
        Err(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not ready", "error": format!("store: {e}") })))
        }
    }
}
