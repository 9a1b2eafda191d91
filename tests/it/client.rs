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

#[tokio::test(flavor = "multi_thread")]
async fn generate_runs_each_additive_mode_with_local_files_uploaded() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let dir = app.data_dir.path();
    let ffmpeg = |args: &[&str], out: &str| {
        let path = dir.join(out);
        let status = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        path.to_str().unwrap().to_owned()
    };
    let (a, b) = (dir.join("a.png"), dir.join("b.png"));
    image::RgbImage::from_pixel(16, 9, image::Rgb([200, 30, 30])).save(&a).unwrap();
    image::RgbImage::from_pixel(16, 9, image::Rgb([30, 30, 200])).save(&b).unwrap();
    let wav = ffmpeg(&["-f", "lavfi", "-i", "sine=f=440:r=48000:d=0.3"], "tone.wav");
    let mp4 = ffmpeg(&["-f", "lavfi", "-i", "testsrc2=s=320x180:r=24:d=1", "-pix_fmt", "yuv420p"], "clip.mp4");
    let server = ["generate", "--server", &app.base];
    let runs: [(&str, Vec<String>); 3] = [
        (
            "keyframes",
            args(&["--prompt", "k", "--num-frames", "9", "--no-audio", "--keyframe"])
                .into_iter()
                .chain([format!("0={}", a.display()), "--keyframe".into(), format!("8,0.5={}", b.display())])
                .collect(),
        ),
        ("audio-to-video", args(&["--prompt", "a", "--audio", &wav, "--quality", "fast"])),
        (
            "retake",
            args(&["--prompt", "r", "--video", &mp4, "--start-seconds", "0.1", "--end-seconds", "0.6", "--keep-audio"]),
        ),
    ];
    for (mode, flags) in runs {
        let out = dir.join(format!("{mode}.mp4"));
        let argv: Vec<String> = args(&server)
            .into_iter()
            .chain([mode.to_owned()])
            .chain(flags)
            .chain(args(&["--json", "--out", out.to_str().unwrap()]))
            .collect();
        let output = run(argv, Some(&acct.key)).await;
        assert!(output.status.success(), "{mode}: {}", String::from_utf8_lossy(&output.stderr));
        let job: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(
            (job["status"].as_str(), job["type"].as_str()),
            (Some("completed"), Some(&*format!("ltx-video-2.3-22b/{mode}")))
        );
        assert!(out.exists(), "{mode}: saved");
        if mode == "keyframes" {
            let keyframes = &job["request"]["mode"]["keyframes"];
            assert!(keyframes[0]["image"].as_str().unwrap().starts_with(&app.url("/files/assets/")), "{job}");
            assert_eq!((keyframes[1]["frame"].as_u64(), keyframes[1]["strength"].as_f64()), (Some(8), Some(0.5)));
        }
        if mode == "retake" {
            assert_eq!(job["request"]["mode"]["regenerate_audio"], false);
        }
    }
    // A bad flag value is the server's 400, said plainly.
    let output = run(
        args(&server)
            .into_iter()
            .chain(args(&["retake", "--prompt", "r", "--video", &mp4, "--start-seconds", "0", "--end-seconds", "9"]))
            .collect(),
        Some(&acct.key),
    )
    .await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("`end_seconds` is 9, past the end of the video"));
}
