use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::time::Duration;

/// A worker counts as live if it was heard from (a lease request or heartbeat) this recently.
pub const WORKER_LIVENESS: Duration = Duration::from_secs(60);

/// The process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The store answers, and someone can run jobs: in-process workers (their engine loaded: while
/// it loads, loading.rs answers), or at least one live remote worker when this server runs none
/// itself (`--workers 0`).
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if let Err(e) = state.store.ping().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "error": format!("store: {e}") })),
        );
    }
    let remote = match state.store.live_workers(WORKER_LIVENESS).await {
        Ok(workers) => workers,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "not ready", "error": format!("store: {e}") })),
            )
        }
    };
    let body = json!({
        "status": if state.config.workers > 0 || !remote.is_empty() { "ready" } else { "not ready" },
        "store": "ok",
        // Loaded: until it is, the loading answers (loading.rs) say `loading` instead.
        "engine": state.in_process_engine.as_ref().map(|e| e.name()),
        "in_process_workers": state.config.workers,
        "remote_workers": remote,
    });
    if state.config.workers == 0 && remote.is_empty() {
        let mut body = body;
        body["error"] = json!("no live workers: start `ltx-serve worker` or run serve with --workers 1");
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    (StatusCode::OK, Json(body))
}
