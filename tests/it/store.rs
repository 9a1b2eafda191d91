//! The store's promises, checked on the store itself (the conformance suite every backend will
//! run): money and counters stay consistent under any mix of operations, leases are fenced, and
//! expired leases requeue up to the retry limit.
use ltx_serve::domain::job::{FailureCode, JobStatus};
use ltx_serve::domain::money::MicroUsd;
use ltx_serve::domain::request::{AspectRatio, GenerateRequest};
use ltx_serve::store::sqlite::SqliteStore;
use ltx_serve::store::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

fn new_job(account: Uuid, price: i64) -> NewJob {
    NewJob {
        id: Uuid::new_v4(),
        account_id: account,
        kind: "ltx-video-2.3-22b".into(),
        request: GenerateRequest {
            prompt: "p".into(),
            start_image: None,
            end_image: None,
            aspect_ratio: AspectRatio::Landscape,
            duration: 5,
            num_frames: 121,
            seed: Some(1),
            generate_audio: true,
            styles: vec![],
        },
        seed: 1,
        width: 1280,
        height: 720,
        price: MicroUsd(price),
        price_tier_seconds: 5,
        webhook_url: None,
        idempotency: None,
    }
}

fn result() -> JobResult {
    JobResult {
        video_key: "k/video.mp4".into(),
        poster_key: "k/poster.jpg".into(),
        width: 1280,
        height: 720,
        num_frames: 121,
        fps: 24,
        has_audio: true,
        engine: "test".into(),
    }
}

fn progress(status: JobStatus) -> Progress {
    Progress { status, progress: 0.5, engine: Some("test".into()) }
}

async fn account(store: &dyn Store, credits: i64, max_concurrent: u32, max_backlog: u32) -> Account {
    store
        .create_account(NewAccount { name: "a".into(), credits: MicroUsd(credits), max_concurrent, max_backlog })
        .await
        .unwrap()
}

async fn all_jobs(store: &dyn Store, account: Uuid) -> Vec<Job> {
    store.list_jobs(account, JobQuery { limit: 1000, ..Default::default() }).await.unwrap()
}

