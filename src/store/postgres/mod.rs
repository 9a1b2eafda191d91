//! The fleet store: PostgreSQL shared by every API replica and (through them) every worker.
//! Each operation is one transaction; rows are locked account first, then jobs, so concurrent
//! transactions on the same account queue up instead of deadlocking. Work is leased with
//! `FOR UPDATE SKIP LOCKED`, and `LISTEN/NOTIFY` wakes idle workers and webhook dispatchers on
//! every replica the moment a transaction commits new work.
mod accounts;
mod jobs;
mod library;
mod rows;
mod submit_batch;
mod webhooks;
mod work;
mod workers;

use super::*;
use crate::domain::job::FailureCode;
use crate::domain::money::MicroUsd;
use async_trait::async_trait;
use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// Embedded migrations, applied in order under an advisory lock (replicas may start together).
const MIGRATIONS: [&str; 2] = [include_str!("schema.sql"), include_str!("schema_v2.sql")];
/// Any constant works; it only has to be the same for every replica.
const MIGRATION_LOCK: i64 = 0x6c74_785f_7365_7276; // "ltx_serv"
pub(super) const QUEUE_CHANNEL: &str = "ltx_queue";
pub(super) const WEBHOOK_CHANNEL: &str = "ltx_webhooks";
/// Transactions that lose a serialisation race or a deadlock are run again this many times.
const RETRIES: u32 = 8;

pub struct PgStore {
    pool: PgPool,
    queue_signal: Arc<Notify>,
    webhook_signal: Arc<Notify>,
    /// Submits go through the batchers (group commit, submit_batch.rs).
    submits: flume::Sender<submit_batch::Pending>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn pg_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // serialization_failure, deadlock_detected: the transaction is simply run again
            Some("40001") | Some("40P01") => StoreError::Conflict(db.message().to_owned()),
            // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections, disk_full
            Some("57P01") | Some("57P02") | Some("57P03") | Some("53300") | Some("53100") => {
                StoreError::Unavailable(db.message().to_owned())
            }
            _ => StoreError::Internal(e.to_string()),
        },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Internal(e.to_string()),
    }
}

type Tx<'c, T> = BoxFuture<'c, StoreResult<T>>;

impl PgStore {
    /// Connects, applies migrations and starts listening for wake-ups.
    pub async fn connect(url: &str) -> StoreResult<PgStore> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("invalid database URL: {e}")))?
            .application_name("ltx-serve");
        let pool = PgPoolOptions::new()
            // Each replica holds at most this many (plus one LISTEN connection): PostgreSQL's default
            // max_connections of 100 leaves room for five replicas and the admin CLI.
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(pg_err)?;
        migrate(&pool).await?;
        let queue_signal = Arc::new(Notify::new());
        let webhook_signal = Arc::new(Notify::new());
        let mut tasks = vec![tokio::spawn(listen(pool.clone(), queue_signal.clone(), webhook_signal.clone()))];
        let (submits, batchers) = submit_batch::spawn(pool.clone());
        tasks.extend(batchers);
        Ok(PgStore { pool, queue_signal, webhook_signal, submits, tasks })
    }

    async fn tx<T: Send>(
        &self,
        op: impl for<'c> Fn(&'c mut PgConnection) -> Tx<'c, T> + Send + Sync,
    ) -> StoreResult<T> {
        transaction(&self.pool, op).await
    }

    /// Runs read-only `op` on a pooled connection.
    async fn read<T: Send>(&self, op: impl for<'c> FnOnce(&'c mut PgConnection) -> Tx<'c, T> + Send) -> StoreResult<T> {
        let mut conn = self.pool.acquire().await.map_err(pg_err)?;
        op(&mut conn).await
    }
}

/// Runs `op` in a transaction, again from the start when it lost a race to another one.
async fn transaction<T: Send>(
    pool: &PgPool,
    op: impl for<'c> Fn(&'c mut PgConnection) -> Tx<'c, T> + Send + Sync,
) -> StoreResult<T> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = pool.begin().await.map_err(pg_err)?;
        let outcome = match op(&mut tx).await {
            Ok(value) => tx.commit().await.map_err(pg_err).map(|()| value),
            Err(e) => Err(e), // dropping `tx` rolls it back
        };
        match outcome {
            Err(StoreError::Conflict(why)) if attempt < RETRIES => {
                tracing::debug!(attempt, why, "transaction conflicted; running it again");
                tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % (2 << attempt))).await;
            }
            other => return other,
        }
    }
}

