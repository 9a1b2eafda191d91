//! Money and counters: balance, holds, slots and backlog stay consistent under any mix of
//! operations and under concurrent submits; an idempotency key makes one job.
use super::{account, all_jobs, assert_consistent, new_job, progress, result};
use ltx_serve::domain::job::{FailureCode, JobStatus};
use ltx_serve::domain::money::MicroUsd;
use ltx_serve::store::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

async fn money_and_counters_stay_consistent_under_a_random_mix(store: Arc<dyn Store>) {
    let store = &*store;
    let credits = 3_000_000;
    let acct = account(store, credits, 2, 3).await;
    let mut rng = StdRng::seed_from_u64(2);
    let mut leases: Vec<LeaseRef> = Vec::new();
    let mut submitted = 0;
    let (mut refused_money, mut refused_backlog) = (0, 0);
    for step in 0..400 {
        match rng.gen_range(0..10) {
            0..=3 => match store.submit(new_job(acct.id, rng.gen_range(100_000..300_000))).await.unwrap() {
                Ok(_) => submitted += 1,
                Err(SubmitRefusal::InsufficientBalance { .. }) => refused_money += 1,
                Err(SubmitRefusal::BacklogFull { .. }) => refused_backlog += 1,
                Err(other) => panic!("no idempotency key was sent: {other:?}"),
            },
            4 => {
                if let Some(lease) = store.lease(WorkerLease::named("w"), Duration::from_secs(60)).await.unwrap() {
                    leases.push(lease.lease);
                }
            }
            5 if !leases.is_empty() => {
                let lease = leases.remove(rng.gen_range(0..leases.len()));
                let _ = store.complete(lease, result()).await;
            }
            6 if !leases.is_empty() => {
                let lease = leases.remove(rng.gen_range(0..leases.len()));
                let _ = store.fail(lease, FailureCode::EngineError, "boom".into()).await;
            }
            7 if !leases.is_empty() => {
                let lease = leases[rng.gen_range(0..leases.len())];
                let _ = store.heartbeat(lease, progress(JobStatus::Sampling), Duration::from_secs(60)).await;
            }
            8 => {
                let jobs = all_jobs(store, acct.id).await;
                let open: Vec<_> = jobs.iter().filter(|j| !j.status.is_terminal()).collect();
                if !open.is_empty() {
                    let id = open[rng.gen_range(0..open.len())].id;
                    assert!(store.cancel(acct.id, id).await.unwrap().is_ok());
                }
            }
            9 if !leases.is_empty() => {
                let lease = leases.remove(rng.gen_range(0..leases.len()));
                let _ = store.hand_back(lease).await;
            }
            _ => {
                store.add_credits(acct.id, MicroUsd(200_000), "top-up".into()).await.unwrap();
            }
        }
        if step % 20 == 0 {
            let credits_now: i64 = store
                .ledger(acct.id, 100_000)
                .await
                .unwrap()
                .iter()
                .filter(|e| e.kind == LedgerKind::Credit)
                .map(|e| e.amount.0)
                .sum();
            assert_consistent(store, acct.id, credits_now).await;
        }
    }
    assert!(
        submitted > 20 && refused_backlog > 0,
        "the mix exercised the limits: {submitted} {refused_money} {refused_backlog}"
    );
}

async fn concurrent_submits_never_exceed_the_limits_or_the_balance(store: Arc<dyn Store>) {
    // Money for 20 jobs, room for 4 running and 10 waiting: 14 are accepted.
    let acct = account(&*store, 20 * 179_800, 4, 10).await;
    let submits = (0..60).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.submit(new_job(acct.id, 179_800)).await.unwrap() })
    });
    let mut accepted = 0;
    for submit in submits {
        match submit.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(SubmitRefusal::BacklogFull { .. }) => {}
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
    }
    assert_eq!(accepted, 14);
    assert_consistent(&*store, acct.id, 20 * 179_800).await;
}

