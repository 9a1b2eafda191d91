//! `start_video` on the real `ltx` engine (tiny model, CPU): the worker hands the input clip's
//! last frame to the engine's frame-0 conditioning, the same code path as a `start_image`.
use crate::helpers::*;
use crate::ltx_engine::tiny_ltx;
use base64::Engine as _;
use ltx_serve::config::EngineChoice;
use ltx_serve::worker::engines::ltx::Pipeline;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

async fn rendered(app: &TestApp, key: &str, body: Value, name: &str) -> Vec<u8> {
    let job = app.submit_ok(key, body).await;
    let done = app.wait_terminal(key, &job_id(&job)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["engine"], "ltx");
    let video = app.download(done["result"]["urls"][0].as_str().unwrap(), name).await;
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&video)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

fn ffmpeg(args: &[&str], out: &Path) {
    let status = Command::new("ffmpeg").args(["-hide_banner", "-loglevel", "error", "-y"]).args(args).arg(out).status();
    assert!(status.unwrap().success());
}

fn data_uri(mime: &str, path: &PathBuf) -> String {
    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap()))
}

#[tokio::test]
#[ignore = "needs the LTX engine venv and tiny model: LTX_TEST_LTX_PYTHON, LTX_TEST_LTX_MODELS (scripts/test makes them)"]
async fn a_continued_clip_is_conditioned_on_the_inputs_last_frame() {
    let app =
        TestApp::start_with(|c| c.engine = EngineChoice::Ltx(Box::new(tiny_ltx(Pipeline::Distilled, &c.data_dir))))
            .await;
    let acct = app.account("10").await;
    let dir = tempfile::tempdir().unwrap();
    // Red, then the moving test pattern: the last frame is the pattern's.
    let clip = dir.path().join("in.mp4");
    let lavfi = ["-f", "lavfi", "-i", "color=c=red:s=128x72:r=24:d=0.5", "-f", "lavfi", "-i"];
    let tail = ["testsrc2=s=128x72:r=24:d=0.5", "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]"];
    ffmpeg(&[&lavfi[..], &tail[..], &["-pix_fmt", "yuv420p"]].concat(), &clip);
    // The last frame, taken the way the worker takes it, sent as a start image instead.
    let last = dir.path().join("last.png");
    let path = clip.to_str().unwrap();
    ffmpeg(&["-i", path, "-map", "0:v:0", "-an", "-update", "1", "-pix_fmt", "rgb24", "-f", "image2"], &last);

    let plain = json!({"prompt": "a calm lake at dawn", "num_frames": 9, "seed": 4, "generate_audio": false});
    let mut continued = plain.clone();
    continued["start_video"] = json!(data_uri("video/mp4", &clip));
    let mut imaged = plain.clone();
    imaged["start_image"] = json!(data_uri("image/png", &last));

    let plain = rendered(&app, &acct.key, plain, "plain.mp4").await;
    let continued = rendered(&app, &acct.key, continued, "continued.mp4").await;
    let imaged = rendered(&app, &acct.key, imaged, "imaged.mp4").await;
    assert!(plain != continued, "the input clip conditioned the new one");
    assert!(continued == imaged, "it is the frame-0 conditioning on the input's last frame, nothing else");
}
