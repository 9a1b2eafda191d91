//! What a batch of submits does, decided in memory from what the batch read of its accounts
//! (under their locks, or without and then written only if none changed; submit_batch.rs): the checks of `jobs::submit_locked`, in the same order, each against
//! the account as the earlier submits of the batch left it — the idempotency key first (one seen
//! in the database, or claimed earlier in this batch), then admission. Pure, so a batch costs the
//! same few statements whatever its size, and its rules are tested without a database.
use crate::domain::job::JobStatus;
use crate::domain::lifecycle::{self, MoneyMove, SlotChange};
use crate::store::{Account, NewJob, SubmitRefusal};
use std::collections::HashMap;
use uuid::Uuid;

/// An `Idempotency-Key` row as the batch read it.
#[derive(Clone, Debug)]
pub struct KeySeen {
    pub fingerprint: String,
    pub job_id: Uuid,
    /// How long ago it was claimed, by the database's clock.
    pub age_us: i64,
}

/// The keys of the batch's accounts that have a row, by (account, key).
pub type KeysSeen = HashMap<(Uuid, String), KeySeen>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Accept(Accepted),
    Refuse(SubmitRefusal),
    /// The key's first job, to be read back once the batch's jobs are written.
    Replay(Uuid),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub status: JobStatus,
    /// Microseconds, strictly after the account's previous job.
    pub created_at: i64,
    pub money: MoneyMove,
    pub slots: SlotChange,
    /// The account's backlog before this job (its place in it, when backlogged).
    pub backlogged_before: u32,
}

/// What the accepted submits do to one account, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountChange {
    pub money: MoneyMove,
    pub slots: SlotChange,
}

/// A key an accepted submit claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub account_id: Uuid,
    pub key: String,
    pub fingerprint: String,
    pub job_id: Uuid,
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// One per submit, in the batch's order.
    pub decisions: Vec<Decision>,
    /// By account id, for the accounts with an accepted submit.
    pub changes: HashMap<Uuid, AccountChange>,
    /// At most one per (account, key): the last accepted submit's, as one upsert after another
    /// would leave it.
    pub claims: Vec<Claim>,
}

/// The times and rows the batch read.
pub struct Reads<'a> {
    /// Each account of the batch, as read; left as the batch's accepted submits leave it.
    pub accounts: &'a mut HashMap<Uuid, Account>,
    /// Each account's newest job's `created_at`, where it has one; left with the batch's.
    pub last_job: &'a mut HashMap<Uuid, i64>,
    /// The database's clock when the batch read it.
    pub now_us: i64,
    pub keys: KeysSeen,
}

/// Decides each submit of `batch` in order. `created_at` is strictly after the account's
/// previous job (so an account's jobs page without ties whatever the replicas' clocks say), and
/// strictly increasing through the batch (so the queue's order is the batch's, as when each
/// insert read the clock). Every account of the batch must be in `reads.accounts`.
pub fn plan<'n>(batch: impl IntoIterator<Item = &'n NewJob>, mut reads: Reads<'_>) -> Plan {
    let mut plan = Plan::default();
    let mut clock = reads.now_us;
    for new in batch {
        let decision = decide(new, &mut reads, &mut clock);
        if let Decision::Accept(accepted) = &decision {
            let change = plan.changes.entry(new.account_id).or_default();
            change.money.held += accepted.money.held;
            change.money.balance += accepted.money.balance;
            change.slots.active += accepted.slots.active;
            change.slots.backlogged += accepted.slots.backlogged;
            if let Some(idem) = &new.idempotency {
                plan.claims.retain(|c| (c.account_id, c.key.as_str()) != (new.account_id, idem.key.as_str()));
                plan.claims.push(Claim {
                    account_id: new.account_id,
                    key: idem.key.clone(),
                    fingerprint: idem.fingerprint.clone(),
                    job_id: new.id,
                });
            }
        }
        plan.decisions.push(decision);
    }
    plan
}

