//! The store's library promises (assets and styles), on SQLite and on PostgreSQL alike (the
//! conformance macro of store.rs).
use crate::store::{account, new_job};
use ltx_serve::domain::request::StyleRef;
use ltx_serve::store::*;
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

fn just_now(t: OffsetDateTime) -> bool {
    (t - OffsetDateTime::now_utc()).abs() < time::Duration::minutes(1)
}

/// An asset to store; the time given is the store's to replace.
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
    let mut assets = Vec::new();
    for i in 0..5 {
        let given = asset(owner.id, 1_700_000_000_000_000 + i);
        let stored = store.create_asset(given.clone()).await.unwrap();
        assert_eq!(Asset { uploaded_at: given.uploaded_at, ..stored.clone() }, given, "stored as given but the time");
        assets.push(stored);
    }
    assert!(assets.windows(2).all(|w| w[0].uploaded_at < w[1].uploaded_at), "stamped in order, none tied");
    assert!(just_now(assets[0].uploaded_at), "stamped by the store's clock, not taken from the caller");
    assert_eq!(store.asset(owner.id, assets[0].id).await.unwrap().as_ref(), Some(&assets[0]));
    assert_eq!(store.asset(other.id, assets[0].id).await.unwrap(), None, "another account's asset is invisible");
    assert_eq!(store.asset_by_file(assets[1].file_key.clone()).await.unwrap().map(|a| a.id), Some(assets[1].id));
    assert!(store.list_assets(other.id, None, 100).await.unwrap().is_empty());

    let first = store.list_assets(owner.id, None, 3).await.unwrap();
    // A cursor of the time alone (what clients held before cursors carried an id) still resumes.
    let rest =
        store.list_assets(owner.id, Some(LibraryCursor { time: first[2].uploaded_at, id: None }), 3).await.unwrap();
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
    let mut stored = Vec::new();
    for (i, (who, public)) in [(&owner, false), (&owner, true), (&other, false)].into_iter().enumerate() {
        let given = style(who, public, 1_700_000_000_000_000 + i as i64);
        let kept = store.create_style(given.clone()).await.unwrap();
        assert_eq!(Style { created_at: given.created_at, ..kept.clone() }, given, "stored as given but the time");
        assert!(just_now(kept.created_at), "stamped by the store's clock, not taken from the caller");
        stored.push(kept);
    }
    let [private, public, theirs] = <[Style; 3]>::try_from(stored).unwrap();
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

/// A row's place in a list: its time and id.
type Key = (OffsetDateTime, Uuid);

/// Every row of a list, read `per_page` at a time, each page resuming after the last row of the
/// one before (its time and id); `key` gives a row's time and id.
async fn all_pages<T, F>(per_page: u32, key: impl Fn(&T) -> Key, page: impl Fn(Option<LibraryCursor>) -> F) -> Vec<Key>
where
    F: std::future::Future<Output = StoreResult<Vec<T>>>,
{
    let (mut seen, mut cursor) = (Vec::new(), None);
    loop {
        let rows = page(cursor).await.unwrap();
        assert!(rows.len() <= per_page as usize);
        seen.extend(rows.iter().map(&key));
        match rows.last().filter(|_| rows.len() == per_page as usize) {
            Some(last) => cursor = Some(LibraryCursor { time: key(last).0, id: Some(key(last).1) }),
            None => return seen,
        }
    }
}

/// Newest first, ties by id (descending): the order every list promises.
fn newest_first(mut rows: Vec<Key>) -> Vec<Key> {
    rows.sort_by(|a, b| b.cmp(a));
    rows
}

/// 50 assets of one account and 50 public styles of five accounts, all asked for at once (the
/// SQLite writer commits them in one transaction, within a millisecond), paged 7 at a time.
async fn many_created_at_once_are_stamped_apart_and_paged_each_once_in_order(store: Arc<dyn Store>) {
    let (owner, viewer) = (account(&*store, 0, 1, 0).await, account(&*store, 0, 1, 0).await);
    let mut owners = Vec::new();
    for _ in 0..5 {
        owners.push(account(&*store, 0, 1, 0).await);
    }
    let assets = (0..50).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.create_asset(asset(owner.id, 0)).await.unwrap() })
    });
    let styles = (0..50).map(|i| {
        let (store, given) = (store.clone(), style(&owners[i % 5], true, 0));
        tokio::spawn(async move { store.create_style(given).await.unwrap() })
    });
    let (assets, styles) = (futures_util::future::join_all(assets), futures_util::future::join_all(styles));
    let (assets, styles) = tokio::join!(assets, styles);
    let assets: Vec<Asset> = assets.into_iter().map(Result::unwrap).collect();
    let styles: Vec<Style> = styles.into_iter().map(Result::unwrap).collect();

    let stamps: std::collections::BTreeSet<_> = assets.iter().map(|a| a.uploaded_at).collect();
    assert_eq!(stamps.len(), 50, "one account's assets never share a time");
    for who in &owners {
        let stamps: std::collections::BTreeSet<_> =
            styles.iter().filter(|s| s.account_id == who.id).map(|s| s.created_at).collect();
        assert_eq!(stamps.len(), 10, "one account's styles never share a time");
    }

    let asset_key = |a: &Asset| (a.uploaded_at, a.id);
    let paged = all_pages(7, asset_key, |cursor| store.list_assets(owner.id, cursor, 7)).await;
    assert_eq!(paged, newest_first(assets.iter().map(asset_key).collect()), "each asset once, newest first");
    let style_key = |s: &Style| (s.created_at, s.id);
    let query = |before| StyleQuery { filter: StyleFilter::Public, owner: None, before, limit: 7 };
    let paged = all_pages(7, style_key, |cursor| store.list_styles(viewer.id, query(cursor))).await;
    assert_eq!(paged, newest_first(styles.iter().map(style_key).collect()), "each style once, newest first");
}

