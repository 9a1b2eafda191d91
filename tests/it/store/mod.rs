//! The store's promises, checked on the store itself — the conformance suite every backend runs
//! (each check below runs on a fresh SQLite store and on a fresh PostgreSQL database): money and
//! counters stay consistent under any mix of operations, leases are fenced and never handed out
//! twice, expired leases requeue up to the retry limit, backlogs promote in order, pages hold
//! every job once.
//!
//! Which file covers which capability (every method of the store has a check on both backends):
//! - `accounts`: accounts, credits, limits, API keys, the ledger, usage, the webhook secret
//!   (`create_account`, `account`, `count_accounts`, `add_credits`, `set_limits`, `create_key`,
//!   `revoke_key`, `key`, `ledger`, `usage`, `rotate_webhook_secret`), unknown accounts included.
//! - `money`: balance, holds and counters under a random mix and concurrent submits; idempotency.
//! - `jobs`: the owner's view (`submit`, `job`, `list_jobs`, `watched_jobs`, `cancel`,
//!   `usable_styles`), backlog promotion, and the operator's view (`job_status`,
//!   `job_counts_by_status`, `ping`, `queue_signal`).
//! - `leases`: `lease`, `heartbeat`, `complete`, expiry and requeue, cancel during a lease, no
//!   job leased twice.
//! - `fencing`: `lease_is_held`, `fail`, `hand_back`, and `LeaseLost` from every report a lost
//!   lease makes (`heartbeat`, `complete`, `fail`, `publish_preview`, `hand_back`).
//! - `sweep`: the scheduler's `sweep` failing a job that ran past the maximum run time.
//! - `affinity`: leases preferring a worker's resident LoRA set, bounded by the oldest job's wait.
//! - `workers`: worker tokens and the registry (`create_worker_token`, `revoke_worker_token`,
//!   `worker_token`, `record_worker`, `live_workers`, `touch_worker`).
//! - `webhooks`: the outbox (`claim_due_webhooks`, `record_webhook` with each outcome,
//!   `webhook_signal`).
//! - `rate_limits`: an account's own request rate limit (`set_rate_limit`, read with `key`) and
//!   the count of live API replicas (`count_api_replicas`).
//! - `retention`: `claim_expiring_results`, `mark_result_expired`, `result_expired_at`,
//!   `claim_expiring_assets` (claims hidden until they lapse, never one row to two sweepers).
//! - `admin`: the operator's capability (`create_admin_token`, `revoke_admin_token`,
//!   `admin_token`, `set_suspended` read with `key`, `list_accounts`, `usage_between`, `any_job`).
//! - `../store_library.rs`: assets and styles (`Library`); `../store_previews.rs`: `publish_preview`.
mod accounts;
mod admin;
mod affinity;
mod fencing;
mod jobs;
mod leases;
mod money;
mod rate_limits;
mod retention;
mod sweep;
mod webhooks;
mod workers;

use ltx_serve::domain::job::JobStatus;
use ltx_serve::domain::money::MicroUsd;
use ltx_serve::domain::request::{AspectRatio, GenerateRequest};
use ltx_serve::store::*;
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
            mode: None,
            quality: None,
            enhance_prompt: false,
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

pub(crate) fn result() -> JobResult {
    JobResult {
        video_key: "k/video.mp4".into(),
        poster_key: "k/poster.jpg".into(),
        width: 1280,
        height: 720,
        num_frames: 121,
        fps: 24,
        has_audio: true,
        engine: "test".into(),
        enhanced_prompt: None,
    }
}

pub(crate) fn progress(status: JobStatus) -> Progress {
    Progress { status, progress: 0.5, engine: Some("test".into()) }
}

/// One account with one slot and a backlog of one: a job with a webhook leased for `ttl`, and a
/// second waiting in the backlog behind it.
pub(crate) async fn one_running_one_waiting(store: &dyn Store, ttl: Duration) -> (Account, Job, Job, Lease) {
    let acct = account(store, 1_000_000, 1, 1).await;
    let mut hooked = new_job(acct.id, 179_800);
    hooked.webhook_url = Some("https://example.com/hook".into());
    let running = store.submit(hooked).await.unwrap().unwrap();
    let waiting = store.submit(new_job(acct.id, 200_000)).await.unwrap().unwrap();
    let lease = store.lease(WorkerLease::named("w"), ttl).await.unwrap().unwrap();
    (acct, running, waiting, lease)
}

pub(crate) async fn account(store: &dyn Store, credits: i64, max_concurrent: u32, max_backlog: u32) -> Account {
    store
        .create_account(NewAccount { name: "a".into(), credits: MicroUsd(credits), max_concurrent, max_backlog })
        .await
        .unwrap()
}

pub(crate) async fn all_jobs(store: &dyn Store, account: Uuid) -> Vec<Job> {
    store.list_jobs(account, JobQuery { limit: 1000, ..Default::default() }).await.unwrap()
}

/// Balance, holds, counters and ledger agree with the jobs.
pub(crate) async fn assert_consistent(store: &dyn Store, id: Uuid, credits: i64) {
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
    assert_eq!(versions, (1..=versions.len() as i32).collect::<Vec<i32>>(), "each migration ran exactly once");
}
