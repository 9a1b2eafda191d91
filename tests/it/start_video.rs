//! `start_video`: continue a clip. The new clip is the requested length and starts on the
//! input's last frame; a file that is not a clip we can continue is a 400 naming the field, and
//! nothing is held or charged.
use crate::assets::upload_ok;
use crate::helpers::*;
use crate::probe::*;
use base64::Engine as _;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An MP4 made by ffmpeg: `lead` seconds of red, then `tail` seconds of the moving test pattern
/// (so the last frame is unlike the first, and not one flat colour).
fn clip(dir: &Path, name: &str, size: &str, fps: u32, lead: f64, tail: f64) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", &format!("color=c=red:s={size}:r={fps}:d={lead}")])
        .args(["-f", "lavfi", "-i", &format!("testsrc2=s={size}:r={fps}:d={tail}")])
        .args(["-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]"])
        .args(["-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    path
}

fn frame_count(path: &Path) -> u32 {
    stream(&ffprobe(path), "video").unwrap()["nb_read_frames"].as_str().unwrap().parse().unwrap()
}

/// The centre half of a frame scaled to 160×90 (away from the overlay boxes the preview engine
/// draws at the top-left and bottom-left corners).
fn centre(path: &Path, index: u32) -> Vec<u8> {
    let rgb = frame(path, index, 160, 90);
    let mut out = Vec::new();
    for y in 22..68 {
        out.extend_from_slice(&rgb[(y * 160 + 40) * 3..(y * 160 + 120) * 3]);
    }
    out
}

/// How far apart two frames' centres may be, as a mean absolute difference per channel (0..255):
/// the input and the output are each H.264-encoded once, and the input is scaled ×4.
const TOLERANCE: f64 = 8.0;

#[tokio::test(flavor = "multi_thread")]
async fn a_continued_clip_starts_on_the_inputs_last_frame() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), "in.mp4", "320x180", 24, 1.0, 0.5);
    let last = frame_count(&input) - 1;
    let asset = upload_ok(&app, &acct.key, std::fs::read(&input).unwrap(), "in.mp4").await;
    assert_eq!(asset["mime_type"], "video/mp4");
    let data_uri = format!(
        "data:video/mp4;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&input).unwrap())
    );
    for (source, start_video) in [("asset", asset["image_url"].clone()), ("data: URI", json!(data_uri))] {
        let body = json!({"prompt": "go on", "num_frames": 17, "start_video": start_video, "generate_audio": false});
        let done = app.wait_terminal(&acct.key, &job_id(&app.submit_ok(&acct.key, body).await)).await;
        assert_eq!(done["status"], "completed", "{source}: {done}");
        assert!(done["request"]["start_image"].is_null(), "{done}");
        let echoed = done["request"]["start_video"].as_str().unwrap();
        assert!(echoed == start_video || echoed.starts_with("data:video/mp4;base64,<"), "{source}: {echoed}");
        let video = app.download(done["result"]["urls"][0].as_str().unwrap(), "out.mp4").await;
        assert_eq!(frame_count(&video), 17, "{source}: the requested length, not the input's");
        let diff = mean_abs_diff(&centre(&video, 0), &centre(&input, last));
        assert!(diff < TOLERANCE, "{source}: the first frame is {diff:.1} from the input's last frame");
        let from_first = mean_abs_diff(&centre(&video, 0), &centre(&input, 0));
        assert!(from_first > 40.0, "{source}: it starts on the last frame, not the first ({from_first:.1})");
    }
    // Billed as any 17-frame clip: the generated clip is what is priced.
    let plain = app.submit_ok(&acct.key, json!({"prompt": "x", "num_frames": 17})).await;
    let continued =
        app.submit_ok(&acct.key, json!({"prompt": "x", "num_frames": 17, "start_video": asset["image_url"]})).await;
    assert_eq!(plain["price_usd"], continued["price_usd"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn what_cannot_be_continued_is_a_400_naming_start_video_and_costs_nothing() {
    let app = TestApp::start().await;
    let acct = app.account("1").await;
    let dir = tempfile::tempdir().unwrap();
    let png = upload_ok(&app, &acct.key, png_bytes(64, 64, [1, 2, 3]), "a.png").await;
    let long = clip(dir.path(), "long.mp4", "64x64", 2, 1.0, 20.0);
    let long = upload_ok(&app, &acct.key, std::fs::read(&long).unwrap(), "long.mp4").await;
    let tiny = clip(dir.path(), "tiny.mp4", "32x32", 24, 0.2, 0.2);
    let tiny = format!(
        "data:video/mp4;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&tiny).unwrap())
    );
    let noise = format!("data:video/mp4;base64,{}", base64::engine::general_purpose::STANDARD.encode([7u8; 300]));
    let ok = clip(dir.path(), "ok.mp4", "64x64", 24, 0.2, 0.2);
    let ok = upload_ok(&app, &acct.key, std::fs::read(&ok).unwrap(), "ok.mp4").await;
    let cases = [
        (json!({"start_video": png["image_url"]}), "`start_video` is not a video: the asset is image/png"),
        (json!({"start_video": noise}), "`start_video` is not a video"),
        (json!({"start_video": long["image_url"]}), "a clip to continue may be at most 20 s"),
        (json!({"start_video": tiny}), "is 32×32; each side must be from 64 to 8192 pixels"),
        (
            json!({"start_video": ok["image_url"], "start_image": png["image_url"]}),
            "`start_video` and `start_image` cannot be used together",
        ),
        (json!({"start_video": "data:image/png;base64,AAAA"}), "`start_video` must be an MP4, MOV or WebM video"),
        // The camelCase alias follows the sunset rule of the others (past it, as today's tests run).
        (json!({"startVideo": ok["image_url"]}), "`startVideo` is no longer accepted"),
    ];
    for (mut body, needle) in cases {
        body["prompt"] = json!("x");
        body["num_frames"] = json!(9);
        assert_error(app.submit(&acct.key, body.clone()).await, 400, needle).await;
    }
    let account = app.account_view(&acct.key).await;
    assert_eq!((account["balance_usd"].as_str(), account["held_usd"].as_str()), (Some("1.00"), Some("0.00")));
    // The same account may continue a clip that fits, with `end_image` too.
    let body = json!({"prompt": "x", "num_frames": 9, "start_video": ok["image_url"], "end_image": png["image_url"]});
    let done = app.wait_terminal(&acct.key, &job_id(&app.submit_ok(&acct.key, body).await)).await;
    assert_eq!(done["status"], "completed", "{done}");
}

/// A stand-in for another site: a clip, a still image, and a clip longer than the limit.
async fn video_site(clip: Vec<u8>, long: Vec<u8>) -> String {
    use axum::http::header;
    use axum::routing::get;
    let (clip, long) = (std::sync::Arc::new(clip), std::sync::Arc::new(long));
    let router = axum::Router::new()
        .route("/clip.mp4", get(move || async move { ([(header::CONTENT_TYPE, "video/mp4")], clip.to_vec()) }))
        .route("/long.mp4", get(move || async move { ([(header::CONTENT_TYPE, "video/mp4")], long.to_vec()) }))
        .route("/cat.png", get(|| async { ([(header::CONTENT_TYPE, "image/png")], png_bytes(64, 64, [1, 2, 3])) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

#[tokio::test(flavor = "multi_thread")]
async fn another_sites_clip_is_fetched_and_checked_by_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), "in.mp4", "320x180", 24, 0.5, 0.5);
    let long = clip(dir.path(), "long.mp4", "64x64", 2, 1.0, 20.0);
    let site = video_site(std::fs::read(&input).unwrap(), std::fs::read(&long).unwrap()).await;
    let app = TestApp::start_with(|c| c.allow_private_urls = true).await;
    let acct = app.account("5").await;
    let run = |path: &str| {
        let (app, key, url) = (&app, acct.key.clone(), format!("{site}{path}"));
        async move {
            let body = json!({"prompt": "x", "num_frames": 9, "start_video": url, "generate_audio": false});
            let job = app.submit_ok(&key, body).await;
            app.wait_terminal(&key, &job_id(&job)).await
        }
    };
    let done = run("/clip.mp4").await;
    assert_eq!(done["status"], "completed", "{done}");
    let video = app.download(done["result"]["urls"][0].as_str().unwrap(), "fetched.mp4").await;
    let diff = mean_abs_diff(&centre(&video, 0), &centre(&input, frame_count(&input) - 1));
    assert!(diff < TOLERANCE, "the first frame is {diff:.1} from the fetched clip's last frame");
    for (path, why) in [("/cat.png", "returned image/png, not a video"), ("/long.mp4", "at most 20 s")] {
        let failed = run(path).await;
        assert_eq!(
            (failed["status"].as_str(), failed["error"]["code"].as_str()),
            (Some("failed"), Some("invalid_input"))
        );
        let message = failed["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("`start_video` could not be used") && message.contains(why), "{message}");
    }
    let account = app.account_view(&acct.key).await;
    assert_eq!(account["held_usd"], "0.00", "failed jobs hold nothing");
}
