//! What a server answers while its engine is still loading (the LTX engine takes minutes to
//! read its weights): `/healthz` is up, and `/readyz` and every other route answer 503 with
//! `engine: loading` and `Retry-After`, so a load balancer or an orchestrator can tell a starting
//! replica from a broken one and clients are told to come back rather than left hanging.
use super::error::ErrorCode;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

/// How long a client is told to wait before asking again.
const RETRY_AFTER_SECS: u32 = 5;

pub fn router() -> Router {
    Router::new().route("/healthz", get(super::health::healthz)).fallback(still_loading)
}

/// `/readyz`'s shape (`status`, `engine`) and an API error's (`error`, `code`) in one body.
async fn still_loading() -> Response {
    let body = json!({
        "status": "not ready",
        "engine": "loading",
        "error": "The engine is still loading its models; retry after `Retry-After` seconds.",
        "code": ErrorCode::Unavailable.as_str(),
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}
