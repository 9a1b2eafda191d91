//! Retention (`Retention`): finished jobs' results and old assets are claimed by one sweeper at a
//! time (a claim hides them until it lapses), a result recorded as expired stays on its job and
//! is never claimed again, and deleting a claimed asset gives its account its storage back.
use super::{account, assert_consistent, new_job, result};
use ltx_serve::domain::job::{FailureCode, JobStatus};
use ltx_serve::store::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(3600);

/// A moment after everything done so far: whatever finished or was uploaded is older.
fn later() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::seconds(5)
}

/// Runs one job of the account to `completed` with its result under a fresh directory.
async fn completed_job(store: &dyn Store, account: Uuid) -> (Job, String) {
    let job = store.submit(new_job(account, 1000)).await.unwrap().unwrap();
    let lease = store.lease(WorkerLease::named("w"), LONG).await.unwrap().expect("the job is leased");
    assert_eq!(lease.job.id, job.id);
    let dir = ltx_serve::storage::new_result_dir();
    let stored =
        JobResult { video_key: format!("{dir}/video.mp4"), poster_key: format!("{dir}/poster.jpg"), ..result() };
    store.complete(lease.lease, stored).await.unwrap();
    (job, dir)
}

fn ids(claimed: &[ExpiringResult]) -> Vec<Uuid> {
    claimed.iter().map(|r| r.job_id).collect()
}

async fn finished_results_are_claimed_by_one_sweeper_then_recorded_as_expired(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 1_000_000, 5, 5).await;
    let before_any = OffsetDateTime::now_utc() - time::Duration::seconds(5);
    let (first, first_dir) = completed_job(store, acct.id).await;
    let (second, _) = completed_job(store, acct.id).await;
    // A failed job has no result and a running one has not finished: neither is ever due.
    let _failed = store.submit(new_job(acct.id, 1000)).await.unwrap().unwrap();
    let lease = store.lease(WorkerLease::named("w"), LONG).await.unwrap().unwrap();
    store.fail(lease.lease, FailureCode::InvalidInput, "bad".into()).await.unwrap();
    let _running = store.submit(new_job(acct.id, 1000)).await.unwrap().unwrap();
    store.lease(WorkerLease::named("w"), LONG).await.unwrap().unwrap();

    assert!(store.claim_expiring_results(before_any, 10, LONG).await.unwrap().is_empty(), "none finished that early");
    let claimed = store.claim_expiring_results(later(), 1, LONG).await.unwrap();
    assert_eq!(
        claimed,
        vec![ExpiringResult {
            job_id: first.id,
            account_id: acct.id,
            video_key: format!("{first_dir}/video.mp4"),
            poster_key: format!("{first_dir}/poster.jpg"),
        }],
        "the oldest first, with its files' keys"
    );
    assert_eq!(claimed[0].dir(), first_dir);
    // The first is claimed for an hour; the second only briefly: it comes back once that lapses.
    assert_eq!(ids(&store.claim_expiring_results(later(), 10, Duration::from_millis(50)).await.unwrap()), [second.id]);
    assert!(store.claim_expiring_results(later(), 10, LONG).await.unwrap().is_empty(), "both are claimed");
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(ids(&store.claim_expiring_results(later(), 10, LONG).await.unwrap()), [second.id]);

    assert_eq!(store.result_expired_at(first_dir.clone()).await.unwrap(), None, "not recorded before the mark");
    assert!(store.mark_result_expired(claimed[0].clone()).await.unwrap());
    assert!(!store.mark_result_expired(claimed[0].clone()).await.unwrap(), "recorded once");
    let at = store.result_expired_at(first_dir.clone()).await.unwrap().expect("recorded");
    assert!((at - OffsetDateTime::now_utc()).abs() < time::Duration::minutes(1));
    assert_eq!(store.result_expired_at(ltx_serve::storage::new_result_dir()).await.unwrap(), None);
    // The job stays completed with its result, and says when its files went.
    let job = store.job(acct.id, first.id).await.unwrap().unwrap();
    assert_eq!((job.status, job.results_expired_at), (JobStatus::Completed, Some(at)));
    assert_eq!(job.result.map(|r| r.video_key), Some(format!("{first_dir}/video.mp4")));
    assert_eq!(store.job(acct.id, second.id).await.unwrap().unwrap().results_expired_at, None);
    let listed = store.list_jobs(acct.id, JobQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(listed.iter().find(|j| j.id == first.id).unwrap().results_expired_at, Some(at), "lists say it too");

    // Recorded results are never claimed again, however long after.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let unexpired = ExpiringResult { job_id: Uuid::new_v4(), ..claimed[0].clone() };
    assert!(!store.mark_result_expired(unexpired).await.unwrap(), "no such job: nothing recorded");
    assert_consistent(store, acct.id, 1_000_000).await;
}

