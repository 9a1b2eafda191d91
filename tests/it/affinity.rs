//! LoRA affinity end to end: engines report their resident LoRA set, workers announce it when
//! they ask for work, and the scheduler gives them a queued job of that set ahead of older ones
//! (for at most `--affinity-max-wait-secs`). Two remote workers, two styles, the same workload
//! with affinity on and off: affinity switches LoRA sets less, and every job runs once.
use crate::helpers::*;
use async_trait::async_trait;
use ltx_serve::worker::engine::{Engine, EngineError, ProgressSink, RenderSpec, RenderedClip};
use ltx_serve::worker::engines::preview::PreviewEngine;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The preview engine (one resident LoRA set, switches counted), noting the style set of each
/// clip it renders, in order.
struct Recorded {
    inner: PreviewEngine,
    rendered: Mutex<Vec<String>>,
}

#[async_trait]
impl Engine for Recorded {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn is_sandbox(&self) -> bool {
        true
    }
    fn resident_style_sets(&self) -> Vec<String> {
        self.inner.resident_style_sets()
    }
    async fn render(
        &self,
        spec: RenderSpec,
        out_dir: &Path,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<RenderedClip, EngineError> {
        self.rendered.lock().unwrap().push(spec.style_set_key());
        self.inner.render(spec, out_dir, progress, cancel).await
    }
}

/// Switches a worker made rendering `keys` in order, from the plain model it starts with.
fn switches_in(keys: &[String]) -> u64 {
    let mut resident = "";
    let mut switches = 0;
    for key in keys {
        if key != resident {
            switches += 1;
            resident = key;
        }
    }
    switches
}

fn lora(seed: u8) -> Vec<u8> {
    let mut file = crate::styles::safetensors(&[
        ("diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight", [4, 4096]),
        ("diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight", [4096, 4]),
    ]);
    *file.last_mut().unwrap() = seed;
    file
}

async fn style(app: &TestApp, key: &str, seed: u8) -> String {
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(lora(seed)).file_name("style.safetensors"))
        .text("title", format!("style {seed}"));
    let response = crate::assets::upload_form(app, key, "/styles", form).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// What one run of the workload did.
struct Run {
    /// Switches counted by the engines themselves.
    switches: u64,
    /// The style set of each clip each worker rendered, in order.
    rendered: Vec<Vec<String>>,
    /// Growth of the server's `ltx_style_switches_total` (process-wide: other tests add to it).
    metric_switches: f64,
}

/// 12 jobs queued up front, styles A A B B A A B B A A B B, then two equally fast remote
/// workers drain them (on SQLite, or on the PostgreSQL database `database_url`).
async fn run_workload(affinity_max_wait: Duration, database_url: Option<String>) -> Run {
    let app = TestApp::start_with(|c| {
        c.workers = 0;
        c.affinity_max_wait = affinity_max_wait;
        c.database_url = database_url;
    })
    .await;
    let acct = app.account_with_limits("100", 20, 0).await;
    let (a, b) = (style(&app, &acct.key, 1).await, style(&app, &acct.key, 2).await);
    let mut ids = Vec::new();
    for i in 0..12 {
        let id = if (i / 2) % 2 == 0 { &a } else { &b };
        let body = json!({"prompt": format!("clip {i}"), "num_frames": 9, "styles": [{"id": id, "strength": 1}]});
        ids.push(job_id(&app.submit_ok(&acct.key, body).await));
    }
    let before = metric(&app, "ltx_style_switches_total", &[]).await;

    let token = crate::fleet::worker_token(&*app.store).await;
    let stop = CancellationToken::new();
    let mut engines = Vec::new();
    let mut workers = Vec::new();
    for name in ["gpu-1", "gpu-2"] {
        let engine =
            Arc::new(Recorded { inner: PreviewEngine::new(Duration::from_millis(300)), rendered: Mutex::default() });
        let mut worker = crate::fleet::remote_worker(&app.base, &token, name, 0);
        // One job at a time, none leased ahead: a lease is asked for when the engine is free.
        worker.prefetch_jobs = 0;
        worker.engine = engine.clone() as Arc<dyn Engine>;
        engines.push(engine);
        workers.push(tokio::spawn(ltx_serve::worker::remote::run(worker, stop.clone())));
    }
    for id in &ids {
        let job = app.wait_terminal(&acct.key, id).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
    stop.cancel();
    for worker in workers {
        worker.await.unwrap().unwrap();
    }

    for id in &ids {
        let job = app.store.job(acct.id, id.parse().unwrap()).await.unwrap().unwrap();
        assert_eq!(job.attempts, 1, "job {id} was leased once");
    }
    let rendered: Vec<Vec<String>> = engines.iter().map(|e| e.rendered.lock().unwrap().clone()).collect();
    assert_eq!(rendered.iter().map(Vec::len).sum::<usize>(), 12, "every job rendered exactly once: {rendered:?}");
    let switches: u64 = engines.iter().map(|e| e.inner.resident.switches()).sum();
    assert_eq!(switches, rendered.iter().map(|keys| switches_in(keys)).sum::<u64>(), "{rendered:?}");
    let metric_switches = metric(&app, "ltx_style_switches_total", &[]).await - before;
    Run { switches, rendered, metric_switches }
}

#[tokio::test(flavor = "multi_thread")]
async fn affinity_switches_lora_sets_less_than_oldest_first() {
    compare(None).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn affinity_switches_lora_sets_less_than_oldest_first_on_postgres() {
    let (off, on) = (crate::pg::TestDatabase::create().await, crate::pg::TestDatabase::create().await);
    compare(Some((off.url.clone(), on.url.clone()))).await;
}

/// The workload oldest first, then with affinity (on SQLite, or on these two databases).
async fn compare(databases: Option<(String, String)>) {
    let (off_db, on_db) = databases.unzip();
    let oldest_first = run_workload(Duration::ZERO, off_db).await;
    let affinity = run_workload(Duration::from_secs(30), on_db).await;
    // Oldest first, two equally fast workers each take one job of every consecutive pair (A A,
    // B B, ...), so each alternates A B A B A B: 6 switches each, 12 in all.
    // With affinity a worker keeps its set while jobs of it are queued: at most the first load
    // and one change to the other style per worker, 4 in all.
    println!("oldest first: {:?}\naffinity: {:?}", oldest_first.rendered, affinity.rendered);
    assert!(affinity.switches <= 4, "{:?}", affinity.rendered);
    assert!(
        affinity.switches < oldest_first.switches,
        "affinity {} vs oldest first {} switches: {:?} / {:?}",
        affinity.switches,
        oldest_first.switches,
        affinity.rendered,
        oldest_first.rendered
    );
    // The server counted every switch where it granted the lease (other tests may add more).
    assert!(affinity.metric_switches >= affinity.switches as f64);
    assert!(oldest_first.metric_switches >= oldest_first.switches as f64);
}

#[tokio::test]
#[ignore = "needs the LTX engine venv and tiny model: LTX_TEST_LTX_PYTHON, LTX_TEST_LTX_MODELS (scripts/test makes them)"]
async fn the_ltx_engine_reports_the_style_set_it_holds() {
    use ltx_serve::worker::engine::LoraFile;
    use ltx_serve::worker::engines::ltx::{LtxEngine, Pipeline};
    let dir = tempfile::tempdir().unwrap();
    let engine = LtxEngine::start(crate::ltx_engine::tiny_ltx(Pipeline::Distilled, dir.path())).await.unwrap();
    assert_eq!(engine.resident_style_sets(), vec![String::new()], "a fresh engine holds the plain model");
    let lora = crate::ltx_engine::env_path("LTX_TEST_LTX_MODELS").join("tiny-style-lora.safetensors");
    let spec = RenderSpec {
        prompt: "a calm lake".into(),
        seed: 1,
        width: 128,
        height: 128,
        num_frames: 9,
        fps: 24,
        generate_audio: false,
        start_image: None,
        end_image: None,
        // Listed twice in halves and with a zero-strength extra: the key is normalised.
        loras: vec![
            LoraFile { style_id: "s1".into(), strength: 0.25, path: lora.clone() },
            LoraFile { style_id: "s2".into(), strength: 0.0, path: lora.clone() },
            LoraFile { style_id: "s1".into(), strength: 0.25, path: lora },
        ],
        mode: Default::default(),
        quality: None,
        enhance_prompt: false,
    };
    let out = tempfile::tempdir().unwrap();
    let (progress, _) = ProgressSink::new();
    engine.render(spec, out.path(), progress, CancellationToken::new()).await.unwrap();
    assert_eq!(engine.resident_style_sets(), vec!["s1@0.5".to_owned()], "the scheduler's key of the styles it applied");
}
