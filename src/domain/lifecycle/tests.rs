//! The lifecycle's rules, checked exhaustively: every status × every event against a table
//! written from the contract, then random event sequences against the money and slot invariants.
use super::*;
use FailureCode::*;
use JobStatus::*;

fn events() -> Vec<(&'static str, Event)> {
    vec![
        ("promote", Event::Promote),
        ("lease", Event::Lease),
        ("progress→sampling", Event::Progress(Sampling)),
        ("progress→processing", Event::Progress(Processing)),
        ("preview", Event::Preview),
        ("complete", Event::Complete),
        ("fail", Event::Fail(EngineError)),
        ("cancel", Event::Cancel),
        ("hand back", Event::HandBack),
        ("lease expired 1/3", Event::LeaseExpired { attempts: 1, max_attempts: 3 }),
        ("lease expired 3/3", Event::LeaseExpired { attempts: 3, max_attempts: 3 }),
        ("overran", Event::Overran),
    ]
}

/// The expected outcome of each event (in `events()` order) per status: a status name, or
/// `lost` (a worker's report about a job no lease holds), `terminal` (already ended),
/// `illegal` (meaningless for that status).
const TABLE: [(JobStatus, [&str; 12]); 9] = {
    const ENDED: [&str; 12] =
        ["illegal", "illegal", "lost", "lost", "lost", "lost", "lost", "terminal", "lost", "lost", "lost", "lost"];
    [
        (
            Backlogged,
            ["queued", "illegal", "lost", "lost", "lost", "lost", "lost", "cancelled", "lost", "lost", "lost", "lost"],
        ),
        (
            Queued,
            [
                "illegal",
                "scheduled",
                "lost",
                "lost",
                "lost",
                "lost",
                "lost",
                "cancelled",
                "lost",
                "lost",
                "lost",
                "lost",
            ],
        ),
        (
            Scheduled,
            [
                "illegal",
                "illegal",
                "sampling",
                "processing",
                "intermediate-complete",
                "completed",
                "failed",
                "cancelled",
                "queued",
                "queued",
                "failed",
                "failed",
            ],
        ),
        (
            Processing,
            [
                "illegal",
                "illegal",
                "sampling",
                "processing",
                "intermediate-complete",
                "completed",
                "failed",
                "cancelled",
                "queued",
                "queued",
                "failed",
                "failed",
            ],
        ),
        (
            // Progress never moves back: a late "processing" report leaves it sampling.
            Sampling,
            [
                "illegal",
                "illegal",
                "sampling",
                "sampling",
                "intermediate-complete",
                "completed",
                "failed",
                "cancelled",
                "queued",
                "queued",
                "failed",
                "failed",
            ],
        ),
        (
            // After a preview the second stage samples again.
            IntermediateComplete,
            [
                "illegal",
                "illegal",
                "sampling",
                "intermediate-complete",
                "intermediate-complete",
                "completed",
                "failed",
                "cancelled",
                "queued",
                "queued",
                "failed",
                "failed",
            ],
        ),
        (Completed, ENDED),
        (Failed, ENDED),
        (Cancelled, ENDED),
    ]
};

fn outcome(from: JobStatus, event: Event) -> String {
    match apply(from, event) {
        Ok(t) => t.to.as_str().to_owned(),
        Err(Refused::LeaseLost) => "lost".into(),
        Err(Refused::Terminal(status)) => {
            assert_eq!(status, from);
            "terminal".into()
        }
        Err(Refused::Illegal { .. }) => "illegal".into(),
    }
}

#[test]
fn every_status_and_event_goes_where_the_table_says() {
    let events = events();
    for status in JobStatus::ALL {
        let (_, expected) = TABLE.iter().find(|(s, _)| *s == status).expect("every status has a row");
        for ((name, event), want) in events.iter().zip(expected) {
            assert_eq!(outcome(status, *event), *want, "{} + {name}", status.as_str());
        }
    }
}

#[test]
fn terminal_transitions_settle_free_their_place_fire_the_webhook_and_drop_the_lease() {
    for from in JobStatus::ALL {
        for (name, event) in events() {
            let Ok(t) = apply(from, event) else { continue };
            let what = format!("{} + {name}", from.as_str());
            assert_eq!(t.settle.is_some(), t.to.is_terminal(), "{what}: money settles exactly when the job ends");
            assert_eq!(t.webhook, t.to.is_terminal(), "{what}: the webhook fires exactly when the job ends");
            let expected_settlement = match t.to {
                Completed => Some(Settlement::Charge),
                Failed | Cancelled => Some(Settlement::Release),
                _ => None,
            };
            assert_eq!(t.settle, expected_settlement, "{what}: only a completed job pays");
            // The counters move with the slot the job holds before and after.
            let slot = |s: JobStatus| i32::from(s.occupies_slot());
            let backlog = |s: JobStatus| i32::from(s == Backlogged);
            assert_eq!(t.slots.active, slot(t.to) - slot(from), "{what}: active counter");
            assert_eq!(t.slots.backlogged, backlog(t.to) - backlog(from), "{what}: backlog counter");
            assert_eq!(t.frees_slot(), slot(from) == 1 && slot(t.to) == 0, "{what}: frees a slot");
            // A job that left its lease can no longer be reported on by that worker.
            assert_eq!(t.clears_lease, from.is_leased() && !t.to.is_leased() || t.to.is_terminal(), "{what}: lease");
            assert_eq!(t.wakes_workers, t.to == Queued && from != Queued, "{what}: workers woken");
            assert_eq!(t.failure.is_some(), t.to == Failed, "{what}: a failure has a code");
        }
    }
}

