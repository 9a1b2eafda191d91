//! The store's capability traits for PostgreSQL: each method runs one of the sibling modules'
//! functions on a pooled connection, or in a transaction that is run again when it loses a race.
use super::*;
use crate::domain::job::{FailureCode, JobStatus};
use crate::domain::money::MicroUsd;

#[async_trait]
impl Accounts for PgStore {
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
    async fn create_first_account(&self, new: NewAccount) -> StoreResult<Option<Account>> {
        let secret = crate::domain::webhook::new_secret();
        let id = Uuid::new_v4();
        self.tx(|c| Box::pin(accounts::create_first(c, id, new.clone(), secret.clone()))).await
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
        let account = self.tx(|c| Box::pin(accounts::set_limits(c, id, max_concurrent, max_backlog))).await?;
        // Promoted backlog shows at once on this replica, not a notification's trip later.
        self.jobs.invalidate(&[job_notice::Change::Queues]);
        Ok(account)
    }
    async fn set_storage_quota(
        &self,
        id: Uuid,
        bytes: Option<QuotaSetting>,
        files: Option<QuotaSetting>,
    ) -> StoreResult<Account> {
        self.tx(|c| Box::pin(accounts::set_storage_quota(c, id, bytes, files))).await
    }
    async fn set_rate_limit(&self, id: Uuid, per_minute: Option<u32>) -> StoreResult<Account> {
        self.tx(|c| Box::pin(accounts::set_rate_limit(c, id, per_minute))).await
    }
    async fn ledger(&self, account_id: Uuid, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        self.read(|c| Box::pin(accounts::ledger(c, account_id, limit))).await
    }
    async fn usage(&self, account_id: Uuid) -> StoreResult<Usage> {
        self.read(|c| Box::pin(accounts::usage(c, account_id))).await
    }
    async fn rotate_webhook_secret(&self, account_id: Uuid) -> StoreResult<Account> {
        let secret = crate::domain::webhook::new_secret();
        self.tx(|c| Box::pin(accounts::rotate_webhook_secret(c, account_id, secret.clone()))).await
    }
}

#[async_trait]
impl Keys for PgStore {
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
}

