//! A worker on another host: `ltx-serve worker --server URL --token T`. It speaks the server's
//! internal worker API (src/api/internal.rs) and runs the same loop and engines as `serve`.
use super::engine::Engine;
use super::queue::{FinishedClip, WorkItem, WorkQueue};
use crate::domain::job::FailureCode;
use crate::store::{LeaseRef, Progress, StoreError, WorkerInfo};
use crate::worker_protocol::{
    paths, Fail, HandBack, Heartbeat, Hello, LeaseRequest, UploadFile, PROTOCOL_HEADER, PROTOCOL_VERSION,
};
use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct HttpQueue {
    client: reqwest::Client,
    base: String,
    token: String,
    info: WorkerInfo,
    kept_files_url: String,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl HttpQueue {
    pub fn new(server: &str, token: &str, info: WorkerInfo) -> anyhow::Result<HttpQueue> {
        let client = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
        let base = server.trim_end_matches('/').to_owned();
        Ok(HttpQueue { client, base, token: token.to_owned(), info, kept_files_url: String::new() })
    }

    pub fn with_kept_files_url(mut self, url: String) -> HttpQueue {
        self.kept_files_url = url;
        self
    }

    /// Every call: the token and the protocol version this worker speaks.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION)
    }

    /// Checks the server, the token and the protocol version; a clear error at start-up rather
    /// than at the first job.
    pub async fn hello(&self) -> anyhow::Result<Hello> {
        let response = self
            .request(Method::GET, paths::HELLO)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the server at {}: {e}", self.base))?;
        match response.status() {
            StatusCode::OK => {
                let hello: Hello = response.json().await?;
                hello.check().map_err(anyhow::Error::msg)?;
                Ok(hello)
            }
            StatusCode::UNAUTHORIZED => anyhow::bail!(
                "the server refused the worker token (create one with `ltx-serve admin worker-token create`)"
            ),
            StatusCode::BAD_REQUEST => {
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                match body["error"].as_str() {
                    Some(why) => anyhow::bail!("the server refused this worker: {why}"),
                    None => anyhow::bail!("the server answered 400 to hello; is {} an ltx-serve server?", self.base),
                }
            }
            other => anyhow::bail!("the server answered {other} to hello; is {} an ltx-serve server?", self.base),
        }
    }

    /// Maps a reply about a lease: 2xx is fine, 409 means the lease is gone.
    async fn lease_reply(response: reqwest::Response) -> Result<(), StoreError> {
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::CONFLICT => Err(StoreError::LeaseLost),
            s if s.is_server_error() => Err(unavailable(format!("server answered {s}"))),
            s => {
                Err(StoreError::Internal(format!("server answered {s}: {}", response.text().await.unwrap_or_default())))
            }
        }
    }

    async fn post(&self, path: &str, lease: LeaseRef, body: &impl Serialize) -> Result<(), StoreError> {
        let response = self
            .request(Method::POST, &paths::for_lease(path, lease))
            .json(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(unavailable)?;
        Self::lease_reply(response).await
    }

    async fn upload(&self, lease: LeaseRef, file: UploadFile, path: &Path) -> Result<(), StoreError> {
        let opened =
            tokio::fs::File::open(path).await.map_err(|e| StoreError::Internal(format!("{}: {e}", path.display())))?;
        let length = opened.metadata().await.map_err(|e| StoreError::Internal(e.to_string()))?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(opened));
        let response = self
            .request(Method::PUT, &paths::upload(lease, file))
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(body)
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .map_err(unavailable)?;
        Self::lease_reply(response).await
    }

    /// Uploads a clip and its poster, then reports them (`complete` or `preview`).
    async fn finish(
        &self,
        lease: LeaseRef,
        clip: FinishedClip,
        files: [UploadFile; 2],
        path: &str,
    ) -> Result<(), StoreError> {
        self.upload(lease, files[0], &clip.video).await?;
        self.upload(lease, files[1], &clip.poster).await?;
        self.post(path, lease, &clip.result).await
    }
}

