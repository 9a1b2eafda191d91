//! `/metrics` (Prometheus text) and the request middleware that feeds it. Names:
//! - `http_requests_total{method,route,status}`, `http_request_duration_seconds{method,route}`
//! - `ltx_jobs{status}` (gauge, read from the store at scrape time)
//! - `ltx_job_queue_wait_seconds{engine}`, `ltx_job_run_seconds{engine,outcome}`
//! - `ltx_webhook_deliveries_total{outcome}`, `ltx_workers_live`
use super::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

/// Latency buckets in seconds: HTTP handlers (ms) up to queue waits and runs (hours).
const BUCKETS: [f64; 20] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, 7200.0,
];

/// The process-wide recorder (metrics are global by design of the `metrics` facade).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
            .expect("buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        handle
    })
}

pub async fn serve(State(state): State<AppState>) -> Response {
    match state.store.job_counts_by_status().await {
        Ok(counts) => {
            for (status, n) in counts {
                metrics::gauge!("ltx_jobs", "status" => status.as_str()).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not count jobs for /metrics"),
    }
    metrics::gauge!("ltx_workers_live").set(state.config.workers as f64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle().render()).into_response()
}

/// Counts and times every request by its route template (not its raw path: ids would explode
/// the label set).
pub async fn track(request: Request, next: Next) -> Response {
    // `/jobs/{id}` is labelled `/jobs/:id`: braces inside label values trip up simple parsers.
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().replace('{', ":").replace('}', ""));
    let route = route.unwrap_or_else(|| {
        if request.uri().path().starts_with("/results/") { "/results" } else { "unmatched" }.to_owned()
    });
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.as_u16().to_string())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