/// Balance, holds, counters and ledger agree with the jobs.
async fn assert_consistent(store: &dyn Store, id: Uuid, credits: i64) {
    let account = store.account(id).await.unwrap();
    let jobs = all_jobs(store, id).await;
    let ledger = store.ledger(id, 100_000).await.unwrap();
    let sum = |kind: LedgerKind| ledger.iter().filter(|e| e.kind == kind).map(|e| e.amount.0).sum::<i64>();
    let charged: i64 = jobs.iter().filter(|j| j.status == JobStatus::Completed).map(|j| j.price.0).sum();
    let held: i64 = jobs.iter().filter(|j| !j.status.is_terminal()).map(|j| j.price.0).sum();
    assert_eq!(account.balance.0, credits - charged, "balance = credits − completed prices");
    assert_eq!(account.held.0, held, "held = prices of unfinished jobs");
    assert_eq!(sum(LedgerKind::Credit) - sum(LedgerKind::Charge), account.balance.0, "ledger adds up to the balance");
    assert_eq!(sum(LedgerKind::Hold) - sum(LedgerKind::Charge) - sum(LedgerKind::Release), account.held.0);
    let active = jobs.iter().filter(|j| j.status.occupies_slot()).count() as u32;
    let backlogged = jobs.iter().filter(|j| j.status == JobStatus::Backlogged).count() as u32;
    assert_eq!((account.active_jobs, account.backlogged_jobs), (active, backlogged), "counters match the jobs");
    assert!(active <= account.max_concurrent, "{active} jobs hold slots, limit {}", account.max_concurrent);
    assert!(backlogged == 0 || active == account.max_concurrent, "a job waits in the backlog while a slot is free");
    assert!(account.balance.0 >= 0 && account.available().0 >= 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn money_and_counters_stay_consistent_under_a_random_mix() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let credits = 3_000_000;
    let acct = account(&store, credits, 2, 3).await;
    let mut rng = StdRng::seed_from_u64(2);
    let mut leases: Vec<LeaseRef> = Vec::new();
    let mut submitted = 0;
    let (mut refused_money, mut refused_backlog) = (0, 0);
    for step in 0..400 {
        match rng.gen_range(0..10) {
            0..=3 => match store.submit(new_job(acct.id, rng.gen_range(100_000..300_000))).await.unwrap() {
                Ok(_) => submitted += 1,
                Err(SubmitRefusal::InsufficientBalance { .. }) => refused_money += 1,
                Err(SubmitRefusal::BacklogFull { .. }) => refused_backlog += 1,
                Err(other) => panic!("no idempotency key was sent: {other:?}"),
            },
            4 => {
                if let Some(lease) = store.lease("w".into(), Duration::from_secs(60)).await.unwrap() {
                    leases.push(lease.lease);
                }
            }
            5 if !leases.is_empty() => {
                let lease = leases.remove(rng.gen_range(0..leases.len()));
                let _ = store.complete(lease, result()).await;
            }
            6 if !leases.is_empty() => {
                let lease = leases.remove(rng.gen_range(0..leases.len()));
                let _ = store.fail(lease, FailureCode::EngineError, "boom".into()).await;
            }
            7 if !leases.is_empty() => {
                let lease = leases[rng.gen_range(0..leases.len())];
                let _ = store.heartbeat(lease, progress(JobStatus::Sampling), Duration::from_secs(60)).await;
            }
            8 => {
                let jobs = all_jobs(&store, acct.id).await;
                let open: Vec<_> = jobs.iter().filter(|j| !j.status.is_terminal()).collect();
                if !open.is_empty() {
                    let id = open[rng.gen_range(0..open.len())].id;
                    assert!(store.cancel(acct.id, id).await.unwrap().is_ok());
                }
            }
            9 if !leases.is_empty() => {
                let lease = leases.remove(rng.gen_range(0..leases.len()));
                let _ = store.hand_back(lease).await;
            }
            _ => {
                store.add_credits(acct.id, MicroUsd(200_000), "top-up".into()).await.unwrap();
            }
        }
        if step % 20 == 0 {
            let credits_now: i64 = store
                .ledger(acct.id, 100_000)
                .await
                .unwrap()
                .iter()
                .filter(|e| e.kind == LedgerKind::Credit)
                .map(|e| e.amount.0)
                .sum();
            assert_consistent(&store, acct.id, credits_now).await;
        }
    }
    assert!(
        submitted > 20 && refused_backlog > 0,
        "the mix exercised the limits: {submitted} {refused_money} {refused_backlog}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_lease_is_refused_and_expired_leases_requeue_then_fail_worker_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let acct = account(&store, 1_000_000, 1, 0).await;
    let job = store.submit(new_job(acct.id, 179_800)).await.unwrap().unwrap();
    let max_run = Duration::from_secs(3600);

    let first = store.lease("w1".into(), Duration::from_millis(1)).await.unwrap().unwrap();
    assert_eq!(first.job.attempts, 1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = store.sweep(2, max_run).await.unwrap();
    assert_eq!(report.requeued, vec![job.id]);
    assert_eq!(store.job(acct.id, job.id).await.unwrap().unwrap().status, JobStatus::Queued);

    let second = store.lease("w2".into(), Duration::from_millis(1)).await.unwrap().unwrap();
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
    assert_consistent(&store, acct.id, 1_000_000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn work_is_leased_fifo_and_progress_only_moves_forward() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let acct = account(&store, 10_000_000, 10, 0).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(store.submit(new_job(acct.id, 179_800)).await.unwrap().unwrap().id);
    }
    let mut leased = Vec::new();
    while let Some(lease) = store.lease("w".into(), Duration::from_secs(60)).await.unwrap() {
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
        all_jobs(&store, acct.id).await.into_iter().map(|j| (j.id, j.status)).collect();
    assert_eq!(statuses[&ids[0]], JobStatus::Completed);
    assert_eq!(store.account(acct.id).await.unwrap().balance, MicroUsd(10_000_000 - 179_800));
}
