//! A valid request completes, and the MP4 is what the request asked for.
use crate::helpers::*;
use crate::probe::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_request_completes_with_the_mp4_it_asked_for() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let job = app.submit_ok(&acct.key, json!({"prompt": "A lighthouse at dusk", "num_frames": 49, "seed": 42})).await;
    assert_eq!(job["status"], "queued");
    assert!(job["completed_at"].is_null() && job["result"].is_null(), "{job}");
    let done = app.wait_terminal(&acct.key, &job_id(&job)).await;
    assert_eq!(done["status"], "completed", "{done}");
    let result = &done["result"];
    assert_eq!(result["num_frames"], 49);
    assert_eq!((result["width"].as_u64(), result["height"].as_u64()), (Some(1280), Some(720)));
    assert_eq!(result["engine"], "preview");
    assert_eq!(result["sandbox"], true);
    assert_eq!(result["seed"], 42);

    let video = app.download(result["urls"][0].as_str().unwrap(), "out.mp4").await;
    let probe = ffprobe(&video);
    let v = stream(&probe, "video").expect("a video stream");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(v["pix_fmt"], "yuv420p");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(1280), Some(720)));
    assert_eq!(v["r_frame_rate"], "24/1");
    assert_eq!(v["nb_read_frames"], "49");
    assert_eq!(v["color_space"], "bt709");
    let duration: f64 = v["duration"].as_str().unwrap().parse().unwrap();
    assert!((duration - 49.0 / 24.0).abs() < 0.01, "duration {duration}");
    let a = stream(&probe, "audio").expect("an audio stream");
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(a["sample_rate"], "48000");
    assert_eq!(a["channels"], 2);
    let boxes = top_level_boxes(&std::fs::read(&video).unwrap());
    let (moov, mdat) = (boxes.iter().position(|b| b == "moov"), boxes.iter().position(|b| b == "mdat"));
    assert!(moov.unwrap() < mdat.unwrap(), "not faststart: {boxes:?}");

    let poster = app.download(result["thumbnail_url"].as_str().unwrap(), "poster.jpg").await;
    let poster = image::open(poster).expect("the poster is an image");
    assert_eq!((poster.width(), poster.height()), (640, 360));
}

#[tokio::test(flavor = "multi_thread")]
async fn portrait_silent_clip_has_no_audio_stream() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let job = app
        .submit_ok(
            &acct.key,
            json!({"prompt": "a tall tree", "aspect_ratio": "9:16", "num_frames": 10, "generate_audio": false}),
        )
        .await;
    let done = app.wait_terminal(&acct.key, &job_id(&job)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["has_audio"], false);
    let probe = ffprobe(&app.download(done["result"]["urls"][0].as_str().unwrap(), "p.mp4").await);
    let v = stream(&probe, "video").unwrap();
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(720), Some(1280)));
    // 10 frames were asked for; the model makes 8k+1, and the job reports what it made.
    assert_eq!(v["nb_read_frames"], "17");
    assert_eq!(done["result"]["num_frames"], 17);
    assert!(stream(&probe, "audio").is_none(), "{probe}");
}

#[tokio::test(flavor = "multi_thread")]
async fn clip_starts_on_start_image_and_ends_on_end_image() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let body = json!({
        "prompt": "red to blue",
        "num_frames": 17,
        "start_image": png_data_uri(32, 18, [230, 20, 20]),
        "end_image": png_data_uri(18, 32, [20, 20, 230]),
    });
    let done = app.wait_terminal(&acct.key, &job_id(&app.submit_ok(&acct.key, body).await)).await;
    assert_eq!(done["status"], "completed", "{done}");
    // The job echoes a data: image as its type and size, not its bytes.
    let echoed = done["request"]["start_image"].as_str().unwrap();
    assert!(echoed.starts_with("data:image/png;base64,<") && echoed.ends_with(" bytes>"), "{echoed}");
    let video = app.download(done["result"]["urls"][0].as_str().unwrap(), "se.mp4").await;
    let near =
        |got: [u8; 3], want: [u8; 3]| got.iter().zip(want).all(|(g, w)| (i32::from(*g) - i32::from(w)).abs() < 24);
    let first = pixel(&video, 0, 640, 360);
    let last = pixel(&video, 16, 640, 360);
    assert!(near(first, [230, 20, 20]), "first frame {first:?}");
    assert!(near(last, [20, 20, 230]), "last frame {last:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn same_seed_same_video_and_results_support_ranges() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let body = json!({"prompt": "determinism", "num_frames": 9, "seed": 7, "generate_audio": false});
    let a = app.wait_terminal(&acct.key, &job_id(&app.submit_ok(&acct.key, body.clone()).await)).await;
    let b = app.wait_terminal(&acct.key, &job_id(&app.submit_ok(&acct.key, body).await)).await;
    let (url_a, url_b) = (a["result"]["urls"][0].as_str().unwrap(), b["result"]["urls"][0].as_str().unwrap());
    assert_ne!(url_a, url_b, "each job has its own unguessable URL");
    let va = app.download(url_a, "a.mp4").await;
    let vb = app.download(url_b, "b.mp4").await;
    assert_eq!(pixel(&va, 4, 100, 100), pixel(&vb, 4, 100, 100));

    // Result files need no key and serve byte ranges (players seek with them).
    let ranged = app.client.get(url_a).header("Range", "bytes=0-99").send().await.unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.headers()["content-type"], "video/mp4");
    assert_eq!(ranged.bytes().await.unwrap().len(), 100);
    let missing = app.client.get(app.url("/results/0000/video.mp4")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_that_is_not_an_image_fails_the_job_without_charge() {
    use base64::Engine as _;
    let app = TestApp::start().await;
    let acct = app.account("1").await;
    let fake =
        format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(b"this is not a png"));
    let job = app.submit_ok(&acct.key, json!({"prompt": "x", "num_frames": 9, "start_image": fake})).await;
    let done = app.wait_terminal(&acct.key, &job_id(&job)).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "invalid_input");
    assert!(done["error"]["message"].as_str().unwrap().contains("start_image"), "{done}");
    assert_eq!(done["result"]["error"], done["error"]);
    let account = app.account_view(&acct.key).await;
    assert_eq!(account["balance_usd"], "1.00");
    assert_eq!(account["held_usd"], "0.00");
}
