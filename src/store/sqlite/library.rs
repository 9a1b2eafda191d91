//! Assets and styles.
use super::super::*;
use super::actor::WriteCtx;
use super::rows::{to_time, to_us, uuid};
use super::sql_err;
use crate::store::codec::{style_key_pattern, UNFINISHED_STATUSES};
use rusqlite::{params, Connection, OptionalExtension, Row};
use time::OffsetDateTime;
use uuid::Uuid;

pub(super) const ASSET_COLUMNS: &str =
    "id, account_id, file_key, mime_type, size_bytes, width, height, description, uploaded_at";

pub(super) fn asset_from_row(r: &Row) -> rusqlite::Result<Asset> {
    Ok(Asset {
        id: uuid(r.get(0)?),
        account_id: uuid(r.get(1)?),
        file_key: r.get(2)?,
        mime_type: r.get(3)?,
        size_bytes: r.get::<_, i64>(4)? as u64,
        width: r.get(5)?,
        height: r.get(6)?,
        description: r.get(7)?,
        uploaded_at: to_time(r.get(8)?),
    })
}

/// A new row's time: the writer's clock, moved past the account's latest row (`latest` selects
/// its time) so one account's rows never share a time, whatever the clock did since.
fn stamp(ctx: &mut WriteCtx, latest: &str, account: Uuid) -> StoreResult<OffsetDateTime> {
    let now = ctx.now_us();
    let last: Option<i64> = ctx.conn.query_row(latest, [account.to_string()], |r| r.get(0)).map_err(sql_err)?;
    Ok(to_time(last.map_or(now, |last| now.max(last + 1))))
}

/// The cursor as SQL parameters: the time, and the id below which rows at that time follow
/// (NULL when the cursor has none: then only older rows follow).
fn cursor_params(before: Option<LibraryCursor>) -> (i64, Option<String>) {
    match before {
        Some(c) => (to_us(c.time), c.id.map(|id| id.to_string())),
        None => (i64::MAX, None),
    }
}

pub fn create_asset(ctx: &mut WriteCtx, mut a: Asset, defaults: StorageQuota) -> StoreResult<Asset> {
    super::accounts::take_storage(ctx, a.account_id, a.size_bytes, defaults)?;
    a.uploaded_at = stamp(ctx, "SELECT MAX(uploaded_at) FROM assets WHERE account_id = ?1", a.account_id)?;
    ctx.conn
        .execute(
            &format!("INSERT INTO assets ({ASSET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
            params![
                a.id.to_string(),
                a.account_id.to_string(),
                a.file_key,
                a.mime_type,
                a.size_bytes as i64,
                a.width,
                a.height,
                a.description,
                to_us(a.uploaded_at)
            ],
        )
        .map_err(sql_err)?;
    Ok(a)
}

pub fn asset(conn: &Connection, account: Uuid, id: Uuid) -> StoreResult<Option<Asset>> {
    conn.prepare_cached(&format!("SELECT {ASSET_COLUMNS} FROM assets WHERE id = ?1 AND account_id = ?2"))
        .map_err(sql_err)?
        .query_row(params![id.to_string(), account.to_string()], asset_from_row)
        .optional()
        .map_err(sql_err)
}

pub fn asset_by_file(conn: &Connection, file_key: String) -> StoreResult<Option<Asset>> {
    conn.prepare_cached(&format!("SELECT {ASSET_COLUMNS} FROM assets WHERE file_key = ?1"))
        .map_err(sql_err)?
        .query_row([file_key], asset_from_row)
        .optional()
        .map_err(sql_err)
}

pub fn list_assets(
    conn: &Connection,
    account: Uuid,
    before: Option<LibraryCursor>,
    limit: u32,
) -> StoreResult<Vec<Asset>> {
    // `<=` bounds the index range; the rows at the cursor's time then follow only below its id.
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ASSET_COLUMNS} FROM assets WHERE account_id = ?1 AND uploaded_at <= ?2 \
             AND (uploaded_at < ?2 OR id < ?3) ORDER BY uploaded_at DESC, id DESC LIMIT ?4"
        ))
        .map_err(sql_err)?;
    let (time, id) = cursor_params(before);
    let rows = stmt.query_map(params![account.to_string(), time, id, limit], asset_from_row).map_err(sql_err)?;
    rows.collect::<Result<_, _>>().map_err(sql_err)
}

pub fn delete_asset(ctx: &mut WriteCtx, account: Uuid, id: Uuid) -> StoreResult<Option<Asset>> {
    let found = asset(ctx.conn, account, id)?;
    if let Some(a) = &found {
        ctx.conn.execute("DELETE FROM assets WHERE id = ?1", [id.to_string()]).map_err(sql_err)?;
        super::accounts::free_storage(ctx, account, a.size_bytes)?;
    }
    Ok(found)
}

const STYLE_COLUMNS: &str = "s.id, s.account_id, a.name, s.title, s.prompt, s.public, s.urls, s.cover_url, \
     s.file_key, s.size_bytes, s.lora_rank, s.created_at";
const STYLE_FROM: &str = "styles s JOIN accounts a ON a.id = s.account_id";

