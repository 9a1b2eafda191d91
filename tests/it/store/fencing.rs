//! Fencing: a lease holds its job until the job ends or moves on, and every report on a lost
//! lease is refused without changing the job; failing and handing back settle as they should.
use super::{account, assert_consistent, new_job, one_running_one_waiting, progress, result};
use ltx_serve::domain::job::{FailureCode, JobStatus};
use ltx_serve::store::*;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

async fn a_lease_is_held_until_its_job_ends_or_moves_on(store: Arc<dyn Store>) {
    let store = &*store;
    let ttl = Duration::from_secs(60);
    let acct = account(store, 10_000_000, 4, 0).await;
    let held = |lease: LeaseRef| async move { store.lease_is_held(lease).await.unwrap() };

    // Held through heartbeats and a preview; gone once completed.
    store.submit(new_job(acct.id, 1_000)).await.unwrap().unwrap();
    let lease = store.lease(WorkerLease::named("w"), ttl).await.unwrap().unwrap().lease;
    assert!(held(lease).await);
    assert!(!held(LeaseRef { lease_id: Uuid::new_v4(), ..lease }).await, "another lease id");
    assert!(!held(LeaseRef { job_id: Uuid::new_v4(), ..lease }).await, "another job");
    store.heartbeat(lease, progress(JobStatus::Sampling), ttl).await.unwrap();
    store.publish_preview(lease, result()).await.unwrap();
    assert!(held(lease).await, "a preview does not end the lease");
    store.complete(lease, result()).await.unwrap();
    assert!(!held(lease).await, "completed");

    for end in ["cancel", "fail", "hand back"] {
        let job = store.submit(new_job(acct.id, 1_000)).await.unwrap().unwrap();
        let lease = store.lease(WorkerLease::named("w"), ttl).await.unwrap().unwrap().lease;
        match end {
            "cancel" => {
                store.cancel(acct.id, job.id).await.unwrap().unwrap();
            }
            "fail" => {
                store.fail(lease, FailureCode::EngineError, "boom".into()).await.unwrap();
            }
            _ => store.hand_back(lease).await.unwrap(),
        }
        assert!(!held(lease).await, "after {end}");
        if end == "hand back" {
            store.cancel(acct.id, job.id).await.unwrap().unwrap();
        }
    }

    // Expired and requeued: the old lease is gone, the next one holds the job.
    store.submit(new_job(acct.id, 1_000)).await.unwrap().unwrap();
    let old = store.lease(WorkerLease::named("w1"), Duration::from_millis(1)).await.unwrap().unwrap().lease;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.sweep(3, Duration::from_secs(3600)).await.unwrap().requeued, vec![old.job_id]);
    assert!(!held(old).await, "requeued");
    let new = store.lease(WorkerLease::named("w2"), ttl).await.unwrap().unwrap().lease;
    assert_eq!(new.job_id, old.job_id);
    assert!(held(new).await && !held(old).await);
    assert_consistent(store, acct.id, 10_000_000).await;
}

