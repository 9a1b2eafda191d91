//! Jobs as their owner and the operator see them: the backlog moves up in order, pages hold
//! every job once, watched jobs and job status read any job, counts cover every status, only own
//! and public styles are usable, a submit wakes a waiting worker.
use super::{account, assert_consistent, new_job, progress, result};
use ltx_serve::domain::job::{FailureCode, JobStatus};
use ltx_serve::store::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

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

async fn unknown_jobs_are_not_found_and_job_status_reads_any_accounts_job(store: Arc<dyn Store>) {
    let store = &*store;
    let (a, b) = (account(store, 10_000_000, 2, 0).await, account(store, 10_000_000, 2, 0).await);
    let mine = store.submit(new_job(a.id, 1_000)).await.unwrap().unwrap();
    let theirs = store.submit(new_job(b.id, 1_000)).await.unwrap().unwrap();
    // The operator's view needs no account.
    assert_eq!(store.job_status(mine.id).await.unwrap(), Some(JobStatus::Queued));
    assert_eq!(store.job_status(theirs.id).await.unwrap(), Some(JobStatus::Queued));
    store.cancel(b.id, theirs.id).await.unwrap().unwrap();
    assert_eq!(store.job_status(theirs.id).await.unwrap(), Some(JobStatus::Cancelled));
    assert_eq!(store.job_status(Uuid::new_v4()).await.unwrap(), None);

    let unknown = Uuid::new_v4();
    assert!(store.job(a.id, unknown).await.unwrap().is_none());
    assert!(matches!(store.cancel(a.id, unknown).await.unwrap(), Err(CancelRefusal::NotFound)));
    assert!(store.watched_jobs(vec![]).await.unwrap().is_empty());
    assert!(store.watched_jobs(vec![(a.id, unknown)]).await.unwrap().is_empty());
    let nobody = Uuid::new_v4();
    assert!(store.list_jobs(nobody, JobQuery { limit: 10, ..Default::default() }).await.unwrap().is_empty());
    assert!(
        matches!(store.submit(new_job(nobody, 1_000)).await, Err(StoreError::NotFound)),
        "no job for an account that does not exist"
    );
    store.ping().await.unwrap();
}

async fn job_counts_by_status_cover_every_account_and_every_status(store: Arc<dyn Store>) {
    let store = &*store;
    let ttl = Duration::from_secs(60);
    let (a, b) = (account(store, 10_000_000, 1, 2).await, account(store, 10_000_000, 2, 0).await);
    let a_jobs: Vec<Job> = vec![
        store.submit(new_job(a.id, 1_000)).await.unwrap().unwrap(),
        store.submit(new_job(a.id, 1_000)).await.unwrap().unwrap(),
        store.submit(new_job(a.id, 1_000)).await.unwrap().unwrap(),
    ];
    let b_jobs: Vec<Job> = vec![
        store.submit(new_job(b.id, 1_000)).await.unwrap().unwrap(),
        store.submit(new_job(b.id, 1_000)).await.unwrap().unwrap(),
    ];
    let first = store.lease(WorkerLease::named("w"), ttl).await.unwrap().unwrap();
    assert_eq!(first.job.id, a_jobs[0].id);
    store.complete(first.lease, result()).await.unwrap();
    let second = store.lease(WorkerLease::named("w"), ttl).await.unwrap().unwrap();
    assert_eq!(second.job.id, b_jobs[0].id, "B's job was queued before A's backlog moved up");
    store.fail(second.lease, FailureCode::EngineError, "boom".into()).await.unwrap();
    store.cancel(b.id, b_jobs[1].id).await.unwrap().unwrap();
    let third = store.lease(WorkerLease::named("w"), ttl).await.unwrap().unwrap();
    assert_eq!(third.job.id, a_jobs[1].id);
    store.heartbeat(third.lease, progress(JobStatus::Sampling), ttl).await.unwrap();

    let counts = store.job_counts_by_status().await.unwrap();
    assert_eq!(counts.iter().map(|(s, _)| *s).collect::<Vec<_>>(), JobStatus::ALL.to_vec(), "every status, zeros too");
    let expected: HashMap<JobStatus, u64> = [
        (JobStatus::Completed, 1),
        (JobStatus::Failed, 1),
        (JobStatus::Cancelled, 1),
        (JobStatus::Sampling, 1),
        (JobStatus::Backlogged, 1),
    ]
    .into();
    for (status, n) in counts {
        assert_eq!(n, expected.get(&status).copied().unwrap_or(0), "{status:?}");
    }
}

