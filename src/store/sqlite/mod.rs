//! The embedded store: one SQLite file in WAL mode under the data dir.
mod accounts;
mod actor;
mod job_cache;
mod jobs;
mod library;
mod rows;
mod webhooks;
mod work;
mod workers;

use super::*;
use crate::domain::job::FailureCode;
use crate::domain::money::MicroUsd;
use actor::{Actors, MonotonicMicros};
use async_trait::async_trait;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// Embedded migrations, applied in order; `user_version` records how far a file has come.
const MIGRATIONS: [&str; 3] =
    [include_str!("schema.sql"), include_str!("schema_v2.sql"), include_str!("schema_v3.sql")];

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

pub(super) fn open(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(sql_err)?;
    // WAL: readers never block the writer; FULL: a commit survives power loss, not just a crash.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
    )
    .map_err(sql_err)?;
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
    async fn create_asset(&self, asset: Asset) -> StoreResult<()> {
        self.actors.write(move |ctx| library::create_asset(ctx, asset)).await
    }
    async fn asset(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Asset>> {
        self.actors.read(move |c| library::asset(c, account_id, id)).await
    }
    async fn asset_by_file(&self, file_key: String) -> StoreResult<Option<Asset>> {
        self.actors.read(move |c| library::asset_by_file(c, file_key)).await
    }
    async fn list_assets(
        &self,
        account_id: Uuid,
        before: Option<time::OffsetDateTime>,
        limit: u32,
    ) -> StoreResult<Vec<Asset>> {
        self.actors.read(move |c| library::list_assets(c, account_id, before, limit)).await
    }
    async fn delete_asset(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Asset>> {
        self.actors.write(move |ctx| library::delete_asset(ctx, account_id, id)).await
    }
    async fn create_style(&self, style: Style) -> StoreResult<()> {
        self.actors.write(move |ctx| library::create_style(ctx, style)).await
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

#[async_trait]
impl Store for SqliteStore {
    async fn create_account(&self, new: NewAccount) -> StoreResult<Account> {
        self.actors.write(move |ctx| accounts::create(ctx, new)).await
    }
    async fn account(&self, id: Uuid) -> StoreResult<Account> {
        self.actors.read(move |c| accounts::get(c, id)).await
    }
    async fn count_accounts(&self) -> StoreResult<u64> {
        self.actors.read(accounts::count).await
    }
    async fn add_credits(&self, id: Uuid, amount: MicroUsd, note: String) -> StoreResult<Account> {
        self.actors.write(move |ctx| accounts::add_credits(ctx, id, amount, note)).await
    }
    async fn set_limits(
        &self,
        id: Uuid,
        max_concurrent: Option<u32>,
        max_backlog: Option<u32>,
    ) -> StoreResult<Account> {
        let signal = self.queue_signal.clone();
        self.actors.write(move |ctx| accounts::set_limits(ctx, id, max_concurrent, max_backlog, signal)).await
    }
    async fn create_key(
        &self,
        account_id: Uuid,
        key_id: Uuid,
        secret_hash: String,
        label: Option<String>,
    ) -> StoreResult<()> {
        self.actors.write(move |ctx| accounts::create_key(ctx, account_id, key_id, secret_hash, label)).await
    }
    async fn revoke_key(&self, key_id: Uuid) -> StoreResult<bool> {
        self.actors.write(move |ctx| accounts::revoke_key(ctx, key_id)).await
    }
    async fn key(&self, key_id: Uuid) -> StoreResult<Option<KeyRecord>> {
        self.actors.read(move |c| accounts::key(c, key_id)).await
    }
    async fn ledger(&self, account_id: Uuid, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        self.actors.read(move |c| accounts::ledger(c, account_id, limit)).await
    }
    async fn usage(&self, account_id: Uuid) -> StoreResult<Usage> {
        self.actors.read(move |c| accounts::usage(c, account_id)).await
    }

    async fn submit(&self, new: NewJob) -> StoreResult<Result<Job, SubmitRefusal>> {
        let signal = self.queue_signal.clone();
        self.actors.write(move |ctx| jobs::submit(ctx, new, signal)).await
    }
    async fn job(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Job>> {
        let job = match self.jobs.get(id) {
            Some(hit) => Some(hit),
            None => {
                let generation = self.jobs.generation();
                let loaded = self.actors.read(move |c| rows::load_job(c, id)).await?;
                if let Some(job) = &loaded {
                    self.jobs.put(job.clone(), generation);
                }
                loaded
            }
        };
        Ok(job.filter(|j| j.account_id == account_id))
    }
    async fn list_jobs(&self, account_id: Uuid, query: JobQuery) -> StoreResult<Vec<Job>> {
        self.actors.read(move |c| jobs::list(c, account_id, query)).await
    }
    async fn cancel(&self, account_id: Uuid, id: Uuid) -> StoreResult<Result<Job, CancelRefusal>> {
        let signal = self.queue_signal.clone();
        let hooks = self.webhook_signal.clone();
        self.actors.write(move |ctx| jobs::cancel(ctx, account_id, id, signal, hooks)).await
    }
    async fn usable_styles(&self, account_id: Uuid, ids: Vec<String>) -> StoreResult<Vec<String>> {
        self.actors.read(move |c| jobs::usable_styles(c, account_id, ids)).await
    }

    async fn lease(&self, worker: WorkerLease, ttl: Duration) -> StoreResult<Option<Lease>> {
        self.actors.write(move |ctx| work::lease(ctx, worker, ttl)).await
    }
    async fn heartbeat(&self, lease: LeaseRef, update: Progress, ttl: Duration) -> StoreResult<()> {
        self.actors.write(move |ctx| work::heartbeat(ctx, lease, update, ttl)).await
    }
    async fn complete(&self, lease: LeaseRef, result: JobResult) -> StoreResult<Job> {
        let signal = self.queue_signal.clone();
        let hooks = self.webhook_signal.clone();
        self.actors.write(move |ctx| work::complete(ctx, lease, result, signal, hooks)).await
    }
    async fn publish_preview(&self, lease: LeaseRef, preview: JobResult) -> StoreResult<()> {
        self.actors.write(move |ctx| work::publish_preview(ctx, lease, preview)).await
    }
    async fn fail(&self, lease: LeaseRef, code: FailureCode, message: String) -> StoreResult<Job> {
        let signal = self.queue_signal.clone();
        let hooks = self.webhook_signal.clone();
        self.actors.write(move |ctx| work::fail(ctx, lease, code, message, signal, hooks)).await
    }
    async fn lease_is_held(&self, lease: LeaseRef) -> StoreResult<bool> {
        self.actors.read(move |c| work::lease_is_held(c, lease)).await
    }
    async fn hand_back(&self, lease: LeaseRef) -> StoreResult<()> {
        let signal = self.queue_signal.clone();
        self.actors.write(move |ctx| work::hand_back(ctx, lease, signal)).await
    }
    fn queue_signal(&self) -> Arc<Notify> {
        self.queue_signal.clone()
    }
    async fn sweep(&self, max_attempts: u32, max_run_time: Duration) -> StoreResult<SweepReport> {
        let signal = self.queue_signal.clone();
        let hooks = self.webhook_signal.clone();
        self.actors.write(move |ctx| work::sweep(ctx, max_attempts, max_run_time, signal, hooks)).await
    }
    async fn rotate_webhook_secret(&self, account_id: Uuid) -> StoreResult<Account> {
        self.actors.write(move |ctx| accounts::rotate_webhook_secret(ctx, account_id)).await
    }
    async fn claim_due_webhooks(&self, limit: u32, claim_for: Duration) -> StoreResult<Vec<WebhookDelivery>> {
        self.actors.write(move |ctx| webhooks::claim_due(ctx, limit, claim_for)).await
    }
    async fn record_webhook(&self, id: String, outcome: WebhookOutcome) -> StoreResult<()> {
        self.actors.write(move |ctx| webhooks::record(ctx, id, outcome)).await
    }
    fn webhook_signal(&self) -> Arc<Notify> {
        self.webhook_signal.clone()
    }

    async fn create_worker_token(&self, id: Uuid, secret_hash: String, label: Option<String>) -> StoreResult<()> {
        self.actors.write(move |ctx| workers::create_token(ctx, id, secret_hash, label)).await
    }
    async fn revoke_worker_token(&self, id: Uuid) -> StoreResult<bool> {
        self.actors.write(move |ctx| workers::revoke_token(ctx, id)).await
    }
    async fn worker_token(&self, id: Uuid) -> StoreResult<Option<WorkerTokenRecord>> {
        self.actors.read(move |c| workers::token(c, id)).await
    }
    async fn record_worker(&self, info: WorkerInfo) -> StoreResult<()> {
        self.actors.write(move |ctx| workers::record(ctx, info)).await
    }
    async fn live_workers(&self, seen_within: Duration) -> StoreResult<Vec<WorkerRecord>> {
        self.actors.read(move |c| workers::live(c, seen_within)).await
    }
    async fn touch_worker(&self, name: String) -> StoreResult<()> {
        self.actors.write(move |ctx| workers::touch(ctx, name)).await
    }
    async fn job_status(&self, id: Uuid) -> StoreResult<Option<crate::domain::job::JobStatus>> {
        Ok(self.actors.read(move |c| rows::load_job(c, id)).await?.map(|j| j.status))
    }
    async fn job_counts_by_status(&self) -> StoreResult<Vec<(crate::domain::job::JobStatus, u64)>> {
        self.actors.read(jobs::counts_by_status).await
    }
    async fn ping(&self) -> StoreResult<()> {
        self.actors.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(sql_err)).await
    }
}
