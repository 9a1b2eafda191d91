//! The job state machine: the status vocabulary and which moves are legal (docs/architecture.md).
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobStatus {
    /// Over the account's concurrency limit; promoted FIFO when a slot frees.
    Backlogged,
    /// Waiting for a worker.
    Queued,
    /// Leased by a worker.
    Scheduled,
    /// The worker is preparing inputs, LoRAs and prompt encoding.
    Processing,
    /// Denoising.
    Sampling,
    /// An engine has a preview; not terminal.
    IntermediateComplete,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 9] = [
        JobStatus::Backlogged,
        JobStatus::Queued,
        JobStatus::Scheduled,
        JobStatus::Processing,
        JobStatus::Sampling,
        JobStatus::IntermediateComplete,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Backlogged => "backlogged",
            JobStatus::Queued => "queued",
            JobStatus::Scheduled => "scheduled",
            JobStatus::Processing => "processing",
            JobStatus::Sampling => "sampling",
            JobStatus::IntermediateComplete => "intermediate-complete",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)
    }

    /// Holds a worker slot of the account (counts against `max_concurrent`).
    pub fn occupies_slot(self) -> bool {
        !self.is_terminal() && self != JobStatus::Backlogged
    }

    /// Held by a worker lease.
    pub fn is_leased(self) -> bool {
        matches!(
            self,
            JobStatus::Scheduled | JobStatus::Processing | JobStatus::Sampling | JobStatus::IntermediateComplete
        )
    }

    /// Whether a worker reporting progress may move a leased job from `self` to `next`.
    /// Progress only moves forward; terminal states are set by their own operations.
    pub fn worker_may_move_to(self, next: JobStatus) -> bool {
        self.is_leased() && next.is_leased() && next.rank() >= self.rank()
            || (self == JobStatus::IntermediateComplete && next == JobStatus::Sampling)
    }

    fn rank(self) -> u8 {
        JobStatus::ALL.iter().position(|s| *s == self).unwrap_or(0) as u8
    }
}

/// `error.code` of a failed job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    InvalidInput,
    Timeout,
    OutOfMemory,
    EngineError,
    WorkerLost,
    InternalError,
}

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::InvalidInput => "invalid_input",
            FailureCode::Timeout => "timeout",
            FailureCode::OutOfMemory => "out_of_memory",
            FailureCode::EngineError => "engine_error",
            FailureCode::WorkerLost => "worker_lost",
            FailureCode::InternalError => "internal_error",
        }
    }

    pub fn parse(text: &str) -> Option<FailureCode> {
        [
            FailureCode::InvalidInput,
            FailureCode::Timeout,
            FailureCode::OutOfMemory,
            FailureCode::EngineError,
            FailureCode::WorkerLost,
            FailureCode::InternalError,
        ]
        .into_iter()
        .find(|c| c.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(JobStatus::parse("done"), None);
    }

    #[test]
    fn terminal_and_slot_rules() {
        let terminal: Vec<_> = JobStatus::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [JobStatus::Completed, JobStatus::Failed, JobStatus::Cancelled]);
        assert!(!JobStatus::Backlogged.occupies_slot());
        assert!(JobStatus::Queued.occupies_slot());
        assert!(JobStatus::IntermediateComplete.occupies_slot());
        assert!(!JobStatus::IntermediateComplete.is_terminal());
    }

    #[test]
    fn workers_only_move_leased_jobs_forward() {
        use JobStatus::*;
        assert!(Scheduled.worker_may_move_to(Processing));
        assert!(Processing.worker_may_move_to(Sampling));
        assert!(Sampling.worker_may_move_to(Sampling));
        assert!(Sampling.worker_may_move_to(IntermediateComplete));
        assert!(IntermediateComplete.worker_may_move_to(Sampling));
        assert!(!Sampling.worker_may_move_to(Processing));
        assert!(!Queued.worker_may_move_to(Processing));
        assert!(!Sampling.worker_may_move_to(Completed));
        assert!(!Cancelled.worker_may_move_to(Sampling));
    }

    #[test]
    fn failure_codes_round_trip() {
        for code in ["invalid_input", "timeout", "out_of_memory", "engine_error", "worker_lost", "internal_error"] {
            assert_eq!(FailureCode::parse(code).unwrap().as_str(), code);
        }
    }
}
