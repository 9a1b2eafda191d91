//! Affinity: a worker with a LoRA set resident gets jobs of that set first, but no job waits
//! longer than the bound for it.
use super::{account, new_job};
use ltx_serve::domain::request::StyleRef;
use ltx_serve::store::*;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

async fn a_worker_with_the_lora_set_resident_gets_that_job_first(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 10_000_000, 10, 0).await;
    let plain = store.submit(new_job(acct.id, 1000)).await.unwrap().unwrap();
    let mut styled = new_job(acct.id, 1000);
    styled.request.styles = vec![StyleRef { id: "s1".into(), strength: 1.0 }];
    let styled = store.submit(styled).await.unwrap().unwrap();
    let resident = WorkerLease::named("gpu-a").preferring(vec!["s2@1".into(), "s1@1".into()], Duration::from_secs(60));
    let first = store.lease(resident, Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(first.job.id, styled.id, "the resident LoRA set wins over queue order");
    let second = store.lease(WorkerLease::named("gpu-b"), Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(second.job.id, plain.id);
}

fn styled_job(account: Uuid, style: &str) -> NewJob {
    let mut job = new_job(account, 1000);
    job.request.styles = vec![StyleRef { id: style.into(), strength: 1.0 }];
    job
}

async fn no_job_waits_longer_than_the_affinity_bound(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 10_000_000, 10, 0).await;
    let resident = |max_wait: Duration| WorkerLease::named("gpu-a").preferring(vec!["s1@1".into()], max_wait);
    let ttl = Duration::from_secs(60);

    // A bound of zero turns affinity off: strictly oldest first.
    let plain = store.submit(new_job(acct.id, 1000)).await.unwrap().unwrap();
    store.submit(styled_job(acct.id, "s1")).await.unwrap().unwrap();
    assert_eq!(store.lease(resident(Duration::ZERO), ttl).await.unwrap().unwrap().job.id, plain.id);
    store.lease(WorkerLease::named("drain"), ttl).await.unwrap().unwrap();

    let oldest = store.submit(new_job(acct.id, 1000)).await.unwrap().unwrap();
    let younger = store.submit(new_job(acct.id, 1000)).await.unwrap().unwrap();
    let styled = store.submit(styled_job(acct.id, "s1")).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bounded = store.lease(resident(Duration::from_millis(100)), ttl).await.unwrap().unwrap();
    assert_eq!(bounded.job.id, oldest.id, "the oldest job waited past the bound: it goes first");
    let preferred = store.lease(resident(Duration::from_secs(60)), ttl).await.unwrap().unwrap();
    assert_eq!(preferred.job.id, styled.id, "within the bound the resident set still wins");
    assert_eq!(store.lease(resident(Duration::from_secs(60)), ttl).await.unwrap().unwrap().job.id, younger.id);
}

crate::conformance!(
    a_worker_with_the_lora_set_resident_gets_that_job_first,
    no_job_waits_longer_than_the_affinity_bound,
);
