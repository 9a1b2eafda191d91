//! The statements of a submit batch (submit_batch.rs), each one round trip whatever the batch's
//! size: lock and read its accounts, read their newest jobs' times and the database's clock, read
//! their idempotency keys, then write every accepted job, hold, counter change and key claim
//! and the workers' wake-up at once.
use super::accounts::{account_from_row, ACCOUNT_COLUMNS};
use super::submit_plan::{Accepted, AccountChange, Claim, KeySeen, KeysSeen};
use super::{pg_err, QUEUE_CHANNEL};
use crate::domain::job::JobStatus;
use crate::store::{Account, Idempotency, LedgerKind, NewJob, StoreError, StoreResult};
use sqlx::PgConnection;
use std::collections::HashMap;
use uuid::Uuid;

/// Locks the accounts in id order (so concurrent batches queue up instead of deadlocking) and
/// reads them. `NotFound` if one does not exist.
pub async fn lock_accounts(c: &mut PgConnection, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, Account>> {
    let rows =
        sqlx::query(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE"))
            .bind(ids)
            .fetch_all(&mut *c)
            .await
            .map_err(pg_err)?;
    let accounts: HashMap<Uuid, Account> =
        rows.iter().map(|row| account_from_row(row).map(|a| (a.id, a))).collect::<StoreResult<_>>()?;
    if accounts.len() != ids.len() {
        return Err(StoreError::NotFound);
    }
    Ok(accounts)
}

/// Each account's newest job's `created_at` (where it has one) and the database's clock. A
/// statement of its own, after the locks: its snapshot sees every job the accounts' previous
/// lock holders committed (the locking statement's own snapshot predates its waits).
pub async fn last_jobs_and_now(c: &mut PgConnection, ids: &[Uuid]) -> StoreResult<(HashMap<Uuid, i64>, i64)> {
    let rows: Vec<(Uuid, Option<i64>, i64)> = sqlx::query_as(
        "SELECT a.id, (SELECT MAX(created_at) FROM jobs WHERE account_id = a.id), ltx_now_us() \
         FROM unnest($1::uuid[]) a(id)",
    )
    .bind(ids)
    .fetch_all(&mut *c)
    .await
    .map_err(pg_err)?;
    let now = rows.first().map(|r| r.2).unwrap_or_default();
    Ok((rows.into_iter().filter_map(|(id, last, _)| last.map(|last| (id, last))).collect(), now))
}

/// The rows of the batch's (account, key) pairs, read after the locks like `last_jobs_and_now`.
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
pub async fn write(
    c: &mut PgConnection,
    accepted: &[(&NewJob, Accepted)],
    changes: &HashMap<Uuid, AccountChange>,
    claims: &[Claim],
) -> StoreResult<()> {
    let mut jobs = JobColumns::default();
    for (new, a) in accepted {
        jobs.push(new, a)?;
    }
    let mut accounts = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, change) in changes {
        accounts.0.push(*id);
        accounts.1.push(change.money.held);
        accounts.2.push(change.money.balance);
        accounts.3.push(change.slots.active);
        accounts.4.push(change.slots.backlogged);
    }
    let wake = accepted.iter().any(|(_, a)| a.status == JobStatus::Queued);
    sqlx::query(
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
                     FROM unnest($16::uuid[], $17::bigint[], $18::bigint[], $19::int[], $20::int[]) \
                       AS d(id, held, balance, active, backlogged) WHERE a.id = d.id), \
         claim AS (INSERT INTO idempotency_keys (account_id, key, fingerprint, job_id, created_at) \
                   SELECT *, ltx_now_us() FROM unnest($21::uuid[], $22::text[], $23::text[], $24::uuid[]) \
                   ON CONFLICT (account_id, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, \
                   job_id = EXCLUDED.job_id, created_at = EXCLUDED.created_at) \
         SELECT (SELECT pg_notify($25, '') WHERE $26), \
                (SELECT ltx_announce_inserted($27) WHERE $27 IS NOT NULL)",
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
    .execute(&mut *c)
    .await
    .map_err(pg_err)?;
    Ok(())
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
    use super::super::job_cache::{parse_payload, Change};
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
