//! Operations: `/metrics` parses as Prometheus text and moves when jobs run; every response
//! carries a request id.
use crate::helpers::*;

async fn scrape(app: &TestApp) -> Vec<prometheus_parse::Sample> {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200, "/metrics needs no key");
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text").samples
}

fn value(samples: &[prometheus_parse::Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            _ => 0.0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_move_when_jobs_run() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let before = scrape(&app).await;
    let id = job_id(&app.submit_ok(&acct.key, quick("measured")).await);
    assert_eq!(app.wait_terminal(&acct.key, &id).await["status"], "completed");
    let after = scrape(&app).await;

    // This app's store: exactly one completed job.
    assert_eq!(value(&after, "ltx_jobs", &[("status", "completed")]), 1.0);
    assert_eq!(value(&after, "ltx_jobs", &[("status", "queued")]), 0.0);
    // Process-wide counters (other tests run in this process too) only grow.
    let polls =
        |s: &[prometheus_parse::Sample]| value(s, "http_requests_total", &[("route", "/jobs/:id"), ("status", "200")]);
    assert!(polls(&after) > polls(&before), "polls were counted");
    let submits = |s: &[prometheus_parse::Sample]| {
        value(
            s,
            "http_requests_total",
            &[("route", "/generate/video/lightricks/ltx-video-2.3-22b"), ("method", "POST")],
        )
    };
    assert!(submits(&after) > submits(&before));
    let runs = |s: &[prometheus_parse::Sample]| {
        value(s, "ltx_job_run_seconds_count", &[("engine", "preview"), ("outcome", "completed")])
    };
    assert!(runs(&after) > runs(&before), "the run was timed");
    assert!(value(&after, "ltx_job_queue_wait_seconds_count", &[("engine", "preview")]) >= 1.0);
    assert!(after
        .iter()
        .any(|s| s.metric == "http_request_duration_seconds_bucket" || s.metric == "http_request_duration_seconds"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_carries_a_request_id() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (prefix, n) = id.split_once('-').expect("prefix-counter");
    assert!(prefix.len() == 12 && u64::from_str_radix(n, 16).is_ok(), "{id}");
    let next = app.client.get(app.url("/healthz")).send().await.unwrap().headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(next, id, "ids are unique");
    let response = app.client.get(app.url("/jobs")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("x-request-id"), "errors carry one too");
    let response = app.client.get(app.url("/healthz")).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42", "a client's id is kept");
}