#[async_trait]
impl WorkQueue for HttpQueue {
    async fn next(
        &self,
        resident_style_sets: Vec<String>,
        wait: Duration,
        stop: &CancellationToken,
    ) -> Result<Option<WorkItem>, StoreError> {
        let info = WorkerInfo { resident_style_sets, ..self.info.clone() };
        let request = self
            .request(Method::POST, paths::LEASE)
            .json(&LeaseRequest { worker: info, wait_ms: wait.as_millis() as u64 })
            .timeout(wait + Duration::from_secs(10))
            .send();
        // The long poll is abandoned on stop: a lease the server grants in that instant is
        // never seen, and expires (uncounted) after the lease TTL.
        let response = tokio::select! {
            response = request => response.map_err(unavailable)?,
            _ = stop.cancelled() => return Ok(None),
        };
        match response.status() {
            StatusCode::OK => Ok(Some(response.json().await.map_err(unavailable)?)),
            StatusCode::NO_CONTENT => Ok(None),
            s if s.is_server_error() => Err(unavailable(format!("server answered {s}"))),
            s => Err(StoreError::Internal(format!("server answered {s} to a lease request"))),
        }
    }
    async fn heartbeat(&self, lease: LeaseRef, update: Progress) -> Result<(), StoreError> {
        self.post(paths::HEARTBEAT, lease, &Heartbeat::new(&self.info.name, &update)).await
    }
    async fn complete(&self, lease: LeaseRef, clip: FinishedClip) -> Result<(), StoreError> {
        self.finish(lease, clip, UploadFile::RESULT, paths::COMPLETE).await
    }
    async fn publish_preview(&self, lease: LeaseRef, preview: FinishedClip) -> Result<(), StoreError> {
        self.finish(lease, preview, UploadFile::PREVIEW, paths::PREVIEW).await
    }
    async fn fail(&self, lease: LeaseRef, code: FailureCode, message: String) -> Result<(), StoreError> {
        self.post(paths::FAIL, lease, &Fail::new(code, message)).await
    }
    async fn hand_back(&self, lease: LeaseRef) -> Result<(), StoreError> {
        self.post(paths::HAND_BACK, lease, &HandBack {}).await
    }
    fn kept_files_url(&self) -> String {
        self.kept_files_url.clone()
    }
    async fn fetch_kept_file(&self, key: &str, to: &Path, max: u64) -> Result<(), String> {
        let response = self
            .request(Method::GET, &paths::KEPT_FILE.replace("{*key}", key))
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .map_err(|e| format!("the server could not be reached ({e})"))?;
        if !response.status().is_success() {
            return Err(format!("the server answered {}", response.status()));
        }
        crate::fetch::stream_to_file(response, to, max).await
    }
}

/// Settings of the `worker` role.
pub struct RemoteWorker {
    pub server: String,
    pub token: String,
    pub name: String,
    pub concurrency: usize,
    /// Jobs leased ahead while every slot is busy (WorkerConfig::prefetch).
    pub prefetch_jobs: usize,
    pub scratch_dir: std::path::PathBuf,
    pub engine: Arc<dyn Engine>,
    /// Input image URLs may point to private networks.
    pub allow_private_urls: bool,
    /// Bytes of LoRA files kept cached on this host.
    pub lora_cache_bytes: u64,
    /// `--intermediate-previews` (WorkerConfig::intermediate_previews).
    pub intermediate_previews: bool,
}

/// Runs until `shutdown` fires, then hands running jobs back.
pub async fn run(worker: RemoteWorker, shutdown: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    let info = WorkerInfo {
        name: worker.name.clone(),
        engine: worker.engine.name().to_owned(),
        presets: worker.engine.presets(),
        ..Default::default()
    };
    let probe = HttpQueue::new(&worker.server, &worker.token, info.clone())?;
    let hello = probe.hello().await?;
    tracing::info!(server = %worker.server, version = %hello.version, protocol = hello.protocol, lease_ttl_ms = hello.lease_ttl_ms, "connected");
    let config = super::WorkerConfig {
        name: worker.name.clone(),
        heartbeat_every: Duration::from_millis(hello.heartbeat_every_ms.max(50)),
        scratch_dir: worker.scratch_dir.clone(),
        image_client: crate::fetch::guarded_client(
            crate::fetch::UrlPolicy { allow_private: worker.allow_private_urls },
            Duration::from_secs(20),
        ),
        lora_cache_bytes: worker.lora_cache_bytes,
        prefetch: worker.prefetch_jobs,
        prefetch_max_wait: Duration::from_secs(crate::config::defaults::PREFETCH_MAX_WAIT_SECS),
        intermediate_previews: worker.intermediate_previews,
    };
    let (server, token) = (worker.server.clone(), worker.token.clone());
    // Every loop speaks for the same worker: one GPU host is one name in the registry, however
    // many loops it runs (jobs on the engine, prefetched, finishing).
    let queue = move |_loop: usize| -> Arc<dyn WorkQueue> {
        let queue = HttpQueue::new(&server, &token, info.clone()).expect("the client was built once already");
        Arc::new(queue.with_kept_files_url(hello.kept_files_url.clone()))
    };
    let loops = super::spawn_workers(worker.concurrency, queue, worker.engine, config, shutdown);
    for handle in loops {
        let _ = handle.await;
    }
    Ok(())
}