fn style_from_row(r: &Row) -> rusqlite::Result<Style> {
    let urls: String = r.get(6)?;
    Ok(Style {
        id: uuid(r.get(0)?),
        account_id: uuid(r.get(1)?),
        owner_name: r.get(2)?,
        title: r.get(3)?,
        prompt: r.get(4)?,
        public: r.get(5)?,
        urls: serde_json::from_str(&urls).unwrap_or_default(),
        cover_url: r.get(7)?,
        file_key: r.get(8)?,
        size_bytes: r.get::<_, i64>(9)? as u64,
        lora_rank: r.get(10)?,
        created_at: to_time(r.get(11)?),
    })
}

fn urls_json(urls: &[String]) -> String {
    serde_json::to_string(urls).unwrap_or_else(|_| "[]".into())
}

pub fn create_style(ctx: &mut WriteCtx, mut s: Style, defaults: StorageQuota) -> StoreResult<Style> {
    super::accounts::take_storage(ctx, s.account_id, s.size_bytes, defaults)?;
    s.created_at = stamp(ctx, "SELECT MAX(created_at) FROM styles WHERE account_id = ?1", s.account_id)?;
    ctx.conn
        .execute(
            "INSERT INTO styles (id, account_id, title, prompt, public, urls, cover_url, file_key, size_bytes, \
             lora_rank, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                s.id.to_string(),
                s.account_id.to_string(),
                s.title,
                s.prompt,
                s.public,
                urls_json(&s.urls),
                s.cover_url,
                s.file_key,
                s.size_bytes as i64,
                s.lora_rank,
                to_us(s.created_at)
            ],
        )
        .map_err(sql_err)?;
    Ok(s)
}

pub fn style(conn: &Connection, account: Uuid, id: Uuid) -> StoreResult<Option<Style>> {
    conn.prepare_cached(&format!(
        "SELECT {STYLE_COLUMNS} FROM {STYLE_FROM} WHERE s.id = ?1 AND (s.public = 1 OR s.account_id = ?2)"
    ))
    .map_err(sql_err)?
    .query_row(params![id.to_string(), account.to_string()], style_from_row)
    .optional()
    .map_err(sql_err)
}

fn own_style(conn: &Connection, account: Uuid, id: Uuid) -> StoreResult<Option<Style>> {
    style(conn, account, id).map(|s| s.filter(|s| s.account_id == account))
}

pub fn list_styles(conn: &Connection, account: Uuid, q: StyleQuery) -> StoreResult<Vec<Style>> {
    let visible = match q.filter {
        StyleFilter::Own => "s.account_id = ?1",
        StyleFilter::Public => "s.public = 1",
        StyleFilter::All => "(s.public = 1 OR s.account_id = ?1)",
    };
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {STYLE_COLUMNS} FROM {STYLE_FROM} WHERE {visible} AND s.created_at <= ?2 \
             AND (s.created_at < ?2 OR s.id < ?5) AND (?3 IS NULL OR s.account_id = ?3) \
             ORDER BY s.created_at DESC, s.id DESC LIMIT ?4"
        ))
        .map_err(sql_err)?;
    let (time, id) = cursor_params(q.before);
    let owner = q.owner.map(|o| o.to_string());
    let rows =
        stmt.query_map(params![account.to_string(), time, owner, q.limit, id], style_from_row).map_err(sql_err)?;
    rows.collect::<Result<_, _>>().map_err(sql_err)
}

pub fn update_style(ctx: &mut WriteCtx, account: Uuid, id: Uuid, patch: StylePatch) -> StoreResult<Option<Style>> {
    let Some(current) = own_style(ctx.conn, account, id)? else { return Ok(None) };
    let next = patch.apply(current);
    ctx.conn
        .execute(
            "UPDATE styles SET title = ?2, public = ?3, urls = ?4, cover_url = ?5 WHERE id = ?1",
            params![id.to_string(), next.title, next.public, urls_json(&next.urls), next.cover_url],
        )
        .map_err(sql_err)?;
    Ok(Some(next))
}

pub fn delete_style(ctx: &mut WriteCtx, account: Uuid, id: Uuid) -> StoreResult<Result<Style, StyleDeleteRefusal>> {
    let Some(current) = own_style(ctx.conn, account, id)? else { return Ok(Err(StyleDeleteRefusal::NotFound)) };
    let jobs: i64 = ctx
        .conn
        .query_row(
            &format!("SELECT COUNT(*) FROM jobs WHERE status IN {UNFINISHED_STATUSES} AND style_key LIKE ?1"),
            [style_key_pattern(id)],
            |r| r.get(0),
        )
        .map_err(sql_err)?;
    if jobs > 0 {
        return Ok(Err(StyleDeleteRefusal::InUse { jobs: jobs as u64 }));
    }
    ctx.conn.execute("DELETE FROM styles WHERE id = ?1", [id.to_string()]).map_err(sql_err)?;
    super::accounts::free_storage(ctx, account, current.size_bytes)?;
    Ok(Ok(current))
}

pub fn styles_by_id(conn: &Connection, ids: Vec<Uuid>) -> StoreResult<Vec<Style>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {STYLE_COLUMNS} FROM {STYLE_FROM} WHERE s.id = ?1")).map_err(sql_err)?;
    let mut found = Vec::new();
    for id in ids {
        if let Some(style) = stmt.query_row([id.to_string()], style_from_row).optional().map_err(sql_err)? {
            found.push(style);
        }
    }
    Ok(found)
}
