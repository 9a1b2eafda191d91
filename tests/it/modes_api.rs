//! The additive endpoints (`…/keyframes`, `…/audio-to-video`, `…/retake`) on the shared job
//! machinery, through the real API on the preview engine: bad inputs of each are 400s naming the
//! field with nothing charged, and each property of Krea's endpoint holds for them — one test
//! per property, across the three modes (listing and the type filter, `Idempotency-Key`,
//! `Prefer: wait`, the event stream, webhooks, the concurrency and backlog limits, the price).
use crate::events::read_events;
use crate::helpers::*;
use axum::http::StatusCode;
use base64::Engine as _;
use ltx_serve::domain::money::MicroUsd;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MODES: [&str; 3] = ["keyframes", "audio-to-video", "retake"];

fn ffmpeg(args: &[&str], out: &Path) -> PathBuf {
    let status =
        Command::new("ffmpeg").args(["-hide_banner", "-loglevel", "error", "-y"]).args(args).arg(out).status().unwrap();
    assert!(status.success(), "ffmpeg {args:?}");
    out.to_owned()
}

fn data_uri(mime: &str, path: &Path) -> String {
    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap()))
}

/// `seconds` of a sine tone as a WAV `data:` URI (8 kHz mono keeps it small).
fn wav(dir: &Path, seconds: f64) -> String {
    let path =
        ffmpeg(&["-f", "lavfi", "-i", &format!("sine=f=440:r=8000:d={seconds}")], &dir.join(format!("{seconds}.wav")));
    data_uri("audio/wav", &path)
}

/// A 1 s, 24 fps, 320×180 MP4 (24 frames: a retake keeps its first 17).
fn mp4(dir: &Path) -> String {
    let path = ffmpeg(
        &["-f", "lavfi", "-i", "testsrc2=s=320x180:r=24:d=1", "-c:v", "libx264", "-pix_fmt", "yuv420p"],
        &dir.join("clip.mp4"),
    );
    data_uri("video/mp4", &path)
}

/// A small valid body of each mode (clips of 9 to 17 frames).
struct Bodies {
    keyframes: Value,
    audio: Value,
    retake: Value,
    _dir: tempfile::TempDir,
}

impl Bodies {
    fn new() -> Bodies {
        let dir = tempfile::tempdir().unwrap();
        let (red, blue) = (png_data_uri(64, 36, [255, 0, 0]), png_data_uri(64, 36, [0, 0, 255]));
        Bodies {
            keyframes: json!({"prompt": "red to blue", "num_frames": 9, "generate_audio": false,
                "keyframes": [{"image": red, "frame": 0}, {"image": blue, "frame": 8}]}),
            audio: json!({"prompt": "a tone", "audio": wav(dir.path(), 0.3)}),
            retake: json!({"prompt": "rain", "video": mp4(dir.path()), "start_seconds": 0.1, "end_seconds": 0.6}),
            _dir: dir,
        }
    }

    fn of(&self, mode: &str) -> Value {
        match mode {
            "keyframes" => self.keyframes.clone(),
            "audio-to-video" => self.audio.clone(),
            _ => self.retake.clone(),
        }
    }
}

async fn post(app: &TestApp, key: &str, mode: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url(&format!("{GENERATE}/{mode}"))).bearer_auth(key).json(body).send().await.unwrap()
}

