//! `/metrics` (Prometheus text) and the request middleware that feeds it. Names:
//! - `http_requests_total{method,route,status}`, `http_request_duration_seconds{method,route}`
//! - `ltx_jobs{status}` (gauge, read from the store at scrape time)
//! - `ltx_job_queue_wait_seconds{engine}`, `ltx_job_run_seconds{engine,outcome}`
//! - `ltx_webhook_deliveries_total{outcome}`, `ltx_workers_live{kind}`
//! - `ltx_affinity_hits_total`, `ltx_style_switches_total` (counted where leases are granted:
//!   `leasing::lease_within`)
//! - `ltx_retention_bytes_freed_total{kind}`, `ltx_retention_files_deleted_total{kind}` (`kind`:
//!   `result` or `asset`; counted by the retention sweeper, src/retention)
//! - PostgreSQL only: `ltx_job_cache_lookups_total{outcome}` (store/postgres/mod.rs),
//!   `ltx_submit_batches_total{path}` (`unlocked` or `locked`: store/postgres/submit_batch.rs)
use super::{request_durations, AppState};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// Latency buckets in seconds: HTTP handlers (ms) up to queue waits and runs (hours).
pub(super) const BUCKETS: [f64; 20] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, 7200.0,
];

/// How often the exporter's histograms (job queue waits and runs) are drained into their
/// buckets when nobody scrapes: it keeps each sample until then.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process-wide recorder (metrics are global by design of the `metrics` facade), and the
/// thread that keeps its histograms from growing between scrapes (`build_recorder` leaves that
/// to its caller).
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
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            upkeep.run_upkeep();
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the metrics upkeep; histograms grow until scraped");
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
    let remote = match state.store.live_workers(super::health::WORKER_LIVENESS).await {
        Ok(workers) => workers.len(),
        Err(e) => {
            tracing::warn!(error = %e, "could not count workers for /metrics");
            0
        }
    };
    metrics::gauge!("ltx_workers_live", "kind" => "in_process").set(state.config.workers as f64);
    metrics::gauge!("ltx_workers_live", "kind" => "remote").set(remote as f64);
    let mut text = handle().render();
    text.push_str(&request_durations::render());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Counts and times a request by its route template (not its raw path: ids would explode the
/// label set). The metric handles of each (route, method, status) are looked up once and kept.
pub struct RequestTimer {
    route: Route,
    method: &'static str,
    started: Instant,
}

/// A request's route template: the router's own (shared, so kept without a copy), or one of
/// ours (a route served outside the router, or none matched).
enum Route {
    Matched(MatchedPath),
    Other(&'static str),
}

impl Route {
    fn as_str(&self) -> &str {
        match self {
            Route::Matched(path) => path.as_str(),
            Route::Other(name) => name,
        }
    }
}

/// The `method` label: the methods the API serves, else `other`. A client chooses the method
/// string, so it must never become a label value as sent (each new one would add series).
fn method_label(method: &Method) -> &'static str {
    let known = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::OPTIONS, "OPTIONS"),
    ];
    known.into_iter().find(|(known, _)| known == method).map_or("other", |(_, label)| label)
}

impl RequestTimer {
    /// Times `request`, of the route template `known` when its server knows it (else the
    /// router's match).
    pub fn start(request: &Request, known: Option<&'static str>) -> RequestTimer {
        let route = match (known, request.extensions().get::<MatchedPath>()) {
            (Some(known), _) => Route::Other(known),
            (None, Some(path)) => Route::Matched(path.clone()),
            (None, None) if request.uri().path().starts_with("/results/") => Route::Other("/results"),
            (None, None) => Route::Other("unmatched"),
        };
        RequestTimer { route, method: method_label(request.method()), started: Instant::now() }
    }

    pub fn finish(self, response: Response) -> Response {
        record(self.route.as_str(), self.method, response.status().as_u16(), self.started.elapsed());
        response
    }
}

struct RouteHandles {
    requests: metrics::Counter,
    durations: Arc<request_durations::Durations>,
}

impl RouteHandles {
    fn record(&self, took: Duration) {
        self.requests.increment(1);
        self.durations.record(took);
    }
}

/// Route template → (method, status) → handles: looked up by the template as borrowed, so a
/// request allocates nothing here once its series exist (and used under the read lock: no
/// reference count to move, which both cores would contend for on every request).
type HandleCache = foldhash::HashMap<String, foldhash::HashMap<(&'static str, u16), RouteHandles>>;

fn record(route: &str, method: &'static str, status: u16, took: Duration) {
    static CACHE: OnceLock<RwLock<HandleCache>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) =
        cache.read().unwrap_or_else(|e| e.into_inner()).get(route).and_then(|r| r.get(&(method, status)))
    {
        return found.record(took);
    }
    // `/jobs/{id}` is labelled `/jobs/:id`: braces inside label values trip up simple parsers.
    let label = route.replace('{', ":").replace('}', "");
    let handles = RouteHandles {
        durations: request_durations::of(method, &label),
        requests: metrics::counter!("http_requests_total", "method" => method, "route" => label, "status" => status.to_string()),
    };
    let mut cache = cache.write().unwrap_or_else(|e| e.into_inner());
    // Unknown paths all share "unmatched", so the map stays as small as the route table.
    cache.entry(route.to_owned()).or_default().entry((method, status)).or_insert(handles).record(took);
}