#[test]
fn attempts_count_leases_but_not_hand_backs() {
    assert_eq!(apply(Queued, Event::Lease).unwrap().attempts, 1);
    assert_eq!(apply(Sampling, Event::HandBack).unwrap().attempts, -1, "a graceful hand-back is not an attempt");
    assert_eq!(apply(Sampling, Event::LeaseExpired { attempts: 1, max_attempts: 3 }).unwrap().attempts, 0);
    assert_eq!(apply(Sampling, Event::Complete).unwrap().attempts, 0);
}

#[test]
fn failures_carry_their_code() {
    assert_eq!(apply(Processing, Event::Fail(OutOfMemory)).unwrap().failure, Some(OutOfMemory));
    assert_eq!(apply(Processing, Event::Overran).unwrap().failure, Some(Timeout));
    let lost = apply(Processing, Event::LeaseExpired { attempts: 2, max_attempts: 2 }).unwrap();
    assert_eq!(lost.failure, Some(WorkerLost));
    assert_eq!(settlement_note(&lost), "worker_lost");
    assert_eq!(settlement_note(&apply(Processing, Event::Complete).unwrap()), "completed");
    assert_eq!(settlement_note(&apply(Queued, Event::Cancel).unwrap()), "cancelled");
}

#[test]
fn admission_queues_then_backlogs_then_refuses() {
    let load = |available: i64, active, backlogged| AccountLoad {
        available: MicroUsd(available),
        active_jobs: active,
        backlogged_jobs: backlogged,
        max_concurrent: 2,
        max_backlog: 1,
    };
    let price = MicroUsd(100);
    assert_eq!(admit(&load(100, 0, 0), price), Ok(Queued), "exactly enough money is enough");
    assert_eq!(admit(&load(100, 1, 0), price), Ok(Queued));
    assert_eq!(admit(&load(100, 2, 0), price), Ok(Backlogged));
    assert_eq!(
        admit(&load(100, 2, 1), price),
        Err(AdmissionRefusal::BacklogFull { max_concurrent: 2, max_backlog: 1 })
    );
    assert_eq!(
        admit(&load(99, 0, 0), price),
        Err(AdmissionRefusal::InsufficientBalance { price, available: MicroUsd(99) }),
        "money is checked before room"
    );
    let no_backlog = AccountLoad { max_backlog: 0, ..load(100, 2, 0) };
    assert!(matches!(admit(&no_backlog, price), Err(AdmissionRefusal::BacklogFull { .. })));
    assert_eq!(
        admission_effects(Queued, price),
        (MoneyMove { held: 100, balance: 0 }, SlotChange { active: 1, backlogged: 0 })
    );
    assert_eq!(admission_effects(Backlogged, price).1, SlotChange { active: 0, backlogged: 1 });
    assert_eq!(backlog_position_on_admission(Backlogged, 2), Some(3));
    assert_eq!(backlog_position_on_admission(Queued, 2), None);
}

#[test]
fn promotions_fill_free_slots_from_the_backlog() {
    assert_eq!(promotions(2, 0, 5), 2);
    assert_eq!(promotions(2, 1, 5), 1);
    assert_eq!(promotions(2, 2, 5), 0);
    assert_eq!(promotions(2, 3, 5), 0, "over the limit after it was lowered: nothing, no underflow");
    assert_eq!(promotions(4, 0, 1), 1, "no more than are waiting");
}

#[test]
fn the_sweep_times_out_overruns_first_then_requeues_expired_leases_until_attempts_run_out() {
    let check = |attempts, overran, expired| LeaseCheck { attempts, overran, expired };
    assert_eq!(sweep_event(check(1, false, false), 3), None);
    assert_eq!(sweep_event(check(1, true, false), 3), Some(Event::Overran));
    assert_eq!(sweep_event(check(1, true, true), 3), Some(Event::Overran), "an overrun is a timeout, not a retry");
    let expired = sweep_event(check(2, false, true), 3).unwrap();
    assert_eq!(apply(Sampling, expired).unwrap().to, Queued);
    let last = sweep_event(check(3, false, true), 3).unwrap();
    assert_eq!(apply(Sampling, last).unwrap().failure, Some(WorkerLost));
    assert_eq!(
        sweep_failure_message(Event::Overran, Duration::from_secs(90)),
        "The job ran longer than the maximum run time of 90 s."
    );
    assert_eq!(
        sweep_failure_message(last, Duration::ZERO),
        "The worker running this job stopped responding (3 attempts)."
    );
}

