//! The store's promises, checked on the store itself — the conformance suite every backend runs
//! (each check below runs on a fresh SQLite store and on a fresh PostgreSQL database): money and
//! counters stay consistent under any mix of operations, leases are fenced and never handed out
//! twice, expired leases requeue up to the retry limit, backlogs promote in order, pages hold
//! every job once.
use ltx_serve::domain::job::{FailureCode, JobStatus};
use ltx_serve::domain::money::MicroUsd;
use ltx_serve::domain::request::{AspectRatio, GenerateRequest, StyleRef};
use ltx_serve::store::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub(crate) fn new_job(account: Uuid, price: i64) -> NewJob {
    NewJob {
        id: Uuid::new_v4(),
        account_id: account,
        kind: "ltx-video-2.3-22b".into(),
        request: GenerateRequest {
            prompt: "p".into(),
            start_image: None,
            start_video: None,
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

pub(crate) async fn account(store: &dyn Store, credits: i64, max_concurrent: u32, max_backlog: u32) -> Account {
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

async fn money_and_counters_stay_consistent_under_a_random_mix(store: Arc<dyn Store>) {
    let store = &*store;
    let credits = 3_000_000;
    let acct = account(store, credits, 2, 3).await;
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
                if let Some(lease) = store.lease(WorkerLease::named("w"), Duration::from_secs(60)).await.unwrap() {
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
                let jobs = all_jobs(store, acct.id).await;
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
            assert_consistent(store, acct.id, credits_now).await;
        }
    }
    assert!(
        submitted > 20 && refused_backlog > 0,
        "the mix exercised the limits: {submitted} {refused_money} {refused_backlog}"
    );
}

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

async fn the_backlog_moves_up_in_order_as_slots_free(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 10_000_000, 1, 2).await;
    let mut jobs = Vec::new();
    for _ in 0..3 {
        jobs.push(store.submit(new_job(acct.id, 179_800)).await.unwrap().unwrap());
    }
    assert_eq!(
        jobs.iter().map(|j| j.status).collect::<Vec<_>>(),
        [JobStatus::Queued, JobStatus::Backlogged, JobStatus::Backlogged]
    );
    let third = store.job(acct.id, jobs[2].id).await.unwrap().unwrap();
    assert_eq!(third.queue_position, Some(2), "second in the account's backlog");
    assert!(matches!(store.submit(new_job(acct.id, 179_800)).await.unwrap(), Err(SubmitRefusal::BacklogFull { .. })));

    let lease = store.lease(WorkerLease::named("w"), Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(lease.job.id, jobs[0].id);
    assert!(
        store.lease(WorkerLease::named("w"), Duration::from_secs(60)).await.unwrap().is_none(),
        "backlog is not leasable"
    );
    store.complete(lease.lease, result()).await.unwrap();
    let second = store.job(acct.id, jobs[1].id).await.unwrap().unwrap();
    assert_eq!((second.status, second.queue_position), (JobStatus::Queued, Some(1)));
    assert_eq!(store.job(acct.id, jobs[2].id).await.unwrap().unwrap().queue_position, Some(1));
    // Raising the limit promotes at once.
    store.set_limits(acct.id, Some(2), None).await.unwrap();
    assert_eq!(store.job(acct.id, jobs[2].id).await.unwrap().unwrap().status, JobStatus::Queued);
    assert_consistent(store, acct.id, 10_000_000).await;
}

async fn pages_hold_every_job_once_newest_first(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 100_000_000, 100, 100).await;
    let mut submitted = HashSet::new();
    for _ in 0..25 {
        submitted.insert(store.submit(new_job(acct.id, 1000)).await.unwrap().unwrap().id);
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.list_jobs(acct.id, JobQuery { before, limit: 10, ..Default::default() }).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.windows(2).all(|w| w[0].created_at > w[1].created_at), "newest first, no ties");
        before = page.last().map(|j| j.created_at);
        seen.extend(page.into_iter().map(|j| j.id));
    }
    assert_eq!(seen.len(), 25);
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), submitted);
    let lease = store.lease(WorkerLease::named("w"), Duration::from_secs(60)).await.unwrap().unwrap();
    store.complete(lease.lease, result()).await.unwrap();
    let completed = JobQuery { limit: 100, status: Some(JobStatus::Completed), ..Default::default() };
    assert_eq!(store.list_jobs(acct.id, completed).await.unwrap().len(), 1);
    let other_kind = JobQuery { limit: 100, kinds: vec!["something-else".into()], ..Default::default() };
    assert!(store.list_jobs(acct.id, other_kind).await.unwrap().is_empty());
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

