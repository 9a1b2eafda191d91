//! The real `ltx` engine end to end on the CPU: `serve` with `--engine ltx` runs the official
//! ltx-core/ltx-pipelines code on a tiny random-weight LTX-2.3-shaped model set
//! (engines/ltx/ltx_engine/tiny.py; scripts/test makes it and the engine's environment).
use crate::helpers::*;
use crate::probe::{ffprobe, stream};
use ltx_serve::config::EngineChoice;
use ltx_serve::store::Style;
use ltx_serve::worker::engines::ltx::{LtxConfig, Pipeline};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) fn env_path(name: &str) -> PathBuf {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the suite with scripts/test, which makes the LTX engine's environment and tiny models"))
        .into()
}

pub(crate) fn tiny_ltx(pipeline: Pipeline, data_dir: &Path) -> LtxConfig {
    let models = env_path("LTX_TEST_LTX_MODELS");
    let mut config = LtxConfig::new(
        models.join("ltx-2.3-tiny-distilled.safetensors"),
        models.join("gemma"),
        models.join("ltx-2.3-tiny-spatial-upscaler-x2.safetensors"),
        data_dir.join("tmp/ltx-engine"),
    );
    config.python = env_path("LTX_TEST_LTX_PYTHON");
    config.distilled_lora = Some(models.join("ltx-2.3-tiny-distilled-lora.safetensors"));
    config.pipeline = pipeline;
    config.device = "cpu".into();
    config.dev_steps = Some(2);
    config.start_timeout = Duration::from_secs(120);
    config
}

async fn ltx_app(pipeline: Pipeline) -> TestApp {
    TestApp::start_with(|c| c.engine = EngineChoice::Ltx(Box::new(tiny_ltx(pipeline, &c.data_dir)))).await
}

async fn completed(app: &TestApp, key: &str, body: Value, name: &str) -> (Value, PathBuf) {
    let job = app.submit_ok(key, body).await;
    let done = app.wait_terminal(key, job["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["engine"], "ltx");
    let video = app.download(done["result"]["urls"][0].as_str().unwrap(), name).await;
    (done, video)
}

/// Every decoded frame, as RGB bytes.
fn decoded_frames(path: &Path) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[tokio::test]
#[ignore = "needs the LTX engine venv and tiny model: LTX_TEST_LTX_PYTHON, LTX_TEST_LTX_MODELS (scripts/test makes them)"]
async fn the_distilled_pipeline_runs_the_official_code_and_repeats_itself_for_a_seed() {
    let app = ltx_app(Pipeline::Distilled).await;
    let acct = app.account("10").await;
    let request = json!({"prompt": "a red fox runs through a snowy forest", "num_frames": 9, "seed": 11});

    let (_, first) = completed(&app, &acct.key, request.clone(), "first.mp4").await;
    let probe = ffprobe(&first);
    let video = stream(&probe, "video").unwrap();
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(1280), Some(720)), "{probe}");
    assert_eq!(video["nb_read_frames"], "9");
    assert_eq!(video["r_frame_rate"], "24/1");
    let audio = stream(&probe, "audio").expect("an audio track");
    assert_eq!(audio["sample_rate"], "48000");
    assert_eq!(audio["channels"], 2);

    let (_, second) = completed(&app, &acct.key, request.clone(), "second.mp4").await;
    let frames = decoded_frames(&first);
    assert_eq!(frames.len(), 1280 * 720 * 3 * 9);
    assert!(frames == decoded_frames(&second), "the same seed gives the same frames");

    let mut other_seed = request.clone();
    other_seed["seed"] = json!(12);
    other_seed["generate_audio"] = json!(false);
    let (_, third) = completed(&app, &acct.key, other_seed, "third.mp4").await;
    assert!(frames != decoded_frames(&third), "another seed gives other frames");
    assert!(stream(&ffprobe(&third), "audio").is_none(), "generate_audio: false is a silent file");
}

#[tokio::test]
#[ignore = "needs the LTX engine venv and tiny model: LTX_TEST_LTX_PYTHON, LTX_TEST_LTX_MODELS (scripts/test makes them)"]
async fn the_dev_pipeline_takes_start_and_end_images_and_fuses_a_style_lora() {
    let app = ltx_app(Pipeline::Dev).await;
    let acct = app.account("10").await;
    // The tiny LoRA fits the tiny model, not the 22B one POST /styles checks against, so it is
    // put in the library directly.
    let file_key = "styles/tiny-style.safetensors".to_owned();
    let stored = app.data_dir.path().join("library").join(&file_key);
    std::fs::create_dir_all(stored.parent().unwrap()).unwrap();
    std::fs::copy(env_path("LTX_TEST_LTX_MODELS").join("tiny-style-lora.safetensors"), &stored).unwrap();
    let style_id = uuid::Uuid::new_v4();
    app.store
        .create_style(Style {
            id: style_id,
            account_id: acct.id,
            owner_name: "test".into(),
            title: Some("tiny".into()),
            prompt: String::new(),
            public: false,
            urls: Vec::new(),
            cover_url: None,
            file_key,
            size_bytes: std::fs::metadata(&stored).unwrap().len(),
            lora_rank: 2,
            created_at: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();

    let plain = json!({"prompt": "a calm lake at dawn", "num_frames": 9, "seed": 4});
    let mut framed = plain.clone();
    framed["start_image"] = json!(png_data_uri(64, 36, [220, 40, 30]));
    framed["end_image"] = json!(png_data_uri(64, 36, [30, 40, 220]));
    let mut styled = framed.clone();
    styled["styles"] = json!([{"id": style_id.to_string(), "strength": 1.0}]);

    let (_, plain) = completed(&app, &acct.key, plain, "plain.mp4").await;
    let (_, framed) = completed(&app, &acct.key, framed, "framed.mp4").await;
    let (done, styled) = completed(&app, &acct.key, styled, "styled.mp4").await;
    assert_eq!(done["request"]["styles"][0]["id"], style_id.to_string());
    let (plain, framed, styled) = (decoded_frames(&plain), decoded_frames(&framed), decoded_frames(&styled));
    assert!(plain != framed, "the images conditioned the clip");
    assert!(framed != styled, "the style's LoRA changed the transformer");
}
