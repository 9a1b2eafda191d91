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

crate::conformance!(
    money_and_counters_stay_consistent_under_a_random_mix,
    concurrent_submits_never_exceed_the_limits_or_the_balance,
    a_repeated_idempotency_key_creates_one_job,
);
