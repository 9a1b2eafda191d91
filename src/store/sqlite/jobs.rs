//! Jobs as their owner sees them: submit (job + hold in one transaction), read, list, cancel,
//! and the billing and backlog steps every terminal transition shares.
use super::super::*;
use super::accounts::{self, record};
use super::actor::WriteCtx;
use super::job_cache::JobCache;
use super::rows::{job_from_row, load_job, must_load, queue_positions, to_us, JOB_COLUMNS, QUEUED_AT};
use super::sql_err;
use super::transitions::{carry_out, end_job, move_account, refused, wake_workers, Wake};
use crate::domain::job::JobStatus;
use crate::domain::lifecycle::{self, Event, Refused};
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

/// The first job of an `Idempotency-Key` still inside its window: the same body gets it back, another
/// body is refused. `None`: the key is free.
fn idempotent_replay(
    ctx: &mut WriteCtx,
    account: Uuid,
    idem: &Idempotency,
) -> StoreResult<Option<Result<Job, SubmitRefusal>>> {
    // The single writer serialises concurrent duplicates: the second sees the first's row.
    let now = ctx.now_us();
    let seen: Option<(String, String, i64)> = ctx
        .conn
        .prepare_cached(
            "SELECT fingerprint, job_id, created_at FROM idempotency_keys WHERE account_id = ?1 AND key = ?2",
        )
        .map_err(sql_err)?
        .query_row(params![account.to_string(), idem.key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
        .map_err(sql_err)?;
    let Some((fingerprint, job_id, created_at)) = seen else { return Ok(None) };
    if now - created_at >= idem.window.as_micros() as i64 {
        return Ok(None);
    }
    let job_id = super::rows::uuid(job_id);
    if fingerprint != idem.fingerprint {
        return Ok(Some(Err(SubmitRefusal::IdempotencyConflict { job_id })));
    }
    Ok(Some(Ok(must_load(ctx.conn, job_id)?)))
}

/// Only an accepted submit claims its key: a refused one may be retried with it.
fn claim_idempotency_key(ctx: &mut WriteCtx, new: &NewJob, now: i64) -> StoreResult<()> {
    let Some(idem) = &new.idempotency else { return Ok(()) };
    ctx.conn
        .prepare_cached(
            "INSERT OR REPLACE INTO idempotency_keys (account_id, key, fingerprint, job_id, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(sql_err)?
        .execute(params![new.account_id.to_string(), idem.key, idem.fingerprint, new.id.to_string(), now])
        .map_err(sql_err)?;
    Ok(())
}

fn insert_job(ctx: &mut WriteCtx, new: &NewJob, status: JobStatus, now: i64) -> StoreResult<()> {
    let request = serde_json::to_string(&new.request).map_err(|e| StoreError::Internal(e.to_string()))?;
    ctx.conn
        .prepare_cached(
            "INSERT INTO jobs (id, account_id, kind, status, created_at, updated_at, queued_at, request, seed, width, height, \
             price, price_tier, hold, webhook_url, style_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?11, ?13, ?14)",
        )
        .map_err(sql_err)?
        .execute(params![
            new.id.to_string(),
            new.account_id.to_string(),
            new.kind,
            status.as_str(),
            now,
            (status == JobStatus::Queued).then_some(now),
            request,
            new.seed,
            new.width,
            new.height,
            new.price.0,
            new.price_tier_seconds,
            new.webhook_url,
            crate::store::codec::style_set_key(&new.request.styles),
        ])
        .map_err(sql_err)?;
    Ok(())
}

/// Admits a job (`lifecycle::admit`): the job row, the hold on the account, its ledger entry and
/// the idempotency key, in the caller's transaction. Everything it refuses or fails on is
/// decided before its first write: the writer runs it without a savepoint
/// (`Actors::write_checks_first`), so nothing may be checked after `insert_job`.
pub fn submit(ctx: &mut WriteCtx, new: NewJob, signal: Arc<Notify>) -> StoreResult<Result<Job, SubmitRefusal>> {
    if let Some(idem) = &new.idempotency {
        if let Some(replay) = idempotent_replay(ctx, new.account_id, idem)? {
            return Ok(replay);
        }
    }
    let account = accounts::get(ctx.conn, new.account_id)?;
    let status = match lifecycle::admit(&account.load(), new.price) {
        Ok(status) => status,
        Err(refusal) => return Ok(Err(refusal.into())),
    };
    let now = ctx.now_us();
    insert_job(ctx, &new, status, now)?;
    let (money, slots) = lifecycle::admission_effects(status, new.price);
    move_account(ctx, account.id, money, slots)?;
    record(ctx, account.id, LedgerKind::Hold, new.price, Some(new.id), None)?;
    if status == JobStatus::Queued {
        wake_workers(ctx, &signal);
    }
    claim_idempotency_key(ctx, &new, now)?;
    Ok(Ok(new.accepted(status, super::rows::to_time(now), account.backlogged_jobs)))
}

pub fn get_for_account(conn: &Connection, account: Uuid, id: Uuid) -> StoreResult<Option<Job>> {
    Ok(load_job(conn, id)?.filter(|job| job.account_id == account))
}

/// The account's jobs, newest first. Every shape walks an index from the cursor down and stops
/// at the page, however many jobs the account has: (account, created_at), (account, status,
/// created_at), or with `kinds` one (account, kind, created_at) walk per kind, merged (a kind
/// filter over the account's index would read every job of other kinds first). `generation`:
/// the job cache's, taken before this read was sent (`rows::queue_positions`).
pub fn list(
    conn: &Connection,
    account: Uuid,
    query: JobQuery,
    cache: &JobCache,
    generation: u64,
) -> StoreResult<Vec<Job>> {
    // ?1 account, ?2 before, ?3 limit, ?4 status, ?5… kinds
    let status = if query.status.is_some() { " AND status = ?4" } else { "" };
    let mut kinds = query.kinds.clone();
    kinds.sort();
    kinds.dedup();
    let sql = if kinds.is_empty() {
        format!("SELECT {JOB_COLUMNS} FROM jobs WHERE account_id = ?1 AND created_at < ?2{status} ORDER BY created_at DESC LIMIT ?3")
    } else {
        let per_kind: Vec<String> = (0..kinds.len())
            .map(|i| {
                format!(
                    "SELECT id FROM (SELECT id FROM jobs WHERE account_id = ?1 AND kind = ?{} AND created_at < ?2{status} \
                     ORDER BY created_at DESC LIMIT ?3)",
                    i + 5
                )
            })
            .collect();
        format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({}) ORDER BY created_at DESC LIMIT ?3",
            per_kind.join(" UNION ALL ")
        )
    };
    let before = query.before.map(to_us).unwrap_or(i64::MAX);
    let mut values: Vec<rusqlite::types::Value> = vec![
        account.to_string().into(),
        before.into(),
        i64::from(query.limit).into(),
        query.status.map(|s| s.as_str().to_owned()).unwrap_or_default().into(),
    ];
    values.extend(kinds.into_iter().map(Into::into));
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    // Unused positional parameters are an error in SQLite; ?4 is unused when no status is asked.
    let unused = |i: usize| status.is_empty() && i == 3;
    for (i, value) in values.into_iter().enumerate().filter(|(i, _)| !unused(*i)) {
        stmt.raw_bind_parameter(i + 1, value).map_err(sql_err)?;
    }
    let mut rows = stmt.raw_query();
    let (mut jobs, mut queued_at) = (Vec::new(), Vec::new());
    while let Some(row) = rows.next().map_err(sql_err)? {
        jobs.push(job_from_row(row).map_err(sql_err)?);
        queued_at.push(row.get::<_, Option<i64>>(QUEUED_AT).map_err(sql_err)?);
    }
    queue_positions(conn, &mut jobs, &queued_at, cache, generation)?;
    Ok(jobs)
}

pub fn cancel(
    ctx: &mut WriteCtx,
    account: Uuid,
    id: Uuid,
    signal: Arc<Notify>,
    hooks: Arc<Notify>,
) -> StoreResult<Result<Job, CancelRefusal>> {
    let Some(job) = get_for_account(ctx.conn, account, id)? else {
        return Ok(Err(CancelRefusal::NotFound));
    };
    let t = match lifecycle::apply(job.status, Event::Cancel) {
        Ok(t) => t,
        Err(Refused::Terminal(status)) => return Ok(Err(CancelRefusal::AlreadyTerminal(status))),
        Err(other) => return Err(refused(other)),
    };
    // Clearing the lease is what tells a running worker to stop: its next heartbeat is refused.
    end_job(ctx, id, &t, None)?;
    carry_out(ctx, id, account, &t, &Wake { queue: signal, webhooks: hooks })?;
    Ok(Ok(must_load(ctx.conn, id)?))
}

pub fn usable_styles(conn: &Connection, account: Uuid, ids: Vec<String>) -> StoreResult<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT id FROM styles WHERE id = ?1 AND (public = 1 OR account_id = ?2)")
        .map_err(sql_err)?;
    let mut usable = Vec::new();
    for id in ids {
        if stmt.query_row(params![id, account.to_string()], |_| Ok(())).optional().map_err(sql_err)?.is_some() {
            usable.push(id);
        }
    }
    Ok(usable)
}

pub fn counts_by_status(conn: &Connection) -> StoreResult<Vec<(JobStatus, u64)>> {
    let mut stmt = conn.prepare_cached("SELECT status, COUNT(*) FROM jobs GROUP BY status").map_err(sql_err)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(sql_err)?;
    let mut counts: Vec<(JobStatus, u64)> = JobStatus::ALL.iter().map(|s| (*s, 0)).collect();
    for row in rows {
        let (status, n) = row.map_err(sql_err)?;
        if let Some(slot) = counts.iter_mut().find(|(s, _)| s.as_str() == status) {
            slot.1 = n as u64;
        }
    }
    Ok(counts)
}
