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
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .nest_service("/results", results)
        .layer(axum::middleware::from_fn(error::json_error_bodies))
        .with_state(state)
}
