//! The fleet store: PostgreSQL shared by every API replica and (through them) every worker.
//! Each operation is one transaction; rows are locked account first, then jobs, so concurrent
//! transactions on the same account queue up instead of deadlocking (a submit batch may instead
//! be written without locks, checking its accounts' row versions: submit_batch.rs). Work is leased with
//! `FOR UPDATE SKIP LOCKED`, and `LISTEN/NOTIFY` wakes idle workers and webhook dispatchers on
//! every replica the moment a transaction commits new work.
mod accounts;
mod admin;
mod capabilities;
mod job_cache;
mod job_notice;
mod jobs;
mod library;
mod queue_head;
mod replicas;
mod retention;
mod rows;
mod submit_batch;
mod submit_carry;
mod submit_plan;
mod submit_rows;
mod transitions;
mod webhooks;
mod work;
mod workers;

use super::*;
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
const MIGRATIONS: [&str; 12] = [
    include_str!("schema.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_admin.sql"),
    include_str!("schema_retention.sql"),
    include_str!("schema_rate_limit.sql"),
    include_str!("schema_job_notify.sql"),
    include_str!("schema_deep_queue.sql"),
    include_str!("schema_job_notify_inserts.sql"),
    include_str!("schema_job_notify_moves.sql"),
    include_str!("schema_submit_guard.sql"),
    include_str!("schema_account_refs.sql"),
];
/// Any constant works; it only has to be the same for every replica.
const MIGRATION_LOCK: i64 = 0x6c74_785f_7365_7276; // "ltx_serv"
pub(super) const QUEUE_CHANNEL: &str = "ltx_queue";
pub(super) const WEBHOOK_CHANNEL: &str = "ltx_webhooks";
/// Sent by the triggers of schema_job_notify.sql: the ids of jobs whose JSON changed.
const JOBS_CHANNEL: &str = "ltx_jobs";
/// Transactions that lose a serialisation race or a deadlock are run again this many times.
const RETRIES: u32 = 8;

