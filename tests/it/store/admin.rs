//! The operator's capability (`Admin`): admin tokens, suspension (read with an account's keys),
//! listing accounts, usage over a period, and any account's job.
use super::{account, new_job, result};
use ltx_serve::domain::job::JobStatus;
use ltx_serve::domain::money::MicroUsd;
use ltx_serve::store::*;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

async fn admin_tokens_are_stored_hashed_and_revoked(store: Arc<dyn Store>) {
    let store = &*store;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    store.create_admin_token(a, "hash-a".into(), Some("ops".into())).await.unwrap();
    store.create_admin_token(b, "hash-b".into(), None).await.unwrap();
    let read = store.admin_token(a).await.unwrap().unwrap();
    assert_eq!((read.id, read.secret_hash.as_str(), read.revoked), (a, "hash-a", false));
    assert!(store.revoke_admin_token(a).await.unwrap());
    assert!(store.revoke_admin_token(a).await.unwrap(), "revoking twice: the token exists");
    assert!(store.admin_token(a).await.unwrap().unwrap().revoked);
    assert!(!store.admin_token(b).await.unwrap().unwrap().revoked, "the other token is untouched");
    assert!(!store.revoke_admin_token(Uuid::new_v4()).await.unwrap());
    assert!(store.admin_token(Uuid::new_v4()).await.unwrap().is_none());
    assert!(store.create_admin_token(b, "other".into(), None).await.is_err(), "a token id is used once");
    // Admin tokens, worker tokens and API keys are separate: one table's id opens no other.
    assert!(store.worker_token(b).await.unwrap().is_none());
    assert!(store.key(b).await.unwrap().is_none());
}

async fn a_suspension_is_read_with_the_accounts_keys(store: Arc<dyn Store>) {
    let store = &*store;
    let (acct, other) = (account(store, 0, 1, 0).await, account(store, 0, 1, 0).await);
    let (key, other_key) = (Uuid::new_v4(), Uuid::new_v4());
    store.create_key(acct.id, key, "h".into(), None).await.unwrap();
    store.create_key(other.id, other_key, "h".into(), None).await.unwrap();
    assert!(!acct.suspended);
    assert!(!store.key(key).await.unwrap().unwrap().account_suspended);

    let suspended = store.set_suspended(acct.id, true).await.unwrap();
    assert!(suspended.suspended && store.account(acct.id).await.unwrap().suspended);
    assert!(store.key(key).await.unwrap().unwrap().account_suspended);
    assert!(!store.key(other_key).await.unwrap().unwrap().account_suspended, "only its own keys");
    assert!(store.set_suspended(acct.id, true).await.unwrap().suspended, "suspending twice is fine");
    assert!(!store.set_suspended(acct.id, false).await.unwrap().suspended);
    assert!(!store.key(key).await.unwrap().unwrap().account_suspended);
    assert!(matches!(store.set_suspended(Uuid::new_v4(), true).await, Err(StoreError::NotFound)));
}

async fn accounts_are_listed_newest_first_in_pages(store: Arc<dyn Store>) {
    let store = &*store;
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(account(store, 0, 1, 0).await.id);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.list_accounts(before, 2).await.unwrap();
        seen.extend(page.iter().map(|a| a.id));
        match page.last() {
            Some(last) if page.len() == 2 => before = Some(last.created_at),
            _ => break,
        }
    }
    assert_eq!(seen, made, "every account once, newest first");
    let first = store.list_accounts(None, 1).await.unwrap();
    assert_eq!(first[0].id, made[0]);
    assert!(store.list_accounts(Some(OffsetDateTime::UNIX_EPOCH), 10).await.unwrap().is_empty());
}

async fn usage_over_a_period_counts_its_jobs_and_money(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 1_000_000, 2, 5).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let start = OffsetDateTime::now_utc();
    let done = store.submit(new_job(acct.id, 200_000)).await.unwrap().unwrap();
    let waiting = store.submit(new_job(acct.id, 100_000)).await.unwrap().unwrap();
    let lease = store.lease(WorkerLease::named("w"), Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(lease.job.id, done.id);
    store.complete(lease.lease, result()).await.unwrap();
    store.add_credits(acct.id, MicroUsd(50_000), "bonus".into()).await.unwrap();
    let end = OffsetDateTime::now_utc() + time::Duration::seconds(1);

    let usage = store.usage_between(acct.id, start, end).await.unwrap();
    let expected = PeriodUsage {
        jobs_submitted: 2,
        jobs_completed: 1,
        jobs_unfinished: 1,
        charged: MicroUsd(200_000),
        credited: MicroUsd(50_000),
        ..Default::default()
    };
    assert_eq!(usage, expected, "the initial credits came before the period");
    let earlier = store.usage_between(acct.id, start - time::Duration::days(1), start).await.unwrap();
    assert_eq!((earlier.jobs_submitted, earlier.charged, earlier.credited), (0, MicroUsd(0), MicroUsd(1_000_000)));
    let other = account(store, 0, 1, 0).await;
    assert_eq!(store.usage_between(other.id, start, end).await.unwrap(), PeriodUsage::default());
    assert!(matches!(store.usage_between(Uuid::new_v4(), start, end).await, Err(StoreError::NotFound)));
    assert_eq!(store.any_job(waiting.id).await.unwrap().unwrap().status, JobStatus::Queued);
}

async fn any_job_is_found_whoever_owns_it(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 1_000_000, 1, 5).await;
    let job = store.submit(new_job(acct.id, 100_000)).await.unwrap().unwrap();
    let found = store.any_job(job.id).await.unwrap().unwrap();
    assert_eq!((found.id, found.account_id, found.price), (job.id, acct.id, MicroUsd(100_000)));
    assert!(store.any_job(Uuid::new_v4()).await.unwrap().is_none());
    // What the operator's cancel does: the owner's cancel, with the owner read from the job.
    let cancelled = store.cancel(found.account_id, job.id).await.unwrap().unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(store.any_job(job.id).await.unwrap().unwrap().status, JobStatus::Cancelled);
}

crate::conformance!(
    admin_tokens_are_stored_hashed_and_revoked,
    a_suspension_is_read_with_the_accounts_keys,
    accounts_are_listed_newest_first_in_pages,
    usage_over_a_period_counts_its_jobs_and_money,
    any_job_is_found_whoever_owns_it,
);
