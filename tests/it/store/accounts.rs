//! Accounts, credits, limits, API keys, the ledger, usage and the webhook secret, unknown
//! accounts included.
use super::{account, assert_consistent, new_job, result};
use ltx_serve::domain::job::FailureCode;
use ltx_serve::domain::money::MicroUsd;
use ltx_serve::store::*;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

async fn accounts_are_counted_and_credits_and_limits_change_them(store: Arc<dyn Store>) {
    let store = &*store;
    let before = store.count_accounts().await.unwrap();
    let acct = account(store, 1_000_000, 2, 3).await;
    let other = account(store, 0, 1, 0).await;
    assert_eq!(store.count_accounts().await.unwrap(), before + 2);
    let read = store.account(acct.id).await.unwrap();
    assert_eq!(
        (read.id, read.name.as_str(), read.balance.0, read.held.0, read.max_concurrent, read.max_backlog),
        (acct.id, "a", 1_000_000, 0, 2, 3)
    );
    assert_eq!((read.active_jobs, read.backlogged_jobs), (0, 0));

    let topped = store.add_credits(acct.id, MicroUsd(250_000), "top-up".into()).await.unwrap();
    assert_eq!(topped.balance.0, 1_250_000);
    let latest = store.ledger(acct.id, 1).await.unwrap();
    let shown = |e: &LedgerEntry| (e.kind, e.amount.0, e.note.clone(), e.job_id);
    assert_eq!(
        latest.iter().map(shown).collect::<Vec<_>>(),
        vec![(LedgerKind::Credit, 250_000, Some("top-up".into()), None)]
    );

    // Credits held by an unfinished job cannot be taken back.
    store.submit(new_job(acct.id, 1_000_000)).await.unwrap().unwrap();
    assert!(store.add_credits(acct.id, MicroUsd(-300_000), "too much".into()).await.is_err());
    assert_eq!(store.account(acct.id).await.unwrap().balance.0, 1_250_000, "a refused removal changes nothing");
    let taken = store.add_credits(acct.id, MicroUsd(-250_000), "refund".into()).await.unwrap();
    assert_eq!((taken.balance.0, taken.held.0), (1_000_000, 1_000_000));
    assert_eq!(store.account(other.id).await.unwrap().balance.0, 0, "the other account is untouched");

    let limited = store.set_limits(acct.id, Some(4), None).await.unwrap();
    assert_eq!((limited.max_concurrent, limited.max_backlog), (4, 3), "a limit not given stays");
    let limited = store.set_limits(acct.id, None, Some(0)).await.unwrap();
    assert_eq!((limited.max_concurrent, limited.max_backlog), (4, 0));
    // A limit of 0 is refused (it used to be raised to 1 silently): always room for one job.
    let refused = store.set_limits(acct.id, Some(0), Some(7)).await;
    assert!(matches!(&refused, Err(StoreError::Refused(why)) if why.contains("at least 1")), "{refused:?}");
    let read = store.account(acct.id).await.unwrap();
    assert_eq!((read.max_concurrent, read.max_backlog), (4, 0), "a refused change changes nothing");
    let limited = store.set_limits(acct.id, Some(1), None).await.unwrap();
    assert_eq!((limited.max_concurrent, limited.max_backlog), (1, 0));
    let read = store.account(acct.id).await.unwrap();
    assert_eq!((read.max_concurrent, read.max_backlog), (1, 0), "limits are kept");
    let new = NewAccount { name: "z".into(), credits: MicroUsd(0), max_concurrent: 0, max_backlog: 0 };
    assert!(matches!(store.create_account(new).await, Err(StoreError::Refused(_))), "nor on a new account");
}

