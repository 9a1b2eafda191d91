//! The additive modes' defining properties, checked from the decoded output of the preview
//! engine through the real endpoints: keyframes appear at their frames; audio-to-video's audio
//! is the input's, sample for sample; a retake keeps the input's frames outside its span (within
//! H.264's loss: the engine hands the encoder the input's exact decoded frames — a unit test of
//! the preview renderer shows that — and the output is encoded once more at CRF 20, so each kept
//! frame is at least 35 dB PSNR from the input's, while regenerated ones are far below).
use crate::helpers::*;
use crate::probe::*;
use base64::Engine as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

async fn submit_mode(app: &TestApp, key: &str, mode: &str, body: Value) -> Value {
    let response =
        app.client.post(app.url(&format!("{GENERATE}/{mode}"))).bearer_auth(key).json(&body).send().await.unwrap();
    let status = response.status();
    let job: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{mode} with {body} answered {job}");
    job
}

/// Submits, waits, and downloads the finished clip.
async fn render(app: &TestApp, key: &str, mode: &str, body: Value) -> PathBuf {
    let job = submit_mode(app, key, mode, body).await;
    let done = app.wait_terminal(key, &job_id(&job)).await;
    assert_eq!(done["status"], "completed", "{done}");
    app.download(done["result"]["urls"][0].as_str().unwrap(), &format!("{mode}.mp4")).await
}

fn ffmpeg(args: &[&str], out: &Path) -> PathBuf {
    let status =
        Command::new("ffmpeg").args(["-hide_banner", "-loglevel", "error", "-y"]).args(args).arg(out).status().unwrap();
    assert!(status.success(), "ffmpeg {args:?}");
    out.to_owned()
}

fn data_uri(mime: &str, path: &Path) -> String {
    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap()))
}

/// The first audio stream, decoded as raw `format` samples.
fn samples(path: &Path, format: &str) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-f", format, "pipe:1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Every frame, decoded at its own size as RGB.
fn all_frames(path: &Path, width: usize, height: usize) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout.chunks_exact(width * height * 3).map(<[u8]>::to_vec).collect()
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum::<f64>() / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// The centre of a frame scaled to 160×90, away from the preview engine's text boxes.
fn centre(path: &Path, index: u32) -> Vec<u8> {
    let rgb = frame(path, index, 160, 90);
    (22..68).flat_map(|y| rgb[(y * 160 + 40) * 3..(y * 160 + 120) * 3].to_vec()).collect()
}

