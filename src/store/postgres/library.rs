//! Assets and styles.
use super::super::*;
use super::pg_err;
use super::rows::{to_time, to_us};
use crate::store::codec::{style_key_pattern, UNFINISHED_STATUSES};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

pub(super) const ASSET_COLUMNS: &str =
    "id, account_id, file_key, mime_type, size_bytes, width, height, description, uploaded_at";

pub(super) fn asset_from_row(r: &PgRow) -> Result<Asset, sqlx::Error> {
    Ok(Asset {
        id: r.try_get(0)?,
        account_id: r.try_get(1)?,
        file_key: r.try_get(2)?,
        mime_type: r.try_get(3)?,
        size_bytes: r.try_get::<i64, _>(4)? as u64,
        width: r.try_get::<Option<i32>, _>(5)?.map(|w| w as u32),
        height: r.try_get::<Option<i32>, _>(6)?.map(|h| h as u32),
        description: r.try_get(7)?,
        uploaded_at: to_time(r.try_get(8)?),
    })
}

/// Holds the account row until the transaction ends, so the account's rows are stamped one at a
/// time: each new one then sees the last and is stamped strictly after it. `NO KEY UPDATE` leaves
/// inserts that only name the account (its jobs' account checks, schema_account_refs.sql) free
/// to go on.
async fn lock_account(c: &mut PgConnection, account: Uuid) -> StoreResult<()> {
    sqlx::query("SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE")
        .bind(account)
        .execute(c)
        .await
        .map_err(pg_err)?;
    Ok(())
}

/// The cursor as SQL parameters: the time, and the id below which rows at that time follow
/// (NULL when the cursor has none: then only older rows follow).
fn cursor_params(before: Option<LibraryCursor>) -> (i64, Option<Uuid>) {
    match before {
        Some(cursor) => (to_us(cursor.time), cursor.id),
        None => (i64::MAX, None),
    }
}

pub async fn create_asset(c: &mut PgConnection, a: Asset, defaults: StorageQuota) -> StoreResult<Asset> {
    lock_account(&mut *c, a.account_id).await?;
    super::accounts::take_storage(&mut *c, a.account_id, a.size_bytes, defaults).await?;
    // The database's clock, moved past the account's latest asset (the lock above is held, and
    // this statement's snapshot is taken after it was granted, so that asset is seen).
    let row = sqlx::query(&format!(
        "INSERT INTO assets ({ASSET_COLUMNS}) SELECT $1, $2, $3, $4, $5, $6, $7, $8, \
         GREATEST(ltx_now_us(), COALESCE((SELECT MAX(uploaded_at) + 1 FROM assets WHERE account_id = $2), 0)) \
         RETURNING {ASSET_COLUMNS}"
    ))
    .bind(a.id)
    .bind(a.account_id)
    .bind(a.file_key)
    .bind(a.mime_type)
    .bind(a.size_bytes as i64)
    .bind(a.width.map(|w| w as i32))
    .bind(a.height.map(|h| h as i32))
    .bind(a.description)
    .fetch_one(c)
    .await
    .map_err(pg_err)?;
    asset_from_row(&row).map_err(pg_err)
}

pub async fn asset(c: &mut PgConnection, account: Uuid, id: Uuid) -> StoreResult<Option<Asset>> {
    let row = sqlx::query(&format!("SELECT {ASSET_COLUMNS} FROM assets WHERE id = $1 AND account_id = $2"))
        .bind(id)
        .bind(account)
        .fetch_optional(c)
        .await
        .map_err(pg_err)?;
    row.map(|r| asset_from_row(&r)).transpose().map_err(pg_err)
}

pub async fn asset_by_file(c: &mut PgConnection, file_key: String) -> StoreResult<Option<Asset>> {
    let row = sqlx::query(&format!("SELECT {ASSET_COLUMNS} FROM assets WHERE file_key = $1"))
        .bind(file_key)
        .fetch_optional(c)
        .await
        .map_err(pg_err)?;
    row.map(|r| asset_from_row(&r)).transpose().map_err(pg_err)
}