fn style(owner: Uuid, public: bool) -> Style {
    Style {
        id: Uuid::new_v4(),
        account_id: owner,
        owner_name: "a".into(),
        title: None,
        prompt: "noir".into(),
        public,
        urls: vec![],
        cover_url: None,
        file_key: format!("styles/{}.safetensors", Uuid::new_v4().simple()),
        size_bytes: 4096,
        lora_rank: 4,
        created_at: time::OffsetDateTime::now_utc(),
    }
}

async fn an_account_may_use_its_own_and_public_styles_only(store: Arc<dyn Store>) {
    let store = &*store;
    let (owner, other) = (account(store, 0, 1, 0).await, account(store, 0, 1, 0).await);
    let (own_private, own_public, their_private) =
        (style(owner.id, false), style(owner.id, true), style(other.id, false));
    for s in [&own_private, &own_public, &their_private] {
        store.create_style(s.clone()).await.unwrap();
    }
    let asked: Vec<String> =
        [their_private.id, own_private.id, Uuid::new_v4(), own_public.id].iter().map(|id| id.to_string()).collect();
    let usable = store.usable_styles(owner.id, asked.clone()).await.unwrap();
    assert_eq!(usable, vec![own_private.id.to_string(), own_public.id.to_string()], "in the order asked");
    let usable = store.usable_styles(other.id, asked).await.unwrap();
    assert_eq!(usable, vec![their_private.id.to_string(), own_public.id.to_string()]);
    assert!(store.usable_styles(owner.id, vec![]).await.unwrap().is_empty());
}

async fn a_submit_wakes_a_waiting_worker(store: Arc<dyn Store>) {
    let acct = account(&*store, 10_000_000, 100, 0).await;
    let signal = store.queue_signal();
    // PostgreSQL forwards the wake-up through LISTEN, which the store starts beside `connect`: a
    // submit made before it listens wakes nobody, so a few are tried.
    let mut woken = false;
    for _ in 0..10 {
        let mut notified = std::pin::pin!(signal.notified());
        notified.as_mut().enable();
        store.submit(new_job(acct.id, 1_000)).await.unwrap().unwrap();
        if tokio::time::timeout(Duration::from_secs(1), notified).await.is_ok() {
            woken = true;
            break;
        }
    }
    assert!(woken, "no submit woke the waiting worker");
}

/// A page of jobs reports each queued or backlogged job's place in line as reading the job does
/// (a page counts them in one go), and a filter by types merges every asked type newest first.
async fn a_listed_page_shows_places_in_line_and_merges_types(store: Arc<dyn Store>) {
    let store = &*store;
    let (a, b) = (account(store, 100_000_000, 4, 100).await, account(store, 100_000_000, 100, 100).await);
    let mut theirs = Vec::new();
    for i in 0..8 {
        let mut job = new_job(a.id, 1_000);
        job.kind = ["type-x", "type-y"][i % 2].into();
        theirs.push(store.submit(job).await.unwrap().unwrap());
        store.submit(new_job(b.id, 1_000)).await.unwrap().unwrap();
    }
    store.lease(WorkerLease::named("w"), Duration::from_secs(60)).await.unwrap().unwrap();
    let page = store.list_jobs(a.id, JobQuery { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(page.len(), 8);
    let statuses: HashSet<_> = page.iter().map(|j| j.status).collect();
    assert!(statuses.contains(&JobStatus::Queued) && statuses.contains(&JobStatus::Backlogged), "{statuses:?}");
    for job in &page {
        let read = store.job(a.id, job.id).await.unwrap().unwrap();
        assert_eq!((job.status, job.queue_position), (read.status, read.queue_position), "{}", job.id);
    }
    let both =
        JobQuery { limit: 100, kinds: vec!["type-y".into(), "type-x".into(), "type-y".into()], ..Default::default() };
    let merged: Vec<Uuid> = store.list_jobs(a.id, both).await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(merged, theirs.iter().rev().map(|j| j.id).collect::<Vec<_>>(), "every job once, newest first");
    let one =
        JobQuery { limit: 3, kinds: vec!["type-x".into()], status: Some(JobStatus::Backlogged), ..Default::default() };
    let xs = store.list_jobs(a.id, one).await.unwrap();
    assert!(!xs.is_empty() && xs.iter().all(|j| j.kind == "type-x" && j.status == JobStatus::Backlogged), "{xs:?}");
}

crate::conformance!(
    the_backlog_moves_up_in_order_as_slots_free,
    pages_hold_every_job_once_newest_first,
    watched_jobs_are_read_together_and_only_for_their_account,
    unknown_jobs_are_not_found_and_job_status_reads_any_accounts_job,
    job_counts_by_status_cover_every_account_and_every_status,
    an_account_may_use_its_own_and_public_styles_only,
    a_submit_wakes_a_waiting_worker,
    a_listed_page_shows_places_in_line_and_merges_types,
);
