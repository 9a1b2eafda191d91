//! `--intermediate-previews` on the real `ltx` engine (the tiny model on the CPU): the job shows
//! stage 1's latents, decoded at half size, as `intermediate-complete` before its final clip.
use crate::helpers::*;
use crate::ltx_engine::tiny_ltx;
use crate::probe::{ffprobe, stream};
use ltx_serve::config::EngineChoice;
use ltx_serve::worker::engines::ltx::Pipeline;
use serde_json::json;

#[tokio::test]
#[ignore = "needs the LTX engine venv and tiny model: LTX_TEST_LTX_PYTHON, LTX_TEST_LTX_MODELS (scripts/test makes them)"]
async fn the_ltx_engine_shows_its_first_stage_before_the_final_clip() {
    let app = TestApp::start_with(|c| {
        c.engine = EngineChoice::Ltx(Box::new(tiny_ltx(Pipeline::Distilled, &c.data_dir)));
        c.intermediate_previews = true;
    })
    .await;
    let acct = app.account("10").await;
    let job = app.submit_ok(&acct.key, json!({"prompt": "a lighthouse at dusk", "num_frames": 9, "seed": 5})).await;
    let id = job_id(&job);
    let shown = app
        .wait_until(&acct.key, &id, |j| j["status"] == "intermediate-complete" || !j["completed_at"].is_null())
        .await;
    assert_eq!(shown["status"], "intermediate-complete", "{shown}");
    assert_eq!((shown["result"]["width"].as_u64(), shown["result"]["height"].as_u64()), (Some(640), Some(360)));
    let preview = app.download(shown["result"]["urls"][0].as_str().unwrap(), "stage1.mp4").await;
    let probe = ffprobe(&preview);
    let video = stream(&probe, "video").unwrap();
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(640), Some(360)), "{probe}");
    assert_eq!(video["nb_read_frames"], "9");

    let done = app.wait_terminal(&acct.key, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let clip = app.download(done["result"]["urls"][0].as_str().unwrap(), "final.mp4").await;
    let probe = ffprobe(&clip);
    let video = stream(&probe, "video").unwrap();
    assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(1280), Some(720)), "{probe}");
}
