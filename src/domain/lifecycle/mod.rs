//! The job lifecycle's rules, as pure functions over plain values: which status a submit gets
//! (queued, backlogged or refused), what each later event does to a job (its next status, the
//! money its hold becomes, the account's slot counters, the webhook, the lease, the attempt
//! count), how many backlogged jobs freed slots promote, and what the sweep does with a lease
//! that expired or a job that ran too long.
//!
//! Both stores (SQLite for one machine, PostgreSQL for a fleet) ask these functions what to do
//! and keep only the SQL that loads and saves, so a rule is written once and cannot drift
//! between them. See docs/architecture.md for where this sits in a job's flow.
use super::job::{FailureCode, JobStatus};
use super::money::MicroUsd;
use std::time::Duration;

#[cfg(test)]
mod tests;

/// What admission reads from the account's row (under its lock, so no submit races it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountLoad {
    /// Balance minus the holds of unfinished jobs.
    pub available: MicroUsd,
    /// Jobs holding a concurrency slot (queued through intermediate-complete).
    pub active_jobs: u32,
    pub backlogged_jobs: u32,
    pub max_concurrent: u32,
    pub max_backlog: u32,
}

/// Why admission refused a submit; nothing is written for a refused one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdmissionRefusal {
    InsufficientBalance { price: MicroUsd, available: MicroUsd },
    BacklogFull { max_concurrent: u32, max_backlog: u32 },
}

/// A submit's fate: `Queued` while the account has a free slot, `Backlogged` while its backlog
/// has room, else refused. The price must be coverable by what is not already held.
pub fn admit(account: &AccountLoad, price: MicroUsd) -> Result<JobStatus, AdmissionRefusal> {
    if account.available < price {
        return Err(AdmissionRefusal::InsufficientBalance { price, available: account.available });
    }
    if account.active_jobs < account.max_concurrent {
        Ok(JobStatus::Queued)
    } else if account.backlogged_jobs < account.max_backlog {
        Ok(JobStatus::Backlogged)
    } else {
        Err(AdmissionRefusal::BacklogFull { max_concurrent: account.max_concurrent, max_backlog: account.max_backlog })
    }
}

/// What an accepted submit does to the account: the price is held and the job takes a slot or
/// a place in the backlog.
pub fn admission_effects(status: JobStatus, price: MicroUsd) -> (MoneyMove, SlotChange) {
    let queued = status == JobStatus::Queued;
    (MoneyMove { held: price.0, balance: 0 }, SlotChange { active: i32::from(queued), backlogged: i32::from(!queued) })
}

/// The place in its account's backlog of a job just backlogged (it is last).
pub fn backlog_position_on_admission(status: JobStatus, backlogged_before: u32) -> Option<u64> {
    (status == JobStatus::Backlogged).then_some(u64::from(backlogged_before) + 1)
}

/// Something that happens to an existing job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A slot freed up for a backlogged job.
    Promote,
    /// A worker took a queued job.
    Lease,
    /// The worker reports the stage it reached.
    Progress(JobStatus),
    /// The worker published a first-stage preview.
    Preview,
    /// The worker delivered the clip.
    Complete,
    /// The worker gave up on the job.
    Fail(FailureCode),
    /// The owner cancelled the job.
    Cancel,
    /// The worker gave the job back unfinished (its shutdown): the attempt does not count.
    HandBack,
    /// The lease ran out without a heartbeat, after `attempts` leases of `max_attempts`.
    LeaseExpired { attempts: u32, max_attempts: u32 },
    /// The job ran longer than the maximum run time.
    Overran,
}

/// What a settled hold becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// A completed job pays its hold.
    Charge,
    /// A failed or cancelled job's hold goes back to the account.
    Release,
}

/// Changes to the account's `held` and `balance`, in micro-USD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MoneyMove {
    pub held: i64,
    pub balance: i64,
}

/// What settling a job's hold does to the account: a charge takes it from the balance, a
/// release only un-holds it. A job holds nothing once settled, so a second settle moves nothing.
pub fn settle(hold: MicroUsd, settlement: Settlement) -> MoneyMove {
    match settlement {
        Settlement::Charge => MoneyMove { held: -hold.0, balance: -hold.0 },
        Settlement::Release => MoneyMove { held: -hold.0, balance: 0 },
    }
}

/// Changes to the account's counters of slot-holding and backlogged jobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotChange {
    pub active: i32,
    pub backlogged: i32,
}

/// What an event does to a job and around it. The store writes `to` (and the columns the event
/// carries: result, error, progress), then carries out the rest in the same transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub to: JobStatus,
    /// The job's hold is charged or released (terminal transitions).
    pub settle: Option<Settlement>,
    pub slots: SlotChange,
    /// The job's webhook is due (terminal transitions of a job with a webhook URL).
    pub webhook: bool,
    /// The lease is dropped: a worker still running the job is refused at its next report.
    pub clears_lease: bool,
    /// Change to the job's attempt count.
    pub attempts: i32,
    /// The job became leasable: wake the workers.
    pub wakes_workers: bool,
    /// `error.code` of a job that failed.
    pub failure: Option<FailureCode>,
}