pub struct PgStore {
    pool: PgPool,
    queue_signal: Arc<Notify>,
    webhook_signal: Arc<Notify>,
    /// Jobs read recently, dropped as the LISTEN connection hears they changed.
    jobs: Arc<job_cache::JobCache>,
    /// Held while the queue's head is read for the cache: polls that need it at once wait for
    /// one read instead of each making its own.
    head_read: tokio::sync::Mutex<()>,
    /// Reads of the queue's head so far (a waiter seeing it moved does not read it again).
    heads_read: std::sync::atomic::AtomicU64,
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
            // serialization_failure, deadlock_detected, lock_not_available (a lock timeout): the
            // transaction is simply run again
            Some("40001") | Some("40P01") | Some("55P03") => StoreError::Conflict(db.message().to_owned()),
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
            // Each replica holds at most this many (plus its LISTEN connection and its submit
            // batcher's): PostgreSQL's default max_connections of 100 leaves room for five
            // replicas and the admin CLI.
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(pg_err)?;
        migrate(&pool).await?;
        let queue_signal = Arc::new(Notify::new());
        let webhook_signal = Arc::new(Notify::new());
        let jobs = Arc::new(job_cache::JobCache::default());
        let signals = Signals { queue: queue_signal.clone(), webhooks: webhook_signal.clone(), jobs: jobs.clone() };
        let tasks = vec![tokio::spawn(listen(pool.clone(), signals))];
        let submits = submit_batch::spawn(pool.clone())?;
        Ok(PgStore {
            pool,
            queue_signal,
            webhook_signal,
            jobs,
            head_read: Default::default(),
            heads_read: Default::default(),
            submits,
            tasks,
        })
    }

    async fn tx<T: Send>(
        &self,
        op: impl for<'c> Fn(&'c mut PgConnection) -> Tx<'c, T> + Send + Sync,
    ) -> StoreResult<T> {
        transaction(&self.pool, op).await
    }

    /// A job as this replica last read it, while nothing says it changed since.
    fn cached_job(&self, id: Uuid) -> Option<Arc<Job>> {
        let job = self.jobs.get(id);
        let outcome = if job.is_some() { "hit" } else { "miss" };
        metrics::counter!("ltx_job_cache_lookups_total", "outcome" => outcome).increment(1);
        job
    }

    /// `cached_job`, and for a queued job whose place in line moved, its place counted again
    /// against the queue's head, read once per queue move by one caller while the others wait
    /// for it (outcome `placed` for that one). A waiter that finds the queue moved again during
    /// the read it waited for reads the job itself (`miss`): were it to read the head in turn,
    /// a queue moving faster than its head is read would have polls read it one at a time.
    async fn cached_job_placed(&self, id: Uuid) -> StoreResult<Option<Arc<Job>>> {
        use std::sync::atomic::Ordering::SeqCst;
        let mut outcome = "hit";
        let mut lookup = self.jobs.lookup(id);
        if let job_cache::Lookup::NeedsHead = lookup {
            if self.read_queue_head(self.heads_read.load(SeqCst)).await? {
                outcome = "placed";
            }
            lookup = self.jobs.lookup(id);
        }
        let job = match lookup {
            job_cache::Lookup::Hit(job) => Some(job),
            job_cache::Lookup::NeedsHead | job_cache::Lookup::Miss => {
                outcome = "miss";
                None
            }
        };
        metrics::counter!("ltx_job_cache_lookups_total", "outcome" => outcome).increment(1);
        Ok(job)
    }

    /// Reads the queue's head into the job cache, one caller at a time, unless a read finished
    /// since the caller found the count of reads at `reads_before` (then it waited for that
    /// one). True when this caller read it.
    async fn read_queue_head(&self, reads_before: u64) -> StoreResult<bool> {
        use std::sync::atomic::Ordering::SeqCst;
        let _one_read = self.head_read.lock().await;
        if self.heads_read.load(SeqCst) != reads_before {
            return Ok(false);
        }
        let ticket = self.jobs.ticket();
        let head = self.read(|c| Box::pin(rows::queue_head(c))).await;
        self.heads_read.fetch_add(1, SeqCst);
        self.jobs.put_head(head?, ticket);
        Ok(true)
    }

    /// Drops a job this replica just changed, before answering the caller: the trigger's
    /// notification comes back a moment later, and the caller's next read must not precede it.
    fn forget_job(&self, id: Uuid, moved_in_line: bool) {
        self.jobs.invalidate(&[job_notice::Change::Job { id, queue: moved_in_line }]);
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
            Err(e) => {
                // Roll back before answering, not when the pool gets round to a dropped
                // transaction: a refused operation (a lost lease) may hold row locks, and a
                // lease's SKIP LOCKED would pass over the job meanwhile.
                let _ = tx.rollback().await;
                Err(e)
            }
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

/// How long a migration waits for each table lock before it lets go, and how long it then leaves
/// the tables alone. A statement queued for a table's exclusive lock (an `ALTER TABLE jobs`
/// behind a running replica's open transaction) holds up every later query on that table until
/// it gets it: during a rolling deploy, the fleet's polls and submits would stall for as long as
/// that transaction runs. So a try waits briefly for each lock and the pause between tries is
/// long. (The timeout also ends a deadlock with such a transaction.)
const MIGRATION_LOCK_TIMEOUT_MS: i32 = 500;
/// Every `MIGRATION_PATIENT_TRY`th try waits 200 ms past `deadlock_timeout` instead: PostgreSQL
/// cancels an autovacuum that blocks a lock only once the waiter has waited that long, and a
/// vacuum of a large `jobs` table would otherwise outlast every try.
const MIGRATION_PATIENT_TRY: u32 = 4;
const MIGRATION_PAUSE: Duration = Duration::from_secs(3);
/// Tries before a replica gives up starting (about six minutes of waiting in all).
const MIGRATION_ATTEMPTS: u32 = 100;

/// Applies the migrations this database lacks, trying again while their locks are not to be had.
async fn migrate(pool: &PgPool) -> StoreResult<()> {
    let mut attempt = 1;
    loop {
        match migrate_once(pool, attempt % MIGRATION_PATIENT_TRY == 0).await {
            Err(StoreError::Conflict(why)) if attempt < MIGRATION_ATTEMPTS => {
                tracing::warn!(attempt, why, "a schema migration could not take its locks in time; trying again");
                tokio::time::sleep(MIGRATION_PAUSE).await;
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// One try of `migrate`; a `patient` one waits for locks past `deadlock_timeout`.
async fn migrate_once(pool: &PgPool, patient: bool) -> StoreResult<()> {
    let mut conn = pool.acquire().await.map_err(pg_err)?;
    let mut tx = conn.begin().await.map_err(pg_err)?;
    match apply_migrations(&mut tx, patient).await {
        Ok(()) => tx.commit().await.map_err(pg_err),
        Err(e) => {
            // Let go of the locks now, not when the pool gets round to the dropped transaction.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

async fn apply_migrations(tx: &mut PgConnection, patient: bool) -> StoreResult<()> {
    // Replicas starting together wait here for the one migrating, however long it takes (an
    // operator's own lock_timeout included); the timeout is for the tables' locks only.
    sqlx::query("SET LOCAL lock_timeout = 0").execute(&mut *tx).await.map_err(pg_err)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await.map_err(pg_err)?;
    let past_deadlock_check: i32 = sqlx::query_scalar(
        "SELECT (extract(epoch FROM current_setting('deadlock_timeout')::interval) * 1000 + 200)::int",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(pg_err)?;
    let timeout_ms = if patient { past_deadlock_check } else { MIGRATION_LOCK_TIMEOUT_MS };
    sqlx::query(&format!("SET LOCAL lock_timeout = {timeout_ms}")).execute(&mut *tx).await.map_err(pg_err)?;
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
    Ok(())
}

/// Where the LISTEN task delivers what it hears.
struct Signals {
    queue: Arc<Notify>,
    webhooks: Arc<Notify>,
    jobs: Arc<job_cache::JobCache>,
}

impl Signals {
    /// Notifications may have been missed: wake every waiter (they poll as well) and stop
    /// trusting the job cache.
    fn missed(&self) {
        self.jobs.deaf();
        self.queue.notify_waiters();
        self.webhooks.notify_waiters();
    }
}

/// Forwards notifications to the local signals and the job cache. A lost connection is
/// replaced by a new one (not sqlx's silent reconnect) so that the cache knows exactly when
/// it hears every change again.
async fn listen(pool: PgPool, signals: Signals) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for new work; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen_all([QUEUE_CHANNEL, WEBHOOK_CHANNEL, JOBS_CHANNEL]).await {
            tracing::warn!(error = %e, "cannot LISTEN for new work; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Listening from here on: a change committed after this is heard.
        signals.jobs.listening();
        signals.queue.notify_waiters();
        signals.webhooks.notify_waiters();
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => match n.channel() {
                    JOBS_CHANNEL => signals.jobs.invalidate(&job_notice::parse_payload(n.payload())),
                    QUEUE_CHANNEL => signals.queue.notify_waiters(),
                    _ => signals.webhooks.notify_waiters(),
                },
                Ok(None) => {
                    tracing::warn!("lost the LISTEN connection; reconnecting");
                    signals.missed();
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                    signals.missed();
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
    async fn create_asset_within(&self, asset: Asset, defaults: StorageQuota) -> StoreResult<Asset> {
        self.tx(|c| Box::pin(library::create_asset(c, asset.clone(), defaults))).await
    }
    async fn asset(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Asset>> {
        self.read(|c| Box::pin(library::asset(c, account_id, id))).await
    }
    async fn asset_by_file(&self, file_key: String) -> StoreResult<Option<Asset>> {
        self.read(|c| Box::pin(library::asset_by_file(c, file_key))).await
    }
    async fn list_assets(&self, account: Uuid, before: Option<LibraryCursor>, limit: u32) -> StoreResult<Vec<Asset>> {
        self.read(|c| Box::pin(library::list_assets(c, account, before, limit))).await
    }
    async fn delete_asset(&self, account_id: Uuid, id: Uuid) -> StoreResult<Option<Asset>> {
        self.tx(|c| Box::pin(library::delete_asset(c, account_id, id))).await
    }
    async fn create_style_within(&self, style: Style, defaults: StorageQuota) -> StoreResult<Style> {
        self.tx(|c| Box::pin(library::create_style(c, style.clone(), defaults))).await
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
