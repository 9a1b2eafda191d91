//! The statements of a submit batch (submit_batch.rs), each one round trip whatever the batch's
//! size: read its accounts (without locks, or in a new transaction under locks), their newest
//! jobs' times and the database's clock; read their idempotency keys; then write every accepted
//! job, hold, counter change and key claim and the workers' wake-up at once.
use super::accounts::{account_from_row, ACCOUNT_COLUMNS};
use super::submit_plan::{Accepted, AccountChange, Claim, KeySeen, KeysSeen};
use super::{pg_err, QUEUE_CHANNEL};
use crate::domain::job::JobStatus;
use crate::store::{Account, Idempotency, LedgerKind, NewJob, StoreError, StoreResult};
use sqlx::PgConnection;
use std::collections::HashMap;
use uuid::Uuid;

/// Opens the batch's transaction, locks its accounts in id order (so concurrent batches queue
/// up instead of deadlocking) and reads them, each one's newest job's `created_at` (where it has
/// one) and the database's clock: three statements sent as one simple query, one round trip.
/// (Sent one by one they were three: under load a round trip is most of a batch's time.) The
/// reads are a statement after the locks so that their snapshot sees every job the accounts'
/// previous lock holders committed (the locking statement's own snapshot predates its waits).
/// The ids are written into the text as UUID literals: a simple query, the only kind that
/// carries several statements, takes no parameters. `NotFound` if an account does not exist.
pub async fn begin_and_lock(c: &mut PgConnection, ids: &[Uuid]) -> StoreResult<AccountReads> {
    use sqlx::Row;
    let array = format!("ARRAY[{}]::uuid[]", ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(","));
    let count = ids.len();
    let sql = format!(
        "BEGIN; \
         SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY({array}) ORDER BY id FOR UPDATE; \
         SELECT a.id, (SELECT MAX(created_at) FROM jobs WHERE account_id = a.id), ltx_now_us() \
         FROM unnest({array}) a(id)"
    );
    // The accounts' rows, then the reads' (three columns each).
    let mut locked = AccountReads::default();
    for row in sqlx::Executor::fetch_all(&mut *c, sql.as_str()).await.map_err(pg_err)? {
        if row.len() != 3 {
            let account = account_from_row(&row)?;
            locked.accounts.insert(account.id, account);
            continue;
        }
        let (id, last, now): (Uuid, Option<i64>, i64) = sqlx::FromRow::from_row(&row).map_err(pg_err)?;
        locked.now_us = now;
        if let Some(last) = last {
            locked.last_job.insert(id, last);
        }
    }
    if locked.accounts.len() != count {
        return Err(StoreError::NotFound);
    }
    Ok(locked)
}

/// What `begin_and_lock` or `read_unlocked` read.
#[derive(Default)]
pub struct AccountReads {
    pub accounts: HashMap<Uuid, Account>,
    /// Each account's newest job's `created_at`, where it has one.
    pub last_job: HashMap<Uuid, i64>,
    /// The database's clock.
    pub now_us: i64,
}