crate::conformance!(
    assets_are_private_to_their_account_and_paged_newest_first,
    styles_are_seen_by_their_owner_or_when_public_and_changed_only_by_the_owner,
    a_style_used_by_an_unfinished_job_cannot_be_deleted,
    many_created_at_once_are_stamped_apart_and_paged_each_once_in_order,
);

/// One time shared by every row `tied_rows` writes.
const TIED_AT: i64 = 1_700_000_000_000_000;

/// Rows that all share one time, as a database written before the store stamped them may hold:
/// 12 assets of `owner` and 12 public styles, 4 for each of `owners` (the SQL reads the same in
/// both dialects). Returns the statements and the (time, id) of the assets and of the styles.
fn tied_rows(owner: Uuid, owners: &[Uuid]) -> (Vec<String>, Vec<Key>, Vec<Key>) {
    let at = ltx_serve::store::codec::to_time(TIED_AT);
    let (mut sql, mut assets, mut styles) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..12 {
        let id = Uuid::new_v4();
        sql.push(format!(
            "INSERT INTO assets (id, account_id, file_key, mime_type, size_bytes, uploaded_at) \
             VALUES ('{id}', '{owner}', 'assets/{}.png', 'image/png', 1, {TIED_AT})",
            id.simple()
        ));
        assets.push((at, id));
        let id = Uuid::new_v4();
        sql.push(format!(
            "INSERT INTO styles (id, account_id, title, public, created_at) \
             VALUES ('{id}', '{}', 'tied', true, {TIED_AT})",
            owners[i % owners.len()]
        ));
        styles.push((at, id));
    }
    (sql, assets, styles)
}

/// Pages through rows written by `tied_rows` 5 at a time: each appears once, in id order.
async fn tied_rows_page_each_once(store: &dyn Store, owner: Uuid, viewer: Uuid, assets: Vec<Key>, styles: Vec<Key>) {
    let paged = all_pages(5, |a: &Asset| (a.uploaded_at, a.id), |cursor| store.list_assets(owner, cursor, 5)).await;
    assert_eq!(paged, newest_first(assets), "each tied asset once, by id");
    let query = |before| StyleQuery { filter: StyleFilter::All, owner: None, before, limit: 5 };
    let paged = all_pages(5, |s: &Style| (s.created_at, s.id), |cursor| store.list_styles(viewer, query(cursor))).await;
    assert_eq!(paged, newest_first(styles), "each tied style once, by id");
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_sharing_a_time_page_each_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = ltx_serve::store::sqlite::SqliteStore::open(dir.path()).unwrap();
    let (owner, viewer) = (account(&store, 0, 1, 0).await, account(&store, 0, 1, 0).await);
    let others = [account(&store, 0, 1, 0).await.id, account(&store, 0, 1, 0).await.id, owner.id];
    let (sql, assets, styles) = tied_rows(owner.id, &others);
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    for statement in sql {
        conn.execute(&statement, []).unwrap();
    }
    tied_rows_page_each_once(&store, owner.id, viewer.id, assets, styles).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn rows_sharing_a_time_page_each_once_on_postgres() {
    let db = crate::pg::TestDatabase::create().await;
    let store = ltx_serve::store::postgres::PgStore::connect(&db.url).await.unwrap();
    let (owner, viewer) = (account(&store, 0, 1, 0).await, account(&store, 0, 1, 0).await);
    let others = [account(&store, 0, 1, 0).await.id, account(&store, 0, 1, 0).await.id, owner.id];
    let (sql, assets, styles) = tied_rows(owner.id, &others);
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    for statement in sql {
        sqlx::query(&statement).execute(&pool).await.unwrap();
    }
    tied_rows_page_each_once(&store, owner.id, viewer.id, assets, styles).await;
}
