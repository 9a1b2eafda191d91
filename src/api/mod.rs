//! The public HTTP API: one file per resource.
mod account;
mod auth;
pub mod error;
mod events;
mod generate;
mod health;
pub mod job_view;
mod jobs;
pub mod key_cache;
pub mod metrics;
mod openapi;
mod prefer_wait;

use crate::config::ServeConfig;
use crate::store::Store;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<ServeConfig>,
    /// Base of result URLs, without a trailing slash.
    pub public_url: Arc<str>,
    pub key_cache: Arc<key_cache::KeyCache>,
}

pub const GENERATE_PATH: &str = "/generate/video/lightricks/ltx-video-2.3-22b";

pub fn router(state: AppState) -> Router {
    let results = tower_http::services::ServeDir::new(state.config.data_dir.join("results"));
    Router::new()
        .route(GENERATE_PATH, post(generate::submit))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/jobs/{id}/events", get(events::stream_job))
        .route("/account", get(account::show))
        .route("/openapi.json", get(openapi::serve))
        .route("/metrics", get(metrics::serve))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .nest_service("/results", results)
        .layer(axum::middleware::from_fn(error::json_error_bodies))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
        // A request id on every response (kept when the client sent one) and in every log line.
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(tower_http::request_id::MakeRequestUuid))
        .with_state(state)
}

fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
}