async fn migrate(pool: &PgPool) -> StoreResult<()> {
    let mut conn = pool.acquire().await.map_err(pg_err)?;
    let mut tx = conn.begin().await.map_err(pg_err)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await.map_err(pg_err)?;
    sqlx::query("CREATE TABLE IF NOT EXISTS ltx_schema_version (version integer NOT NULL)")
        .execute(&mut *tx)
        .await
        .map_err(pg_err)?;
    let version: Option<i32> =
        sqlx::query_scalar("SELECT MAX(version) FROM ltx_schema_version").fetch_one(&mut *tx).await.map_err(pg_err)?;
    let version = version.unwrap_or(0) as usize;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Internal(format!(
            "the database is at schema version {version}, newer than this binary knows ({}); upgrade ltx-serve",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(pg_err)?;
        sqlx::query("INSERT INTO ltx_schema_version (version) VALUES ($1)")
            .bind(i as i32 + 1)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
    }
    tx.commit().await.map_err(pg_err)
}

/// Forwards notifications to the local signals. After a lost connection every waiter is woken
/// once, since a notification may have been missed meanwhile (waiters poll as well).
async fn listen(pool: PgPool, queue: Arc<Notify>, webhooks: Arc<Notify>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for new work; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen_all([QUEUE_CHANNEL, WEBHOOK_CHANNEL]).await {
            tracing::warn!(error = %e, "cannot LISTEN for new work; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        queue.notify_waiters();
        webhooks.notify_waiters();
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) if n.channel() == QUEUE_CHANNEL => queue.notify_waiters(),
                Ok(Some(_)) => webhooks.notify_waiters(),
                Ok(None) => {
                    // the connection was lost; it reconnects on the next call
                    queue.notify_waiters();
                    webhooks.notify_waiters();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            }
        }
    }
}

/// Queues a wake-up for the channel, sent by PostgreSQL when (and only if) the transaction commits.
pub(super) async fn notify(c: &mut PgConnection, channel: &str) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, '')").bind(channel).execute(c).await.map_err(pg_err)?;
    Ok(())
}

