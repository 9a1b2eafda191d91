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
    // The local file was uploaded as an asset and used by its URL.
    let start = job["request"]["start_image"].as_str().unwrap();
    assert!(start.starts_with(&app.url("/files/assets/")), "{start}");
    assert_eq!(app.get(&acct.key, "/assets").await.1["items"][0]["image_url"], start);
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

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_cancels_the_job_it_follows() {
    let app = TestApp::start_with(|c| c.preview_sampling_time = std::time::Duration::from_secs(20)).await;
    let acct = app.account("5").await;
    let child = tokio::process::Command::new(BIN)
        .args(["generate", "--server", &app.base, "--prompt", "long", "--num-frames", "9", "--json"])
        .env("LTX_SERVE_API_KEY", &acct.key)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = loop {
        let (_, page) = app.get(&acct.key, "/jobs?status=sampling").await;
        if let Some(id) = page["items"][0]["job_id"].as_str() {
            break id.to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let output = child.wait_with_output().await.unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains(&format!("cancelled job {id}")));
    let job = app.job(&acct.key, &id).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    assert_eq!(app.account_view(&acct.key).await["held_usd"], "0.00");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_generate_draws_a_progress_bar() {
    let app = TestApp::start_with(|c| c.preview_sampling_time = std::time::Duration::from_millis(1500)).await;
    let acct = app.account("5").await;
    let out = app.data_dir.path().join("tty.mp4");
    // `script` runs the client in a pseudo-terminal, as a person would.
    let command =
        format!("{BIN} generate --server {} --prompt 'on a tty' --num-frames 9 --out {}", app.base, out.display());
    let output = tokio::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("LTX_SERVE_API_KEY", &acct.key)
        .env("TERM", "xterm")
        .output()
        .await
        .unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    assert!(screen.contains("sampling"), "the bar shows the status: {screen}");
    assert!(screen.contains('%'), "and the progress: {screen}");
    assert!(screen.contains("completed: http://") && screen.contains("saved to"), "{screen}");
    assert_eq!(stream(&ffprobe(&out), "video").unwrap()["nb_read_frames"], "9");
}