fn flat(rgb: [u8; 3]) -> Vec<u8> {
    rgb.iter().copied().cycle().take(46 * 80 * 3).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn keyframes_appear_at_their_frames() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let (red, green, blue) = ([220, 20, 20], [20, 200, 20], [20, 20, 220]);
    let body = json!({
        "prompt": "three colours",
        "num_frames": 33,
        "generate_audio": false,
        "keyframes": [
            {"image": png_data_uri(64, 36, red), "frame": 0},
            {"image": png_data_uri(64, 36, green), "frame": 16},
            {"image": png_data_uri(64, 36, blue), "seconds": 1.0},
        ],
    });
    let video = render(&app, &acct.key, "keyframes", body).await;
    assert_eq!(stream(&ffprobe(&video), "video").unwrap()["nb_read_frames"], "33");
    for (frame, colour, distant) in [(0, red, 24), (16, green, 0), (24, blue, 0)] {
        let at = mean_abs_diff(&centre(&video, frame), &flat(colour));
        let away = mean_abs_diff(&centre(&video, distant), &flat(colour));
        assert!(at < 6.0, "frame {frame} is its keyframe's image ({at:.1} apart)");
        assert!(away > 60.0, "frame {distant} is not frame {frame}'s image ({away:.1} apart)");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn audio_to_video_keeps_the_inputs_samples_exactly() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let dir = tempfile::tempdir().unwrap();
    // PCM (stored losslessly, padded to the clip) and AAC (its packets copied).
    let wav = ffmpeg(&["-f", "lavfi", "-i", "sine=f=330:r=44100:d=1.1", "-ac", "2"], &dir.path().join("in.wav"));
    let m4a = ffmpeg(&["-f", "lavfi", "-i", "sine=f=550:r=48000:d=1.1", "-c:a", "aac"], &dir.path().join("in.m4a"));
    for (input, mime, format) in [(&wav, "audio/wav", "s16le"), (&m4a, "audio/mp4", "f32le")] {
        let body = json!({"prompt": "follow the tone", "audio": data_uri(mime, input)});
        let video = render(&app, &acct.key, "audio-to-video", body).await;
        let probe = ffprobe(&video);
        // 1.1 s is 27 frames of motion: 33 frames on the model's 8k + 1 grid.
        assert_eq!(stream(&probe, "video").unwrap()["nb_read_frames"], "33", "{mime}");
        let (expected, got) = (samples(input, format), samples(&video, format));
        assert!(got.len() >= expected.len(), "{mime}: the whole input is in the clip");
        assert!(got[..expected.len()] == expected[..], "{mime}: the output's samples are the input's");
        assert!(got[expected.len()..].iter().all(|b| *b == 0), "{mime}: silence after the input ends");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retake_keeps_the_inputs_frames_and_audio_outside_the_span() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let dir = tempfile::tempdir().unwrap();
    // At the output's own size (16:9, 720p), so no scaling stands between input and output.
    let input = ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=1280x720:r=24:d=1.5",
            "-f",
            "lavfi",
            "-i",
            "sine=f=440:d=1.5",
            "-c:v",
            "libx264",
            "-crf",
            "12",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ],
        &dir.path().join("in.mp4"),
    );
    let body = json!({
        "prompt": "a different middle",
        "video": data_uri("video/mp4", &input),
        "start_seconds": 0.5,
        "end_seconds": 1.0,
        "regenerate_audio": false,
    });
    let video = render(&app, &acct.key, "retake", body).await;
    let (inputs, outputs) = (all_frames(&input, 1280, 720), all_frames(&video, 1280, 720));
    // 36 input frames: the first 33 (8k + 1) are the clip; frames 12..24 are regenerated.
    assert_eq!(outputs.len(), 33);
    for (i, frame) in outputs.iter().enumerate() {
        let db = psnr(frame, &inputs[i]);
        if (12..24).contains(&i) {
            assert!(db < 20.0, "frame {i} is regenerated ({db:.1} dB from the input's)");
        } else {
            assert!(db >= 35.0, "frame {i} is the input's ({db:.1} dB)");
        }
    }
    // `regenerate_audio: false`: the input's audio packets, so its samples, unchanged.
    let (expected, got) = (samples(&input, "f32le"), samples(&video, "f32le"));
    // The input's tone is mono at 44.1 kHz: the clip's 33 frames are 60637 of its samples.
    let clip_bytes = 33 * 44_100 / 24 * 4;
    assert!(got.len() >= clip_bytes && got.len() <= expected.len(), "{} bytes of audio", got.len());
    assert!(got[..] == expected[..got.len()], "the kept audio's samples are the input's");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keyframe_image_another_site_fails_to_give_fails_the_job_uncharged() {
    use axum::http::header;
    let router = axum::Router::new()
        .route(
            "/red.png",
            axum::routing::get(|| async { ([(header::CONTENT_TYPE, "image/png")], png_bytes(64, 36, [220, 20, 20])) }),
        )
        .route(
            "/page.html",
            axum::routing::get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<p>not an image</p>") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let app = TestApp::start_with(|c| c.allow_private_urls = true).await;
    let acct = app.account("5").await;
    let body = json!({
        "prompt": "x",
        "num_frames": 17,
        "keyframes": [{"image": format!("{site}/red.png"), "frame": 0}, {"image": format!("{site}/page.html"), "frame": 16}],
    });
    let job = submit_mode(&app, &acct.key, "keyframes", body).await;
    let failed = app.wait_terminal(&acct.key, &job_id(&job)).await;
    assert_eq!(
        (failed["status"].as_str(), failed["error"]["code"].as_str()),
        (Some("failed"), Some("invalid_input")),
        "{failed}"
    );
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("`keyframes[1].image` could not be used") && message.contains("text/html"),
        "{message}"
    );
    let account = app.account_view(&acct.key).await;
    assert_eq!((account["balance_usd"].as_str(), account["held_usd"].as_str()), (Some("5.00"), Some("0.00")));
}
