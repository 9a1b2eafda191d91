//! Quality presets: an additive request for a preset that no engine here has loaded is a 400 at
//! submit naming `quality` (nothing charged), judged from the in-process engine and the presets
//! live remote workers announce.
use crate::helpers::*;
use ltx_serve::domain::request::Quality;
use ltx_serve::store::WorkerInfo;
use serde_json::{json, Value};

fn keyframes(quality: &str) -> Value {
    let image = png_data_uri(16, 16, [0, 90, 200]);
    json!({
        "prompt": "a boat crossing a bay",
        "num_frames": 25,
        "keyframes": [{"image": image, "frame": 0}, {"image": image, "frame": 24}],
        "quality": quality,
    })
}

async fn submit_keyframes(app: &TestApp, key: &str, quality: &str) -> reqwest::Response {
    let url = app.url(&format!("{GENERATE}/keyframes"));
    app.client.post(url).bearer_auth(key).json(&keyframes(quality)).send().await.unwrap()
}

#[tokio::test]
async fn the_preview_engine_has_every_preset() {
    let app = TestApp::start().await;
    let account = app.account("5").await;
    for quality in ["fast", "balanced", "best"] {
        let response = submit_keyframes(&app, &account.key, quality).await;
        assert_eq!(response.status(), 200, "{quality}: {}", response.text().await.unwrap());
    }
}

#[tokio::test]
async fn a_preset_no_live_worker_announced_is_refused_at_submit_with_nothing_charged() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let account = app.account("5").await;
    // No worker at all: nobody can say, so the job waits in the queue like any other.
    assert_eq!(submit_keyframes(&app, &account.key, "best").await.status(), 200);
    let gpu = WorkerInfo {
        name: "gpu-1".into(),
        engine: "ltx".into(),
        presets: vec![Quality::Fast, Quality::Balanced],
        ..Default::default()
    };
    app.store.record_worker(gpu).await.unwrap();
    let before = app.store.account(account.id).await.unwrap();
    let refused = assert_error(submit_keyframes(&app, &account.key, "best").await, 400, "`quality`").await;
    let message = refused["error"].as_str().unwrap();
    assert!(message.contains("`best`") && message.contains("`fast`, `balanced`"), "{message}");
    let after = app.store.account(account.id).await.unwrap();
    assert_eq!((after.balance, after.held), (before.balance, before.held), "nothing held or charged");
    assert_eq!(submit_keyframes(&app, &account.key, "balanced").await.status(), 200);
    // A worker that announces the preset makes it available.
    let best =
        WorkerInfo { name: "gpu-2".into(), engine: "ltx".into(), presets: vec![Quality::Best], ..Default::default() };
    app.store.record_worker(best).await.unwrap();
    assert_eq!(submit_keyframes(&app, &account.key, "best").await.status(), 200);
}