impl Transition {
    fn to(status: JobStatus) -> Transition {
        Transition {
            to: status,
            settle: None,
            slots: SlotChange::default(),
            webhook: false,
            clears_lease: false,
            attempts: 0,
            wakes_workers: false,
            failure: None,
        }
    }

    /// A slot was freed: the account's backlog moves up in the same transaction.
    pub fn frees_slot(&self) -> bool {
        self.slots.active < 0
    }

    /// Back in the queue, leasable again.
    fn requeued(attempts: i32) -> Transition {
        Transition { clears_lease: true, attempts, wakes_workers: true, ..Transition::to(JobStatus::Queued) }
    }

    /// A terminal end: money settled, the slot (or backlog place) given up, the webhook due.
    fn ended(status: JobStatus, from: JobStatus, settle: Settlement) -> Transition {
        let backlogged = from == JobStatus::Backlogged;
        Transition {
            settle: Some(settle),
            slots: SlotChange { active: -i32::from(!backlogged), backlogged: -i32::from(backlogged) },
            webhook: true,
            clears_lease: true,
            ..Transition::to(status)
        }
    }

    fn failed(from: JobStatus, code: FailureCode) -> Transition {
        Transition { failure: Some(code), ..Transition::ended(JobStatus::Failed, from, Settlement::Release) }
    }
}

/// Why an event cannot apply to a job in its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The job already ended.
    Terminal(JobStatus),
    /// A worker's report about a job no lease holds (cancelled, requeued, ended).
    LeaseLost,
    /// The event has no meaning in this status (a store bug if it ever happens).
    Illegal { from: JobStatus, event: Event },
}

/// The one state machine: what `event` does to a job in status `from`.
pub fn apply(from: JobStatus, event: Event) -> Result<Transition, Refused> {
    use JobStatus::*;
    let illegal = Err(Refused::Illegal { from, event });
    match event {
        Event::Cancel if from.is_terminal() => Err(Refused::Terminal(from)),
        Event::Cancel => Ok(Transition::ended(Cancelled, from, Settlement::Release)),
        Event::Promote if from == Backlogged => Ok(Transition {
            slots: SlotChange { active: 1, backlogged: -1 },
            wakes_workers: true,
            ..Transition::to(Queued)
        }),
        Event::Lease if from == Queued => Ok(Transition { attempts: 1, ..Transition::to(Scheduled) }),
        Event::Promote | Event::Lease => illegal,
        // Everything below is a worker's or the sweep's, about a leased job.
        _ if !from.is_leased() => Err(Refused::LeaseLost),
        Event::Progress(next) => Ok(Transition::to(if from.worker_may_move_to(next) { next } else { from })),
        Event::Preview => Ok(Transition::to(IntermediateComplete)),
        Event::Complete => Ok(Transition::ended(Completed, from, Settlement::Charge)),
        Event::Fail(code) => Ok(Transition::failed(from, code)),
        Event::HandBack => Ok(Transition::requeued(-1)),
        Event::LeaseExpired { attempts, max_attempts } if attempts >= max_attempts => {
            Ok(Transition::failed(from, FailureCode::WorkerLost))
        }
        Event::LeaseExpired { .. } => Ok(Transition::requeued(0)),
        Event::Overran => Ok(Transition::failed(from, FailureCode::Timeout)),
    }
}

/// How many of the account's backlogged jobs its free slots take (oldest first).
pub fn promotions(max_concurrent: u32, active_jobs: u32, backlogged_jobs: u32) -> u32 {
    max_concurrent.saturating_sub(active_jobs).min(backlogged_jobs)
}

/// What the sweep finds about a leased job, checked under its lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseCheck {
    /// Leased that many times (this lease included).
    pub attempts: u32,
    /// Started longer ago than the maximum run time.
    pub overran: bool,
    /// Its lease ran out.
    pub expired: bool,
}

/// The sweep's event for a leased job, if any: an overrun fails it whatever its lease says; an
/// expired lease requeues it until its attempts are used up.
pub fn sweep_event(check: LeaseCheck, max_attempts: u32) -> Option<Event> {
    if check.overran {
        Some(Event::Overran)
    } else if check.expired {
        Some(Event::LeaseExpired { attempts: check.attempts, max_attempts })
    } else {
        None
    }
}

/// The `error.message` a job failed by the sweep shows.
pub fn sweep_failure_message(event: Event, max_run_time: Duration) -> String {
    match event {
        Event::Overran => {
            format!("The job ran longer than the maximum run time of {} s.", max_run_time.as_secs())
        }
        Event::LeaseExpired { attempts, .. } => {
            format!("The worker running this job stopped responding ({attempts} attempts).")
        }
        _ => String::new(),
    }
}

/// The ledger note of a settlement: "completed", "cancelled", or the failure's code.
pub fn settlement_note(transition: &Transition) -> &'static str {
    match (transition.to, transition.failure) {
        (_, Some(code)) => code.as_str(),
        (status, None) => status.as_str(),
    }
}
