//! The `ltx` engine's supervision, against a fake engine process that speaks the protocol
//! (tests/ltx/fake_engine.py): crashes, hangs, out-of-memory, cancel, and start-up errors.
use crate::helpers::*;
use crate::probe::{ffprobe, stream};
use ltx_serve::app::{Application, Starting};
use ltx_serve::config::{EngineChoice, ServeConfig};
use ltx_serve::worker::engines::ltx::LtxConfig;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn safetensors_with_config(path: &Path) {
    let header = r#"{"__metadata__":{"config":"{}"}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// Model files that pass the start-up checks, and the fake engine in place of the real one.
fn fake_engine(dir: &Path, checkpoint_name: &str) -> LtxConfig {
    let checkpoint = dir.join(checkpoint_name);
    let upsampler = dir.join("upsampler.safetensors");
    safetensors_with_config(&checkpoint);
    safetensors_with_config(&upsampler);
    let gemma = dir.join("gemma");
    std::fs::create_dir_all(&gemma).unwrap();
    for file in ["tokenizer.model", "preprocessor_config.json", "model.safetensors"] {
        std::fs::write(gemma.join(file), b"x").unwrap();
    }
    let mut config = LtxConfig::new(checkpoint, gemma, upsampler, dir.join("src"));
    config.python = PathBuf::from("python3");
    config.engine_script = Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ltx/fake_engine.py"));
    config.start_timeout = Duration::from_secs(30);
    config
}

fn engine_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("engine.log")).unwrap_or_default()
}

/// Waits until the engine has been started `n` times, without any job asking for it.
async fn started_times(dir: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine_log(dir).matches("started").count() < n {
        assert!(Instant::now() < deadline, "the engine was not restarted: {}", engine_log(dir));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn app_with(config: LtxConfig) -> TestApp {
    TestApp::start_with(|c| c.engine = EngineChoice::Ltx(Box::new(config))).await
}

fn request(prompt: &str) -> serde_json::Value {
    json!({"prompt": prompt, "num_frames": 9, "seed": 5})
}

/// Submits a 9-frame job with `prompt` (which tells the fake engine what to do) and returns it
/// once it has ended.
async fn run(app: &TestApp, key: &str, prompt: &str) -> serde_json::Value {
    let job = app.submit_ok(key, request(prompt)).await;
    app.wait_terminal(key, job["job_id"].as_str().unwrap()).await
}

#[tokio::test]
async fn a_crash_mid_job_fails_it_uncharged_and_a_new_engine_is_started_at_once() {
    let models = tempfile::tempdir().unwrap();
    let app = app_with(fake_engine(models.path(), "ltx.safetensors")).await;
    let acct = app.account("5").await;

    let done = run(&app, &acct.key, "crash please").await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "engine_error");
    assert!(done["error"]["message"].as_str().unwrap().contains("exited"), "{done}");
    assert_eq!(app.get(&acct.key, "/account").await.1["balance_usd"], "5.00", "a failed job costs nothing");
    started_times(models.path(), 2).await;

    let done = run(&app, &acct.key, "a calm lake").await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["engine"], "ltx");
    let log = engine_log(models.path());
    assert_eq!(log.matches("started").count(), 2, "restarted once: {log}");

    let video = app.download(done["result"]["urls"][0].as_str().unwrap(), "fake.mp4").await;
    let probe = ffprobe(&video);
    let picture = stream(&probe, "video").unwrap();
    assert_eq!(picture["width"], 1280, "cropped from the 1280×768 canvas: {probe}");
    assert_eq!(picture["height"], 720);
    assert_eq!(picture["nb_read_frames"], "9");
    assert!(stream(&probe, "audio").is_some());
}

#[tokio::test]
async fn a_hung_engine_times_out_and_is_replaced() {
    let models = tempfile::tempdir().unwrap();
    let mut config = fake_engine(models.path(), "ltx.safetensors");
    config.job_timeout = Duration::from_secs(2);
    let app = app_with(config).await;
    let acct = app.account("5").await;

    let done = run(&app, &acct.key, "hang forever").await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "timeout");
    started_times(models.path(), 2).await;

    let done = run(&app, &acct.key, "a calm lake").await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(engine_log(models.path()).matches("started").count(), 2);
}

#[tokio::test]
async fn out_of_memory_is_reported_as_out_of_memory_and_the_engine_keeps_serving() {
    let models = tempfile::tempdir().unwrap();
    let app = app_with(fake_engine(models.path(), "ltx.safetensors")).await;
    let acct = app.account("5").await;

    let done = run(&app, &acct.key, "oom").await;
    assert_eq!(done["error"]["code"], "out_of_memory", "{done}");
    assert!(done["error"]["message"].as_str().unwrap().contains("CUDA out of memory"));

    assert_eq!(run(&app, &acct.key, "a calm lake").await["status"], "completed");
    assert_eq!(engine_log(models.path()).matches("started").count(), 1, "no restart needed");
}

