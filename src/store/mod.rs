//! The store: one trait, implemented by SQLite (one machine) and PostgreSQL (a fleet), so
//! callers never know which one they talk to. Every method that changes money or a job's state does all of it
//! (job row, hold, ledger, backlog promotion) in one transaction.
pub mod codec;
mod model;
pub mod postgres;
pub mod sqlite;

pub use model::*;

use crate::domain::job::FailureCode;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A worker's lease was lost (expired, cancelled, or taken over): its report is refused.
    #[error("the lease is no longer held")]
    LeaseLost,
    /// A concurrent transaction won a race (serialisation failure, deadlock); the store runs the
    /// operation again a few times before it lets this out.
    #[error("conflicting concurrent update: {0}")]
    Conflict(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Opens the store a role is configured with: PostgreSQL when `database_url` is set (a fleet),
/// else SQLite in `data_dir` (one machine).
pub async fn open(database_url: Option<&str>, data_dir: &std::path::Path) -> StoreResult<Arc<dyn Store>> {
    Ok(match database_url {
        Some(url) => Arc::new(postgres::PgStore::connect(url).await?),
        None => Arc::new(sqlite::SqliteStore::open(data_dir)?),
    })
}

/// Assets and styles: what accounts upload. Files live in storage; rows here hold their keys.
#[async_trait]
pub trait Library: Send + Sync + 'static {
    async fn create_asset(&self, asset: Asset) -> StoreResult<()>;
    /// The account's asset.
    async fn asset(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Asset>>;
    /// The asset stored under `file_key`, whoever owns it (resolving an image URL).
    async fn asset_by_file(&self, file_key: String) -> StoreResult<Option<Asset>>;
    /// Newest first.
    async fn list_assets(
        &self,
        account_id: Uuid,
        before: Option<time::OffsetDateTime>,
        limit: u32,
    ) -> StoreResult<Vec<Asset>>;
    /// Returns the deleted asset (its file is the caller's to remove).
    async fn delete_asset(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Asset>>;

    async fn create_style(&self, style: Style) -> StoreResult<()>;
    /// A style the account may see: its own or a public one.
    async fn style(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Style>>;
    /// Newest first.
    async fn list_styles(&self, account_id: Uuid, query: StyleQuery) -> StoreResult<Vec<Style>>;
    /// Changes the account's own style; `None` when it has no such style.
    async fn update_style(&self, account_id: Uuid, id: Uuid, patch: StylePatch) -> StoreResult<Option<Style>>;
    /// Deletes the account's own style unless unfinished jobs use it.
    async fn delete_style(&self, account_id: Uuid, id: Uuid) -> StoreResult<Result<Style, StyleDeleteRefusal>>;
    /// The styles with these ids, whoever owns them (a worker fetching LoRA files).
    async fn styles_by_id(&self, ids: Vec<Uuid>) -> StoreResult<Vec<Style>>;
}

#[async_trait]
pub trait Store: Library + Send + Sync + 'static {
    // Accounts, keys, credits.
    async fn create_account(&self, new: NewAccount) -> StoreResult<Account>;
    async fn account(&self, id: Uuid) -> StoreResult<Account>;
    async fn count_accounts(&self) -> StoreResult<u64>;
    async fn add_credits(&self, id: Uuid, amount: crate::domain::money::MicroUsd, note: String)
        -> StoreResult<Account>;
    async fn set_limits(&self, id: Uuid, max_concurrent: Option<u32>, max_backlog: Option<u32>)
        -> StoreResult<Account>;
    async fn create_key(
        &self,
        account_id: Uuid,
        key_id: Uuid,
        secret_hash: String,
        label: Option<String>,
    ) -> StoreResult<()>;
    /// Returns false when no such key exists (revoking twice is fine).
    async fn revoke_key(&self, key_id: Uuid) -> StoreResult<bool>;
    async fn key(&self, key_id: Uuid) -> StoreResult<Option<KeyRecord>>;
    async fn ledger(&self, account_id: Uuid, limit: u32) -> StoreResult<Vec<LedgerEntry>>;
    async fn usage(&self, account_id: Uuid) -> StoreResult<Usage>;

    // Jobs, as their owner sees them.
    async fn submit(&self, new: NewJob) -> StoreResult<Result<Job, SubmitRefusal>>;
    async fn job(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Job>>;
    /// The jobs of these (account, job id) pairs that exist, as `job` reads them, in any order
    /// (what the event streams follow). A store that can should read them in one query.
    async fn watched_jobs(&self, keys: Vec<(Uuid, Uuid)>) -> StoreResult<Vec<Job>> {
        let mut jobs = Vec::with_capacity(keys.len());
        for (account_id, id) in keys {
            jobs.extend(self.job(account_id, id).await?);
        }
        Ok(jobs)
    }
    async fn list_jobs(&self, account_id: Uuid, query: JobQuery) -> StoreResult<Vec<Job>>;
    async fn cancel(&self, account_id: Uuid, id: Uuid) -> StoreResult<Result<Job, CancelRefusal>>;
    /// Which of `ids` name styles this account may use (its own or public).
    async fn usable_styles(&self, account_id: Uuid, ids: Vec<String>) -> StoreResult<Vec<String>>;

    // Workers.
    /// The oldest queued job, preferring one whose LoRA set the worker has resident.
    async fn lease(&self, worker: WorkerLease, ttl: Duration) -> StoreResult<Option<Lease>>;
    async fn heartbeat(&self, lease: LeaseRef, update: Progress, ttl: Duration) -> StoreResult<()>;
    async fn complete(&self, lease: LeaseRef, result: JobResult) -> StoreResult<Job>;
    /// Shows a first-stage preview (`--intermediate-previews`): the job becomes
    /// `intermediate-complete` with `preview` as its result until `complete` replaces it.
    /// `LeaseLost` when the lease no longer holds the job.
    async fn publish_preview(&self, lease: LeaseRef, preview: JobResult) -> StoreResult<()>;
    async fn fail(&self, lease: LeaseRef, code: FailureCode, message: String) -> StoreResult<Job>;
    /// Whether `lease` still holds its job (checked before accepting a remote worker's upload).
    async fn lease_is_held(&self, lease: LeaseRef) -> StoreResult<bool>;
    /// Gives a leased job back to the queue without counting the attempt (graceful shutdown).
    async fn hand_back(&self, lease: LeaseRef) -> StoreResult<()>;
    /// Wakes when a job may have become leasable.
    fn queue_signal(&self) -> Arc<tokio::sync::Notify>;

    // Scheduler.
    /// Requeues jobs whose lease expired (up to `max_attempts`, then fails them `worker_lost`)
    /// and fails jobs running longer than `max_run_time` with `timeout`.
    async fn sweep(&self, max_attempts: u32, max_run_time: Duration) -> StoreResult<SweepReport>;
    async fn ping(&self) -> StoreResult<()>;
    /// Jobs of all accounts per status (for `/metrics`).
    async fn job_counts_by_status(&self) -> StoreResult<Vec<(crate::domain::job::JobStatus, u64)>>;

    // Webhook outbox (rows are written by the terminal transitions above).
    async fn rotate_webhook_secret(&self, account_id: Uuid) -> StoreResult<Account>;
    /// Takes up to `limit` due deliveries, hiding them from other dispatchers for `claim_for`
    /// (a dispatcher that dies mid-delivery leaves them to be retried after that).
    async fn claim_due_webhooks(&self, limit: u32, claim_for: Duration) -> StoreResult<Vec<WebhookDelivery>>;
    async fn record_webhook(&self, id: String, outcome: WebhookOutcome) -> StoreResult<()>;
    /// Wakes when a delivery was added.
    fn webhook_signal(&self) -> Arc<tokio::sync::Notify>;

    // Remote workers: their tokens (hashed like API keys) and the registry of live ones.
    async fn create_worker_token(&self, id: Uuid, secret_hash: String, label: Option<String>) -> StoreResult<()>;
    /// Returns false when no such token exists.
    async fn revoke_worker_token(&self, id: Uuid) -> StoreResult<bool>;
    async fn worker_token(&self, id: Uuid) -> StoreResult<Option<WorkerTokenRecord>>;
    /// Records that a worker is alive, with what it announced.
    async fn record_worker(&self, info: WorkerInfo) -> StoreResult<()>;
    async fn live_workers(&self, seen_within: Duration) -> StoreResult<Vec<WorkerRecord>>;
    /// Marks a registered worker as alive now (its heartbeats).
    async fn touch_worker(&self, name: String) -> StoreResult<()>;
    /// The status of any account's job (for telling a worker why its lease went).
    async fn job_status(&self, id: Uuid) -> StoreResult<Option<crate::domain::job::JobStatus>>;
}
