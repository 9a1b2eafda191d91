//! Remote workers: their tokens, and the registry of live ones (announced, touched, silent).
use ltx_serve::store::*;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

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

async fn worker_tokens_are_separate_and_an_id_is_used_once(store: Arc<dyn Store>) {
    let store = &*store;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    store.create_worker_token(a, "hash-a".into(), Some("rack 1".into())).await.unwrap();
    store.create_worker_token(b, "hash-b".into(), None).await.unwrap();
    assert!(store.revoke_worker_token(a).await.unwrap());
    assert!(store.revoke_worker_token(a).await.unwrap(), "revoking twice: the token exists");
    assert!(store.worker_token(a).await.unwrap().unwrap().revoked);
    let untouched = store.worker_token(b).await.unwrap().unwrap();
    assert_eq!((untouched.id, untouched.secret_hash.as_str(), untouched.revoked), (b, "hash-b", false));
    assert!(store.create_worker_token(b, "other".into(), None).await.is_err(), "a token id is used once");
    assert_eq!(store.worker_token(b).await.unwrap().unwrap().secret_hash, "hash-b");
}

async fn a_touched_worker_stays_live_and_an_announcement_replaces_the_last(store: Arc<dyn Store>) {
    let store = &*store;
    let info = WorkerInfo { name: "gpu-2".into(), engine: "ltx".into(), ..Default::default() };
    store.record_worker(info.clone()).await.unwrap();
    let announced = store.live_workers(Duration::from_secs(60)).await.unwrap()[0].last_seen;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let window = Duration::from_millis(200);
    assert!(store.live_workers(window).await.unwrap().is_empty(), "silent for longer than the window");
    store.touch_worker("gpu-2".into()).await.unwrap();
    let live = store.live_workers(window).await.unwrap();
    assert_eq!(live.iter().map(|w| w.info.clone()).collect::<Vec<_>>(), vec![info.clone()], "live again, as announced");
    assert!(live[0].last_seen > announced, "last seen moved on");

    store.touch_worker("never-announced".into()).await.unwrap();
    assert_eq!(store.live_workers(Duration::from_secs(60)).await.unwrap().len(), 1, "a touch registers nobody");

    let other = WorkerInfo {
        name: "gpu-1".into(),
        engine: "preview".into(),
        resident_style_sets: vec!["s1@1".into()],
        ..info.clone()
    };
    let updated = WorkerInfo { gpu: Some("H200".into()), gpu_memory_bytes: Some(1 << 30), ..info };
    store.record_worker(other.clone()).await.unwrap();
    store.record_worker(updated.clone()).await.unwrap();
    let live = store.live_workers(Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        live.into_iter().map(|w| w.info).collect::<Vec<_>>(),
        vec![other, updated],
        "by name, latest announcement"
    );
}

crate::conformance!(
    worker_tokens_and_the_registry,
    worker_tokens_are_separate_and_an_id_is_used_once,
    a_touched_worker_stays_live_and_an_announcement_replaces_the_last,
);
