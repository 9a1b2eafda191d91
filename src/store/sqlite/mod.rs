//! The embedded store: one SQLite file in WAL mode under the data dir.
mod accounts;
mod actor;
mod admin;
mod capabilities;
mod job_cache;
mod jobs;
mod library;
mod retention;
mod rows;
mod transitions;
mod wal_guard;
mod webhooks;
mod work;
mod workers;

use super::*;
use actor::{Actors, MonotonicMicros};
use async_trait::async_trait;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// Embedded migrations, applied in order; `user_version` records how far a file has come.
const MIGRATIONS: [&str; 8] = [
    include_str!("schema.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_v4.sql"),
    include_str!("schema_admin.sql"),
    include_str!("schema_retention.sql"),
    include_str!("schema_rate_limit.sql"),
    include_str!("schema_deep_queue.sql"),
];

pub struct SqliteStore {
    actors: Actors,
    jobs: Arc<job_cache::JobCache>,
    queue_signal: Arc<Notify>,
    webhook_signal: Arc<Notify>,
    path: PathBuf,
}

fn sql_err(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::CannotOpen
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::Internal(other.to_string()),
    }
}

/// The size the WAL file is cut back to (or to its first transaction, if larger) when the
/// writer starts the WAL over: after a pause in which the checkpointer copied all of it back,
/// or once it passed `wal_guard::RESTART_AT`. Set on every connection; only the writer's
/// matters. Without it the file kept the size of the largest burst until the store was next
/// opened (1.6 GB after ten seconds of submits at 36k/s), and the next
/// burst overwrote that old file in place: its WAL frames (a page and a 24-byte header) cover
/// parts of file pages, and once the machine had dropped those pages from its cache, each write
/// read one back from disk first. Submit bursts after an idle spell read ~200 MiB each and ran
/// at 0.70–0.84 of the first (a third of it in `bench/run`, amid the other stores' writes);
/// with the limit only the kept 64 MiB can be read back (`bench/submit_after_idle`,
/// bench/RESULTS.md, 2026-12-03).
pub(super) const WAL_SIZE_LIMIT: i64 = 64 << 20;

pub(super) fn open(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(sql_err)?;
    // WAL: readers never block the writer; FULL: a commit survives power loss, not just a crash.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
    )
    .map_err(sql_err)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT).map_err(sql_err)?;
    // rusqlite keeps 16 prepared statements by default; the writer alone runs more than that
    // (submits, leases, heartbeats, settlements), and an evicted one is parsed again.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql_err)?;
    let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sql_err)?;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Internal(format!(
            "the database is at schema version {version}, newer than this binary knows ({}); upgrade ltx-serve",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql).map_err(sql_err)?;
        tx.pragma_update(None, "user_version", i + 1).map_err(sql_err)?;
    }
    tx.commit().map_err(sql_err)
}

impl SqliteStore {
    /// Opens (creating if needed) `ltx-serve.db` in `data_dir` and applies migrations.
    pub fn open(data_dir: &Path) -> StoreResult<SqliteStore> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join("ltx-serve.db");
        let mut conn = open(&path)?;
        migrate(&mut conn)?;
        let last: i64 =
            conn.query_row("SELECT COALESCE(MAX(created_at), 0) FROM jobs", [], |r| r.get(0)).map_err(sql_err)?;
        drop(conn);
        let jobs = Arc::new(job_cache::JobCache::new(Duration::from_secs(1)));
        let invalidate = jobs.clone();
        let clock = MonotonicMicros::starting_after(last);
        let actors = Actors::start(&path, 4, clock, move || invalidate.invalidate_all())?;
        Ok(SqliteStore {
            actors,
            jobs,
            queue_signal: Arc::new(Notify::new()),
            webhook_signal: Arc::new(Notify::new()),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl Library for SqliteStore {
    async fn create_asset_within(&self, asset: Asset, defaults: StorageQuota) -> StoreResult<Asset> {
        self.actors.write(move |ctx| library::create_asset(ctx, asset, defaults)).await
    }
    async fn asset(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Asset>> {
        self.actors.read(move |c| library::asset(c, account_id, id)).await
    }
    async fn asset_by_file(&self, file_key: String) -> StoreResult<Option<Asset>> {
        self.actors.read(move |c| library::asset_by_file(c, file_key)).await
    }
    async fn list_assets(&self, account: Uuid, before: Option<LibraryCursor>, limit: u32) -> StoreResult<Vec<Asset>> {
        self.actors.read(move |c| library::list_assets(c, account, before, limit)).await
    }
    async fn delete_asset(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Asset>> {
        self.actors.write(move |ctx| library::delete_asset(ctx, account_id, id)).await
    }
    async fn create_style_within(&self, style: Style, defaults: StorageQuota) -> StoreResult<Style> {
        self.actors.write(move |ctx| library::create_style(ctx, style, defaults)).await
    }
    async fn style(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Style>> {
        self.actors.read(move |c| library::style(c, account_id, id)).await
    }
    async fn list_styles(&self, account_id: Uuid, query: StyleQuery) -> StoreResult<Vec<Style>> {
        self.actors.read(move |c| library::list_styles(c, account_id, query)).await
    }
    async fn update_style(&self, account_id: Uuid, id: Uuid, patch: StylePatch) -> StoreResult<Option<Style>> {
        self.actors.write(move |ctx| library::update_style(ctx, account_id, id, patch)).await
    }
    async fn delete_style(&self, account_id: Uuid, id: Uuid) -> StoreResult<Result<Style, StyleDeleteRefusal>> {
        self.actors.write(move |ctx| library::delete_style(ctx, account_id, id)).await
    }
    async fn styles_by_id(&self, ids: Vec<Uuid>) -> StoreResult<Vec<Style>> {
        self.actors.read(move |c| library::styles_by_id(c, ids)).await
    }
}
