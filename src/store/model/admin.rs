//! What the operator's store capability (`Admin`) reads and writes: admin tokens and the
//! usage of an account over a period.
use crate::domain::money::MicroUsd;
use serde::Serialize;
use uuid::Uuid;

/// An admin token as stored: only a hash of its secret, like API keys and worker tokens.
#[derive(Clone, Debug)]
pub struct AdminTokenRecord {
    pub id: Uuid,
    pub secret_hash: String,
    pub revoked: bool,
}

/// An account's activity in a period `[from, to)`: its jobs submitted then, by the status they
/// have now, and the money charged and credited then.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PeriodUsage {
    pub jobs_submitted: u64,
    pub jobs_completed: u64,
    pub jobs_failed: u64,
    pub jobs_cancelled: u64,
    pub jobs_unfinished: u64,
    pub charged: MicroUsd,
    pub credited: MicroUsd,
}

impl PeriodUsage {
    /// Adds `n` jobs of `status` (its name in the store) to the counts.
    pub fn count(&mut self, status: &str, n: u64) {
        self.jobs_submitted += n;
        match status {
            "completed" => self.jobs_completed += n,
            "failed" => self.jobs_failed += n,
            "cancelled" => self.jobs_cancelled += n,
            _ => self.jobs_unfinished += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_is_submitted_once_and_in_one_status_bucket() {
        let mut usage = PeriodUsage::default();
        for (status, n) in [("completed", 3), ("failed", 1), ("cancelled", 2), ("queued", 4), ("backlogged", 1)] {
            usage.count(status, n);
        }
        assert_eq!(usage.jobs_submitted, 11);
        assert_eq!(
            (usage.jobs_completed, usage.jobs_failed, usage.jobs_cancelled, usage.jobs_unfinished),
            (3, 1, 2, 5)
        );
    }
}
