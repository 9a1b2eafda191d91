//! The store: small capability traits (`Accounts`, `Keys`, `Jobs`, `Leases`, `Outbox`, `Workers`,
//! `Library`, `Admin`), each implemented by SQLite (one machine) and PostgreSQL (a fleet), so
//! callers never know which one they talk to; `Store` is all of them. Every method that changes
//! money or a job's state does all of it (job row, hold, ledger, backlog promotion) in one
//! transaction.
pub mod codec;
mod model;
pub mod postgres;
mod quota;
mod retention;
pub mod rules;
pub mod sqlite;

pub use model::*;
pub use quota::*;
pub use retention::*;

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
    /// The change breaks a rule the message names (a balance past its maximum, a limit of 0);
    /// nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// An upload would take the account past its storage quota; nothing was stored.
    #[error("{0}")]
    StorageQuotaExceeded(QuotaExceeded),
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
    /// Stores the asset, stamping `uploaded_at` (the value passed is ignored) strictly after the
    /// account's previous asset, and returns it as stored; `StorageQuotaExceeded` (nothing stored)
    /// when it does not fit the account's storage quota (its own, else `defaults`).
    async fn create_asset_within(&self, asset: Asset, defaults: StorageQuota) -> StoreResult<Asset>;
    /// `create_asset_within` with no operator default: only the account's own quota applies.
    async fn create_asset(&self, asset: Asset) -> StoreResult<Asset> {
        self.create_asset_within(asset, StorageQuota::UNLIMITED).await
    }
    /// The account's asset.
    async fn asset(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Asset>>;
    /// The asset stored under `file_key`, whoever owns it (resolving an image URL).
    async fn asset_by_file(&self, file_key: String) -> StoreResult<Option<Asset>>;
    /// Newest first (ties broken by id, descending).
    async fn list_assets(&self, account_id: Uuid, before: Option<LibraryCursor>, limit: u32)
        -> StoreResult<Vec<Asset>>;
    /// Returns the deleted asset (its file is the caller's to remove).
    async fn delete_asset(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Asset>>;

    /// Stores the style, stamping `created_at` (the value passed is ignored) strictly after the
    /// account's previous style, and returns it as stored; its LoRA file counts against the
    /// account's storage quota as an asset does.
    async fn create_style_within(&self, style: Style, defaults: StorageQuota) -> StoreResult<Style>;
    /// `create_style_within` with no operator default: only the account's own quota applies.
    async fn create_style(&self, style: Style) -> StoreResult<Style> {
        self.create_style_within(style, StorageQuota::UNLIMITED).await
    }
    /// A style the account may see: its own or a public one.
    async fn style(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Style>>;
    /// Newest first (ties broken by id, descending).
    async fn list_styles(&self, account_id: Uuid, query: StyleQuery) -> StoreResult<Vec<Style>>;
    /// Changes the account's own style; `None` when it has no such style.
    async fn update_style(&self, account_id: Uuid, id: Uuid, patch: StylePatch) -> StoreResult<Option<Style>>;
    /// Deletes the account's own style unless unfinished jobs use it.
    async fn delete_style(&self, account_id: Uuid, id: Uuid) -> StoreResult<Result<Style, StyleDeleteRefusal>>;
    /// The styles with these ids, whoever owns them (a worker fetching LoRA files).
    async fn styles_by_id(&self, ids: Vec<Uuid>) -> StoreResult<Vec<Style>>;
}

/// Accounts: their credits, limits, spending and webhook secret.
#[async_trait]
pub trait Accounts: Send + Sync + 'static {
    async fn create_account(&self, new: NewAccount) -> StoreResult<Account>;
    async fn account(&self, id: Uuid) -> StoreResult<Account>;
    async fn count_accounts(&self) -> StoreResult<u64>;
    /// Creates the account only while the store has none (the first start's demo account), in
    /// one step across processes: of two replicas starting at once on one database, one creates
    /// it and the other gets `None`.
    async fn create_first_account(&self, new: NewAccount) -> StoreResult<Option<Account>>;
    /// Credits (or with a negative amount, takes back) `amount`; `Refused` when the balance would
    /// go past its maximum or below what unfinished jobs hold.
    async fn add_credits(&self, id: Uuid, amount: crate::domain::money::MicroUsd, note: String)
        -> StoreResult<Account>;
    /// Changes the limits given; `Refused` for a `max_concurrent` of 0 (an account always has room
    /// for one job).
    async fn set_limits(&self, id: Uuid, max_concurrent: Option<u32>, max_backlog: Option<u32>)
        -> StoreResult<Account>;
    /// Changes the account's own storage quota, per kind given.
    async fn set_storage_quota(
        &self,
        id: Uuid,
        bytes: Option<QuotaSetting>,
        files: Option<QuotaSetting>,
    ) -> StoreResult<Account>;
    /// Gives the account its own request rate limit per API key and minute (0: none), or with
    /// `None` has it follow the operator's default again (`--rate-limit-per-minute`).
    async fn set_rate_limit(&self, id: Uuid, per_minute: Option<u32>) -> StoreResult<Account>;
    async fn ledger(&self, account_id: Uuid, limit: u32) -> StoreResult<Vec<LedgerEntry>>;
    async fn usage(&self, account_id: Uuid) -> StoreResult<Usage>;
    /// Gives the account a new secret for signing its webhooks.
    async fn rotate_webhook_secret(&self, account_id: Uuid) -> StoreResult<Account>;
}

/// API keys: only a hash of each secret is stored.
#[async_trait]
pub trait Keys: Send + Sync + 'static {
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
}