#[async_trait]
impl Library for PgStore {
    async fn create_asset(&self, asset: Asset) -> StoreResult<()> {
        self.tx(|c| Box::pin(library::create_asset(c, asset.clone()))).await
    }
    async fn asset(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Asset>> {
        self.read(|c| Box::pin(library::asset(c, account_id, id))).await
    }
    async fn asset_by_file(&self, file_key: String) -> StoreResult<Option<Asset>> {
        self.read(|c| Box::pin(library::asset_by_file(c, file_key))).await
    }
    async fn list_assets(
        &self,
        account_id: Uuid,
        before: Option<time::OffsetDateTime>,
        limit: u32,
    ) -> StoreResult<Vec<Asset>> {
        self.read(|c| Box::pin(library::list_assets(c, account_id, before, limit))).await
    }
    async fn delete_asset(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Asset>> {
        self.tx(|c| Box::pin(library::delete_asset(c, account_id, id))).await
    }
    async fn create_style(&self, style: Style) -> StoreResult<()> {
        self.tx(|c| Box::pin(library::create_style(c, style.clone()))).await
    }
    async fn style(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Style>> {
        self.read(|c| Box::pin(library::style(c, account_id, id))).await
    }
    async fn list_styles(&self, account_id: Uuid, query: StyleQuery) -> StoreResult<Vec<Style>> {
        self.read(|c| Box::pin(library::list_styles(c, account_id, query))).await
    }
    async fn update_style(&self, account_id: Uuid, id: Uuid, patch: StylePatch) -> StoreResult<Option<Style>> {
        self.tx(|c| Box::pin(library::update_style(c, account_id, id, patch.clone()))).await
    }
    async fn delete_style(&self, account_id: Uuid, id: Uuid) -> StoreResult<Result<Style, StyleDeleteRefusal>> {
        self.tx(|c| Box::pin(library::delete_style(c, account_id, id))).await
    }
    async fn styles_by_id(&self, ids: Vec<Uuid>) -> StoreResult<Vec<Style>> {
        self.read(|c| Box::pin(library::styles_by_id(c, ids))).await
    }
}

#[async_trait]
impl Store for PgStore {
    async fn create_account(&self, new: NewAccount) -> StoreResult<Account> {
        let secret = crate::domain::webhook::new_secret();
        let id = Uuid::new_v4();
        self.tx(|c| Box::pin(accounts::create(c, id, new.clone(), secret.clone()))).await
    }
    async fn account(&self, id: Uuid) -> StoreResult<Account> {
        self.read(|c| Box::pin(accounts::get(c, id, false))).await
    }
    async fn count_accounts(&self) -> StoreResult<u64> {
        self.read(|c| Box::pin(accounts::count(c))).await
    }
    async fn add_credits(&self, id: Uuid, amount: MicroUsd, note: String) -> StoreResult<Account> {
        self.tx(|c| Box::pin(accounts::add_credits(c, id, amount, note.clone()))).await
    }
    async fn set_limits(
        &self,
        id: Uuid,
        max_concurrent: Option<u32>,
        max_backlog: Option<u32>,
    ) -> StoreResult<Account> {
        self.tx(|c| Box::pin(accounts::set_limits(c, id, max_concurrent, max_backlog))).await
    }
    async fn create_key(
        &self,
        account_id: Uuid,
        key_id: Uuid,
        secret_hash: String,
        label: Option<String>,
    ) -> StoreResult<()> {
        self.tx(|c| Box::pin(accounts::create_key(c, account_id, key_id, secret_hash.clone(), label.clone()))).await
    }
    async fn revoke_key(&self, key_id: Uuid) -> StoreResult<bool> {
        self.tx(|c| Box::pin(accounts::revoke_key(c, key_id))).await
    }
    async fn key(&self, key_id: Uuid) -> StoreResult<Option<KeyRecord>> {
        self.read(|c| Box::pin(accounts::key(c, key_id))).await
    }
    async fn ledger(&self, account_id: Uuid, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        self.read(|c| Box::pin(accounts::ledger(c, account_id, limit))).await
    }
    async fn usage(&self, account_id: Uuid) -> StoreResult<Usage> {
        self.read(|c| Box::pin(accounts::usage(c, account_id))).await
    }

    async fn submit(&self, new: NewJob) -> StoreResult<Result<Job, SubmitRefusal>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submits
            .send(submit_batch::Pending { new, reply })
            .map_err(|_| StoreError::Internal("the submit batchers have stopped".into()))?;
        answer.await.map_err(|_| StoreError::Internal("a submit batcher stopped".into()))?
    }
    async fn job(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Job>> {
        let job = self.read(|c| Box::pin(rows::load_job(c, id))).await?;
        Ok(job.filter(|j| j.account_id == account_id))
    }
    async fn watched_jobs(&self, keys: Vec<(Uuid, Uuid)>) -> StoreResult<Vec<Job>> {
        self.read(|c| Box::pin(async move { rows::load_watched(c, &keys).await })).await
    }
    async fn list_jobs(&self, account_id: Uuid, query: JobQuery) -> StoreResult<Vec<Job>> {
        self.read(|c| Box::pin(jobs::list(c, account_id, query))).await
    }
    async fn cancel(&self, account_id: Uuid, id: Uuid) -> StoreResult<Result<Job, CancelRefusal>> {
        self.tx(|c| Box::pin(jobs::cancel(c, account_id, id))).await
    }
    async fn usable_styles(&self, account_id: Uuid, ids: Vec<String>) -> StoreResult<Vec<String>> {
        self.read(|c| Box::pin(jobs::usable_styles(c, account_id, ids))).await
    }

    async fn lease(&self, worker: WorkerLease, ttl: Duration) -> StoreResult<Option<Lease>> {
        self.tx(|c| Box::pin(work::lease(c, worker.clone(), ttl))).await
    }
    async fn heartbeat(&self, lease: LeaseRef, update: Progress, ttl: Duration) -> StoreResult<()> {
        self.tx(|c| Box::pin(work::heartbeat(c, lease, update.clone(), ttl))).await
    }
    async fn complete(&self, lease: LeaseRef, result: JobResult) -> StoreResult<Job> {
        self.tx(|c| Box::pin(work::complete(c, lease, result.clone()))).await
    }
    async fn publish_preview(&self, lease: LeaseRef, preview: JobResult) -> StoreResult<()> {
        self.tx(|c| Box::pin(work::publish_preview(c, lease, preview.clone()))).await
    }
    async fn fail(&self, lease: LeaseRef, code: FailureCode, message: String) -> StoreResult<Job> {
        self.tx(|c| Box::pin(work::fail(c, lease, code, message.clone()))).await
    }
    async fn lease_is_held(&self, lease: LeaseRef) -> StoreResult<bool> {
        self.read(|c| Box::pin(work::lease_is_held(c, lease))).await
    }
    async fn hand_back(&self, lease: LeaseRef) -> StoreResult<()> {
        self.tx(|c| Box::pin(work::hand_back(c, lease))).await
    }
    fn queue_signal(&self) -> Arc<Notify> {
        self.queue_signal.clone()
    }
    async fn sweep(&self, max_attempts: u32, max_run_time: Duration) -> StoreResult<SweepReport> {
        // Candidates are found without locks; each is then settled in its own transaction that
        // checks again under the row locks (another replica's sweep may have been first).
        let candidates = self.read(|c| Box::pin(work::sweep_candidates(c, max_run_time))).await?;
        let mut report = SweepReport::default();
        for (job, account) in candidates {
            let outcome = self.tx(|c| Box::pin(work::sweep_one(c, job, account, max_attempts, max_run_time))).await?;
            match outcome {
                Some(work::Swept::Requeued) => report.requeued.push(job),
                Some(work::Swept::Failed) => report.failed.push(job),
                None => {}
            }
        }
        Ok(report)
    }
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| Box::pin(async move { c.ping().await.map_err(pg_err) })).await
    }
    async fn job_counts_by_status(&self) -> StoreResult<Vec<(crate::domain::job::JobStatus, u64)>> {
        self.read(|c| Box::pin(jobs::counts_by_status(c))).await
    }

    async fn rotate_webhook_secret(&self, account_id: Uuid) -> StoreResult<Account> {
        let secret = crate::domain::webhook::new_secret();
        self.tx(|c| Box::pin(accounts::rotate_webhook_secret(c, account_id, secret.clone()))).await
    }
    async fn claim_due_webhooks(&self, limit: u32, claim_for: Duration) -> StoreResult<Vec<WebhookDelivery>> {
        self.tx(|c| Box::pin(webhooks::claim_due(c, limit, claim_for))).await
    }
    async fn record_webhook(&self, id: String, outcome: WebhookOutcome) -> StoreResult<()> {
        self.tx(|c| Box::pin(webhooks::record(c, id.clone(), outcome.clone()))).await
    }
    fn webhook_signal(&self) -> Arc<Notify> {
        self.webhook_signal.clone()
    }

    async fn create_worker_token(&self, id: Uuid, secret_hash: String, label: Option<String>) -> StoreResult<()> {
        self.tx(|c| Box::pin(workers::create_token(c, id, secret_hash.clone(), label.clone()))).await
    }
    async fn revoke_worker_token(&self, id: Uuid) -> StoreResult<bool> {
        self.tx(|c| Box::pin(workers::revoke_token(c, id))).await
    }
    async fn worker_token(&self, id: Uuid) -> StoreResult<Option<WorkerTokenRecord>> {
        self.read(|c| Box::pin(workers::token(c, id))).await
    }
    async fn record_worker(&self, info: WorkerInfo) -> StoreResult<()> {
        self.tx(|c| Box::pin(workers::record(c, info.clone()))).await
    }
    async fn live_workers(&self, seen_within: Duration) -> StoreResult<Vec<WorkerRecord>> {
        self.read(|c| Box::pin(workers::live(c, seen_within))).await
    }
    async fn touch_worker(&self, name: String) -> StoreResult<()> {
        self.tx(|c| Box::pin(workers::touch(c, name.clone()))).await
    }
    async fn job_status(&self, id: Uuid) -> StoreResult<Option<crate::domain::job::JobStatus>> {
        let status: Option<String> = self
            .read(|c| {
                Box::pin(async move {
                    sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
                        .bind(id)
                        .fetch_optional(c)
                        .await
                        .map_err(pg_err)
                })
            })
            .await?;
        Ok(status.and_then(|s| crate::domain::job::JobStatus::parse(&s)))
    }
}
