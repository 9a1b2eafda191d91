//! `GET /jobs/{id}/events`: a live stream of the job's changes, ending at its terminal state.
use crate::helpers::*;
use futures_util::StreamExt;
use serde_json::Value;

/// Reads a whole SSE response into its `job` events.
pub async fn read_events(response: reqwest::Response) -> Vec<Value> {
    let mut text = String::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    text.split("\n\n")
        .filter(|block| block.lines().any(|l| l == "event: job"))
        .map(|block| {
            let data: String = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            serde_json::from_str(&data).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_shows_every_stage_in_order_and_ends_at_completion() {
    let app = TestApp::start_with(|c| {
        c.preview_sampling_time = std::time::Duration::from_secs(3);
        c.lease_ttl = std::time::Duration::from_secs(1);
    })
    .await;
    let acct = app.account("5").await;
    // Two jobs with one slot: the second starts backlogged, so its stream begins there.
    let _first = app.submit_ok(&acct.key, quick("first")).await;
    ltx_serve::admin::set_limits(&*app.store, acct.id, Some(1), None).await.unwrap();
    let second = app.submit_ok(&acct.key, quick("second")).await;
    assert_eq!(second["status"], "backlogged");
    let response = app
        .client
        .get(app.url(&format!("/jobs/{}/events", job_id(&second))))
        .bearer_auth(&acct.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events =
        tokio::time::timeout(std::time::Duration::from_secs(60), read_events(response)).await.expect("the stream ends");

    let statuses: Vec<&str> = events.iter().map(|e| e["status"].as_str().unwrap()).collect();
    let order = ["backlogged", "queued", "scheduled", "processing", "sampling", "completed"];
    let rank = |s: &str| order.iter().position(|o| *o == s).unwrap_or_else(|| panic!("unexpected status {s}"));
    assert!(statuses.windows(2).all(|w| rank(w[0]) <= rank(w[1])), "out of order: {statuses:?}");
    assert_eq!(statuses.first(), Some(&"backlogged"));
    assert_eq!(statuses.last(), Some(&"completed"));
    assert!(statuses.contains(&"sampling"), "{statuses:?}");
    let progress: Vec<f64> =
        events.iter().filter(|e| e["status"] == "sampling").map(|e| e["progress"].as_f64().unwrap()).collect();
    assert!(progress.iter().filter(|p| **p > 0.0 && **p < 1.0).count() >= 2, "progress in between: {progress:?}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(events.last().unwrap()["result"]["urls"][0].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn another_accounts_stream_is_404() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let owner = app.account("5").await;
    let other = app.account("5").await;
    let id = job_id(&app.submit_ok(&owner.key, quick("mine")).await);
    let (status, body) = app.get(&other.key, &format!("/jobs/{id}/events")).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn many_streams_of_several_jobs_each_follow_their_job_to_the_end_on_postgresql() {
    let db = crate::pg::TestDatabase::create().await;
    let app = TestApp::start_with(|c| {
        c.database_url = Some(db.url.clone());
        c.preview_sampling_time = std::time::Duration::from_millis(800);
    })
    .await;
    let acct = app.account("5").await;
    let jobs = [app.submit_ok(&acct.key, quick("one")).await, app.submit_ok(&acct.key, quick("two")).await];
    // Ten streams per job, all read through the process's one watcher of the store.
    let mut streams = Vec::new();
    for job in &jobs {
        for _ in 0..10 {
            let request = app.client.get(app.url(&format!("/jobs/{}/events", job_id(job)))).bearer_auth(&acct.key);
            streams.push((job_id(job), tokio::spawn(async move { read_events(request.send().await.unwrap()).await })));
        }
    }
    for (id, stream) in streams {
        let events = tokio::time::timeout(std::time::Duration::from_secs(60), stream).await.expect("it ends").unwrap();
        assert!(events.iter().all(|e| job_id(e) == id), "only its own job");
        let last = events.last().unwrap();
        assert_eq!(last["status"], "completed", "{events:?}");
        assert!(last["result"]["urls"][0].is_string());
        assert!(events.iter().any(|e| e["status"] == "sampling"), "it saw the job run: {events:?}");
    }
}