/// Jobs, as their owner sees them.
#[async_trait]
pub trait Jobs: Send + Sync + 'static {
    async fn submit(&self, new: NewJob) -> StoreResult<Result<Job, SubmitRefusal>>;
    async fn job(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Job>>;
    /// `job`, shared: a store that caches jobs hands out its cached snapshot, the same `Arc` for
    /// as long as the job is unchanged (the poll path renders a snapshot once, api/rendered_jobs.rs).
    async fn shared_job(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Arc<Job>>> {
        Ok(self.job(account_id, id).await?.map(Arc::new))
    }
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
    /// The status of any account's job (for telling a worker why its lease went).
    async fn job_status(&self, id: Uuid) -> StoreResult<Option<crate::domain::job::JobStatus>>;
    /// Jobs of all accounts per status (for `/metrics`).
    async fn job_counts_by_status(&self) -> StoreResult<Vec<(crate::domain::job::JobStatus, u64)>>;
}

/// Work: what workers lease and report, and the sweep that takes back what they abandoned.
#[async_trait]
pub trait Leases: Send + Sync + 'static {
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
    /// Requeues jobs whose lease expired (up to `max_attempts`, then fails them `worker_lost`)
    /// and fails jobs running longer than `max_run_time` with `timeout`.
    async fn sweep(&self, max_attempts: u32, max_run_time: Duration) -> StoreResult<SweepReport>;
}

/// The webhook outbox: its rows are written by the terminal transitions of `Jobs` and `Leases`.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Takes up to `limit` due deliveries, hiding them from other dispatchers for `claim_for`
    /// (a dispatcher that dies mid-delivery leaves them to be retried after that).
    async fn claim_due_webhooks(&self, limit: u32, claim_for: Duration) -> StoreResult<Vec<WebhookDelivery>>;
    async fn record_webhook(&self, id: String, outcome: WebhookOutcome) -> StoreResult<()>;
    /// Wakes when a delivery was added.
    fn webhook_signal(&self) -> Arc<tokio::sync::Notify>;
}

/// Remote workers: their tokens (hashed like API keys) and the registry of live ones.
#[async_trait]
pub trait Workers: Send + Sync + 'static {
    async fn create_worker_token(&self, id: Uuid, secret_hash: String, label: Option<String>) -> StoreResult<()>;
    /// Returns false when no such token exists.
    async fn revoke_worker_token(&self, id: Uuid) -> StoreResult<bool>;
    async fn worker_token(&self, id: Uuid) -> StoreResult<Option<WorkerTokenRecord>>;
    /// Records that a worker is alive, with what it announced.
    async fn record_worker(&self, info: WorkerInfo) -> StoreResult<()>;
    async fn live_workers(&self, seen_within: Duration) -> StoreResult<Vec<WorkerRecord>>;
    /// Marks a registered worker as alive now (its heartbeats).
    async fn touch_worker(&self, name: String) -> StoreResult<()>;
}

/// The operator's capability (the admin API and CLI): admin tokens (hashed like API keys), and
/// what spans accounts or no account may do to itself. Kept out of `Accounts` and `Jobs` so that
/// no public handler reaches another account's job by accident.
#[async_trait]
pub trait Admin: Send + Sync + 'static {
    async fn create_admin_token(&self, id: Uuid, secret_hash: String, label: Option<String>) -> StoreResult<()>;
    /// Returns false when no such token exists (revoking twice is fine).
    async fn revoke_admin_token(&self, id: Uuid) -> StoreResult<bool>;
    async fn admin_token(&self, id: Uuid) -> StoreResult<Option<AdminTokenRecord>>;
    /// Accounts newest first (ties broken by id, descending), created strictly before `before`.
    async fn list_accounts(&self, before: Option<time::OffsetDateTime>, limit: u32) -> StoreResult<Vec<Account>>;
    /// Suspends (or lifts the suspension of) the account; `NotFound` when there is none.
    async fn set_suspended(&self, id: Uuid, suspended: bool) -> StoreResult<Account>;
    /// The account's jobs submitted and money moved in `[from, to)`; `NotFound` when there is no
    /// such account.
    async fn usage_between(
        &self,
        account_id: Uuid,
        from: time::OffsetDateTime,
        to: time::OffsetDateTime,
    ) -> StoreResult<PeriodUsage>;
    /// Any account's job.
    async fn any_job(&self, id: Uuid) -> StoreResult<Option<Job>>;
}

/// The whole store, every capability at once: what `open` returns and the app holds. Components
/// that need one capability take that trait instead (an `Arc<dyn Store>` coerces to it).
#[async_trait]
pub trait Store: Accounts + Keys + Jobs + Leases + Outbox + Workers + Library + Admin + Retention {
    /// Whether the database answers (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// Records that API replica `replica` is alive and counts the replicas seen within
    /// `seen_within`, this one included (each enforces its share of a rate limit). One process
    /// has the SQLite file to itself: 1.
    async fn count_api_replicas(&self, replica: Uuid, seen_within: Duration) -> StoreResult<u32> {
        let _ = (replica, seen_within);
        Ok(1)
    }
}