async fn a_repeated_idempotency_key_creates_one_job(store: Arc<dyn Store>) {
    let acct = account(&*store, 10_000_000, 4, 10).await;
    let submits = (0..10).map(|_| {
        let store = store.clone();
        let mut job = new_job(acct.id, 179_800);
        job.idempotency =
            Some(Idempotency { key: "k1".into(), fingerprint: "f1".into(), window: Duration::from_secs(60) });
        tokio::spawn(async move { store.submit(job).await.unwrap().unwrap().id })
    });
    let mut ids = HashSet::new();
    for submit in submits {
        ids.insert(submit.await.unwrap());
    }
    assert_eq!(ids.len(), 1, "ten concurrent repeats, one job");
    let mut other_body = new_job(acct.id, 179_800);
    other_body.idempotency =
        Some(Idempotency { key: "k1".into(), fingerprint: "f2".into(), window: Duration::from_secs(60) });
    assert!(matches!(store.submit(other_body).await.unwrap(), Err(SubmitRefusal::IdempotencyConflict { .. })));
    assert_consistent(&*store, acct.id, 10_000_000).await;
}

/// One burst over two accounts, as the PostgreSQL store takes it in one batch: each account is
/// checked against what its earlier submits left, a key repeated in the burst makes one job, and
/// every accepted job is held and ledgered exactly once.
async fn a_burst_over_two_accounts_with_a_repeated_key_bills_each_job_once(store: Arc<dyn Store>) {
    let price = 100_000;
    // Money for 10 jobs and room for 5 (2 running, 3 waiting): 5 of 8 are accepted.
    let a = account(&*store, 10 * price, 2, 3).await;
    let b = account(&*store, 10 * price, 4, 10).await;
    let keyed = |n: usize| {
        let mut job = new_job(b.id, price);
        if n < 6 {
            job.idempotency =
                Some(Idempotency { key: "k".into(), fingerprint: "f".into(), window: Duration::from_secs(60) });
        }
        job
    };
    let mut jobs: Vec<NewJob> = (0..8).map(|_| new_job(a.id, price)).collect();
    jobs.extend((0..10).map(keyed));
    let submits: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let store = store.clone();
            tokio::spawn(async move { (job.account_id, job.idempotency.is_some(), store.submit(job).await.unwrap()) })
        })
        .collect();
    let (mut a_accepted, mut a_refused, mut b_plain, mut b_keyed) = (0, 0, 0, HashSet::new());
    for submit in submits {
        match submit.await.unwrap() {
            (id, _, Ok(_)) if id == a.id => a_accepted += 1,
            (id, _, Err(SubmitRefusal::BacklogFull { .. })) if id == a.id => a_refused += 1,
            (_, true, Ok(job)) => {
                b_keyed.insert(job.id);
            }
            (_, false, Ok(_)) => b_plain += 1,
            (_, _, other) => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((a_accepted, a_refused), (5, 3));
    assert_eq!((b_plain, b_keyed.len()), (4, 1), "six repeats of one key, one job");
    let mut other_body = new_job(b.id, price);
    other_body.idempotency =
        Some(Idempotency { key: "k".into(), fingerprint: "other".into(), window: Duration::from_secs(60) });
    assert!(matches!(store.submit(other_body).await.unwrap(), Err(SubmitRefusal::IdempotencyConflict { .. })));
    for (acct, active, backlogged) in [(a.id, 2, 3), (b.id, 4, 1)] {
        let read = store.account(acct).await.unwrap();
        assert_eq!((read.balance.0, read.held.0), (10 * price, 5 * price), "five jobs held, none charged");
        assert_eq!((read.active_jobs, read.backlogged_jobs), (active, backlogged));
        let holds: Vec<_> =
            store.ledger(acct, 100).await.unwrap().into_iter().filter(|e| e.kind == LedgerKind::Hold).collect();
        assert_eq!(holds.len(), 5, "one hold per job");
        assert!(holds.iter().all(|e| e.amount.0 == price));
        let listed = all_jobs(&*store, acct).await;
        assert_eq!(listed.len(), 5);
        let times: HashSet<_> = listed.iter().map(|j| j.created_at).collect();
        assert_eq!(times.len(), 5, "an account's jobs page without ties");
        assert_consistent(&*store, acct, 10 * price).await;
    }
}

crate::conformance!(
    money_and_counters_stay_consistent_under_a_random_mix,
    concurrent_submits_never_exceed_the_limits_or_the_balance,
    a_repeated_idempotency_key_creates_one_job,
    a_burst_over_two_accounts_with_a_repeated_key_bills_each_job_once,
);
