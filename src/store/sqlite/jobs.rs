//! Jobs as their owner sees them: submit (job + hold in one transaction), read, list, cancel,
//! and the billing and backlog steps every terminal transition shares.
use super::super::*;
use super::accounts::{self, record};
use super::actor::WriteCtx;
use super::rows::{job_from_row, load_job, must_load, queue_position, to_us, JOB_COLUMNS};
use super::sql_err;
use crate::domain::job::JobStatus;
use crate::domain::money::MicroUsd;
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

/// (jobs holding a slot, jobs backlogged) of an account, from its counters.
fn job_counts(conn: &Connection, account: Uuid) -> StoreResult<(u32, u32)> {
    conn.prepare_cached("SELECT active_jobs, backlogged_jobs FROM accounts WHERE id = ?1")
        .map_err(sql_err)?
        .query_row([account.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql_err)
}

/// Moves the account's counters when one of its jobs changes between slot-holding,
/// backlogged and terminal.
pub fn count_transition(ctx: &WriteCtx, account: Uuid, active: i64, backlogged: i64) -> StoreResult<()> {
    ctx.conn
        .prepare_cached(
            "UPDATE accounts SET active_jobs = active_jobs + ?2, backlogged_jobs = backlogged_jobs + ?3 WHERE id = ?1",
        )
        .map_err(sql_err)?
        .execute(params![account.to_string(), active, backlogged])
        .map_err(sql_err)?;
    Ok(())
}

pub fn submit(ctx: &mut WriteCtx, new: NewJob, signal: Arc<Notify>) -> StoreResult<Result<Job, SubmitRefusal>> {
    if let Some(idem) = &new.idempotency {
        // The single writer serialises concurrent duplicates: the second sees the first's row.
        let now = ctx.now_us();
        let seen: Option<(String, String, i64)> = ctx
            .conn
            .prepare_cached(
                "SELECT fingerprint, job_id, created_at FROM idempotency_keys WHERE account_id = ?1 AND key = ?2",
            )
            .map_err(sql_err)?
            .query_row(params![new.account_id.to_string(), idem.key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .map_err(sql_err)?;
        if let Some((fingerprint, job_id, created_at)) = seen {
            if now - created_at < idem.window.as_micros() as i64 {
                let job_id = super::rows::uuid(job_id);
                if fingerprint != idem.fingerprint {
                    return Ok(Err(SubmitRefusal::IdempotencyConflict { job_id }));
                }
                return Ok(Ok(must_load(ctx.conn, job_id)?));
            }
        }
    }
    let account = accounts::get(ctx.conn, new.account_id)?;
    if account.available() < new.price {
        return Ok(Err(SubmitRefusal::InsufficientBalance { price: new.price, available: account.available() }));
    }
    let (active, backlogged) = (account.active_jobs, account.backlogged_jobs);
    let status = if active < account.max_concurrent {
        JobStatus::Queued
    } else if backlogged < account.max_backlog {
        JobStatus::Backlogged
    } else {
        return Ok(Err(SubmitRefusal::BacklogFull {
            max_concurrent: account.max_concurrent,
            max_backlog: account.max_backlog,
        }));
    };
    let now = ctx.now_us();
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
            account.id.to_string(),
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
    let queued = status == JobStatus::Queued;
    ctx.conn
        .prepare_cached(
            "UPDATE accounts SET held = held + ?2, active_jobs = active_jobs + ?3, backlogged_jobs = backlogged_jobs + ?4 \
             WHERE id = ?1",
        )
        .map_err(sql_err)?
        .execute(params![account.id.to_string(), new.price.0, i64::from(queued), i64::from(!queued)])
        .map_err(sql_err)?;
    record(ctx, account.id, LedgerKind::Hold, new.price, Some(new.id), None)?;
    if queued {
        ctx.after_commit(move || signal.notify_waiters());
    }
    if let Some(idem) = &new.idempotency {
        // Only an accepted submit claims its key: a refused one may be retried with it.
        ctx.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO idempotency_keys (account_id, key, fingerprint, job_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(sql_err)?
            .execute(params![new.account_id.to_string(), idem.key, idem.fingerprint, new.id.to_string(), now])
            .map_err(sql_err)?;
    }
    // The new job as the row now holds it, without reading it back.
    Ok(Ok(Job {
        id: new.id,
        account_id: account.id,
        kind: new.kind,
        status,
        created_at: super::rows::to_time(now),
        started_at: None,
        completed_at: None,
        request: new.request,
        seed: new.seed,
        width: new.width,
        height: new.height,
        price: new.price,
        price_tier_seconds: new.price_tier_seconds,
        progress: 0.0,
        attempts: 0,
        engine: None,
        result: None,
        failure: None,
        webhook_url: new.webhook_url,
        // Last in its account's backlog; a queued job's place in the global queue is left for
        // reads to count (counting it here would slow every submit).
        queue_position: (!queued).then_some(u64::from(backlogged) + 1),
        webhook: None,
    }))
}

pub fn get_for_account(conn: &Connection, account: Uuid, id: Uuid) -> StoreResult<Option<Job>> {
    Ok(load_job(conn, id)?.filter(|job| job.account_id == account))
}

pub fn list(conn: &Connection, account: Uuid, query: JobQuery) -> StoreResult<Vec<Job>> {
    let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE account_id = ?1 AND created_at < ?2");
    if query.status.is_some() {
        sql.push_str(" AND status = ?3");
    }
    if !query.kinds.is_empty() {
        // Kinds come from a fixed vocabulary upstream, but bind them anyway.
        let marks: Vec<String> = (0..query.kinds.len()).map(|i| format!("?{}", i + 5)).collect();
        sql.push_str(&format!(" AND kind IN ({})", marks.join(", ")));
    }
    sql.push_str(" ORDER BY created_at DESC LIMIT ?4");
    let before = query.before.map(to_us).unwrap_or(i64::MAX);
    let mut values: Vec<rusqlite::types::Value> = vec![
        account.to_string().into(),
        before.into(),
        query.status.map(|s| s.as_str().to_owned()).unwrap_or_default().into(),
        i64::from(query.limit).into(),
    ];
    values.extend(query.kinds.iter().map(|k| k.clone().into()));
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    // Unused positional parameters are an error in SQLite, so bind only those the SQL names.
    let count = stmt.parameter_count();
    let rows =
        stmt.query_map(rusqlite::params_from_iter(values.into_iter().take(count)), job_from_row).map_err(sql_err)?;
    let mut jobs: Vec<Job> = rows.collect::<Result<_, _>>().map_err(sql_err)?;
    for job in &mut jobs {
        job.queue_position = queue_position(conn, job)?;
    }
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
    if job.status.is_terminal() {
        return Ok(Err(CancelRefusal::AlreadyTerminal(job.status)));
    }
    let now = ctx.now_us();
    // Clearing the lease is what tells a running worker to stop: its next heartbeat is refused.
    ctx.conn
        .execute(
            "UPDATE jobs SET status = 'cancelled', completed_at = ?2, updated_at = ?2, lease_id = NULL, lease_expires_at = NULL \
             WHERE id = ?1",
            params![id.to_string(), now],
        )
        .map_err(sql_err)?;
    release_hold(ctx, id, "cancelled")?;
    super::webhooks::enqueue(ctx, id, &hooks)?;
    let was_backlogged = job.status == JobStatus::Backlogged;
    count_transition(ctx, account, -i64::from(!was_backlogged), -i64::from(was_backlogged))?;
    promote_backlog(ctx, account, &signal)?;
    Ok(Ok(must_load(ctx.conn, id)?))
}

/// The job's hold goes back to the account's available balance.
pub fn release_hold(ctx: &mut WriteCtx, job: Uuid, why: &str) -> StoreResult<()> {
    settle_hold(ctx, job, LedgerKind::Release, why)
}

/// The job's hold becomes a charge.
pub fn charge_hold(ctx: &mut WriteCtx, job: Uuid) -> StoreResult<()> {
    settle_hold(ctx, job, LedgerKind::Charge, "completed")
}

fn settle_hold(ctx: &mut WriteCtx, job: Uuid, kind: LedgerKind, note: &str) -> StoreResult<()> {
    let (account, hold): (String, i64) = ctx
        .conn
        .prepare_cached("SELECT account_id, hold FROM jobs WHERE id = ?1")
        .map_err(sql_err)?
        .query_row([job.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql_err)?;
    if hold == 0 {
        return Ok(());
    }
    let balance_change = if kind == LedgerKind::Charge { hold } else { 0 };
    ctx.conn
        .prepare_cached("UPDATE accounts SET held = held - ?2, balance = balance - ?3 WHERE id = ?1")
        .map_err(sql_err)?
        .execute(params![account, hold, balance_change])
        .map_err(sql_err)?;
    ctx.conn
        .prepare_cached("UPDATE jobs SET hold = 0 WHERE id = ?1")
        .map_err(sql_err)?
        .execute([job.to_string()])
        .map_err(sql_err)?;
    record(ctx, super::rows::uuid(account), kind, MicroUsd(hold), Some(job), Some(note.to_owned()))
}

/// Moves the account's oldest backlogged jobs to `queued` while it has free slots.
pub fn promote_backlog(ctx: &mut WriteCtx, account: Uuid, signal: &Arc<Notify>) -> StoreResult<u32> {
    let max: u32 = accounts::get(ctx.conn, account)?.max_concurrent;
    let (mut active, mut backlogged) = job_counts(ctx.conn, account)?;
    let mut promoted = 0;
    while active < max && backlogged > 0 {
        let next: Option<String> = ctx
            .conn
            .prepare_cached(
                "SELECT id FROM jobs WHERE account_id = ?1 AND status = 'backlogged' ORDER BY created_at LIMIT 1",
            )
            .map_err(sql_err)?
            .query_row([account.to_string()], |r| r.get(0))
            .optional()
            .map_err(sql_err)?;
        let Some(next) = next else { break };
        let now = ctx.now_us();
        ctx.conn
            .execute(
                "UPDATE jobs SET status = 'queued', queued_at = ?2, updated_at = ?2 WHERE id = ?1",
                params![next, now],
            )
            .map_err(sql_err)?;
        promoted += 1;
        active += 1;
        backlogged -= 1;
    }
    count_transition(ctx, account, i64::from(promoted), -i64::from(promoted))?;
    if promoted > 0 {
        let signal = signal.clone();
        ctx.after_commit(move || signal.notify_waiters());
    }
    Ok(promoted)
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
