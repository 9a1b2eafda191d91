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

/// Pixels of an RGB frame `width` wide inside the box at (`x`, `y`) of `w`×`h`: whether each is
/// drawn text (white; the dark box behind text and the picture under it never get that bright).
fn text_mask(rgb: &[u8], width: u32, (x, y, w, h): (u32, u32, u32, u32)) -> Vec<bool> {
    let mut mask = Vec::with_capacity((w * h) as usize);
    for row in y..y + h {
        for col in x..x + w {
            let at = ((row * width + col) * 3) as usize;
            mask.push(rgb[at..at + 3].iter().all(|&v| v >= 200));
        }
    }
    mask
}

fn differing(a: &[bool], b: &[bool]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_preview_clip_shows_its_request_and_the_same_request_gives_the_same_bytes() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let clip = |prompt: &str| json!({"prompt": prompt, "num_frames": 9, "seed": 7});
    let run = |body: serde_json::Value, file: &'static str| {
        let (app, key) = (&app, acct.key.clone());
        async move {
            let done = app.wait_terminal(&key, &job_id(&app.submit_ok(&key, body).await)).await;
            assert_eq!(done["status"], "completed", "{done}");
            app.download(done["result"]["urls"][0].as_str().unwrap(), file).await
        }
    };
    // One long word each, so the text fills the first line of the prompt box at the top left.
    let word = "Lighthousekeeperswatchtowerlanternroom".repeat(2);
    let a = run(clip(&word), "a.mp4").await;
    let again = run(clip(&word), "again.mp4").await;
    assert!(std::fs::read(&a).unwrap() == std::fs::read(again).unwrap(), "the same request gave other bytes");
    let b = run(clip(&"Mountainclimbersbasecampfirewoodpile".repeat(2)), "b.mp4").await;

    let (first_line, bottom_line) = ((18, 18, 1000, 58), (18, 644, 580, 58));
    let (a4, b4) = (frame(&a, 4, 1280, 720), frame(&b, 4, 1280, 720));
    let (text_a, text_b) = (text_mask(&a4, 1280, first_line), text_mask(&b4, 1280, first_line));
    let drawn = text_a.iter().filter(|&&t| t).count();
    assert!(drawn * 25 > text_a.len(), "white text strokes: {drawn} of {} pixels", text_a.len());
    let dark = (18..76u32)
        .flat_map(|y| (18..1018u32).map(move |x| (x, y)))
        .filter(|&(x, y)| a4[((y * 1280 + x) * 3) as usize..][..3].iter().all(|&v| v < 100))
        .count();
    assert!(dark * 2 > text_a.len(), "a dark box behind the text: {dark} of {} pixels", text_a.len());
    let other = differing(&text_a, &text_b);
    assert!(other * 20 > text_a.len(), "another prompt, other text: {other} of {} pixels", text_a.len());

    // Frame by frame the counter and timecode change; the prompt stays where it is.
    let a0 = frame(&a, 0, 1280, 720);
    let counter_changed = differing(&text_mask(&a0, 1280, bottom_line), &text_mask(&a4, 1280, bottom_line));
    assert!(counter_changed > 100, "the timecode changed in {counter_changed} pixels");
    let prompt_moved = differing(&text_mask(&a0, 1280, first_line), &text_a);
    assert!(prompt_moved * 50 < text_a.len(), "the prompt stays put: {prompt_moved} pixels changed");
}