#[async_trait]
impl Jobs for PgStore {
    async fn submit(&self, new: NewJob) -> StoreResult<Result<Job, SubmitRefusal>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submits
            .send(submit_batch::Pending { new, reply })
            .map_err(|_| StoreError::Internal("the submit batchers have stopped".into()))?;
        answer.await.map_err(|_| StoreError::Internal("a submit batcher stopped".into()))?
    }
    async fn job(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Job>> {
        Ok(self.shared_job(account_id, id).await?.map(Arc::unwrap_or_clone))
    }
    async fn shared_job(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Arc<Job>>> {
        let job = match self.cached_job_placed(id).await? {
            Some(hit) => Some(hit),
            None => {
                let ticket = self.jobs.ticket();
                let loaded = self.read(|c| Box::pin(rows::load_job_in_line(c, id))).await?;
                loaded.map(|(job, queued_at)| {
                    let job = Arc::new(job);
                    self.jobs.put(job.clone(), queued_at, ticket);
                    job
                })
            }
        };
        Ok(job.filter(|j| j.account_id == account_id))
    }
    async fn watched_jobs(&self, keys: Vec<(Uuid, Uuid)>) -> StoreResult<Vec<Job>> {
        // Only what changed since the last tick is read: idle streams cost the store nothing.
        let mut jobs = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (account, id) in keys {
            match self.cached_job(id) {
                Some(job) if job.account_id == account => jobs.push(Job::clone(&job)),
                Some(_) => {}
                None => missing.push((account, id)),
            }
        }
        if missing.is_empty() {
            return Ok(jobs);
        }
        let ticket = self.jobs.ticket();
        let loaded = self.read(|c| Box::pin(async move { rows::load_watched(c, &missing).await })).await?;
        for job in loaded {
            // (without its queued time: a queue move makes the next tick read it again)
            self.jobs.put(Arc::new(job.clone()), None, ticket);
            jobs.push(job);
        }
        Ok(jobs)
    }
    async fn list_jobs(&self, account_id: Uuid, query: JobQuery) -> StoreResult<Vec<Job>> {
        // Queued jobs' places are counted against the job cache's copy of the queue's head, as
        // polls are: counting them in the page's statement read the head (up to 1,000 index
        // entries) for every page listed.
        let reads_before = self.heads_read.load(std::sync::atomic::Ordering::SeqCst);
        let q = query.clone();
        let rows = self.read(|c| Box::pin(jobs::list(c, account_id, q, false))).await?;
        let times: Vec<Option<i64>> =
            rows.iter().filter(|(job, _)| job.status == JobStatus::Queued).map(|(_, at)| *at).collect();
        if times.is_empty() {
            return Ok(rows.into_iter().map(|(job, _)| job).collect());
        }
        // (a queued row without its time is left to the store to count)
        let places = match times.into_iter().collect::<Option<Vec<i64>>>() {
            Some(times) => match self.jobs.places(&times) {
                Some(places) => Some(places),
                None => {
                    self.read_queue_head(reads_before).await?;
                    self.jobs.places(&times)
                }
            },
            None => None,
        };
        let Some(places) = places else {
            let rows = self.read(|c| Box::pin(jobs::list(c, account_id, query, true))).await?;
            return Ok(rows.into_iter().map(|(job, _)| job).collect());
        };
        let mut places = places.into_iter();
        Ok(rows
            .into_iter()
            .map(|(mut job, _)| {
                if job.status == JobStatus::Queued {
                    job.queue_position = places.next();
                }
                job
            })
            .collect())
    }
    async fn cancel(&self, account_id: Uuid, id: Uuid) -> StoreResult<Result<Job, CancelRefusal>> {
        let outcome = self.tx(|c| Box::pin(jobs::cancel(c, account_id, id))).await;
        // Its own notification may still be on its way: the canceller's next poll must see it.
        self.forget_job(id, true);
        outcome
    }
    async fn usable_styles(&self, account_id: Uuid, ids: Vec<String>) -> StoreResult<Vec<String>> {
        self.read(|c| Box::pin(jobs::usable_styles(c, account_id, ids))).await
    }
    async fn job_status(&self, id: Uuid) -> StoreResult<Option<JobStatus>> {
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
        Ok(status.and_then(|s| JobStatus::parse(&s)))
    }
    async fn job_counts_by_status(&self) -> StoreResult<Vec<(JobStatus, u64)>> {
        self.read(|c| Box::pin(jobs::counts_by_status(c))).await
    }
}

#[async_trait]
impl Leases for PgStore {
    async fn lease(&self, worker: WorkerLease, ttl: Duration) -> StoreResult<Option<Lease>> {
        self.tx(|c| Box::pin(work::lease(c, worker.clone(), ttl))).await
    }
    async fn heartbeat(&self, lease: LeaseRef, update: Progress, ttl: Duration) -> StoreResult<()> {
        let outcome = self.tx(|c| Box::pin(work::heartbeat(c, lease, update.clone(), ttl))).await;
        self.forget_job(lease.job_id, false);
        outcome
    }
    async fn complete(&self, lease: LeaseRef, result: JobResult) -> StoreResult<Job> {
        let outcome = self.tx(|c| Box::pin(work::complete(c, lease, result.clone()))).await;
        self.forget_job(lease.job_id, true);
        outcome
    }
    async fn publish_preview(&self, lease: LeaseRef, preview: JobResult) -> StoreResult<()> {
        let outcome = self.tx(|c| Box::pin(work::publish_preview(c, lease, preview.clone()))).await;
        self.forget_job(lease.job_id, true);
        outcome
    }
    async fn fail(&self, lease: LeaseRef, code: FailureCode, message: String) -> StoreResult<Job> {
        let outcome = self.tx(|c| Box::pin(work::fail(c, lease, code, message.clone()))).await;
        self.forget_job(lease.job_id, true);
        outcome
    }
    async fn lease_is_held(&self, lease: LeaseRef) -> StoreResult<bool> {
        self.read(|c| Box::pin(work::lease_is_held(c, lease))).await
    }
    async fn hand_back(&self, lease: LeaseRef) -> StoreResult<()> {
        let outcome = self.tx(|c| Box::pin(work::hand_back(c, lease))).await;
        self.forget_job(lease.job_id, true);
        outcome
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
}

#[async_trait]
impl Outbox for PgStore {
    async fn claim_due_webhooks(&self, limit: u32, claim_for: Duration) -> StoreResult<Vec<WebhookDelivery>> {
        self.tx(|c| Box::pin(webhooks::claim_due(c, limit, claim_for))).await
    }
    async fn record_webhook(&self, id: String, outcome: WebhookOutcome) -> StoreResult<()> {
        self.tx(|c| Box::pin(webhooks::record(c, id.clone(), outcome.clone()))).await
    }
    fn webhook_signal(&self) -> Arc<Notify> {
        self.webhook_signal.clone()
    }
}

#[async_trait]
impl Workers for PgStore {
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
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| Box::pin(async move { c.ping().await.map_err(pg_err) })).await
    }
    async fn count_api_replicas(&self, replica: Uuid, seen_within: Duration) -> StoreResult<u32> {
        self.tx(|c| Box::pin(replicas::count(c, replica, seen_within))).await
    }
}
