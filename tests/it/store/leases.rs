//! Leases: work is leased oldest first and never twice, reports are fenced by lease id, expired
//! leases requeue up to the retry limit, a cancel stops the worker.
use super::{account, all_jobs, assert_consistent, new_job, progress, result};
use ltx_serve::domain::job::{FailureCode, JobStatus};
use ltx_serve::domain::money::MicroUsd;
use ltx_serve::store::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

async fn a_stale_lease_is_refused_and_expired_leases_requeue_then_fail_worker_lost(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 1_000_000, 1, 0).await;
    let job = store.submit(new_job(acct.id, 179_800)).await.unwrap().unwrap();
    let max_run = Duration::from_secs(3600);

    let first = store.lease(WorkerLease::named("w1"), Duration::from_millis(1)).await.unwrap().unwrap();
    assert_eq!(first.job.attempts, 1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = store.sweep(2, max_run).await.unwrap();
    assert_eq!(report.requeued, vec![job.id]);
    assert_eq!(store.job(acct.id, job.id).await.unwrap().unwrap().status, JobStatus::Queued);

    let second = store.lease(WorkerLease::named("w2"), Duration::from_millis(1)).await.unwrap().unwrap();
    assert_eq!(second.job.attempts, 2);
    // The first worker comes back: everything it says is refused (fencing by lease id).
    assert!(matches!(
        store.heartbeat(first.lease, progress(JobStatus::Sampling), max_run).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(matches!(store.complete(first.lease, result()).await, Err(StoreError::LeaseLost)));

    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = store.sweep(2, max_run).await.unwrap();
    assert_eq!(report.failed, vec![job.id]);
    let failed = store.job(acct.id, job.id).await.unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.failure.unwrap().code, FailureCode::WorkerLost);
    assert!(failed.completed_at.is_some());
    assert_consistent(store, acct.id, 1_000_000).await;
}

async fn work_is_leased_fifo_and_progress_only_moves_forward(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 10_000_000, 10, 0).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(store.submit(new_job(acct.id, 179_800)).await.unwrap().unwrap().id);
    }
    let mut leased = Vec::new();
    while let Some(lease) = store.lease(WorkerLease::named("w"), Duration::from_secs(60)).await.unwrap() {
        leased.push(lease);
    }
    assert_eq!(leased.iter().map(|l| l.job.id).collect::<Vec<_>>(), ids);
    let lease = leased[0].lease;
    let ttl = Duration::from_secs(60);
    store.heartbeat(lease, progress(JobStatus::Sampling), ttl).await.unwrap();
    store.heartbeat(lease, progress(JobStatus::Processing), ttl).await.unwrap();
    assert_eq!(store.job(acct.id, ids[0]).await.unwrap().unwrap().status, JobStatus::Sampling);
    let done = store.complete(lease, result()).await.unwrap();
    assert_eq!((done.status, done.progress), (JobStatus::Completed, 1.0));
    assert!(
        matches!(store.complete(lease, result()).await, Err(StoreError::LeaseLost)),
        "completing twice charges once"
    );
    let statuses: HashMap<Uuid, JobStatus> =
        all_jobs(store, acct.id).await.into_iter().map(|j| (j.id, j.status)).collect();
    assert_eq!(statuses[&ids[0]], JobStatus::Completed);
    assert_eq!(store.account(acct.id).await.unwrap().balance, MicroUsd(10_000_000 - 179_800));
}

async fn a_cancel_during_a_lease_stops_the_worker_and_charges_nothing(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 1_000_000, 2, 0).await;
    let job = store.submit(new_job(acct.id, 179_800)).await.unwrap().unwrap();
    let lease = store.lease(WorkerLease::named("w"), Duration::from_secs(60)).await.unwrap().unwrap();
    let cancelled = store.cancel(acct.id, job.id).await.unwrap().unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let ttl = Duration::from_secs(60);
    assert!(matches!(
        store.heartbeat(lease.lease, progress(JobStatus::Sampling), ttl).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(matches!(store.complete(lease.lease, result()).await, Err(StoreError::LeaseLost)));
    assert!(matches!(store.cancel(acct.id, job.id).await.unwrap(), Err(CancelRefusal::AlreadyTerminal(_))));
    let stranger = account(store, 0, 1, 0).await;
    assert!(matches!(store.cancel(stranger.id, job.id).await.unwrap(), Err(CancelRefusal::NotFound)));
    assert!(store.job(stranger.id, job.id).await.unwrap().is_none(), "another account cannot see the job");
    assert_eq!(store.account(acct.id).await.unwrap().balance.0, 1_000_000);
    assert_consistent(store, acct.id, 1_000_000).await;
}

async fn concurrent_workers_never_lease_a_job_twice(store: Arc<dyn Store>) {
    let acct = account(&*store, 100_000_000, 300, 0).await;
    for _ in 0..200 {
        store.submit(new_job(acct.id, 1000)).await.unwrap().unwrap();
    }
    let leasers = (0..16).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(lease) =
                store.lease(WorkerLease::named(format!("w{i}")), Duration::from_secs(60)).await.unwrap()
            {
                store.complete(lease.lease, result()).await.unwrap();
                mine.push(lease.job.id);
            }
            mine
        })
    });
    let mut all = Vec::new();
    for leaser in leasers {
        all.extend(leaser.await.unwrap());
    }
    assert_eq!(all.len(), 200, "every job leased");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 200, "no job leased twice");
    assert_consistent(&*store, acct.id, 100_000_000).await;
}

crate::conformance!(
    a_stale_lease_is_refused_and_expired_leases_requeue_then_fail_worker_lost,
    work_is_leased_fifo_and_progress_only_moves_forward,
    a_cancel_during_a_lease_stops_the_worker_and_charges_nothing,
    concurrent_workers_never_lease_a_job_twice,
);