async fn concurrent_sweepers_never_claim_the_same_result(store: Arc<dyn Store>) {
    let acct = account(&*store, 1_000_000, 30, 0).await;
    let mut all = BTreeSet::new();
    for _ in 0..24 {
        all.insert(completed_job(&*store, acct.id).await.0.id);
    }
    let cutoff = later();
    let sweepers = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_expiring_results(cutoff, 3, LONG).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(ids(&batch));
            }
        })
    });
    let mut claimed = Vec::new();
    for sweeper in sweepers.collect::<Vec<_>>() {
        claimed.extend(sweeper.await.unwrap());
    }
    let distinct: BTreeSet<Uuid> = claimed.iter().copied().collect();
    assert_eq!(distinct.len(), claimed.len(), "a result claimed twice");
    assert_eq!(distinct, all, "every due result claimed");
}

fn asset(account: Uuid, size_bytes: u64) -> Asset {
    Asset {
        id: Uuid::new_v4(),
        account_id: account,
        file_key: format!("assets/{}.png", Uuid::new_v4().simple()),
        mime_type: "image/png".into(),
        size_bytes,
        width: Some(64),
        height: Some(64),
        description: None,
        uploaded_at: OffsetDateTime::UNIX_EPOCH,
    }
}

async fn old_assets_are_claimed_once_and_deleting_one_gives_its_storage_back(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 0, 1, 0).await;
    let before_any = OffsetDateTime::now_utc() - time::Duration::seconds(5);
    let old = store.create_asset(asset(acct.id, 100)).await.unwrap();
    let newer = store.create_asset(asset(acct.id, 50)).await.unwrap();
    assert_eq!(store.account(acct.id).await.unwrap().storage, StorageUse { bytes: 150, files: 2 });

    assert!(store.claim_expiring_assets(before_any, 10, LONG).await.unwrap().is_empty(), "none uploaded that early");
    assert_eq!(store.claim_expiring_assets(later(), 1, LONG).await.unwrap(), vec![old.clone()], "the oldest first");
    let brief = store.claim_expiring_assets(later(), 10, Duration::from_millis(50)).await.unwrap();
    assert_eq!(brief, vec![newer.clone()]);
    assert!(store.claim_expiring_assets(later(), 10, LONG).await.unwrap().is_empty(), "both are claimed");
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(store.claim_expiring_assets(later(), 10, LONG).await.unwrap(), vec![newer.clone()], "its claim lapsed");

    // The sweeper deletes a claimed asset as its owner would: the row and its storage go.
    assert_eq!(store.delete_asset(acct.id, old.id).await.unwrap(), Some(old.clone()));
    assert_eq!(store.delete_asset(acct.id, old.id).await.unwrap(), None, "deleted once");
    assert_eq!(store.account(acct.id).await.unwrap().storage, StorageUse { bytes: 50, files: 1 });
    assert_eq!(store.asset(acct.id, old.id).await.unwrap(), None);
}

crate::conformance!(
    finished_results_are_claimed_by_one_sweeper_then_recorded_as_expired,
    concurrent_sweepers_never_claim_the_same_result,
    old_assets_are_claimed_once_and_deleting_one_gives_its_storage_back,
);