pub async fn list_assets(
    c: &mut PgConnection,
    account: Uuid,
    before: Option<LibraryCursor>,
    limit: u32,
) -> StoreResult<Vec<Asset>> {
    // `<=` bounds the index range; the rows at the cursor's time then follow only below its id.
    let (time, id) = cursor_params(before);
    let rows = sqlx::query(&format!(
        "SELECT {ASSET_COLUMNS} FROM assets WHERE account_id = $1 AND uploaded_at <= $2 \
         AND (uploaded_at < $2 OR id < $3) ORDER BY uploaded_at DESC, id DESC LIMIT $4"
    ))
    .bind(account)
    .bind(time)
    .bind(id)
    .bind(i64::from(limit))
    .fetch_all(c)
    .await
    .map_err(pg_err)?;
    rows.iter().map(asset_from_row).collect::<Result<_, _>>().map_err(pg_err)
}

pub async fn delete_asset(c: &mut PgConnection, account: Uuid, id: Uuid) -> StoreResult<Option<Asset>> {
    let row = sqlx::query(&format!("DELETE FROM assets WHERE id = $1 AND account_id = $2 RETURNING {ASSET_COLUMNS}"))
        .bind(id)
        .bind(account)
        .fetch_optional(&mut *c)
        .await
        .map_err(pg_err)?;
    let deleted = row.map(|r| asset_from_row(&r)).transpose().map_err(pg_err)?;
    if let Some(a) = &deleted {
        super::accounts::free_storage(c, account, a.size_bytes).await?;
    }
    Ok(deleted)
}

const STYLE_COLUMNS: &str = "s.id, s.account_id, a.name, s.title, s.prompt, s.public, s.urls, s.cover_url, \
     s.file_key, s.size_bytes, s.lora_rank, s.created_at";
const STYLE_FROM: &str = "styles s JOIN accounts a ON a.id = s.account_id";

fn style_from_row(r: &PgRow) -> Result<Style, sqlx::Error> {
    let id: String = r.try_get(0)?;
    let urls: String = r.try_get(6)?;
    Ok(Style {
        id: Uuid::parse_str(&id).unwrap_or_default(),
        account_id: r.try_get(1)?,
        owner_name: r.try_get(2)?,
        title: r.try_get(3)?,
        prompt: r.try_get(4)?,
        public: r.try_get(5)?,
        urls: serde_json::from_str(&urls).unwrap_or_default(),
        cover_url: r.try_get(7)?,
        file_key: r.try_get(8)?,
        size_bytes: r.try_get::<i64, _>(9)? as u64,
        lora_rank: r.try_get::<i32, _>(10)? as u32,
        created_at: to_time(r.try_get(11)?),
    })
}

fn urls_json(urls: &[String]) -> String {
    serde_json::to_string(urls).unwrap_or_else(|_| "[]".into())
}

fn styles(rows: Vec<PgRow>) -> StoreResult<Vec<Style>> {
    rows.iter().map(style_from_row).collect::<Result<_, _>>().map_err(pg_err)
}

pub async fn create_style(c: &mut PgConnection, mut s: Style, defaults: StorageQuota) -> StoreResult<Style> {
    lock_account(&mut *c, s.account_id).await?;
    super::accounts::take_storage(&mut *c, s.account_id, s.size_bytes, defaults).await?;
    // As for assets: the database's clock, moved past the account's latest style.
    let created_at: i64 = sqlx::query_scalar(
        "INSERT INTO styles (id, account_id, title, prompt, public, urls, cover_url, file_key, size_bytes, \
         lora_rank, created_at) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         GREATEST(ltx_now_us(), COALESCE((SELECT MAX(created_at) + 1 FROM styles WHERE account_id = $2), 0)) \
         RETURNING created_at",
    )
    .bind(s.id.to_string())
    .bind(s.account_id)
    .bind(&s.title)
    .bind(&s.prompt)
    .bind(s.public)
    .bind(urls_json(&s.urls))
    .bind(&s.cover_url)
    .bind(&s.file_key)
    .bind(s.size_bytes as i64)
    .bind(s.lora_rank as i32)
    .fetch_one(c)
    .await
    .map_err(pg_err)?;
    s.created_at = to_time(created_at);
    Ok(s)
}