async fn concurrent_submits_never_exceed_the_limits_or_the_balance(store: Arc<dyn Store>) {
    // Money for 20 jobs, room for 4 running and 10 waiting: 14 are accepted.
    let acct = account(&*store, 20 * 179_800, 4, 10).await;
    let submits = (0..60).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.submit(new_job(acct.id, 179_800)).await.unwrap() })
    });
    let mut accepted = 0;
    for submit in submits {
        match submit.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(SubmitRefusal::BacklogFull { .. }) => {}
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
    }
    assert_eq!(accepted, 14);
    assert_consistent(&*store, acct.id, 20 * 179_800).await;
}

async fn a_repeated_idempotency_key_creates_one_job(store: Arc<dyn Store>) {
    let acct = account(&*store, 10_000_000, 4, 10).await;
    let submits = (0..10).map(|_| {
        let store = store.clone();
        let mut job = new_job(acct.id, 179_800);
        job.idempotency =
            Some(Idempotency { key: "k1".into(), fingerprint: "f1".into(), window: Duration::from_secs(60) });
        tokio::spawn(async move { store.submit(job).await.unwrap().unwrap().id })
    });
    let mut ids = HashSet::new();
    for submit in submits {
        ids.insert(submit.await.unwrap());
    }
    assert_eq!(ids.len(), 1, "ten concurrent repeats, one job");
    let mut other_body = new_job(acct.id, 179_800);
    other_body.idempotency =
        Some(Idempotency { key: "k1".into(), fingerprint: "f2".into(), window: Duration::from_secs(60) });
    assert!(matches!(store.submit(other_body).await.unwrap(), Err(SubmitRefusal::IdempotencyConflict { .. })));
    assert_consistent(&*store, acct.id, 10_000_000).await;
}

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

async fn worker_tokens_and_the_registry(store: Arc<dyn Store>) {
    let store = &*store;
    let id = Uuid::new_v4();
    store.create_worker_token(id, "hash".into(), Some("gpu host".into())).await.unwrap();
    let token = store.worker_token(id).await.unwrap().unwrap();
    assert_eq!((token.secret_hash.as_str(), token.revoked), ("hash", false));
    assert!(store.revoke_worker_token(id).await.unwrap());
    assert!(store.worker_token(id).await.unwrap().unwrap().revoked);
    assert!(!store.revoke_worker_token(Uuid::new_v4()).await.unwrap());
    assert!(store.worker_token(Uuid::new_v4()).await.unwrap().is_none());

    let info =
        WorkerInfo { name: "gpu-1".into(), engine: "ltx".into(), gpu: Some("H100".into()), ..Default::default() };
    store.record_worker(info.clone()).await.unwrap();
    store.record_worker(info.clone()).await.unwrap();
    let live = store.live_workers(Duration::from_secs(30)).await.unwrap();
    assert_eq!(live.iter().map(|w| w.info.clone()).collect::<Vec<_>>(), vec![info]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store.live_workers(Duration::from_millis(10)).await.unwrap().is_empty(), "silent workers are not live");
}

async fn a_terminal_job_with_a_webhook_is_claimed_once(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 10_000_000, 10, 0).await;
    let mut job = new_job(acct.id, 1000);
    job.webhook_url = Some("https://example.com/hook".into());
    let job = store.submit(job).await.unwrap().unwrap();
    assert!(store.claim_due_webhooks(10, Duration::from_secs(60)).await.unwrap().is_empty(), "nothing before the end");
    let lease = store.lease(WorkerLease::named("w"), Duration::from_secs(60)).await.unwrap().unwrap();
    store.complete(lease.lease, result()).await.unwrap();
    let claimed = store.claim_due_webhooks(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed.iter().map(|d| (d.job_id, d.attempts)).collect::<Vec<_>>(), vec![(job.id, 1)]);
    assert!(store.claim_due_webhooks(10, Duration::from_secs(60)).await.unwrap().is_empty(), "hidden while claimed");
    store.record_webhook(claimed[0].id.clone(), WebhookOutcome::Delivered { status: 204 }).await.unwrap();
    let state = store.job(acct.id, job.id).await.unwrap().unwrap().webhook.unwrap();
    assert_eq!((state.status.as_str(), state.attempts, state.last_status), ("delivered", 1, Some(204)));
}