#[test]
fn settling_charges_or_releases_the_hold() {
    assert_eq!(settle(MicroUsd(250), Settlement::Charge), MoneyMove { held: -250, balance: -250 });
    assert_eq!(settle(MicroUsd(250), Settlement::Release), MoneyMove { held: -250, balance: 0 });
    assert_eq!(settle(MicroUsd(0), Settlement::Charge), MoneyMove::default(), "a settled job holds nothing");
}

/// A tiny deterministic generator, so a failing sequence can be replayed from its seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[derive(Debug)]
struct SimJob {
    status: JobStatus,
    hold: i64,
    price: i64,
    attempts: i32,
    settled: u32,
}

/// An account driven only through the rules, the way a store drives its rows.
struct SimAccount {
    load: AccountLoad,
    balance: i64,
    held: i64,
    jobs: Vec<SimJob>,
}

impl SimAccount {
    fn apply(&mut self, index: usize, event: Event) {
        let Ok(t) = apply(self.jobs[index].status, event) else { return };
        let job = &mut self.jobs[index];
        job.status = t.to;
        job.attempts += t.attempts;
        if let Some(s) = t.settle {
            let moved = settle(MicroUsd(job.hold), s);
            job.hold = 0;
            job.settled += 1;
            self.held += moved.held;
            self.balance += moved.balance;
        }
        self.count(t.slots);
        if t.frees_slot() {
            let n = promotions(self.load.max_concurrent, self.load.active_jobs, self.load.backlogged_jobs);
            // Oldest first: jobs are in submission order.
            let waiting: Vec<usize> =
                (0..self.jobs.len()).filter(|&i| self.jobs[i].status == Backlogged).take(n as usize).collect();
            for i in waiting {
                let promoted = apply(Backlogged, Event::Promote).unwrap();
                self.jobs[i].status = promoted.to;
                self.count(promoted.slots);
            }
        }
    }

    fn count(&mut self, slots: SlotChange) {
        self.load.active_jobs = (self.load.active_jobs as i32 + slots.active) as u32;
        self.load.backlogged_jobs = (self.load.backlogged_jobs as i32 + slots.backlogged) as u32;
    }

    fn submit(&mut self, price: i64) {
        self.load.available = MicroUsd(self.balance - self.held);
        let Ok(status) = admit(&self.load, MicroUsd(price)) else { return };
        let (money, slots) = admission_effects(status, MicroUsd(price));
        self.held += money.held;
        self.count(slots);
        self.jobs.push(SimJob { status, hold: price, price, attempts: 0, settled: 0 });
    }

    fn check(&self, step: usize) {
        let active = self.jobs.iter().filter(|j| j.status.occupies_slot()).count() as u32;
        let backlogged = self.jobs.iter().filter(|j| j.status == Backlogged).count() as u32;
        assert_eq!(self.load.active_jobs, active, "step {step}: active counter matches the jobs");
        assert_eq!(self.load.backlogged_jobs, backlogged, "step {step}: backlog counter matches the jobs");
        assert!(active <= self.load.max_concurrent, "step {step}: never over the concurrency limit");
        let holds: i64 = self.jobs.iter().filter(|j| !j.status.is_terminal()).map(|j| j.hold).sum();
        assert_eq!(self.held, holds, "step {step}: held is the holds of unfinished jobs");
        let charged: i64 = self.jobs.iter().filter(|j| j.status == Completed).map(|j| j.price).sum();
        assert_eq!(self.balance, 10_000 - charged, "step {step}: only completed jobs were paid for");
        assert!(self.balance >= 0, "step {step}: never below zero");
        for job in &self.jobs {
            assert_eq!(job.settled, u32::from(job.status.is_terminal()), "step {step}: settled once: {job:?}");
            assert!(job.attempts >= 0, "step {step}: attempts never negative: {job:?}");
        }
    }
}

#[test]
fn random_event_sequences_keep_money_and_counters_exact() {
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut account = SimAccount {
            load: AccountLoad {
                available: MicroUsd(10_000),
                active_jobs: 0,
                backlogged_jobs: 0,
                max_concurrent: 2,
                max_backlog: 3,
            },
            balance: 10_000,
            held: 0,
            jobs: Vec::new(),
        };
        let events = events();
        for step in 0..300 {
            if account.jobs.is_empty() || rng.below(4) == 0 {
                account.submit(1 + rng.below(900) as i64);
            } else {
                let index = rng.below(account.jobs.len());
                let (_, event) = events[rng.below(events.len())];
                // Leases only come after a lease event in a real store: give the job a realistic
                // attempt count for the sweep's event.
                let event = match event {
                    // Stores promote only through `promotions`, when a slot frees (below).
                    Event::Promote => continue,
                    Event::LeaseExpired { max_attempts, .. } => {
                        Event::LeaseExpired { attempts: account.jobs[index].attempts.max(0) as u32, max_attempts }
                    }
                    other => other,
                };
                account.apply(index, event);
            }
            account.check(step);
        }
    }
}