async fn an_unknown_account_is_not_found(store: Arc<dyn Store>) {
    let store = &*store;
    let before = store.count_accounts().await.unwrap();
    let nobody = Uuid::new_v4();
    assert!(matches!(store.account(nobody).await, Err(StoreError::NotFound)));
    assert!(matches!(store.add_credits(nobody, MicroUsd(1), "x".into()).await, Err(StoreError::NotFound)));
    assert!(matches!(store.set_limits(nobody, Some(2), None).await, Err(StoreError::NotFound)));
    assert!(matches!(store.rotate_webhook_secret(nobody).await, Err(StoreError::NotFound)));
    let key = Uuid::new_v4();
    assert!(matches!(store.create_key(nobody, key, "h".into(), None).await, Err(StoreError::NotFound)));
    assert!(store.key(key).await.unwrap().is_none(), "no key for an account that does not exist");
    assert!(store.ledger(nobody, 10).await.unwrap().is_empty());
    let usage = store.usage(nobody).await.unwrap();
    assert_eq!(
        (usage.jobs_completed, usage.jobs_failed, usage.jobs_cancelled, usage.jobs_unfinished, usage.charged_total.0),
        (0, 0, 0, 0, 0)
    );
    assert_eq!(store.count_accounts().await.unwrap(), before, "nothing was created");
}

async fn api_keys_are_created_looked_up_and_revoked(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 0, 1, 0).await;
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    store.create_key(acct.id, first, "hash-1".into(), Some("ci".into())).await.unwrap();
    store.create_key(acct.id, second, "hash-2".into(), None).await.unwrap();
    let key = store.key(first).await.unwrap().unwrap();
    assert_eq!((key.key_id, key.account_id, key.secret_hash.as_str(), key.revoked), (first, acct.id, "hash-1", false));

    assert!(store.revoke_key(first).await.unwrap());
    assert!(store.key(first).await.unwrap().unwrap().revoked);
    assert!(!store.key(second).await.unwrap().unwrap().revoked, "revoking one key leaves the others");
    // Revoking twice is fine: the key exists, so it is reported found, and stays revoked.
    assert!(store.revoke_key(first).await.unwrap());
    assert!(store.key(first).await.unwrap().unwrap().revoked);
    assert!(!store.revoke_key(Uuid::new_v4()).await.unwrap(), "no such key");
    assert!(store.key(Uuid::new_v4()).await.unwrap().is_none());

    assert!(store.create_key(acct.id, second, "again".into(), None).await.is_err(), "a key id is used once");
    assert_eq!(store.key(second).await.unwrap().unwrap().secret_hash, "hash-2");
}

async fn usage_counts_jobs_by_outcome_and_the_ledger_shows_each_step(store: Arc<dyn Store>) {
    let store = &*store;
    let ttl = Duration::from_secs(60);
    let acct = account(store, 10_000_000, 1, 5).await;
    let mut jobs = Vec::new();
    for price in [100_000, 200_000, 300_000, 400_000, 500_000] {
        jobs.push(store.submit(new_job(acct.id, price)).await.unwrap().unwrap().id);
    }
    let lease = store.lease(WorkerLease::named("w"), ttl).await.unwrap().unwrap();
    store.complete(lease.lease, result()).await.unwrap();
    let lease = store.lease(WorkerLease::named("w"), ttl).await.unwrap().unwrap();
    assert_eq!(lease.job.id, jobs[1]);
    store.fail(lease.lease, FailureCode::EngineError, "boom".into()).await.unwrap();
    store.cancel(acct.id, jobs[2]).await.unwrap().unwrap();

    let usage = store.usage(acct.id).await.unwrap();
    assert_eq!((usage.jobs_completed, usage.jobs_failed, usage.jobs_cancelled, usage.jobs_unfinished), (1, 1, 1, 2));
    assert_eq!((usage.charged_total.0, usage.charged_last_7_days.0), (100_000, 100_000));
    let stranger = account(store, 0, 1, 0).await;
    assert_eq!(store.usage(stranger.id).await.unwrap().jobs_unfinished, 0, "usage is the account's own");

    let ledger = store.ledger(acct.id, 100).await.unwrap();
    let of =
        |job: Uuid| ledger.iter().filter(|e| e.job_id == Some(job)).map(|e| (e.kind, e.amount.0)).collect::<Vec<_>>();
    // Newest first: each job's hold, then how it settled.
    assert_eq!(of(jobs[0]), vec![(LedgerKind::Charge, 100_000), (LedgerKind::Hold, 100_000)]);
    assert_eq!(of(jobs[1]), vec![(LedgerKind::Release, 200_000), (LedgerKind::Hold, 200_000)]);
    assert_eq!(of(jobs[2]), vec![(LedgerKind::Release, 300_000), (LedgerKind::Hold, 300_000)]);
    assert_eq!(of(jobs[3]), vec![(LedgerKind::Hold, 400_000)]);
    assert_eq!(ledger.last().map(|e| (e.kind, e.amount.0)), Some((LedgerKind::Credit, 10_000_000)), "oldest last");
    let newest = store.ledger(acct.id, 2).await.unwrap();
    let shown = |e: &LedgerEntry| (e.kind, e.amount.0, e.job_id);
    assert_eq!(newest.iter().map(shown).collect::<Vec<_>>(), ledger[..2].iter().map(shown).collect::<Vec<_>>());
    assert_consistent(store, acct.id, 10_000_000).await;
}

