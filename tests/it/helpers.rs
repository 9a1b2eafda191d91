//! Starts the real application on port 0 with a fresh data dir, and speaks to it over HTTP.
use ltx_serve::admin;
use ltx_serve::app::Application;
use ltx_serve::config::ServeConfig;
use ltx_serve::domain::money::MicroUsd;
use ltx_serve::store::{NewAccount, Store};
use reqwest::{Client, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const GENERATE: &str = "/generate/video/lightricks/ltx-video-2.3-22b";

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub store: Arc<dyn Store>,
    pub data_dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub struct TestAccount {
    pub id: uuid::Uuid,
    pub key: String,
}

impl TestApp {
    pub async fn start() -> TestApp {
        TestApp::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut ServeConfig)) -> TestApp {
        TestApp::start_in(tempfile::tempdir().unwrap(), adjust).await
    }

    /// Stops gracefully and starts again on the same data dir with other settings.
    pub async fn restart_with(mut self, adjust: impl FnOnce(&mut ServeConfig)) -> TestApp {
        self.stop().await;
        let dir = tempfile::tempdir().unwrap();
        let data_dir = std::mem::replace(&mut self.data_dir, dir);
        TestApp::start_in(data_dir, adjust).await
    }

    async fn start_in(data_dir: tempfile::TempDir, adjust: impl FnOnce(&mut ServeConfig)) -> TestApp {
        let mut config = ServeConfig::new(data_dir.path().to_owned());
        config.listen = "127.0.0.1:0".parse().unwrap();
        // Tests poll far faster than any client should; tests/it/rate_limits.rs sets its own.
        config.rate_limit_per_minute = 0;
        adjust(&mut config);
        let app = Application::build(config).await.expect("the app builds");
        let base = app.base_url();
        let store = app.store();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = stop_rx.await;
        }));
        TestApp { base, client: Client::new(), store, data_dir, stop: Some(stop_tx), server: Some(server) }
    }

    /// Graceful stop, waiting for it to finish.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    pub async fn account(&self, credits_usd: &str) -> TestAccount {
        self.account_with_limits(credits_usd, 4, 100).await
    }

    pub async fn account_with_limits(&self, credits_usd: &str, max_concurrent: u32, max_backlog: u32) -> TestAccount {
        let new = NewAccount {
            name: "test".into(),
            credits: MicroUsd::parse_usd(credits_usd).unwrap(),
            max_concurrent,
            max_backlog,
        };
        let out = admin::create_account(&*self.store, new).await.unwrap();
        TestAccount {
            id: out["account_id"].as_str().unwrap().parse().unwrap(),
            key: out["api_key"].as_str().unwrap().to_owned(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn submit(&self, key: &str, body: Value) -> Response {
        self.client.post(self.url(GENERATE)).bearer_auth(key).json(&body).send().await.unwrap()
    }

    /// Submits and expects a 200, returning the job.
    pub async fn submit_ok(&self, key: &str, body: Value) -> Value {
        let response = self.submit(key, body.clone()).await;
        let status = response.status();
        let job: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "submit of {body} answered {job}");
        job
    }

    pub async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).bearer_auth(key).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, key: &str, path: &str) -> (u16, Value) {
        let response = self.client.delete(self.url(path)).bearer_auth(key).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn job(&self, key: &str, id: &str) -> Value {
        let (status, job) = self.get(key, &format!("/jobs/{id}")).await;
        assert_eq!(status, 200, "{job}");
        job
    }

    /// Polls like Krea's own examples: until `completed_at` is set.
    pub async fn wait_terminal(&self, key: &str, id: &str) -> Value {
        self.wait_until(key, id, |job| !job["completed_at"].is_null()).await
    }

    pub async fn wait_until(&self, key: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        // A liveness bound, not a speed check (benchmarks measure speed): generous, because the
        // LTX engine's tests render 1280×720 clips with torch on whatever CPUs the machine has.
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let job = self.job(key, id).await;
            if done(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "job never reached the expected state: {job}");
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    /// Downloads a result or asset URL into the data dir.
    pub async fn download(&self, url: &str, name: &str) -> std::path::PathBuf {
        let bytes = self.client.get(url).send().await.unwrap().error_for_status().unwrap().bytes().await.unwrap();
        let path = self.data_dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        path
    }

    pub async fn account_view(&self, key: &str) -> Value {
        let (status, body) = self.get(key, "/account").await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A small prompt-only request that renders quickly.
pub fn quick(prompt: &str) -> Value {
    json!({ "prompt": prompt, "num_frames": 9 })
}

pub fn job_id(job: &Value) -> String {
    job["job_id"].as_str().expect("job_id").to_owned()
}

/// Asserts a 4xx/5xx with Krea's `{error}` body whose sentence contains `needle`.
pub async fn assert_error(response: Response, status: u16, needle: &str) -> Value {
    let got = response.status().as_u16();
    let body: Value = response.json().await.expect("error bodies are JSON");
    assert_eq!(got, status, "{body}");
    let message = body["error"].as_str().unwrap_or_else(|| panic!("no `error` string in {body}"));
    assert!(message.contains(needle), "`{message}` does not contain `{needle}`");
    body
}

pub fn png_data_uri(width: u32, height: u32, rgb: [u8; 3]) -> String {
    use base64::Engine as _;
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png_bytes(width, height, rgb)))
}

/// A one-colour PNG.
pub fn png_bytes(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb(rgb));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// The sum of the samples of the counter `name` that have the `labels` given, as `/metrics` says.
/// (One registry per test process: counters move with every test that runs beside.)
pub async fn metric(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let samples = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text").samples;
    samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}