async fn watched_jobs_are_read_together_and_only_for_their_account(store: Arc<dyn Store>) {
    let a = account(&*store, 10_000_000, 1, 5).await;
    let b = account(&*store, 10_000_000, 1, 5).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(store.submit(new_job(a.id, 1_000)).await.unwrap().unwrap().id);
    }
    let theirs = store.submit(new_job(b.id, 1_000)).await.unwrap().unwrap().id;
    let asked = vec![(a.id, ids[0]), (a.id, ids[2]), (a.id, theirs), (b.id, theirs), (a.id, Uuid::now_v7())];
    // What a stream shows of a job.
    let shown = |jobs: Vec<Job>| {
        let mut shown: Vec<_> = jobs.iter().map(|j| (j.id, j.account_id, j.status, j.queue_position)).collect();
        shown.sort_by_key(|s| s.0);
        shown
    };
    let seen = shown(store.watched_jobs(asked).await.unwrap());
    let expected = shown(vec![
        store.job(a.id, ids[0]).await.unwrap().unwrap(),
        store.job(a.id, ids[2]).await.unwrap().unwrap(),
        store.job(b.id, theirs).await.unwrap().unwrap(),
    ]);
    // Each as `job` reads it; another account's job is not read for A, an unknown id is skipped.
    assert_eq!(seen, expected);
    // The place in line is filled in: A's third job is second in its backlog.
    assert!(seen.contains(&(ids[2], a.id, JobStatus::Backlogged, Some(2))), "{seen:?}");
}

/// Each check on a fresh SQLite store and on a fresh PostgreSQL database.
#[macro_export]
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = ltx_serve::store::sqlite::SqliteStore::open(dir.path()).unwrap();
                    super::$check(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread")]
                #[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
                async fn $check() {
                    let db = $crate::pg::TestDatabase::create().await;
                    let store = ltx_serve::store::postgres::PgStore::connect(&db.url).await.unwrap();
                    super::$check(std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

conformance!(
    money_and_counters_stay_consistent_under_a_random_mix,
    a_stale_lease_is_refused_and_expired_leases_requeue_then_fail_worker_lost,
    work_is_leased_fifo_and_progress_only_moves_forward,
    a_cancel_during_a_lease_stops_the_worker_and_charges_nothing,
    the_backlog_moves_up_in_order_as_slots_free,
    pages_hold_every_job_once_newest_first,
    concurrent_workers_never_lease_a_job_twice,
    concurrent_submits_never_exceed_the_limits_or_the_balance,
    a_repeated_idempotency_key_creates_one_job,
    a_worker_with_the_lora_set_resident_gets_that_job_first,
    no_job_waits_longer_than_the_affinity_bound,
    worker_tokens_and_the_registry,
    a_terminal_job_with_a_webhook_is_claimed_once,
    watched_jobs_are_read_together_and_only_for_their_account,
);

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn postgres_replicas_starting_together_migrate_once() {
    let db = crate::pg::TestDatabase::create().await;
    let connect = || ltx_serve::store::postgres::PgStore::connect(&db.url);
    let (a, b, c) = tokio::join!(connect(), connect(), connect());
    let (a, b, _c) = (a.unwrap(), b.unwrap(), c.unwrap());
    // Both see one schema: what one writes the other reads.
    let acct = account(&a, 1_000_000, 1, 0).await;
    assert_eq!(b.account(acct.id).await.unwrap().balance.0, 1_000_000);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    let versions: Vec<i32> =
        sqlx::query_scalar("SELECT version FROM ltx_schema_version").fetch_all(&mut conn).await.unwrap();
    assert_eq!(versions, vec![1, 2], "each migration ran exactly once");
}