#[tokio::test]
async fn a_cancelled_job_stops_the_engine_at_its_next_step() {
    let models = tempfile::tempdir().unwrap();
    let app = app_with(fake_engine(models.path(), "ltx.safetensors")).await;
    let acct = app.account("5").await;

    let job = app.submit_ok(&acct.key, request("slow")).await;
    let id = job["job_id"].as_str().unwrap();
    app.wait_until(&acct.key, id, |j| j["progress"].as_f64().unwrap_or(0.0) > 0.06).await;
    let cancelled_at = Instant::now();
    let (status, _) = app.delete(&acct.key, &format!("/jobs/{id}")).await;
    assert_eq!(status, 200);
    // The worker learns of the cancel at its next heartbeat, tells the engine, which stops at
    // its next 0.1 s step, long before its 5 s of work are done.
    let stopped = loop {
        if let Some(line) = engine_log(models.path()).lines().find(|l| l.starts_with("cancelled")) {
            break line.to_owned();
        }
        assert!(cancelled_at.elapsed() < Duration::from_secs(4), "the engine never stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let step: u32 = stopped.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(step < 50, "{stopped}");

    let done = run(&app, &acct.key, "a calm lake").await;
    assert_eq!(done["status"], "completed", "{done}");
    let log = engine_log(models.path());
    assert_eq!(log.matches("finished").count(), 1, "only the second job ran to its end: {log}");
}

#[tokio::test]
async fn a_prefetched_job_waits_for_the_engine_and_every_job_runs_once() {
    let models = tempfile::tempdir().unwrap();
    let app = app_with(fake_engine(models.path(), "ltx.safetensors")).await;
    let acct = app.account_with_limits("10", 10, 10).await;

    // One worker with one job prefetched (the default): while a job holds the engine, the next
    // is leased and prepared, but it reaches the engine only once the first is done with it.
    let mut ids = Vec::new();
    for hold in [1500, 300, 300, 300] {
        ids.push(
            app.submit_ok(&acct.key, request(&format!("hold {hold}"))).await["job_id"].as_str().unwrap().to_owned(),
        );
    }
    let second = app.wait_until(&acct.key, &ids[1], |j| j["status"] != "queued").await;
    assert!(!engine_log(models.path()).contains("held "), "the second job was leased while the first held the engine");
    assert_ne!(second["status"], "sampling", "it waits for the engine without claiming to sample: {second}");
    for id in &ids {
        assert_eq!(app.wait_terminal(&acct.key, id).await["status"], "completed");
    }
    let log = engine_log(models.path());
    let mut held: Vec<(f64, f64)> = log
        .lines()
        .filter_map(|l| l.strip_prefix("held "))
        .map(|l| {
            let (start, end) = l.split_once(' ').unwrap();
            (start.parse().unwrap(), end.parse().unwrap())
        })
        .collect();
    assert_eq!(held.len(), 4, "each job ran on the engine exactly once: {log}");
    held.sort_by(|a, b| a.0.total_cmp(&b.0));
    for pair in held.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "two jobs held the engine at once: {pair:?}");
    }
}

#[tokio::test]
async fn start_up_refuses_bad_model_paths_and_an_engine_that_cannot_load() {
    let models = tempfile::tempdir().unwrap();
    let build = |config: LtxConfig| async move {
        let mut serve = ServeConfig::new(tempfile::tempdir().unwrap().keep());
        serve.listen = "127.0.0.1:0".parse().unwrap();
        serve.engine = EngineChoice::Ltx(Box::new(config));
        match Application::build(serve).await {
            Ok(_) => panic!("the app started"),
            Err(e) => format!("{e:#}"),
        }
    };
    let mut missing = fake_engine(models.path(), "ltx.safetensors");
    missing.gemma_dir = models.path().join("no-such-gemma");
    assert!(build(missing).await.contains("--ltx-gemma-dir"));

    let broken = fake_engine(models.path(), "broken.safetensors");
    let error = build(broken).await;
    assert!(error.contains("could not load the models: invalid header"), "{error}");
}

#[tokio::test]
async fn while_the_engine_loads_readyz_says_so_and_requests_are_told_to_retry() {
    let models = tempfile::tempdir().unwrap();
    let mut serve = ServeConfig::new(tempfile::tempdir().unwrap().keep());
    serve.listen = "127.0.0.1:0".parse().unwrap();
    serve.rate_limit_per_minute = 0;
    serve.engine = EngineChoice::Ltx(Box::new(fake_engine(models.path(), "slowload.safetensors")));
    let starting = Starting::bind(serve).await.unwrap();
    let base = starting.base_url();
    let loaded = tokio::spawn(starting.load());
    let http = reqwest::Client::new();

    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.headers()["retry-after"], "5");
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!((body["status"].as_str(), body["engine"].as_str()), (Some("not ready"), Some("loading")), "{body}");
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200, "the process is up");
    let submit = http.post(format!("{base}/jobs")).send().await.unwrap();
    assert_eq!(submit.status(), 503);
    assert_eq!(submit.json::<serde_json::Value>().await.unwrap()["code"], "unavailable");
    assert!(!loaded.is_finished(), "the engine was still loading while those were answered");

    let app = loaded.await.unwrap().expect("the engine loads");
    let stop = tokio_util::sync::CancellationToken::new();
    let until = stop.clone();
    let running = tokio::spawn(app.run_until_stopped(async move { until.cancelled().await }));
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap()["engine"], "ltx");
    stop.cancel();
    running.await.unwrap().unwrap();
}