async fn rotating_the_webhook_secret_replaces_it_for_that_account_only(store: Arc<dyn Store>) {
    let store = &*store;
    let (acct, other) = (account(store, 1_000, 1, 0).await, account(store, 0, 1, 0).await);
    assert!(acct.webhook_secret.starts_with("whsec_"), "{}", acct.webhook_secret);
    assert_ne!(acct.webhook_secret, other.webhook_secret, "each account its own secret");
    let rotated = store.rotate_webhook_secret(acct.id).await.unwrap();
    assert!(rotated.webhook_secret.starts_with("whsec_"), "{}", rotated.webhook_secret);
    assert_ne!(rotated.webhook_secret, acct.webhook_secret);
    assert_eq!((rotated.id, rotated.balance.0), (acct.id, 1_000), "the rest of the account stays");
    assert_eq!(store.account(acct.id).await.unwrap().webhook_secret, rotated.webhook_secret, "kept");
    assert_eq!(store.account(other.id).await.unwrap().webhook_secret, other.webhook_secret);
}

async fn crediting_past_the_maximum_balance_is_refused_not_a_raw_store_error(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, i64::MAX - 10, 1, 0).await;
    let refused = store.add_credits(acct.id, MicroUsd(11), "one too many".into()).await;
    let Err(StoreError::Refused(why)) = &refused else { panic!("not a refusal: {refused:?}") };
    assert!(why.contains("would pass the maximum of $9223372036854.775807"), "{why}");
    let read = store.account(acct.id).await.unwrap();
    assert_eq!(read.balance.0, i64::MAX - 10, "a refused credit changes nothing");
    assert_eq!(store.ledger(acct.id, 10).await.unwrap().len(), 1, "and records nothing");
    assert_eq!(store.add_credits(acct.id, MicroUsd(10), "to the brim".into()).await.unwrap().balance.0, i64::MAX);
    let refused = store.add_credits(acct.id, MicroUsd(i64::MIN), "all and more".into()).await;
    assert!(matches!(&refused, Err(StoreError::Refused(why)) if why.contains("cannot remove")), "{refused:?}");
}

fn upload(account: Uuid, size_bytes: u64) -> Asset {
    Asset {
        id: Uuid::new_v4(),
        account_id: account,
        file_key: format!("assets/{}.png", Uuid::new_v4().simple()),
        mime_type: "image/png".into(),
        size_bytes,
        width: None,
        height: None,
        description: None,
        uploaded_at: time::OffsetDateTime::UNIX_EPOCH,
    }
}

