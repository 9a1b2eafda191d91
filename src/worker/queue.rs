//! Where a worker gets work and reports on it: the store itself (the in-process workers of
//! `serve`) or a server's internal worker API (remote workers). The worker loop is the same.
use crate::domain::job::FailureCode;
use crate::domain::request::GenerateRequest;
use crate::storage::ResultStorage;
use crate::store::{JobResult, LeaseRef, Progress, Store, StoreError, WorkerLease};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// A leased job and what a worker needs to render it (the wire shape of the worker API).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkItem {
    pub lease: LeaseRef,
    pub request: GenerateRequest,
    pub seed: u32,
    pub width: u32,
    pub height: u32,
    /// 1 for the first lease of the job.
    pub attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Where the LoRA file of each of the request's styles is kept. A style deleted since the
    /// job was submitted is missing here.
    #[serde(default)]
    pub loras: Vec<LoraInput>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraInput {
    pub style_id: String,
    /// Storage key of the `.safetensors` file (read with `WorkQueue::fetch_kept_file`).
    pub file_key: String,
    pub size_bytes: u64,
}

impl WorkItem {
    /// The work item of a lease, with the LoRA files its styles need.
    pub async fn of_lease(store: &dyn Store, lease: crate::store::Lease) -> Result<WorkItem, StoreError> {
        let job = lease.job;
        let ids: Vec<uuid::Uuid> = job.request.styles.iter().filter_map(|s| s.id.parse().ok()).collect();
        let loras = if ids.is_empty() { Vec::new() } else { store.styles_by_id(ids).await? }
            .into_iter()
            .map(|s| LoraInput { style_id: s.id.to_string(), file_key: s.file_key, size_bytes: s.size_bytes })
            .collect();
        Ok(WorkItem {
            lease: lease.lease,
            request: job.request,
            seed: job.seed,
            width: job.width,
            height: job.height,
            attempt: job.attempts,
            created_at: job.created_at,
            loras,
        })
    }
}

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

/// Waits for a lease from `store`: looks, and if the queue is empty sleeps until a job may have
/// been queued (the store's signal) or a second passes, until `wait` is over. Shared by the
/// in-process workers and the worker API's long poll.
pub async fn lease_within(
    store: &dyn Store,
    worker: &WorkerLease,
    ttl: Duration,
    wait: Duration,
    stop: &CancellationToken,
) -> Result<Option<crate::store::Lease>, StoreError> {
    let deadline = tokio::time::Instant::now() + wait;
    let signal = store.queue_signal();
    loop {
        if stop.is_cancelled() {
            return Ok(None);
        }
        // Register for the wake-up before looking, so a job queued in between is not missed.
        let notified = signal.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(lease) = store.lease(worker.clone(), ttl).await? {
            count_affinity(&lease.job.request.styles, &worker.resident_style_sets);
            return Ok(Some(lease));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let nap = (deadline - now).min(Duration::from_secs(1));
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(nap) => {}
            _ = stop.cancelled() => return Ok(None),
        }
    }
}

/// What a granted lease means for the worker's resident LoRA set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Affinity {
    /// The job's set is one the worker announced: it starts without a switch.
    Hit,
    /// The worker must change its LoRA set (or load one it did not announce having).
    Switch,
    /// A job without styles for a worker that announced nothing: nothing to load.
    Neither,
}

pub fn affinity(job_key: &str, announced: &[String]) -> Affinity {
    if announced.iter().any(|k| k == job_key) {
        Affinity::Hit
    } else if announced.is_empty() && job_key.is_empty() {
        Affinity::Neither
    } else {
        Affinity::Switch
    }
}

/// Counts `ltx_affinity_hits_total` / `ltx_style_switches_total` where leases are granted (the
/// server), so in-process and remote workers are both counted.
fn count_affinity(styles: &[crate::domain::request::StyleRef], announced: &[String]) {
    match affinity(&crate::store::codec::style_set_key(styles), announced) {
        Affinity::Hit => metrics::counter!("ltx_affinity_hits_total").increment(1),
        Affinity::Switch => metrics::counter!("ltx_style_switches_total").increment(1),
        Affinity::Neither => {}
    }
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
            Some(lease) => Ok(Some(WorkItem::of_lease(&*self.store, lease).await?)),
            None => Ok(None),
        }
    }
    async fn heartbeat(&self, lease: LeaseRef, update: Progress) -> Result<(), StoreError> {
        self.store.heartbeat(lease, update, self.lease_ttl).await
    }
    async fn complete(&self, lease: LeaseRef, clip: FinishedClip) -> Result<(), StoreError> {
        // Not `Unavailable`: the clip was moved (or is gone), so repeating this cannot help; the
        // lease expires and the job runs again.
        let stored = (self.results.put(&clip.video, &clip.poster).await)
            .map_err(|e| StoreError::Internal(format!("result storage: {e}")))?;
        let result =
            JobResult { video_key: stored.video_key.clone(), poster_key: stored.poster_key.clone(), ..clip.result };
        match self.store.complete(lease, result).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // Nobody will ever link to these files.
                self.results.remove(&stored).await;
                Err(e)
            }
        }
    }
    async fn publish_preview(&self, lease: LeaseRef, preview: FinishedClip) -> Result<(), StoreError> {
        let stored = (self.results.put(&preview.video, &preview.poster).await)
            .map_err(|e| StoreError::Internal(format!("result storage: {e}")))?;
        let result =
            JobResult { video_key: stored.video_key.clone(), poster_key: stored.poster_key.clone(), ..preview.result };
        let published = self.store.publish_preview(lease, result).await;
        if published.is_err() {
            self.results.remove(&stored).await;
        }
        published
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_a_hit_when_its_set_was_announced_and_a_switch_otherwise() {
        let announced = vec!["a@1".to_owned(), "b@0.5".to_owned()];
        assert_eq!(affinity("b@0.5", &announced), Affinity::Hit);
        assert_eq!(affinity("c@1", &announced), Affinity::Switch);
        assert_eq!(affinity("", &announced), Affinity::Switch, "unloading the styles changes the model too");
        assert_eq!(affinity("", &["".to_owned()]), Affinity::Hit, "the plain model was resident");
        assert_eq!(affinity("a@1", &[]), Affinity::Switch, "a worker that announced nothing loads it");
        assert_eq!(affinity("", &[]), Affinity::Neither);
    }
}
