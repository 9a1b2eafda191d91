//! The command-line client against a live server: generate (follow + download), jobs, account.
use crate::helpers::*;
use crate::probe::{ffprobe, stream};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ltx-serve");

async fn run(args: Vec<String>, key: Option<&str>) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args).env_remove("LTX_SERVE_API_KEY");
    if let Some(key) = key {
        cmd.env("LTX_SERVE_API_KEY", key);
    }
    cmd.output().await.unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_follows_the_job_and_downloads_the_mp4() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let image = app.data_dir.path().join("start.png");
    image::RgbImage::from_pixel(16, 9, image::Rgb([200, 30, 30])).save(&image).unwrap();
    let out = app.data_dir.path().join("clip.mp4");
    let output = run(
        args(&["generate", "--server", &app.base, "--prompt", "cli clip", "--num-frames", "9", "--no-audio", "--json"])
            .into_iter()
            .chain(args(&["--start-image", image.to_str().unwrap(), "--out", out.to_str().unwrap()]))
            .collect(),
        Some(&acct.key),
    )
    .await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let job: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(job["status"], "completed");
    assert!(job["request"]["start_image"].as_str().unwrap().starts_with("data:image/png;base64,<"));
    let probe = ffprobe(&out);
    assert_eq!(stream(&probe, "video").unwrap()["nb_read_frames"], "9");
    assert!(stream(&probe, "audio").is_none());

    // Without --json: a progress display, then a summary line.
    let output =
        run(args(&["generate", "--server", &app.base, "--prompt", "again", "--num-frames", "9"]), Some(&acct.key))
            .await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("completed: http://"));

    let listed = run(args(&["jobs", "--server", &app.base, "list"]), Some(&acct.key)).await;
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    let id = job["job_id"].as_str().unwrap();
    let got: Value =
        serde_json::from_slice(&run(args(&["jobs", "--server", &app.base, "get", id]), Some(&acct.key)).await.stdout)
            .unwrap();
    assert_eq!(got["job_id"], job["job_id"]);
    let cancel = run(args(&["jobs", "--server", &app.base, "cancel", id]), Some(&acct.key)).await;
    assert!(!cancel.status.success());
    assert!(String::from_utf8_lossy(&cancel.stderr).contains("409"), "{}", String::from_utf8_lossy(&cancel.stderr));
    let account: Value =
        serde_json::from_slice(&run(args(&["account", "--server", &app.base]), Some(&acct.key)).await.stdout).unwrap();
    assert_eq!(account["usage"]["jobs_completed"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_says_what_is_wrong() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let output = run(args(&["generate", "--server", &app.base, "--prompt", "x"]), None).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no API key"));
    let acct = app.account("5").await;
    let output =
        run(args(&["generate", "--server", &app.base, "--prompt", "x", "--num-frames", "500"]), Some(&acct.key)).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("`num_frames` must be an integer from 9 to 481"));
}
