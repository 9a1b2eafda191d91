//! Retention, as a client and an operator see it: with a tiny retention, a finished job's result
//! URLs answer 200, then 410 `result_expired` once the sweeper deleted the files, while the job
//! itself still answers (with `result.expired_at`); an old asset goes as if its owner deleted
//! it, and the account's storage use goes down; `/metrics` counts the bytes freed.
use crate::assets::upload_ok;
use crate::helpers::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// A counter of `/metrics`, 0 while it is absent.
async fn counter(app: &TestApp, name: &str, kind: &str) -> f64 {
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let samples = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text").samples;
    samples
        .iter()
        .filter(|s| s.metric == name && s.labels.get("kind") == Some(kind))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// GETs `url` (no key: result and asset files are capability URLs) until it answers `status`.
async fn until_status(app: &TestApp, url: &str, status: u16) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = app.client.get(url).send().await.unwrap();
        if response.status().as_u16() == status {
            return response;
        }
        assert!(Instant::now() < deadline, "{url} never answered {status} (last: {})", response.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn len_of(app: &TestApp, url: &str) -> usize {
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.bytes().await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_results_answer_410_while_the_job_stays_and_old_assets_go_with_their_storage() {
    expired_results_answer_410_and_old_assets_go(None).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn on_postgres_expired_results_answer_410_and_old_assets_go_with_their_storage() {
    let db = crate::pg::TestDatabase::create().await;
    expired_results_answer_410_and_old_assets_go(Some(db.url.clone())).await;
}

async fn expired_results_answer_410_and_old_assets_go(database_url: Option<String>) {
    // Results and assets are due 5 s after they were made; the sweeper then looks every second.
    let retention = Duration::from_secs(5);
    let app = TestApp::start_with(|c| {
        c.result_retention = retention;
        c.asset_retention = retention;
        c.database_url = database_url;
    })
    .await;
    let acct = app.account("10").await;
    let freed = |kind: &'static str| counter(&app, "ltx_retention_bytes_freed_total", kind);
    let (results_freed_before, assets_freed_before) = (freed("result").await, freed("asset").await);

    let asset = upload_ok(&app, &acct.key, png_bytes(64, 48, [200, 30, 30]), "red.png").await;
    let asset_id = asset["id"].as_str().unwrap();
    let asset_url = asset["image_url"].as_str().unwrap();
    let asset_size = asset["size_bytes"].as_u64().unwrap();
    assert_eq!(len_of(&app, asset_url).await as u64, asset_size);
    assert_eq!(app.account_view(&acct.key).await["storage"]["bytes_used"].as_u64(), Some(asset_size));

    let job = app.submit_ok(&acct.key, quick("a lighthouse at dusk")).await;
    let id = job_id(&job);
    let done = app.wait_terminal(&acct.key, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["result"].get("expired_at").is_none(), "kept: no expired_at ({done})");
    let video = done["result"]["urls"][0].as_str().unwrap().to_owned();
    let poster = done["result"]["thumbnail_url"].as_str().unwrap().to_owned();
    let result_bytes = len_of(&app, &video).await + len_of(&app, &poster).await;

    // The sweeper deletes the files; their URLs then say why they are gone.
    for url in [&video, &poster] {
        let gone = until_status(&app, url, 410).await;
        let body: Value = gone.json().await.expect("a JSON error body");
        assert_eq!(body["code"], "result_expired", "{body}");
        assert!(body["error"].as_str().unwrap().contains("retention"), "{body}");
    }
    // The job stays, completed, with the same links and when its files went.
    let (status, kept) = app.get(&acct.key, &format!("/jobs/{id}")).await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["status"], "completed");
    assert_eq!(kept["result"]["urls"][0], video.as_str(), "the same link, now answering 410");
    let expired_at = kept["result"]["expired_at"].as_str().expect("result.expired_at once swept");
    let expired_at = time::OffsetDateTime::parse(expired_at, &time::format_description::well_known::Rfc3339).unwrap();
    let completed_at = kept["completed_at"].as_str().unwrap();
    let completed_at =
        time::OffsetDateTime::parse(completed_at, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(expired_at - completed_at >= retention, "not before its retention: {completed_at} → {expired_at}");
    // A result directory that never existed is still a plain 404.
    let unknown = app.url(&format!("/results/{}/video.mp4", "0".repeat(32)));
    let missing = app.client.get(&unknown).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // The old asset went as if its owner had deleted it: 404 everywhere, its storage given back.
    let (status, _) = until_asset_gone(&app, &acct.key, asset_id).await;
    assert_eq!(status, 404);
    assert_eq!(app.client.get(asset_url).send().await.unwrap().status(), 404);
    let storage = app.account_view(&acct.key).await["storage"].clone();
    assert_eq!((storage["bytes_used"].as_u64(), storage["files_used"].as_u64()), (Some(0), Some(0)), "{storage}");

    // /metrics counted what was freed (other tests in this process free nothing: their
    // retention is the default 30 days).
    assert!(freed("result").await - results_freed_before >= result_bytes as f64);
    assert!(freed("asset").await - assets_freed_before >= asset_size as f64);
    assert!(counter(&app, "ltx_retention_files_deleted_total", "result").await >= 2.0);
}

async fn until_asset_gone(app: &TestApp, key: &str, id: &str) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = app.get(key, &format!("/assets/{id}")).await;
        if status != 200 || Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_retention_results_and_assets_are_kept() {
    let app = TestApp::start_with(|c| {
        c.result_retention = Duration::ZERO;
        c.asset_retention = Duration::ZERO;
    })
    .await;
    let acct = app.account("10").await;
    let asset = upload_ok(&app, &acct.key, png_bytes(8, 8, [0, 0, 255]), "blue.png").await;
    let done = app.wait_terminal(&acct.key, &job_id(&app.submit_ok(&acct.key, quick("kept")).await)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(len_of(&app, done["result"]["urls"][0].as_str().unwrap()).await > 0, "the result is kept");
    assert_eq!(app.get(&acct.key, &format!("/assets/{}", asset["id"].as_str().unwrap())).await.0, 200);
}
