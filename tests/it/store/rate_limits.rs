//! Per-account request rate limits (`set_rate_limit`, carried in the key record so the key
//! cache answers them) and the count of live API replicas each enforces its share by
//! (`count_api_replicas`).
use super::account;
use ltx_serve::store::*;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

async fn an_accounts_own_rate_limit_is_kept_and_read_with_its_keys(store: Arc<dyn Store>) {
    let store = &*store;
    let (acct, other) = (account(store, 0, 1, 0).await, account(store, 0, 1, 0).await);
    let (key, other_key) = (Uuid::new_v4(), Uuid::new_v4());
    store.create_key(acct.id, key, "h".into(), None).await.unwrap();
    store.create_key(other.id, other_key, "h".into(), None).await.unwrap();
    assert_eq!(acct.rate_limit_per_minute, None, "a new account follows the operator's default");
    assert_eq!(store.key(key).await.unwrap().unwrap().rate_limit_per_minute, None);

    let set = store.set_rate_limit(acct.id, Some(5)).await.unwrap();
    assert_eq!(set.rate_limit_per_minute, Some(5));
    assert_eq!(store.account(acct.id).await.unwrap().rate_limit_per_minute, Some(5));
    assert_eq!(store.key(key).await.unwrap().unwrap().rate_limit_per_minute, Some(5), "read with the key");
    assert_eq!(store.key(other_key).await.unwrap().unwrap().rate_limit_per_minute, None, "the other is untouched");

    let unlimited = store.set_rate_limit(acct.id, Some(0)).await.unwrap();
    assert_eq!(unlimited.rate_limit_per_minute, Some(0), "0 (no limit) is kept apart from the default");
    let large = store.set_rate_limit(acct.id, Some(u32::MAX)).await.unwrap();
    assert_eq!(large.rate_limit_per_minute, Some(u32::MAX));
    let back = store.set_rate_limit(acct.id, None).await.unwrap();
    assert_eq!(back.rate_limit_per_minute, None, "back to the operator's default");
    assert_eq!(store.key(key).await.unwrap().unwrap().rate_limit_per_minute, None);
    let limits_kept = store.set_limits(acct.id, Some(3), None).await.unwrap();
    assert_eq!((limits_kept.max_concurrent, limits_kept.rate_limit_per_minute), (3, None));

    let nobody = Uuid::new_v4();
    assert!(matches!(store.set_rate_limit(nobody, Some(1)).await, Err(StoreError::NotFound)));
}

async fn this_replica_always_counts(store: Arc<dyn Store>) {
    let live = store.count_api_replicas(Uuid::new_v4(), Duration::from_secs(30)).await.unwrap();
    assert!(live >= 1);
}

crate::conformance!(an_accounts_own_rate_limit_is_kept_and_read_with_its_keys, this_replica_always_counts);

#[tokio::test]
async fn sqlite_has_one_replica() {
    let dir = tempfile::tempdir().unwrap();
    let store = ltx_serve::store::sqlite::SqliteStore::open(dir.path()).unwrap();
    for _ in 0..3 {
        assert_eq!(store.count_api_replicas(Uuid::new_v4(), Duration::from_secs(30)).await.unwrap(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn postgres_counts_the_replicas_heard_from_recently() {
    let db = crate::pg::TestDatabase::create().await;
    let store = ltx_serve::store::postgres::PgStore::connect(&db.url).await.unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let window = Duration::from_secs(30);
    assert_eq!(store.count_api_replicas(a, window).await.unwrap(), 1, "the first counts itself");
    assert_eq!(store.count_api_replicas(b, window).await.unwrap(), 2);
    assert_eq!(store.count_api_replicas(a, window).await.unwrap(), 2, "a heartbeat again is the same replica");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let short = Duration::from_millis(200);
    assert_eq!(store.count_api_replicas(a, short).await.unwrap(), 1, "b, silent for longer, no longer counts");
    assert_eq!(store.count_api_replicas(b, window).await.unwrap(), 2, "until it speaks again");
}
