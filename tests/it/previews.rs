//! `--intermediate-previews`: a job shows a half-size preview of its first stage as
//! `intermediate-complete` (polling and the event stream) before its final clip; webhooks still
//! fire once, at the terminal status; off by default.
use crate::helpers::*;
use crate::probe::{ffprobe, stream};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The `job` events of a stream, read until it ends.
async fn events_of(app: &TestApp, key: &str, id: &str) -> tokio::task::JoinHandle<Vec<Value>> {
    let response = app.client.get(app.url(&format!("/jobs/{id}/events"))).bearer_auth(key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    tokio::spawn(crate::events::read_events(response))
}

/// A local webhook receiver recording the `status` of every call.
async fn hook_receiver() -> (Arc<Mutex<Vec<String>>>, String) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<Value>| async move {
            seen.lock().unwrap().push(body["status"].as_str().unwrap_or_default().to_owned());
            axum::http::StatusCode::OK
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (calls, url)
}

/// Width, height and decoded frames of a downloaded clip.
fn size_of(path: &std::path::Path) -> (u64, u64, u64) {
    let probe = ffprobe(path);
    let video = stream(&probe, "video").expect("a video stream");
    let frames = video["nb_read_frames"].as_str().unwrap().parse().unwrap();
    (video["width"].as_u64().unwrap(), video["height"].as_u64().unwrap(), frames)
}

fn statuses(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["status"].as_str().unwrap()).collect()
}

/// Polls until the job shows its preview, checks it is a playable half-size clip, then checks
/// the final clip replaces it. Returns the preview's URL.
async fn preview_then_final(app: &TestApp, key: &str, id: &str) -> String {
    let shown =
        app.wait_until(key, id, |j| j["status"] == "intermediate-complete" || !j["completed_at"].is_null()).await;
    assert_eq!(shown["status"], "intermediate-complete", "polling saw the preview before the end: {shown}");
    assert!(shown["completed_at"].is_null());
    let preview_url = shown["result"]["urls"][0].as_str().expect("result.urls holds the preview").to_owned();
    let (w, h) = (shown["width"].as_u64().unwrap(), shown["height"].as_u64().unwrap());
    assert_eq!((shown["result"]["width"].as_u64(), shown["result"]["height"].as_u64()), (Some(w / 2), Some(h / 2)));
    let preview = app.download(&preview_url, "preview.mp4").await;
    assert_eq!(size_of(&preview), (w / 2, h / 2, 25), "a playable clip of every frame at half size");
    let thumbnail = app.client.get(shown["result"]["thumbnail_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(thumbnail.status(), 200);

    let done = app.wait_terminal(key, id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let final_url = done["result"]["urls"][0].as_str().unwrap();
    assert_ne!(final_url, preview_url);
    let clip = app.download(final_url, "final.mp4").await;
    assert_eq!(size_of(&clip), (w, h, 25));
    preview_url
}

#[tokio::test(flavor = "multi_thread")]
async fn with_previews_on_a_job_shows_its_first_stage_before_its_final_clip() {
    let app = TestApp::start_with(|c| {
        c.intermediate_previews = true;
        c.preview_sampling_time = Duration::from_secs(3);
        c.lease_ttl = Duration::from_secs(1);
        c.allow_private_urls = true;
    })
    .await;
    let acct = app.account("5").await;
    let (hooks, hook_url) = hook_receiver().await;
    let submitted = app
        .client
        .post(app.url(GENERATE))
        .bearer_auth(&acct.key)
        .header("x-webhook-url", &hook_url)
        .json(&json!({ "prompt": "a preview first", "num_frames": 25 }))
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 200);
    let id = job_id(&submitted.json().await.unwrap());
    let events = events_of(&app, &acct.key, &id).await;

    let preview_url = preview_then_final(&app, &acct.key, &id).await;

    let events = tokio::time::timeout(Duration::from_secs(30), events).await.expect("the stream ends").unwrap();
    let seen = statuses(&events);
    let shown = seen.iter().position(|s| *s == "intermediate-complete").unwrap_or_else(|| panic!("{seen:?}"));
    assert_eq!(seen.last(), Some(&"completed"));
    assert!(shown < seen.len() - 1, "{seen:?}");
    assert_eq!(events[shown]["result"]["urls"][0], preview_url.as_str(), "the event carries the preview");
    assert!(
        seen[shown..seen.len() - 1].iter().all(|s| *s == "intermediate-complete"),
        "sampling goes on as intermediate-complete: {seen:?}"
    );

    // Webhooks: the terminal status only.
    for _ in 0..100 {
        if !hooks.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*hooks.lock().unwrap(), vec!["completed".to_owned()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn previews_are_off_by_default() {
    let app = TestApp::start_with(|c| {
        c.preview_sampling_time = Duration::from_secs(2);
        c.lease_ttl = Duration::from_secs(1);
    })
    .await;
    let acct = app.account("5").await;
    let id = job_id(&app.submit_ok(&acct.key, json!({ "prompt": "no preview", "num_frames": 25 })).await);
    let events = events_of(&app, &acct.key, &id).await;
    let events = tokio::time::timeout(Duration::from_secs(30), events).await.expect("the stream ends").unwrap();
    let seen = statuses(&events);
    assert!(seen.contains(&"sampling") && !seen.contains(&"intermediate-complete"), "{seen:?}");
    assert_eq!(seen.last(), Some(&"completed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_worker_publishes_its_preview_through_the_worker_api() {
    let app = TestApp::start_with(|c| {
        c.workers = 0;
        c.lease_ttl = Duration::from_secs(1);
    })
    .await;
    let token = crate::fleet::worker_token(&*app.store).await;
    let worker = ltx_serve::worker::remote::RemoteWorker {
        intermediate_previews: true,
        ..crate::fleet::remote_worker(&app.base, &token, "gpu-host-previews", 3000)
    };
    let stop = CancellationToken::new();
    let running = tokio::spawn(ltx_serve::worker::remote::run(worker, stop.clone()));
    let acct = app.account("5").await;
    let id = job_id(&app.submit_ok(&acct.key, json!({ "prompt": "remote preview", "num_frames": 25 })).await);
    preview_then_final(&app, &acct.key, &id).await;
    stop.cancel();
    running.await.unwrap().unwrap();
}
