//! What a submit batch leaves for the next: its accounts as its write left them, with their row
//! versions, their newest jobs' times and the database's clock. A batch whose accounts are all
//! carried is decided on them without reading (one round trip, its write, instead of two); the
//! write's version check (submit_rows.rs) still refuses it if anything changed an account since
//! (a settlement, another replica's batch), and the batch is then read and decided again, as it
//! is when it would refuse a submit (nothing is written then, so nothing would check). Under
//! load the batcher runs one batch after another, so the read it skips was a round trip on the
//! critical path of every batch.
use super::submit_rows::{AccountReads, Versions};
use crate::store::Account;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long what a batch left is used. Past this, a batch reads (an idle account's row is more
/// likely to have been changed by something else; and the clock below is estimated from this
/// process's own clock only for this long).
const CARRY_FOR: Duration = Duration::from_secs(1);

/// What the last batch written without locks left (empty when it failed or took locks).
#[derive(Default)]
pub struct Carried {
    accounts: HashMap<Uuid, (Account, String)>,
    last_job: HashMap<Uuid, i64>,
    /// The database's clock when the write ran, and when its answer came.
    clock: Option<(i64, Instant)>,
}

impl Carried {
    /// The reads of a batch of `ids` from what is carried, when every one of them is and it is
    /// recent; nothing is carried after (what the batch leaves is carried next). The clock is the
    /// database's as of the last write, advanced by this process's monotonic clock since.
    pub fn take(&mut self, ids: &[Uuid]) -> Option<(AccountReads, Versions)> {
        let reads = self.reads_for(ids);
        self.forget();
        reads
    }

    fn reads_for(&self, ids: &[Uuid]) -> Option<(AccountReads, Versions)> {
        let (db_now, at) = self.clock?;
        let age = at.elapsed();
        if age > CARRY_FOR || ids.is_empty() || !ids.iter().all(|id| self.accounts.contains_key(id)) {
            return None;
        }
        let mut read = AccountReads { now_us: db_now + age.as_micros() as i64, ..AccountReads::default() };
        let mut versions = Versions::new();
        for id in ids {
            let (account, version) = &self.accounts[id];
            read.accounts.insert(*id, account.clone());
            versions.insert(*id, version.clone());
            if let Some(last) = self.last_job.get(id) {
                read.last_job.insert(*id, *last);
            }
        }
        Some((read, versions))
    }

    /// Remembers what a batch written without locks left: `after`, its accounts as its decisions
    /// left them (and as its write made them), `versions`, the versions it was decided on, which
    /// the accounts it `changed` now have as `written` (the version its write gave their rows);
    /// and the database's clock `db_now_us` at the write.
    pub fn remember(&mut self, after: AfterBatch, written: &str, db_now_us: i64) {
        let AfterBatch { accounts, last_job, mut versions, changed } = after;
        for id in &changed {
            versions.insert(*id, written.to_owned());
        }
        self.accounts.clear();
        self.last_job = last_job;
        for (id, account) in accounts {
            if let Some(version) = versions.remove(&id) {
                self.accounts.insert(id, (account, version));
            }
        }
        self.clock = Some((db_now_us, Instant::now()));
    }

    /// Drops everything: the next batch reads.
    pub fn forget(&mut self) {
        *self = Carried::default();
    }
}

/// A batch's accounts after its decisions, the versions it decided on, and which it changed.
pub struct AfterBatch {
    pub accounts: HashMap<Uuid, Account>,
    pub last_job: HashMap<Uuid, i64>,
    pub versions: Versions,
    pub changed: Vec<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::account;

    fn left(ids: &[Uuid], changed: &[Uuid]) -> AfterBatch {
        AfterBatch {
            accounts: ids.iter().map(|id| (*id, account(*id))).collect(),
            last_job: ids.iter().map(|id| (*id, 7)).collect(),
            versions: ids.iter().map(|id| (*id, "100".to_owned())).collect(),
            changed: changed.to_vec(),
        }
    }

    #[test]
    fn a_batch_of_carried_accounts_is_decided_on_them_at_the_versions_the_write_left() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut carried = Carried::default();
        assert!(carried.reads_for(&[a]).is_none(), "nothing carried before a batch");
        carried.remember(left(&[a, b], &[a]), "205", 1_000_000);
        let (read, versions) = carried.reads_for(&[a, b]).expect("both carried");
        assert_eq!(versions[&a], "205", "the changed account is at the write's version");
        assert_eq!(versions[&b], "100", "the unchanged one at the version it was decided on");
        assert_eq!(read.last_job[&a], 7);
        assert_eq!(read.accounts[&b].id, b);
        assert!(read.now_us >= 1_000_000 && read.now_us < 1_000_000 + 500_000, "{}", read.now_us);
        assert!(carried.reads_for(&[a, Uuid::new_v4()]).is_none(), "an account not carried makes the batch read");
    }

    #[test]
    fn nothing_is_carried_after_a_forget_or_for_too_long() {
        let a = Uuid::new_v4();
        let mut carried = Carried::default();
        carried.remember(left(&[a], &[a]), "9", 1);
        assert!(carried.take(&[a]).is_some());
        assert!(carried.reads_for(&[a]).is_none(), "what a batch took is not carried to the next");
        carried.remember(left(&[a], &[a]), "9", 1);
        carried.forget();
        assert!(carried.reads_for(&[a]).is_none());
        carried.remember(left(&[a], &[a]), "9", 1);
        carried.clock = Some((1, Instant::now() - CARRY_FOR - Duration::from_millis(1)));
        assert!(carried.reads_for(&[a]).is_none(), "too old");
    }
}
