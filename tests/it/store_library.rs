//! The store's library promises (assets and styles), on SQLite and on PostgreSQL alike (the
//! conformance macro of store.rs).
use crate::store::{account, new_job};
use ltx_serve::domain::request::StyleRef;
use ltx_serve::store::*;
use std::sync::Arc;
use uuid::Uuid;

fn asset(account: Uuid, at_us: i64) -> Asset {
    Asset {
        id: Uuid::new_v4(),
        account_id: account,
        file_key: format!("assets/{}.png", Uuid::new_v4().simple()),
        mime_type: "image/png".into(),
        size_bytes: 1234,
        width: Some(640),
        height: Some(480),
        description: Some("a cat".into()),
        uploaded_at: ltx_serve::store::codec::to_time(at_us),
    }
}

async fn assets_are_private_to_their_account_and_paged_newest_first(store: Arc<dyn Store>) {
    let store = &*store;
    let (owner, other) = (account(store, 0, 1, 0).await, account(store, 0, 1, 0).await);
    let assets: Vec<Asset> = (0..5).map(|i| asset(owner.id, 1_700_000_000_000_000 + i)).collect();
    for a in &assets {
        store.create_asset(a.clone()).await.unwrap();
    }
    assert_eq!(store.asset(owner.id, assets[0].id).await.unwrap().as_ref(), Some(&assets[0]));
    assert_eq!(store.asset(other.id, assets[0].id).await.unwrap(), None, "another account's asset is invisible");
    assert_eq!(store.asset_by_file(assets[1].file_key.clone()).await.unwrap().map(|a| a.id), Some(assets[1].id));
    assert!(store.list_assets(other.id, None, 100).await.unwrap().is_empty());

    let first = store.list_assets(owner.id, None, 3).await.unwrap();
    let rest = store.list_assets(owner.id, Some(first[2].uploaded_at), 3).await.unwrap();
    let paged: Vec<Uuid> = first.iter().chain(&rest).map(|a| a.id).collect();
    assert_eq!(paged, assets.iter().rev().map(|a| a.id).collect::<Vec<_>>(), "newest first, each once");

    assert_eq!(store.delete_asset(other.id, assets[0].id).await.unwrap(), None, "not the other account's to delete");
    assert_eq!(store.delete_asset(owner.id, assets[0].id).await.unwrap().map(|a| a.id), Some(assets[0].id));
    assert_eq!(store.asset(owner.id, assets[0].id).await.unwrap(), None);
    assert_eq!(store.delete_asset(owner.id, assets[0].id).await.unwrap(), None);
}

fn style(owner: &Account, public: bool, at_us: i64) -> Style {
    Style {
        id: Uuid::new_v4(),
        account_id: owner.id,
        owner_name: owner.name.clone(),
        title: Some("noir".into()),
        prompt: "in the style of noir".into(),
        public,
        urls: vec![],
        cover_url: None,
        file_key: format!("styles/{}.safetensors", Uuid::new_v4().simple()),
        size_bytes: 4096,
        lora_rank: 4,
        created_at: ltx_serve::store::codec::to_time(at_us),
    }
}

async fn styles_are_seen_by_their_owner_or_when_public_and_changed_only_by_the_owner(store: Arc<dyn Store>) {
    let store = &*store;
    let (owner, other) = (account(store, 0, 1, 0).await, account(store, 0, 1, 0).await);
    let private = style(&owner, false, 1_700_000_000_000_000);
    let public = style(&owner, true, 1_700_000_000_000_001);
    let theirs = style(&other, false, 1_700_000_000_000_002);
    for s in [&private, &public, &theirs] {
        store.create_style(s.clone()).await.unwrap();
    }
    assert_eq!(store.style(owner.id, private.id).await.unwrap().as_ref(), Some(&private));
    assert_eq!(store.style(other.id, private.id).await.unwrap(), None, "a private style is its owner's alone");
    assert_eq!(store.style(other.id, public.id).await.unwrap().map(|s| s.id), Some(public.id));
    let ids = |styles: Vec<Style>| styles.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let query = |filter| StyleQuery { filter, owner: None, before: None, limit: 100 };
    assert_eq!(ids(store.list_styles(other.id, query(StyleFilter::All)).await.unwrap()), vec![theirs.id, public.id]);
    assert_eq!(ids(store.list_styles(other.id, query(StyleFilter::Own)).await.unwrap()), vec![theirs.id]);
    assert_eq!(ids(store.list_styles(other.id, query(StyleFilter::Public)).await.unwrap()), vec![public.id]);
    let by_owner = StyleQuery { owner: Some(owner.id), ..query(StyleFilter::All) };
    assert_eq!(ids(store.list_styles(owner.id, by_owner).await.unwrap()), vec![public.id, private.id]);
    let usable = store.usable_styles(other.id, vec![private.id.to_string(), public.id.to_string()]).await.unwrap();
    assert_eq!(usable, vec![public.id.to_string()]);

    let patch = StylePatch { title: Some("film noir".into()), public: Some(true), ..Default::default() };
    assert_eq!(store.update_style(other.id, public.id, patch.clone()).await.unwrap(), None, "public is not theirs");
    let changed = store.update_style(owner.id, private.id, patch).await.unwrap().unwrap();
    assert_eq!(
        (changed.title.as_deref(), changed.public, changed.prompt.as_str()),
        (Some("film noir"), true, "in the style of noir")
    );
    assert_eq!(store.style(other.id, private.id).await.unwrap(), Some(changed), "now public");
    assert_eq!(ids(store.styles_by_id(vec![theirs.id, Uuid::new_v4()]).await.unwrap()), vec![theirs.id]);
}

async fn a_style_used_by_an_unfinished_job_cannot_be_deleted(store: Arc<dyn Store>) {
    let store = &*store;
    let owner = account(store, 10_000_000, 10, 0).await;
    let s = style(&owner, false, 1_700_000_000_000_000);
    store.create_style(s.clone()).await.unwrap();
    let mut job = new_job(owner.id, 1000);
    job.request.styles = vec![StyleRef { id: s.id.to_string(), strength: 0.8 }];
    let job = store.submit(job).await.unwrap().unwrap();
    let stranger = account(store, 0, 1, 0).await;
    assert_eq!(store.delete_style(stranger.id, s.id).await.unwrap(), Err(StyleDeleteRefusal::NotFound));
    assert_eq!(store.delete_style(owner.id, s.id).await.unwrap(), Err(StyleDeleteRefusal::InUse { jobs: 1 }));
    store.cancel(owner.id, job.id).await.unwrap().unwrap();
    assert_eq!(store.delete_style(owner.id, s.id).await.unwrap().map(|d| d.id), Ok(s.id));
    assert_eq!(store.style(owner.id, s.id).await.unwrap(), None);
}

crate::conformance!(
    assets_are_private_to_their_account_and_paged_newest_first,
    styles_are_seen_by_their_owner_or_when_public_and_changed_only_by_the_owner,
    a_style_used_by_an_unfinished_job_cannot_be_deleted,
);
