//! The server's side of a lease, shared by `serve`'s in-process workers (`worker::queue`) and
//! the internal worker API (`api::internal`) so both grant and finish work the same way:
//! waiting for a lease, turning it into a work item, and finishing it — the files go into
//! result storage, then the store records the result, fenced by the lease.
use crate::domain::request::StyleRef;
use crate::storage::ResultStorage;
use crate::store::{JobResult, Lease, LeaseRef, Leases, Library, StoreError, WorkerLease};
use crate::worker_protocol::{LoraInput, WorkItem};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Waits for a lease from `store`: looks, and if the queue is empty sleeps until a job may have
/// been queued (the store's signal) or a second passes, until `wait` is over.
pub async fn lease_within(
    store: &dyn Leases,
    worker: &WorkerLease,
    ttl: Duration,
    wait: Duration,
    stop: &CancellationToken,
) -> Result<Option<Lease>, StoreError> {
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

/// The work item of a lease, with the LoRA files its styles need.
pub async fn work_item(store: &dyn Library, lease: Lease) -> Result<WorkItem, StoreError> {
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
fn count_affinity(styles: &[StyleRef], announced: &[String]) {
    match affinity(&crate::store::codec::style_set_key(styles), announced) {
        Affinity::Hit => metrics::counter!("ltx_affinity_hits_total").increment(1),
        Affinity::Switch => metrics::counter!("ltx_style_switches_total").increment(1),
        Affinity::Neither => {}
    }
}

/// What a lease's finished files are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// The final clip: the job completes (and is charged).
    Complete,
    /// A first-stage preview (`--intermediate-previews`): the job shows it as
    /// `intermediate-complete` until it completes.
    Preview,
}

/// Why finishing failed.
#[derive(Debug)]
pub enum FinishError {
    /// Result storage did not take the files; the store was not asked.
    Storage(std::io::Error),
    /// The store refused the result (`LeaseLost`: the lease is no longer held); the stored
    /// files were removed again.
    Store(StoreError),
}

/// The one completion path: moves (local) or uploads (S3) a clip and its poster into result
/// storage, then records them as the lease's result or preview. A refused record (the lease
/// was lost, cancelled or taken over) removes the stored files, which nobody will link to.
pub async fn finish(
    store: &dyn Leases,
    results: &ResultStorage,
    lease: LeaseRef,
    [video, poster]: [&Path; 2],
    result: JobResult,
    what: Finish,
) -> Result<(), FinishError> {
    let stored = results.put(video, poster).await.map_err(FinishError::Storage)?;
    let result = JobResult { video_key: stored.video_key.clone(), poster_key: stored.poster_key.clone(), ..result };
    let recorded = match what {
        Finish::Complete => store.complete(lease, result).await.map(|_| ()),
        Finish::Preview => store.publish_preview(lease, result).await,
    };
    if recorded.is_err() {
        results.remove(&stored).await;
    }
    recorded.map_err(FinishError::Store)
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

    /// Files under `dir`, at any depth.
    fn files_under(dir: &Path) -> usize {
        let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
        entries.map(|e| if e.path().is_dir() { files_under(&e.path()) } else { 1 }).sum()
    }

    #[tokio::test]
    async fn a_result_the_store_refuses_leaves_no_files_in_storage() {
        let data = tempfile::tempdir().unwrap();
        let store = crate::store::open(None, data.path()).await.unwrap();
        let stored = data.path().join("results");
        let files = crate::storage::LocalResults::new(stored.clone());
        let results = ResultStorage::Local { files, public_url: "http://h".into() };
        let (video, poster) = (data.path().join("v.mp4"), data.path().join("p.jpg"));
        let result = JobResult {
            video_key: String::new(),
            poster_key: String::new(),
            width: 64,
            height: 32,
            num_frames: 9,
            fps: 24,
            has_audio: false,
            engine: "preview".into(),
            enhanced_prompt: None,
        };
        // No job holds this lease, as after a cancel or a takeover.
        let lost = LeaseRef { job_id: uuid::Uuid::new_v4(), lease_id: uuid::Uuid::new_v4() };
        for what in [Finish::Complete, Finish::Preview] {
            std::fs::write(&video, b"clip").unwrap();
            std::fs::write(&poster, b"jpeg").unwrap();
            let refused = finish(&*store, &results, lost, [&video, &poster], result.clone(), what).await;
            assert!(matches!(refused, Err(FinishError::Store(StoreError::LeaseLost))), "{what:?}: {refused:?}");
            assert_eq!(files_under(&stored), 0, "{what:?}: nobody will link to them");
            assert!(!video.exists(), "{what:?}: the clip was taken into storage first");
        }
        // Files that are gone never reach the store.
        let missing = finish(&*store, &results, lost, [&video, &poster], result, Finish::Complete).await;
        assert!(matches!(missing, Err(FinishError::Storage(_))), "{missing:?}");
    }
}
