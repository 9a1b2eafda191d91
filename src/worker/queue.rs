//! Where a worker gets work and reports on it: the store itself (the in-process workers of
//! `serve`) or a server's internal worker API (remote workers). The worker loop is the same.
use crate::domain::job::FailureCode;
use crate::leasing::{finish, work_item, Finish, FinishError};
use crate::storage::ResultStorage;
use crate::store::{JobResult, LeaseRef, Progress, Store, StoreError, WorkerLease};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use crate::leasing::lease_within;
/// What a worker is given to render: the wire shape of the worker API.
pub use crate::worker_protocol::{LoraInput, WorkItem};

/// A rendered clip's files (in the worker's scratch dir) and what it is.
#[derive(Clone, Debug)]
pub struct FinishedClip {
    pub video: PathBuf,
    pub poster: PathBuf,
    /// The result to record; its keys are filled in where the files are stored.
    pub result: JobResult,
}

#[async_trait]
pub trait WorkQueue: Send + Sync + 'static {
    /// The next job, waiting up to `wait` for one; `None` at once when `stop` fires. A lease
    /// already asked for when it fires is still returned (then handed back), never dropped in
    /// flight — a dropped one would sit leased to nobody until its lease expired.
    /// `resident_style_sets`: the LoRA sets the worker's engine will have resident (a job of one
    /// of them is preferred, within the server's bound on waiting).
    async fn next(
        &self,
        resident_style_sets: Vec<String>,
        wait: Duration,
        stop: &CancellationToken,
    ) -> Result<Option<WorkItem>, StoreError>;
    /// `LeaseLost` when the job was cancelled or the lease expired: stop working on it.
    async fn heartbeat(&self, lease: LeaseRef, update: Progress) -> Result<(), StoreError>;
    /// Stores the clip's files and completes the job (charging it).
    async fn complete(&self, lease: LeaseRef, clip: FinishedClip) -> Result<(), StoreError>;
    /// Stores a first-stage preview's files and shows them as the job's `intermediate-complete`
    /// result (`--intermediate-previews`).
    async fn publish_preview(&self, lease: LeaseRef, preview: FinishedClip) -> Result<(), StoreError>;
    async fn fail(&self, lease: LeaseRef, code: FailureCode, message: String) -> Result<(), StoreError>;
    /// Gives the job back to the queue without counting the attempt (shutdown).
    async fn hand_back(&self, lease: LeaseRef) -> Result<(), StoreError>;
    /// Where the server links its kept files from (`<public url>/files/`): an input image URL
    /// that starts with it is read with `fetch_kept_file`, not over the internet.
    fn kept_files_url(&self) -> String;
    /// Copies a kept file (an asset, a LoRA) to `to`, refusing one larger than `max` bytes.
    async fn fetch_kept_file(&self, key: &str, to: &Path, max: u64) -> Result<(), String>;
}

/// The store itself: what `serve`'s in-process workers use.
pub struct StoreQueue {
    pub store: Arc<dyn Store>,
    /// The worker's name (its resident LoRA sets are filled in at each lease request).
    pub worker: WorkerLease,
    /// The server's `--affinity-max-wait-secs`.
    pub affinity_max_wait: Duration,
    pub lease_ttl: Duration,
    pub results: Arc<ResultStorage>,
    /// `<public url>/files/`.
    pub kept_files_url: String,
}

#[async_trait]
impl WorkQueue for StoreQueue {
    async fn next(
        &self,
        resident_style_sets: Vec<String>,
        wait: Duration,
        stop: &CancellationToken,
    ) -> Result<Option<WorkItem>, StoreError> {
        let worker = self.worker.clone().preferring(resident_style_sets, self.affinity_max_wait);
        match lease_within(&*self.store, &worker, self.lease_ttl, wait, stop).await? {
            Some(lease) => Ok(Some(work_item(&*self.store, lease).await?)),
            None => Ok(None),
        }
    }
    async fn heartbeat(&self, lease: LeaseRef, update: Progress) -> Result<(), StoreError> {
        self.store.heartbeat(lease, update, self.lease_ttl).await
    }
    async fn complete(&self, lease: LeaseRef, clip: FinishedClip) -> Result<(), StoreError> {
        self.finish(lease, clip, Finish::Complete).await
    }
    async fn publish_preview(&self, lease: LeaseRef, preview: FinishedClip) -> Result<(), StoreError> {
        self.finish(lease, preview, Finish::Preview).await
    }
    async fn fail(&self, lease: LeaseRef, code: FailureCode, message: String) -> Result<(), StoreError> {
        self.store.fail(lease, code, message).await.map(|_| ())
    }
    async fn hand_back(&self, lease: LeaseRef) -> Result<(), StoreError> {
        self.store.hand_back(lease).await
    }
    fn kept_files_url(&self) -> String {
        self.kept_files_url.clone()
    }
    async fn fetch_kept_file(&self, key: &str, to: &Path, _max: u64) -> Result<(), String> {
        // Our own storage: sizes were checked when the file was uploaded.
        self.results.copy_file_to(key, to).await.map_err(|e| e.to_string())
    }
}

impl StoreQueue {
    async fn finish(&self, lease: LeaseRef, clip: FinishedClip, what: Finish) -> Result<(), StoreError> {
        let files = [clip.video.as_path(), clip.poster.as_path()];
        finish(&*self.store, &self.results, lease, files, clip.result, what).await.map_err(|e| match e {
            // Not `Unavailable`: the clip was moved (or is gone), so repeating this cannot
            // help; the lease expires and the job runs again.
            FinishError::Storage(e) => StoreError::Internal(format!("result storage: {e}")),
            FinishError::Store(e) => e,
        })
    }
}