fn exceeded<T: std::fmt::Debug>(r: StoreResult<T>) -> QuotaExceeded {
    match r {
        Err(StoreError::StorageQuotaExceeded(over)) => over,
        other => panic!("not over the quota: {other:?}"),
    }
}

async fn uploads_are_held_to_the_storage_quota_and_deletes_free_their_share(store: Arc<dyn Store>) {
    let acct = account(&*store, 0, 1, 0).await;
    let defaults = StorageQuota { bytes: 100, files: 3 };
    let first = store.create_asset_within(upload(acct.id, 60), defaults).await.unwrap();
    let over = exceeded(store.create_asset_within(upload(acct.id, 41), defaults).await);
    assert_eq!(over, QuotaExceeded { kind: QuotaKind::Bytes, limit: 100, used: 60, adding: 41 });
    store.create_asset_within(upload(acct.id, 40), defaults).await.unwrap();
    let read = store.account(acct.id).await.unwrap();
    assert_eq!(read.storage, StorageUse { bytes: 100, files: 2 });
    assert!(store.list_assets(acct.id, None, 10).await.unwrap().len() == 2, "the refused asset was not stored");

    // The account's own quota wins over the defaults, per kind; `Default` follows them again.
    let set = store.set_storage_quota(acct.id, Some(QuotaSetting::Limit(0)), Some(QuotaSetting::Limit(2))).await;
    assert_eq!(set.unwrap().storage_quota, QuotaOverride { bytes: Some(0), files: Some(2) });
    let over = exceeded(store.create_asset_within(upload(acct.id, 1), defaults).await);
    assert_eq!((over.kind, over.limit, over.used), (QuotaKind::Files, 2, 2));
    store.set_storage_quota(acct.id, None, Some(QuotaSetting::Default)).await.unwrap();
    let read = store.account(acct.id).await.unwrap();
    assert_eq!(read.storage_quota, QuotaOverride { bytes: Some(0), files: None }, "bytes kept, files default");
    store.create_asset_within(upload(acct.id, 1000), defaults).await.unwrap();

    store.delete_asset(acct.id, first.id).await.unwrap().unwrap();
    assert_eq!(store.account(acct.id).await.unwrap().storage, StorageUse { bytes: 1040, files: 2 });
    let other = account(&*store, 0, 1, 0).await;
    assert_eq!(store.account(other.id).await.unwrap().storage, StorageUse::default(), "per account");
    let nobody = Uuid::new_v4();
    assert!(matches!(store.set_storage_quota(nobody, None, None).await, Err(StoreError::NotFound)));
}

async fn concurrent_uploads_cannot_both_take_the_last_room(store: Arc<dyn Store>) {
    let acct = account(&*store, 0, 1, 0).await;
    let defaults = StorageQuota { bytes: 0, files: 4 };
    let tries = (0..12).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.create_asset_within(upload(acct.id, 5), defaults).await })
    });
    let mut stored = 0;
    for done in futures_util::future::join_all(tries).await {
        match done.unwrap() {
            Ok(_) => stored += 1,
            Err(StoreError::StorageQuotaExceeded(_)) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(stored, 4);
    assert_eq!(store.account(acct.id).await.unwrap().storage, StorageUse { bytes: 20, files: 4 });
    assert_eq!(store.list_assets(acct.id, None, 100).await.unwrap().len(), 4);
}

crate::conformance!(
    crediting_past_the_maximum_balance_is_refused_not_a_raw_store_error,
    uploads_are_held_to_the_storage_quota_and_deletes_free_their_share,
    concurrent_uploads_cannot_both_take_the_last_room,
    accounts_are_counted_and_credits_and_limits_change_them,
    an_unknown_account_is_not_found,
    api_keys_are_created_looked_up_and_revoked,
    usage_counts_jobs_by_outcome_and_the_ledger_shows_each_step,
    rotating_the_webhook_secret_replaces_it_for_that_account_only,
);