async fn every_report_on_a_lost_lease_is_refused_and_changes_nothing(store: Arc<dyn Store>) {
    let store = &*store;
    let ttl = Duration::from_secs(60);
    let acct = account(store, 10_000_000, 4, 0).await;
    let job = store.submit(new_job(acct.id, 1_000)).await.unwrap().unwrap();
    let lost = store.lease(WorkerLease::named("w1"), Duration::from_millis(1)).await.unwrap().unwrap().lease;
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.sweep(3, Duration::from_secs(3600)).await.unwrap();
    let current = store.lease(WorkerLease::named("w2"), ttl).await.unwrap().unwrap().lease;
    let never = LeaseRef { job_id: Uuid::new_v4(), lease_id: Uuid::new_v4() };
    for lease in [lost, never] {
        let lost_lease = |r: Result<(), StoreError>| matches!(r, Err(StoreError::LeaseLost));
        assert!(lost_lease(store.heartbeat(lease, progress(JobStatus::Processing), ttl).await), "heartbeat");
        assert!(lost_lease(store.complete(lease, result()).await.map(drop)), "complete");
        assert!(lost_lease(store.fail(lease, FailureCode::EngineError, "x".into()).await.map(drop)), "fail");
        assert!(lost_lease(store.publish_preview(lease, result()).await), "publish_preview");
        assert!(lost_lease(store.hand_back(lease).await), "hand_back");
    }
    let now = store.job(acct.id, job.id).await.unwrap().unwrap();
    assert_eq!((now.status, now.attempts, now.progress), (JobStatus::Scheduled, 2, 0.0));
    assert!(now.result.is_none() && now.failure.is_none());
    assert!(store.lease_is_held(current).await.unwrap(), "the current lease still runs the job");
    assert_consistent(store, acct.id, 10_000_000).await;
}

async fn a_failed_job_releases_its_hold_frees_its_slot_and_enqueues_its_webhook(store: Arc<dyn Store>) {
    let store = &*store;
    let (acct, running, waiting, lease) = one_running_one_waiting(store, Duration::from_secs(60)).await;
    let failed = store.fail(lease.lease, FailureCode::OutOfMemory, "too big".into()).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.failure, Some(JobFailure { code: FailureCode::OutOfMemory, message: "too big".into() }));
    assert!(failed.completed_at.is_some());
    assert_eq!(
        store.job(acct.id, waiting.id).await.unwrap().unwrap().status,
        JobStatus::Queued,
        "the backlog moved up"
    );
    let after = store.account(acct.id).await.unwrap();
    assert_eq!((after.balance.0, after.held.0), (1_000_000, 200_000), "nothing charged for a failure");
    let claimed = store.claim_due_webhooks(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.job_id).collect::<Vec<_>>(), vec![running.id]);
    assert_consistent(store, acct.id, 1_000_000).await;
}

async fn a_handed_back_job_is_queued_again_without_counting_the_attempt(store: Arc<dyn Store>) {
    let store = &*store;
    let ttl = Duration::from_secs(60);
    let acct = account(store, 1_000_000, 1, 0).await;
    let job = store.submit(new_job(acct.id, 179_800)).await.unwrap().unwrap();
    let first = store.lease(WorkerLease::named("w1"), ttl).await.unwrap().unwrap();
    assert_eq!(first.job.attempts, 1);
    store.heartbeat(first.lease, progress(JobStatus::Sampling), ttl).await.unwrap();
    store.hand_back(first.lease).await.unwrap();
    let back = store.job(acct.id, job.id).await.unwrap().unwrap();
    assert_eq!((back.status, back.attempts, back.progress), (JobStatus::Queued, 0, 0.0));
    assert!(!store.lease_is_held(first.lease).await.unwrap());
    assert!(matches!(store.hand_back(first.lease).await, Err(StoreError::LeaseLost)), "handed back once");
    // With a limit of one attempt the sweep does not count the handed-back one.
    assert!(store.sweep(1, Duration::from_secs(3600)).await.unwrap().failed.is_empty());
    let again = store.lease(WorkerLease::named("w2"), ttl).await.unwrap().unwrap();
    assert_eq!((again.job.id, again.job.attempts), (job.id, 1));
    store.complete(again.lease, result()).await.unwrap();
    assert_eq!(store.account(acct.id).await.unwrap().balance.0, 1_000_000 - 179_800, "charged once");
    assert_consistent(store, acct.id, 1_000_000).await;
}

crate::conformance!(
    a_lease_is_held_until_its_job_ends_or_moves_on,
    every_report_on_a_lost_lease_is_refused_and_changes_nothing,
    a_failed_job_releases_its_hold_frees_its_slot_and_enqueues_its_webhook,
    a_handed_back_job_is_queued_again_without_counting_the_attempt,
);