async fn post_ok(app: &TestApp, key: &str, mode: &str, body: &Value) -> Value {
    let response = post(app, key, mode, body).await;
    let status = response.status();
    let job: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{mode} answered {job}");
    job
}

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_of_each_mode_are_400s_naming_the_field_and_charge_nothing() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    let bodies = Bodies::new();
    let dir = tempfile::tempdir().unwrap();
    let keyframes_at = |frames: [u32; 3]| {
        let image = png_data_uri(8, 8, [9, 9, 9]);
        let list: Vec<Value> = frames.iter().map(|f| json!({"image": image, "frame": f})).collect();
        with(bodies.keyframes.clone(), "keyframes", json!(list))
    };
    let not_audio = format!(
        "data:audio/wav;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png_bytes(16, 16, [1, 2, 3]))
    );
    let cases: Vec<(&str, Value, &str)> = vec![
        ("keyframes", keyframes_at([0, 4, 9]), "`keyframes[2].frame` is 9, outside the clip"),
        ("keyframes", keyframes_at([0, 6, 4]), "`keyframes[2].frame` is 4, before `keyframes[1]`'s frame 6"),
        ("keyframes", keyframes_at([0, 4, 4]), "`keyframes[2].frame` is 4, the frame of `keyframes[1]` too"),
        ("keyframes", with(bodies.keyframes.clone(), "start_image", json!(null)), "Unknown field `start_image`"),
        ("keyframes", with(bodies.keyframes.clone(), "quality", json!("ultra")), "`quality` must be"),
        ("audio-to-video", with(bodies.audio.clone(), "audio", json!(not_audio)), "`audio` holds no audio stream"),
        (
            "audio-to-video",
            with(bodies.audio.clone(), "audio", json!(wav(dir.path(), 21.0))),
            "`audio` is 21.00 s long",
        ),
        ("audio-to-video", with(bodies.audio.clone(), "duration", json!(5)), "Unknown field `duration`"),
        (
            "retake",
            with(bodies.retake.clone(), "end_seconds", json!(3)),
            "`end_seconds` is 3, past the end of the video",
        ),
        ("retake", with(bodies.retake.clone(), "start_seconds", json!(0.5)), "`end_seconds`: the span 0.5–0.6 s holds"),
        ("retake", with(bodies.retake.clone(), "video", json!(bodies.audio["audio"])), "`video` must be an MP4"),
        ("retake", with(bodies.retake.clone(), "styles", json!([])), "Unknown field `styles`"),
    ];
    for (mode, body, needle) in cases {
        assert_error(post(&app, &acct.key, mode, &body).await, 400, needle).await;
    }
    let account = app.account_view(&acct.key).await;
    assert_eq!((account["balance_usd"].as_str(), account["held_usd"].as_str()), (Some("5.00"), Some("0.00")));
    let (_, jobs) = app.get(&acct.key, "/jobs").await;
    assert_eq!(jobs["items"], json!([]), "no job was made");
}

#[tokio::test(flavor = "multi_thread")]
async fn additive_jobs_are_listed_with_their_type_and_the_type_filter_finds_them() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    let bodies = Bodies::new();
    let krea = app.submit_ok(&acct.key, quick("krea")).await;
    assert_eq!(krea["type"], "ltx-video-2.3-22b");
    assert!(krea["request"].get("mode").is_none() && krea["request"].get("quality").is_none(), "{krea}");
    for mode in MODES {
        let job = post_ok(&app, &acct.key, mode, &bodies.of(mode)).await;
        let kind = format!("ltx-video-2.3-22b/{mode}");
        assert_eq!(job["type"], kind.as_str());
        let (_, page) = app.get(&acct.key, &format!("/jobs?types={kind}")).await;
        let ids: Vec<&str> = page["items"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap()).collect();
        assert_eq!(ids, [job["job_id"].as_str().unwrap()], "{mode}");
    }
    let (_, all) = app.get(&acct.key, "/jobs").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 4);
    let (_, krea_only) = app.get(&acct.key, "/jobs?types=ltx-video-2.3-22b").await;
    assert_eq!(krea_only["items"].as_array().unwrap().len(), 1);
    // The request echo: data: URIs shortened, the mode's fields, the probed lengths.
    let (_, page) = app.get(&acct.key, "/jobs?types=ltx-video-2.3-22b/audio-to-video").await;
    let request = &page["items"][0]["request"];
    assert_eq!(request["mode"]["kind"], "audio_to_video");
    assert!(request["mode"]["audio"].as_str().unwrap().starts_with("data:audio/wav;base64,<"), "{request}");
    assert_eq!(request["num_frames"], 9, "0.3 s of audio: 8 frames of motion, 9 on the grid");
    let (_, page) = app.get(&acct.key, "/jobs?types=ltx-video-2.3-22b/retake").await;
    let job = &page["items"][0];
    assert_eq!((job["request"]["num_frames"].as_u64(), job["width"].as_u64()), (Some(17), Some(1280)));
    assert_eq!(job["request"]["mode"]["start_seconds"], 0.1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_replays_the_same_additive_job_and_charges_once() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    let bodies = Bodies::new();
    for mode in MODES {
        let send = |body: Value| {
            app.client
                .post(app.url(&format!("{GENERATE}/{mode}")))
                .bearer_auth(&acct.key)
                .header("idempotency-key", format!("key-{mode}"))
                .json(&body)
                .send()
        };
        let first: Value = send(bodies.of(mode)).await.unwrap().json().await.unwrap();
        let again: Value = send(bodies.of(mode)).await.unwrap().json().await.unwrap();
        assert_eq!(first["job_id"], again["job_id"], "{mode}: {first} / {again}");
        let other = send(with(bodies.of(mode), "prompt", json!("something else"))).await.unwrap();
        assert_error(other, 409, "Idempotency-Key").await;
    }
    let (_, jobs) = app.get(&acct.key, "/jobs").await;
    assert_eq!(jobs["items"].as_array().unwrap().len(), 3, "one job a mode");
}

