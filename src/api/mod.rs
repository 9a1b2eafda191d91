//! The public HTTP API: one file per resource.
mod account;
mod admin;
pub mod assets;
mod auth;
pub mod error;
mod error_code;
mod events;
mod every_request;
mod expired_results;
mod generate;
mod health;
pub(crate) mod internal;
mod internal_preview;
pub use crate::job_view;
pub mod job_watch;
mod jobs;
mod json_body;
pub mod key_cache;
mod library_page;
pub mod loading;
pub mod metrics;
mod modes;
mod openapi;
mod openapi_library;
mod openapi_modes;
mod openapi_prompts;
mod page;
mod playground;
mod poll_shortcut;
mod prefer_wait;
pub mod presets;
mod prompts;
pub mod rate_limit;
mod rendered_jobs;
mod request_durations;
mod request_id;
mod start_video;
mod styles;
mod upload;

use crate::config::ServeConfig;
use crate::store::Store;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// Everything handlers share, behind one `Arc`: axum's `State` extractor clones it for every
/// request, and one reference count is one atomic pair per request where a struct of handles
/// was ten, each a cache line the two cores hand back and forth under load.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl AppState {
    pub fn new(shared: SharedState) -> AppState {
        AppState(Arc::new(shared))
    }

    /// To change what it holds before it is shared (it is copied if it already is).
    pub fn make_mut(&mut self) -> &mut SharedState {
        Arc::make_mut(&mut self.0)
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// What [`AppState`] holds.
#[derive(Clone)]
pub struct SharedState {
    pub store: Arc<dyn Store>,
    pub config: Arc<ServeConfig>,
    /// Base of result URLs, without a trailing slash.
    pub public_url: Arc<str>,
    pub key_cache: Arc<key_cache::KeyCache>,
    pub results: Arc<crate::storage::ResultStorage>,
    /// What the event streams of this process follow (one reader of the store for all).
    pub job_watch: Arc<job_watch::JobWatch>,
    /// The per-key request buckets of this process (`Caller` takes from them).
    pub rate_limiter: Arc<rate_limit::RateLimiter>,
    /// The engine of this process's in-process workers (`None` with `--workers 0`): it answers
    /// `POST /prompts/enhance` and tells which quality presets are loaded (`presets`).
    pub in_process_engine: Option<Arc<dyn crate::worker::engine::Engine>>,
    /// Polled jobs' JSON, rendered once per snapshot.
    pub rendered_jobs: Arc<rendered_jobs::RenderedJobs>,
}

impl AppState {
    /// The job as the API shows it, with its result links.
    pub async fn view<'a>(&self, job: &'a crate::store::Job) -> job_view::JobView<'a> {
        let urls = match job.results_expired_at {
            // Deleted by retention: our own `/results/…` links, which answer 410 (S3 ones would 404).
            Some(_) => job_view::expired_result_urls(&self.public_url, job),
            None => job_view::result_urls(&self.results, job).await,
        };
        job_view::job_json(job, urls)
    }

    /// A job's JSON as `GET /jobs/{id}` sends it: rendered once per snapshot of the job when its
    /// links do not expire (a job without a result, or local result files).
    pub async fn job_body(&self, job: &Arc<crate::store::Job>) -> Result<axum::body::Bytes, serde_json::Error> {
        if let Some(body) = self.rendered_jobs.get(job) {
            return Ok(body);
        }
        // Sized for a whole job at once (serde_json's writer would grow it three or four times).
        let mut body = Vec::with_capacity(1024);
        serde_json::to_writer(&mut body, &self.view(job).await)?;
        let body = axum::body::Bytes::from(body);
        if job.result.is_none() || job.results_expired_at.is_some() || self.results.links_are_permanent() {
            self.rendered_jobs.put(job, body.clone());
        }
        Ok(body)
    }
}

pub const GENERATE_PATH: &str = "/generate/video/lightricks/ltx-video-2.3-22b";

/// The whole API as one service: the routes, and polls of a job straight to their handler
/// (poll_shortcut.rs).
pub(crate) fn service(state: AppState) -> poll_shortcut::Api {
    poll_shortcut::Api::new(state.clone(), router(state))
}

fn router(state: AppState) -> Router {
    // A directory is no result: 404, not ServeDir's redirect to `<dir>/`, whose Location drops
    // the `/results` prefix (and any prefix of --public-url) and leads nowhere anyway.
    let results = tower_http::services::ServeDir::new(state.config.data_dir.join("results"))
        .append_index_html_on_directories(false)
        // No file: 410 if the retention sweeper deleted it (expired_results.rs), else 404.
        .fallback(axum::handler::Handler::with_state(expired_results::missing_result, state.clone()));
    // Uploads are streamed to disk under their own limits (upload.rs), not axum's default.
    let uploads = axum::extract::DefaultBodyLimit::disable();
    let asset_files: Router<AppState> = match &*state.results {
        crate::storage::ResultStorage::Local { .. } => Router::new().nest_service(
            "/files/assets",
            tower_http::services::ServeDir::new(state.config.data_dir.join("library").join("assets"))
                .append_index_html_on_directories(false),
        ),
        crate::storage::ResultStorage::S3 { .. } => {
            Router::new().route("/files/assets/{name}", get(assets::file_redirect))
        }
    };
    Router::new()
        .route(GENERATE_PATH, post(generate::submit))
        .route(&format!("{GENERATE_PATH}/keyframes"), post(modes::keyframes))
        .route(&format!("{GENERATE_PATH}/audio-to-video"), post(modes::audio_to_video))
        .route(&format!("{GENERATE_PATH}/retake"), post(modes::retake))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/jobs/{id}/events", get(events::stream_job))
        .route("/account", get(account::show))
        .route("/assets", post(assets::upload).layer(uploads).get(assets::list))
        .route("/assets/{id}", get(assets::get).delete(assets::delete))
        .route("/styles", post(styles::upload).layer(uploads).get(styles::list))
        .route("/styles/{id}", get(styles::get).patch(styles::update).delete(styles::delete))
        .route("/prompts/enhance", post(prompts::enhance))
        .route("/", get(playground::page))
        .route("/openapi.json", get(openapi::serve))
        .route("/metrics", get(metrics::serve))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(internal::routes())
        .nest("/admin/v1", admin::routes())
        .nest_service("/results", results)
        .merge(asset_files)
        .layer(every_request::EveryRequest::default())
        .with_state(state)
}