pub async fn style(c: &mut PgConnection, account: Uuid, id: Uuid) -> StoreResult<Option<Style>> {
    let row = sqlx::query(&format!(
        "SELECT {STYLE_COLUMNS} FROM {STYLE_FROM} WHERE s.id = $1 AND (s.public OR s.account_id = $2)"
    ))
    .bind(id.to_string())
    .bind(account)
    .fetch_optional(c)
    .await
    .map_err(pg_err)?;
    row.map(|r| style_from_row(&r)).transpose().map_err(pg_err)
}

pub async fn list_styles(c: &mut PgConnection, account: Uuid, q: StyleQuery) -> StoreResult<Vec<Style>> {
    let visible = match q.filter {
        StyleFilter::Own => "s.account_id = $1",
        StyleFilter::Public => "s.public",
        StyleFilter::All => "(s.public OR s.account_id = $1)",
    };
    let (time, id) = cursor_params(q.before);
    let rows = sqlx::query(&format!(
        "SELECT {STYLE_COLUMNS} FROM {STYLE_FROM} WHERE {visible} AND s.created_at <= $2 \
         AND (s.created_at < $2 OR s.id < $5) AND ($3::uuid IS NULL OR s.account_id = $3) \
         ORDER BY s.created_at DESC, s.id DESC LIMIT $4"
    ))
    .bind(account)
    .bind(time)
    .bind(q.owner)
    .bind(i64::from(q.limit))
    // Style ids are text in this schema.
    .bind(id.map(|id| id.to_string()))
    .fetch_all(c)
    .await
    .map_err(pg_err)?;
    styles(rows)
}

/// The account's own style, locked for the rest of the transaction.
async fn own_style_for_update(c: &mut PgConnection, account: Uuid, id: Uuid) -> StoreResult<Option<Style>> {
    let row = sqlx::query(&format!(
        "SELECT {STYLE_COLUMNS} FROM {STYLE_FROM} WHERE s.id = $1 AND s.account_id = $2 FOR UPDATE OF s"
    ))
    .bind(id.to_string())
    .bind(account)
    .fetch_optional(c)
    .await
    .map_err(pg_err)?;
    row.map(|r| style_from_row(&r)).transpose().map_err(pg_err)
}

pub async fn update_style(
    c: &mut PgConnection,
    account: Uuid,
    id: Uuid,
    patch: StylePatch,
) -> StoreResult<Option<Style>> {
    let Some(current) = own_style_for_update(c, account, id).await? else { return Ok(None) };
    let next = patch.apply(current);
    sqlx::query("UPDATE styles SET title = $2, public = $3, urls = $4, cover_url = $5 WHERE id = $1")
        .bind(id.to_string())
        .bind(&next.title)
        .bind(next.public)
        .bind(urls_json(&next.urls))
        .bind(&next.cover_url)
        .execute(c)
        .await
        .map_err(pg_err)?;
    Ok(Some(next))
}

pub async fn delete_style(
    c: &mut PgConnection,
    account: Uuid,
    id: Uuid,
) -> StoreResult<Result<Style, StyleDeleteRefusal>> {
    let Some(current) = own_style_for_update(&mut *c, account, id).await? else {
        return Ok(Err(StyleDeleteRefusal::NotFound));
    };
    let jobs: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM jobs WHERE status IN {UNFINISHED_STATUSES} AND style_key LIKE $1"
    ))
    .bind(style_key_pattern(id))
    .fetch_one(&mut *c)
    .await
    .map_err(pg_err)?;
    if jobs > 0 {
        return Ok(Err(StyleDeleteRefusal::InUse { jobs: jobs as u64 }));
    }
    sqlx::query("DELETE FROM styles WHERE id = $1").bind(id.to_string()).execute(&mut *c).await.map_err(pg_err)?;
    super::accounts::free_storage(c, account, current.size_bytes).await?;
    Ok(Ok(current))
}

pub async fn styles_by_id(c: &mut PgConnection, ids: Vec<Uuid>) -> StoreResult<Vec<Style>> {
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let rows = sqlx::query(&format!("SELECT {STYLE_COLUMNS} FROM {STYLE_FROM} WHERE s.id = ANY($1)"))
        .bind(&ids)
        .fetch_all(c)
        .await
        .map_err(pg_err)?;
    styles(rows)
}