fn decide(new: &NewJob, reads: &mut Reads<'_>, clock: &mut i64) -> Decision {
    if let Some(idem) = &new.idempotency {
        if let Some(seen) = reads.keys.get(&(new.account_id, idem.key.clone())) {
            if seen.age_us < idem.window.as_micros() as i64 {
                return if seen.fingerprint == idem.fingerprint {
                    Decision::Replay(seen.job_id)
                } else {
                    Decision::Refuse(SubmitRefusal::IdempotencyConflict { job_id: seen.job_id })
                };
            }
        }
    }
    let account = reads.accounts.get_mut(&new.account_id).expect("every account of the batch was read");
    let status = match lifecycle::admit(&account.load(), new.price) {
        Ok(status) => status,
        Err(refusal) => return Decision::Refuse(refusal.into()),
    };
    let (money, slots) = lifecycle::admission_effects(status, new.price);
    let backlogged_before = account.backlogged_jobs;
    account.held.0 += money.held;
    account.balance.0 += money.balance;
    account.active_jobs = account.active_jobs.saturating_add_signed(slots.active);
    account.backlogged_jobs = account.backlogged_jobs.saturating_add_signed(slots.backlogged);
    let created_at = match reads.last_job.get(&new.account_id) {
        Some(&last) => (*clock).max(last + 1),
        None => *clock,
    };
    *clock = created_at + 1;
    reads.last_job.insert(new.account_id, created_at);
    if let Some(idem) = &new.idempotency {
        // Claimed now: a later submit of the batch with this key sees it as just claimed.
        let seen = KeySeen { fingerprint: idem.fingerprint.clone(), job_id: new.id, age_us: 0 };
        reads.keys.insert((new.account_id, idem.key.clone()), seen);
    }
    Decision::Accept(Accepted { status, created_at, money, slots, backlogged_before })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::MicroUsd;
    use crate::store::{fixtures, Idempotency};
    use std::time::Duration;

    fn account(credits: i64, max_concurrent: u32, max_backlog: u32) -> Account {
        Account { balance: MicroUsd(credits), max_concurrent, max_backlog, ..fixtures::account(Uuid::new_v4()) }
    }

    fn job(account: &Account, price: i64, key: Option<(&str, &str)>) -> NewJob {
        NewJob {
            price: MicroUsd(price),
            idempotency: key.map(|(key, fingerprint)| Idempotency {
                key: key.into(),
                fingerprint: fingerprint.into(),
                window: Duration::from_secs(60),
            }),
            ..crate::store::fixtures::new_job(account.id)
        }
    }

    fn run(batch: &[NewJob], accounts: &mut HashMap<Uuid, Account>, last_job: &[(Uuid, i64)], keys: KeysSeen) -> Plan {
        let mut last_job = last_job.iter().copied().collect();
        let reads = Reads { accounts, last_job: &mut last_job, now_us: 1_000, keys };
        plan(batch, reads)
    }

    fn accepted(d: &Decision) -> Accepted {
        match d {
            Decision::Accept(a) => *a,
            other => panic!("not accepted: {other:?}"),
        }
    }

    #[test]
    fn each_submit_is_admitted_against_what_the_earlier_ones_left() {
        let a = account(500, 1, 1);
        let mut accounts = HashMap::from([(a.id, a.clone())]);
        let batch = [job(&a, 200, None), job(&a, 200, None), job(&a, 50, None), job(&a, 200, None)];
        let plan = run(&batch, &mut accounts, &[], KeysSeen::new());
        assert_eq!(accepted(&plan.decisions[0]).status, JobStatus::Queued);
        assert_eq!(accepted(&plan.decisions[1]).status, JobStatus::Backlogged);
        assert_eq!(accepted(&plan.decisions[1]).backlogged_before, 0);
        assert!(matches!(plan.decisions[2], Decision::Refuse(SubmitRefusal::BacklogFull { .. })));
        assert!(matches!(
            plan.decisions[3],
            Decision::Refuse(SubmitRefusal::InsufficientBalance { available: MicroUsd(100), .. })
        ));
        let left = &accounts[&a.id];
        assert_eq!((left.held.0, left.active_jobs, left.backlogged_jobs), (400, 1, 1));
        let change = plan.changes[&a.id];
        assert_eq!((change.money.held, change.slots.active, change.slots.backlogged), (400, 1, 1));
    }

    #[test]
    fn created_at_is_after_the_accounts_last_job_and_increases_through_the_batch() {
        let (a, b) = (account(10_000, 9, 9), account(10_000, 9, 9));
        let mut accounts = HashMap::from([(a.id, a.clone()), (b.id, b.clone())]);
        let batch = [job(&a, 1, None), job(&a, 1, None), job(&b, 1, None)];
        // a's last job is ahead of the clock (another replica's); b has none.
        let plan = run(&batch, &mut accounts, &[(a.id, 5_000)], KeysSeen::new());
        let times: Vec<i64> = plan.decisions.iter().map(|d| accepted(d).created_at).collect();
        assert_eq!(times, vec![5_001, 5_002, 5_003]);
        let batch = [job(&b, 1, None), job(&a, 1, None)];
        let plan = run(&batch, &mut accounts, &[(a.id, 10)], KeysSeen::new());
        let times: Vec<i64> = plan.decisions.iter().map(|d| accepted(d).created_at).collect();
        assert_eq!(times, vec![1_000, 1_001], "the clock when it is ahead");
    }

    #[test]
    fn a_key_repeated_in_the_batch_replays_the_first_job_or_conflicts() {
        let a = account(10_000, 9, 9);
        let mut accounts = HashMap::from([(a.id, a.clone())]);
        let batch = [job(&a, 100, Some(("k", "f1"))), job(&a, 100, Some(("k", "f1"))), job(&a, 100, Some(("k", "f2")))];
        let plan = run(&batch, &mut accounts, &[], KeysSeen::new());
        accepted(&plan.decisions[0]);
        assert_eq!(plan.decisions[1], Decision::Replay(batch[0].id));
        assert_eq!(plan.decisions[2], Decision::Refuse(SubmitRefusal::IdempotencyConflict { job_id: batch[0].id }));
        assert_eq!(accounts[&a.id].held.0, 100, "one hold");
        assert_eq!(plan.claims.len(), 1);
        assert_eq!(plan.claims[0].job_id, batch[0].id);
    }

    #[test]
    fn a_refused_submit_leaves_its_key_free_and_an_expired_key_is_claimed_again() {
        let a = account(100, 9, 9);
        let old = Uuid::new_v4();
        let mut accounts = HashMap::from([(a.id, a.clone())]);
        let keys = KeysSeen::from([
            ((a.id, "seen".to_string()), KeySeen { fingerprint: "f".into(), job_id: old, age_us: 1_000 }),
            ((a.id, "old".to_string()), KeySeen { fingerprint: "x".into(), job_id: old, age_us: 61_000_000 }),
        ]);
        let batch = [
            job(&a, 500, Some(("k", "f"))),
            job(&a, 50, Some(("k", "f"))),
            job(&a, 10, Some(("seen", "f"))),
            job(&a, 10, Some(("old", "f"))),
        ];
        let plan = run(&batch, &mut accounts, &[], keys);
        assert!(matches!(plan.decisions[0], Decision::Refuse(SubmitRefusal::InsufficientBalance { .. })));
        accepted(&plan.decisions[1]);
        assert_eq!(plan.decisions[2], Decision::Replay(old));
        accepted(&plan.decisions[3]);
        let claimed: Vec<(&str, Uuid)> = plan.claims.iter().map(|c| (c.key.as_str(), c.job_id)).collect();
        assert_eq!(claimed, vec![("k", batch[1].id), ("old", batch[3].id)]);
    }
}
