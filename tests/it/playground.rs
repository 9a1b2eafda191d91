//! The web playground at `/`, driven end to end in headless Chromium (Debian's, with
//! playwright-core from tests/browser, both installed by scripts/test): key, prompt, a dropped
//! start image, generate, live status, the video played to its end, the history and the balance;
//! then an additive job (keyframes, quality, prompt enhancement) through its form.
use crate::helpers::*;
use serde_json::Value;

const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");

#[tokio::test(flavor = "multi_thread")]
async fn the_playground_is_served_without_a_key() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("connect-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("ltx-serve playground") && html.contains("/generate/video/lightricks/ltx-video-2.3-22b"));
    // A form per additive mode, the preset and prompt enhancement.
    for needle in [
        r#"value="keyframes""#,
        r#"value="audio-to-video""#,
        r#"value="retake""#,
        r#"id="quality""#,
        r#"id="enhance-prompt""#,
        "/prompts/enhance",
    ] {
        assert!(html.contains(needle), "the page has no `{needle}`");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Chromium and playwright-core (scripts/test installs them)"]
async fn a_clip_made_in_the_playground_plays_to_the_end_in_chromium() {
    assert!(
        std::path::Path::new(BROWSER_DIR).join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run the suite with scripts/test"
    );
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let image = app.data_dir.path().join("sunrise.png");
    image::RgbImage::from_pixel(64, 36, image::Rgb([230, 60, 30])).save(&image).unwrap();
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("playground.png");
    let _ = std::fs::remove_file(&screenshot);
    let run = tokio::process::Command::new("node")
        .current_dir(BROWSER_DIR)
        .arg("playground.mjs")
        .args([&app.base, &acct.key, image.to_str().unwrap(), screenshot.to_str().unwrap()])
        .output();
    let output =
        tokio::time::timeout(std::time::Duration::from_secs(180), run).await.expect("the browser run ends").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(summary["status"].as_str().unwrap().starts_with("completed"), "{summary}");
    assert_eq!(summary["played"]["ended"], true, "the video played to its end: {summary}");
    let duration = summary["played"]["duration"].as_f64().unwrap();
    assert!((duration - 48.0 / 24.0).abs() < 0.1, "49 frames at 24 fps: {duration}");
    assert_eq!((summary["played"]["width"].as_u64(), summary["played"]["height"].as_u64()), (Some(1280), Some(720)));
    assert!(summary["history"].as_u64().unwrap() >= 1);
    assert!(summary["balance"].as_str().unwrap().contains("Balance $"), "{summary}");
    assert_eq!(summary["errors"], serde_json::json!([]), "no script errors in the page");
    // The additive job made through its form: keyframes, with the prompt the engine used shown.
    assert!(summary["additive"]["status"].as_str().unwrap().starts_with("completed"), "{summary}");
    assert!(summary["additive"]["enhanced"].as_str().unwrap().contains("[preview enhancement]"), "{summary}");
    // The clip really started from the dropped image, and both were charged.
    let (_, jobs) = app.get(&acct.key, "/jobs").await;
    let items = jobs["items"].as_array().unwrap();
    assert!(items.iter().any(|j| j["request"]["start_image"].as_str().is_some_and(|u| u.contains("/files/assets/"))));
    assert_eq!(app.account_view(&acct.key).await["usage"]["jobs_completed"], 2);
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000, "a screenshot of the finished page");
    println!("playground screenshot: {}", screenshot.display());
}
