//! The scheduler's sweep of overrunning jobs (its requeue of expired leases is in `leases`).
use super::{assert_consistent, one_running_one_waiting, result};
use ltx_serve::domain::job::{FailureCode, JobStatus};
use ltx_serve::store::*;
use std::sync::Arc;
use std::time::Duration;

async fn a_job_running_past_the_maximum_run_time_fails_with_timeout(store: Arc<dyn Store>) {
    let store = &*store;
    // A long lease: only the run time is over, the worker is still there.
    let (acct, running, waiting, lease) = one_running_one_waiting(store, Duration::from_secs(3600)).await;
    let report = store.sweep(3, Duration::from_secs(3600)).await.unwrap();
    assert!(report.failed.is_empty() && report.requeued.is_empty(), "within the run time nothing happens");

    tokio::time::sleep(Duration::from_millis(100)).await;
    let max_run = Duration::from_millis(50);
    let report = store.sweep(3, max_run).await.unwrap();
    assert_eq!((report.failed, report.requeued), (vec![running.id], vec![]));
    let failed = store.job(acct.id, running.id).await.unwrap().unwrap();
    assert_eq!((failed.status, failed.failure.map(|f| f.code)), (JobStatus::Failed, Some(FailureCode::Timeout)));
    assert!(failed.completed_at.is_some());
    assert!(!store.lease_is_held(lease.lease).await.unwrap());
    assert!(matches!(store.complete(lease.lease, result()).await, Err(StoreError::LeaseLost)), "a late result");

    assert_eq!(store.job(acct.id, waiting.id).await.unwrap().unwrap().status, JobStatus::Queued, "the slot is freed");
    let after = store.account(acct.id).await.unwrap();
    assert_eq!((after.balance.0, after.held.0, after.active_jobs, after.backlogged_jobs), (1_000_000, 200_000, 1, 0));
    let claimed = store.claim_due_webhooks(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed.iter().map(|d| (d.job_id, d.attempts)).collect::<Vec<_>>(), vec![(running.id, 1)]);

    // A queued job is not running: however long it waits, the run time does not apply.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(store.sweep(3, max_run).await.unwrap().failed.is_empty());
    assert_consistent(store, acct.id, 1_000_000).await;
}

crate::conformance!(a_job_running_past_the_maximum_run_time_fails_with_timeout,);
