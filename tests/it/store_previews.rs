//! The store's side of `--intermediate-previews`, on SQLite and PostgreSQL (the conformance
//! macro of store.rs): a preview is shown only under a held lease, sampling goes on, and the final
//! result replaces it.
use crate::store::{account, new_job};
use ltx_serve::domain::job::JobStatus;
use ltx_serve::store::*;
use std::sync::Arc;
use std::time::Duration;

fn clip(key: &str, width: u32) -> JobResult {
    JobResult {
        video_key: format!("{key}/video.mp4"),
        poster_key: format!("{key}/poster.jpg"),
        width,
        height: width / 2,
        num_frames: 121,
        fps: 24,
        has_audio: false,
        engine: "preview".into(),
        enhanced_prompt: None,
    }
}

async fn a_preview_shows_until_the_final_result_replaces_it(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 10_000_000, 2, 0).await;
    let job = store.submit(new_job(acct.id, 179_800)).await.unwrap().unwrap();
    let ttl = Duration::from_secs(60);
    let lease = store.lease(WorkerLease::named("w"), ttl).await.unwrap().unwrap().lease;
    let sampling = |p: f64| Progress { status: JobStatus::Sampling, progress: p, engine: Some("preview".into()) };
    store.heartbeat(lease, sampling(0.4), ttl).await.unwrap();

    store.publish_preview(lease, clip("preview", 640)).await.unwrap();
    let shown = store.job(acct.id, job.id).await.unwrap().unwrap();
    assert_eq!(shown.status, JobStatus::IntermediateComplete);
    assert_eq!(shown.result, Some(clip("preview", 640)));
    assert!(shown.completed_at.is_none());
    assert_eq!(shown.progress, 0.4, "publishing keeps the progress");

    let going_on = Progress { status: JobStatus::IntermediateComplete, ..sampling(0.8) };
    store.heartbeat(lease, going_on, ttl).await.unwrap();
    let later = store.job(acct.id, job.id).await.unwrap().unwrap();
    assert_eq!((later.status, later.progress), (JobStatus::IntermediateComplete, 0.8));

    let done = store.complete(lease, clip("final", 1280)).await.unwrap();
    assert_eq!((done.status, done.result), (JobStatus::Completed, Some(clip("final", 1280))));
    assert!(
        matches!(store.publish_preview(lease, clip("late", 640)).await, Err(StoreError::LeaseLost)),
        "a finished job shows no preview"
    );
    assert_eq!(store.job(acct.id, job.id).await.unwrap().unwrap().result, Some(clip("final", 1280)));

    // A cancelled job's lease publishes nothing.
    let other = store.submit(new_job(acct.id, 179_800)).await.unwrap().unwrap();
    let lease = store.lease(WorkerLease::named("w"), ttl).await.unwrap().unwrap().lease;
    store.cancel(acct.id, other.id).await.unwrap().unwrap();
    assert!(matches!(store.publish_preview(lease, clip("x", 640)).await, Err(StoreError::LeaseLost)));
    let cancelled = store.job(acct.id, other.id).await.unwrap().unwrap();
    assert_eq!((cancelled.status, cancelled.result), (JobStatus::Cancelled, None));
}

crate::conformance!(a_preview_shows_until_the_final_result_replaces_it);