#[tokio::test(flavor = "multi_thread")]
async fn prefer_wait_returns_the_finished_additive_job() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let bodies = Bodies::new();
    for mode in MODES {
        let response = app
            .client
            .post(app.url(&format!("{GENERATE}/{mode}")))
            .bearer_auth(&acct.key)
            .header("prefer", "wait=60")
            .json(&bodies.of(mode))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["preference-applied"], "wait=60");
        let job: Value = response.json().await.unwrap();
        assert_eq!(job["status"], "completed", "{mode}: {job}");
        assert!(job["result"]["urls"][0].is_string(), "{job}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_event_stream_of_an_additive_job_reaches_completed() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let bodies = Bodies::new();
    for mode in MODES {
        let job = post_ok(&app, &acct.key, mode, &bodies.of(mode)).await;
        let response = app
            .client
            .get(app.url(&format!("/jobs/{}/events", job_id(&job))))
            .bearer_auth(&acct.key)
            .send()
            .await
            .unwrap();
        let events = tokio::time::timeout(Duration::from_secs(60), read_events(response)).await.expect("it ends");
        let last = events.last().expect("events");
        assert_eq!((last["status"].as_str(), last["type"].as_str()), (Some("completed"), job["type"].as_str()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_fires_for_each_additive_job() {
    let app = TestApp::start_with(|c| c.allow_private_urls = true).await;
    let acct = app.account("5").await;
    let bodies = Bodies::new();
    let calls: Arc<Mutex<Vec<Value>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = calls.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| async move {
            received.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
            StatusCode::OK
        }),
    );
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });
    let mut ids = Vec::new();
    for mode in MODES {
        let response = app
            .client
            .post(app.url(&format!("{GENERATE}/{mode}")))
            .bearer_auth(&acct.key)
            .header("x-webhook-url", &hook)
            .json(&bodies.of(mode))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        ids.push(job_id(&response.json().await.unwrap()));
    }
    for _ in 0..600 {
        if calls.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls = calls.lock().unwrap().clone();
    for id in ids {
        let call = calls.iter().find(|c| c["data"]["job_id"] == id.as_str() || c["job_id"] == id.as_str());
        let call = call.unwrap_or_else(|| panic!("no webhook for {id}: {calls:?}"));
        let job = if call["data"].is_object() { &call["data"] } else { call };
        assert_eq!(job["status"], "completed", "{call}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn additive_jobs_count_against_the_concurrency_and_backlog_limits() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account_with_limits("5", 1, 1).await;
    let bodies = Bodies::new();
    let first = post_ok(&app, &acct.key, "keyframes", &bodies.of("keyframes")).await;
    let second = post_ok(&app, &acct.key, "audio-to-video", &bodies.of("audio-to-video")).await;
    assert_eq!((first["status"].as_str(), second["status"].as_str()), (Some("queued"), Some("backlogged")));
    let full = post(&app, &acct.key, "retake", &bodies.of("retake")).await;
    assert!(full.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_error(full, 429, "Too many jobs").await;
    // Krea's endpoint shares the limits.
    assert_error(app.submit(&acct.key, quick("krea")).await, 429, "Too many jobs").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_price_charged_is_the_tables_and_a_short_balance_is_a_402_naming_it() {
    let app = TestApp::start_with(|c| {
        c.additive_prices.fast_per_second = MicroUsd(100_000);
        c.additive_prices.best_per_second = MicroUsd(300_000);
    })
    .await;
    let acct = app.account("5").await;
    let bodies = Bodies::new();
    // Keyframes, 9 frames: 1 billed second at `fast`; 49 frames at `best`: 2 seconds.
    let fast = post_ok(&app, &acct.key, "keyframes", &bodies.of("keyframes")).await;
    assert_eq!((fast["price_usd"].as_str(), fast["billed_duration_s"].as_u64()), (Some("0.10"), Some(1)));
    let best = with(with(bodies.of("keyframes"), "num_frames", json!(49)), "quality", json!("best"));
    let best = post_ok(&app, &acct.key, "keyframes", &best).await;
    assert_eq!((best["price_usd"].as_str(), best["billed_duration_s"].as_u64()), (Some("0.60"), Some(2)));
    // Retake of a 17-frame clip: 1 second.
    let retake = post_ok(&app, &acct.key, "retake", &bodies.of("retake")).await;
    assert_eq!(retake["price_usd"], "0.10");
    for job in [&fast, &best, &retake] {
        assert_eq!(app.wait_terminal(&acct.key, &job_id(job)).await["status"], "completed");
    }
    let account = app.account_view(&acct.key).await;
    assert_eq!((account["balance_usd"].as_str(), account["held_usd"].as_str()), (Some("4.20"), Some("0.00")));
    // The table is published.
    let (_, openapi) = app.get(&acct.key, "/openapi.json").await;
    let operation = &openapi["paths"][format!("{GENERATE}/retake")]["post"];
    assert_eq!(operation["x-ltx-serve-additive"], true);
    assert_eq!(operation["x-ltx-serve-prices"]["quality"]["best"], "0.30");
    // 402 names the price; nothing is held.
    let poor = app.account("0.05").await;
    assert_error(post(&app, &poor.key, "audio-to-video", &bodies.of("audio-to-video")).await, 402, "costs $0.10").await;
    assert_eq!(app.account_view(&poor.key).await["held_usd"], "0.00");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn on_postgresql_additive_jobs_are_admitted_listed_by_type_and_completed() {
    let db = crate::pg::TestDatabase::create().await;
    let app = TestApp::start_with(|c| c.database_url = Some(db.url.clone())).await;
    let acct = app.account("5").await;
    let bodies = Bodies::new();
    for mode in MODES {
        let job = post_ok(&app, &acct.key, mode, &bodies.of(mode)).await;
        let (_, page) = app.get(&acct.key, &format!("/jobs?types=ltx-video-2.3-22b/{mode}")).await;
        assert_eq!(page["items"][0]["job_id"], job["job_id"], "{mode}");
        let done = app.wait_terminal(&acct.key, &job_id(&job)).await;
        assert_eq!(done["status"], "completed", "{mode}: {done}");
        assert_eq!(done["request"]["mode"], job["request"]["mode"], "the mode is stored as sent");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enhanced_job_keeps_its_prompt_and_shows_the_enhanced_one_while_kreas_jobs_show_neither() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let bodies = Bodies::new();
    let body = with(with(bodies.of("keyframes"), "enhance_prompt", json!(true)), "quality", json!("fast"));
    let done = app.wait_terminal(&acct.key, &job_id(&post_ok(&app, &acct.key, "keyframes", &body).await)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        (done["request"]["prompt"].as_str(), done["request"]["enhance_prompt"].as_bool()),
        (Some("red to blue"), Some(true))
    );
    assert_eq!(done["request"]["quality"], "fast");
    let enhanced = done["result"]["enhanced_prompt"].as_str().unwrap_or_else(|| panic!("{done}"));
    assert!(enhanced.starts_with("red to blue") && enhanced.len() > "red to blue".len(), "{enhanced}");
    let krea = app.wait_terminal(&acct.key, &job_id(&app.submit_ok(&acct.key, quick("krea")).await)).await;
    for absent in ["mode", "quality", "enhance_prompt"] {
        assert!(krea["request"].get(absent).is_none(), "{absent}: {krea}");
    }
    assert!(krea["result"].get("enhanced_prompt").is_none(), "{krea}");
}
