//! Dispatch latency through the whole remote path: a client submits over HTTP to one server,
//! and a remote worker long-polling the internal worker API of another server (on PostgreSQL;
//! the same server on SQLite) receives the lease. Prints a markdown table row.
//!
//! Usage: bench_dispatch_http sqlite|postgres [DATABASE_URL] [ROUNDS]
use ltx_serve::app::Application;
use ltx_serve::config::ServeConfig;
use ltx_serve::domain::money::MicroUsd;
use ltx_serve::store::{NewAccount, WorkerInfo};
use ltx_serve::worker::queue::WorkQueue;
use ltx_serve::worker::remote::HttpQueue;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

async fn start(
    dir: &std::path::Path,
    database_url: Option<String>,
) -> (String, std::sync::Arc<dyn ltx_serve::store::Store>) {
    let mut config = ServeConfig::new(dir.to_owned());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.workers = 0;
    config.database_url = database_url;
    let app = Application::build(config).await.unwrap();
    let (base, store) = (app.base_url(), app.store());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    (base, store)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map(String::as_str).unwrap_or("sqlite");
    let url = (kind == "postgres").then(|| args[2].clone());
    let rounds: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(200);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (front, store) = start(dir_a.path(), url.clone()).await;
    // On PostgreSQL the worker talks to a second replica; SQLite is one machine.
    let back = if url.is_some() { start(dir_b.path(), url).await.0 } else { front.clone() };
    let new = NewAccount { name: "bench".into(), credits: MicroUsd(1 << 40), max_concurrent: 1 << 30, max_backlog: 0 };
    let account = ltx_serve::admin::create_account(&*store, new).await.unwrap();
    let key = account["api_key"].as_str().unwrap().to_owned();
    let token = ltx_serve::admin::create_worker_token(&*store, None).await.unwrap()["worker_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let info = WorkerInfo { name: "bench-worker".into(), engine: "preview".into(), ..Default::default() };
    let worker = HttpQueue::new(&back, &token, info).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            if let Some(item) =
                worker.next(Vec::new(), Duration::from_secs(20), &CancellationToken::new()).await.unwrap()
            {
                let at = Instant::now();
                // Nothing renders it: end it uncharged so the account's slot frees.
                let _ = worker.fail(item.lease, ltx_serve::domain::job::FailureCode::EngineError, "bench".into()).await;
                if tx.send(at).is_err() {
                    return;
                }
            }
        }
    });
    let client = reqwest::Client::new();
    let body = serde_json::json!({ "prompt": "bench", "num_frames": 9 });
    let mut dispatch = Vec::new();
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(20)).await; // the worker is waiting in its long poll
        let t0 = Instant::now();
        let response = client
            .post(format!("{front}/generate/video/lightricks/ltx-video-2.3-22b"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let leased_at = rx.recv().await.unwrap();
        dispatch.push((leased_at - t0).as_secs_f64() * 1000.0);
    }
    dispatch.sort_by(f64::total_cmp);
    println!(
        "| {kind}, over HTTP (submit → remote worker's long poll answers) | {:.2} | {:.2} | {:.2} |",
        percentile(&dispatch, 0.5),
        percentile(&dispatch, 0.99),
        dispatch[dispatch.len() - 1]
    );
}