/// The batch's accounts, each one's newest job's `created_at` and the database's clock, read in
/// one statement without locks, with the version of each account's row (`xmin`) that `write`
/// then checks. (Every update of a row makes a new version with a new `xmin`; the key-share
/// locks that other inserts' account checks take do not, schema_account_refs.sql.) `NotFound` if an account does not exist.
pub async fn read_unlocked(c: &mut PgConnection, ids: &[Uuid]) -> StoreResult<(AccountReads, Versions)> {
    use sqlx::Row;
    let rows = sqlx::query(&format!(
        "SELECT {ACCOUNT_COLUMNS}, xmin::text AS version, \
           (SELECT MAX(created_at) FROM jobs WHERE account_id = accounts.id) AS last_job, ltx_now_us() AS now \
         FROM accounts WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(&mut *c)
    .await
    .map_err(pg_err)?;
    let (mut read, mut versions) = (AccountReads::default(), Versions::new());
    for row in rows {
        let account = account_from_row(&row)?;
        read.now_us = row.try_get("now").map_err(pg_err)?;
        if let Some(last) = row.try_get::<Option<i64>, _>("last_job").map_err(pg_err)? {
            read.last_job.insert(account.id, last);
        }
        versions.insert(account.id, row.try_get("version").map_err(pg_err)?);
        read.accounts.insert(account.id, account);
    }
    if read.accounts.len() != ids.len() {
        return Err(StoreError::NotFound);
    }
    Ok((read, versions))
}

/// The version (`xmin`, as text) of each account's row as a batch read it without locks.
pub type Versions = HashMap<Uuid, String>;

/// The rows of the batch's (account, key) pairs. Read after the accounts (under their locks, a
/// statement after the locking one, so that its snapshot sees what their previous holders
/// committed; without locks, a key claimed since the accounts were read came with a change to
/// its account, which the write's version check then sees).
pub async fn keys_seen(c: &mut PgConnection, keyed: &[(Uuid, &Idempotency)]) -> StoreResult<KeysSeen> {
    if keyed.is_empty() {
        return Ok(KeysSeen::new());
    }
    let accounts: Vec<Uuid> = keyed.iter().map(|k| k.0).collect();
    let keys: Vec<&str> = keyed.iter().map(|k| k.1.key.as_str()).collect();
    let rows: Vec<(Uuid, String, String, Uuid, i64)> = sqlx::query_as(
        "SELECT account_id, key, fingerprint, job_id, ltx_now_us() - created_at FROM idempotency_keys \
         WHERE (account_id, key) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))",
    )
    .bind(&accounts)
    .bind(&keys)
    .fetch_all(&mut *c)
    .await
    .map_err(pg_err)?;
    Ok(rows
        .into_iter()
        .map(|(account, key, fingerprint, job_id, age_us)| ((account, key), KeySeen { fingerprint, job_id, age_us }))
        .collect())
}

/// Every accepted job's row and hold, each account's change, the keys' claims, one wake-up for
/// the workers and the jobs' announcement, in one statement (rows in the batch's order: the ledger's ids follow it).
/// With `versions` (a batch read without locks), each account is changed only if its row is
/// still the version read, and the statement fails as a `Conflict`, keeping nothing, if one is
/// not (schema_submit_guard.sql).
pub async fn write(
    c: &mut PgConnection,
    accepted: &[(&NewJob, Accepted)],
    changes: &HashMap<Uuid, AccountChange>,
    claims: &[Claim],
    versions: Option<&Versions>,
) -> StoreResult<Written> {
    let mut jobs = JobColumns::default();
    for (new, a) in accepted {
        jobs.push(new, a)?;
    }
    let mut accounts = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // In id order, as every batch locks its accounts: the update takes their row locks in the
    // order of its array, and two batches taking them in different orders could deadlock.
    let mut changes: Vec<_> = changes.iter().collect();
    changes.sort_by_key(|(id, _)| **id);
    for (id, change) in changes {
        accounts.0.push(*id);
        accounts.1.push(change.money.held);
        accounts.2.push(change.money.balance);
        accounts.3.push(change.slots.active);
        accounts.4.push(change.slots.backlogged);
        accounts.5.push(versions.and_then(|v| v.get(id)).map(String::as_str));
    }
    let wake = accepted.iter().any(|(_, a)| a.status == JobStatus::Queued);
    let row = sqlx::query(
        "WITH new AS (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::bool[], \
                        $7::text[], $8::text[], $9::bigint[], $10::int[], $11::int[], $12::bigint[], $13::int[], \
                        $14::text[]) WITH ORDINALITY AS n(id, account_id, kind, status, created_at, queued, request, \
                        style_key, seed, width, height, price, price_tier, webhook_url, ord)), \
         job AS (INSERT INTO jobs (id, account_id, kind, status, created_at, updated_at, queued_at, request, style_key, \
                   seed, width, height, price, price_tier, hold, webhook_url) \
                 SELECT id, account_id, kind, status, created_at, created_at, CASE WHEN queued THEN created_at END, \
                   request, style_key, seed, width, height, price, price_tier, price, webhook_url FROM new ORDER BY ord), \
         hold AS (INSERT INTO ledger (account_id, kind, amount, job_id, created_at) \
                  SELECT account_id, $15, price, id, ltx_now_us() FROM new ORDER BY ord), \
         account AS (UPDATE accounts a SET held = a.held + d.held, balance = a.balance + d.balance, \
                       active_jobs = a.active_jobs + d.active, backlogged_jobs = a.backlogged_jobs + d.backlogged \
                     FROM unnest($16::uuid[], $17::bigint[], $18::bigint[], $19::int[], $20::int[], $28::text[]) \
                       AS d(id, held, balance, active, backlogged, version) \
                     WHERE a.id = d.id AND (d.version IS NULL OR a.xmin::text = d.version) RETURNING a.xmin::text AS version), \
         claim AS (INSERT INTO idempotency_keys (account_id, key, fingerprint, job_id, created_at) \
                   SELECT *, ltx_now_us() FROM unnest($21::uuid[], $22::text[], $23::text[], $24::uuid[]) \
                   ON CONFLICT (account_id, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, \
                   job_id = EXCLUDED.job_id, created_at = EXCLUDED.created_at) \
         SELECT (SELECT pg_notify($25, '') WHERE $26), \
                (SELECT ltx_announce_inserted($27) WHERE $27 IS NOT NULL), \
                ltx_conflict_unless((SELECT COUNT(*) FROM account) = $29), \
                (SELECT MIN(version) FROM account) AS version, ltx_now_us() AS now",
    )
    .bind(&jobs.id)
    .bind(&jobs.account_id)
    .bind(&jobs.kind)
    .bind(&jobs.status)
    .bind(&jobs.created_at)
    .bind(&jobs.queued)
    .bind(&jobs.request)
    .bind(&jobs.style_key)
    .bind(&jobs.seed)
    .bind(&jobs.width)
    .bind(&jobs.height)
    .bind(&jobs.price)
    .bind(&jobs.price_tier)
    .bind(&jobs.webhook_url)
    .bind(LedgerKind::Hold.as_str())
    .bind(&accounts.0)
    .bind(&accounts.1)
    .bind(&accounts.2)
    .bind(&accounts.3)
    .bind(&accounts.4)
    .bind(claims.iter().map(|c| c.account_id).collect::<Vec<Uuid>>())
    .bind(claims.iter().map(|c| c.key.as_str()).collect::<Vec<&str>>())
    .bind(claims.iter().map(|c| c.fingerprint.as_str()).collect::<Vec<&str>>())
    .bind(claims.iter().map(|c| c.job_id).collect::<Vec<Uuid>>())
    .bind(QUEUE_CHANNEL)
    .bind(wake)
    .bind(announcement(accepted))
    .bind(&accounts.5)
    .bind(accounts.0.len() as i64)
    .fetch_one(&mut *c)
    .await
    .map_err(pg_err)?;
    // Committed by now: what it says of itself is read without failing the batch (a batch that
    // failed here would be run again one by one, and written twice).
    use sqlx::Row;
    Ok(Written { version: row.try_get("version").ok().flatten(), now_us: row.try_get("now").ok() })
}

/// What a batch's write says of itself (`None` where that could not be read).
pub struct Written {
    /// The version (`xmin`, as text) the accounts it changed now have: the one its transaction
    /// gives every row it writes.
    pub version: Option<String>,
    /// The database's clock when it ran.
    pub now_us: Option<i64>,
}

/// What `ltx_jobs` is told of the batch's jobs (schema_job_notify_moves.sql): each entered a
/// line, a queued one at its queued time, so that replicas patch their copies of the queue's
/// head instead of reading it again. `None` (the insert trigger then says only `Q`) when that
/// would not fit in one notification.
fn announcement(accepted: &[(&NewJob, Accepted)]) -> Option<String> {
    use std::fmt::Write;
    let mut payload = String::with_capacity(accepted.len() * 56);
    for (new, a) in accepted {
        let sep = if payload.is_empty() { "" } else { "," };
        let _ = match a.status {
            JobStatus::Queued => write!(payload, "{sep}{}m/{}", new.id, a.created_at),
            _ => write!(payload, "{sep}{}m/", new.id),
        };
    }
    (payload.len() <= 7900).then_some(payload)
}

/// The job rows to insert, one array per column (bound to `unnest`).
#[derive(Default)]
struct JobColumns<'a> {
    id: Vec<Uuid>,
    account_id: Vec<Uuid>,
    kind: Vec<&'a str>,
    status: Vec<&'static str>,
    created_at: Vec<i64>,
    queued: Vec<bool>,
    request: Vec<String>,
    style_key: Vec<String>,
    seed: Vec<i64>,
    width: Vec<i32>,
    height: Vec<i32>,
    price: Vec<i64>,
    price_tier: Vec<i32>,
    webhook_url: Vec<Option<&'a str>>,
}

impl<'a> JobColumns<'a> {
    fn push(&mut self, new: &'a NewJob, accepted: &Accepted) -> StoreResult<()> {
        self.id.push(new.id);
        self.account_id.push(new.account_id);
        self.kind.push(&new.kind);
        self.status.push(accepted.status.as_str());
        self.created_at.push(accepted.created_at);
        self.queued.push(accepted.status == JobStatus::Queued);
        self.request.push(serde_json::to_string(&new.request).map_err(|e| StoreError::Internal(e.to_string()))?);
        self.style_key.push(crate::store::codec::style_set_key(&new.request.styles));
        self.seed.push(i64::from(new.seed));
        self.width.push(new.width as i32);
        self.height.push(new.height as i32);
        self.price.push(new.price.0);
        self.price_tier.push(new.price_tier_seconds as i32);
        self.webhook_url.push(new.webhook_url.as_deref());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::job_notice::{parse_payload, Change};
    use super::*;
    use crate::store::fixtures::new_job;

    fn accepted(status: JobStatus, created_at: i64) -> Accepted {
        Accepted { status, created_at, money: Default::default(), slots: Default::default(), backlogged_before: 0 }
    }

    #[test]
    fn a_batch_announces_its_queued_jobs_with_their_queued_times() {
        let (queued, backlogged) = (new_job(Uuid::new_v4()), new_job(Uuid::new_v4()));
        let batch =
            [(&queued, accepted(JobStatus::Queued, 1_700)), (&backlogged, accepted(JobStatus::Backlogged, 1_800))];
        let payload = announcement(&batch).expect("two jobs fit in one notification");
        assert_eq!(
            parse_payload(&payload),
            vec![
                Change::Moved { id: queued.id, left: None, entered: Some(1_700) },
                Change::Moved { id: backlogged.id, left: None, entered: None },
            ]
        );
        // A batch too large to name is left to the insert trigger (`Q`).
        let many: Vec<NewJob> = (0..200).map(|_| new_job(Uuid::new_v4())).collect();
        let batch: Vec<_> = many.iter().map(|j| (j, accepted(JobStatus::Queued, i64::MAX))).collect();
        assert_eq!(announcement(&batch), None);
    }
}
