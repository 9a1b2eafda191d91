//! The store's capability traits for SQLite: each method runs one of the sibling modules'
//! functions on a reader or on the writer actor.
use super::*;
use crate::domain::job::{FailureCode, JobStatus};
use crate::domain::money::MicroUsd;

#[async_trait]
impl Accounts for SqliteStore {
    async fn create_account(&self, new: NewAccount) -> StoreResult<Account> {
        self.actors.write(move |ctx| accounts::create(ctx, new)).await
    }
    async fn account(&self, id: Uuid) -> StoreResult<Account> {
        self.actors.read(move |c| accounts::get(c, id)).await
    }
    async fn count_accounts(&self) -> StoreResult<u64> {
        self.actors.read(accounts::count).await
    }
    async fn create_first_account(&self, new: NewAccount) -> StoreResult<Option<Account>> {
        // One write transaction (SQLite's one writer, across processes too): counted and created
        // together.
        self.actors.write(move |ctx| accounts::create_first(ctx, new)).await
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
    async fn set_storage_quota(
        &self,
        id: Uuid,
        bytes: Option<QuotaSetting>,
        files: Option<QuotaSetting>,
    ) -> StoreResult<Account> {
        self.actors.write(move |ctx| accounts::set_storage_quota(ctx, id, bytes, files)).await
    }
    async fn set_rate_limit(&self, id: Uuid, per_minute: Option<u32>) -> StoreResult<Account> {
        self.actors.write(move |ctx| accounts::set_rate_limit(ctx, id, per_minute)).await
    }
    async fn ledger(&self, account_id: Uuid, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        self.actors.read(move |c| accounts::ledger(c, account_id, limit)).await
    }
    async fn usage(&self, account_id: Uuid) -> StoreResult<Usage> {
        self.actors.read(move |c| accounts::usage(c, account_id)).await
    }
    async fn rotate_webhook_secret(&self, account_id: Uuid) -> StoreResult<Account> {
        self.actors.write(move |ctx| accounts::rotate_webhook_secret(ctx, account_id)).await
    }
}

#[async_trait]
impl Keys for SqliteStore {
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
}

#[async_trait]
impl Jobs for SqliteStore {
    async fn submit(&self, new: NewJob) -> StoreResult<Result<Job, SubmitRefusal>> {
        let signal = self.queue_signal.clone();
        self.actors.write_checks_first(move |ctx| jobs::submit(ctx, new, signal)).await
    }
    async fn job(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Job>> {
        Ok(self.shared_job(account_id, id).await?.map(Arc::unwrap_or_clone))
    }
    async fn shared_job(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Arc<Job>>> {
        let job = match self.jobs.get(id) {
            Some(hit) => Some(hit),
            None => {
                let generation = self.jobs.generation();
                let loaded = self.actors.read(move |c| rows::load_job(c, id)).await?.map(Arc::new);
                if let Some(job) = &loaded {
                    self.jobs.put(job.clone(), generation);
                }
                loaded
            }
        };
        Ok(job.filter(|j| j.account_id == account_id))
    }
    async fn list_jobs(&self, account_id: Uuid, query: JobQuery) -> StoreResult<Vec<Job>> {
        let (cache, generation) = (self.jobs.clone(), self.jobs.generation());
        self.actors.read(move |c| jobs::list(c, account_id, query, &cache, generation)).await
    }
    async fn cancel(&self, account_id: Uuid, id: Uuid) -> StoreResult<Result<Job, CancelRefusal>> {
        let signal = self.queue_signal.clone();
        let hooks = self.webhook_signal.clone();
        self.actors.write(move |ctx| jobs::cancel(ctx, account_id, id, signal, hooks)).await
    }
    async fn usable_styles(&self, account_id: Uuid, ids: Vec<String>) -> StoreResult<Vec<String>> {
        self.actors.read(move |c| jobs::usable_styles(c, account_id, ids)).await
    }
    async fn job_status(&self, id: Uuid) -> StoreResult<Option<JobStatus>> {
        Ok(self.actors.read(move |c| rows::load_job(c, id)).await?.map(|j| j.status))
    }
    async fn job_counts_by_status(&self) -> StoreResult<Vec<(JobStatus, u64)>> {
        self.actors.read(jobs::counts_by_status).await
    }
}

#[async_trait]
impl Leases for SqliteStore {
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
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn claim_due_webhooks(&self, limit: u32, claim_for: Duration) -> StoreResult<Vec<WebhookDelivery>> {
        self.actors.write(move |ctx| webhooks::claim_due(ctx, limit, claim_for)).await
    }
    async fn record_webhook(&self, id: String, outcome: WebhookOutcome) -> StoreResult<()> {
        self.actors.write(move |ctx| webhooks::record(ctx, id, outcome)).await
    }
    fn webhook_signal(&self) -> Arc<Notify> {
        self.webhook_signal.clone()
    }
}

#[async_trait]
impl Workers for SqliteStore {
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
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.actors.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(sql_err)).await
    }
}
