//! What workers and leases exchange with the store.
use super::Job;
use crate::domain::job::JobStatus;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A worker's claim on a job, fenced by `lease_id`: reports from an older lease are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRef {
    pub job_id: Uuid,
    pub lease_id: Uuid,
}

#[derive(Clone, Debug)]
pub struct Lease {
    pub lease: LeaseRef,
    pub job: Job,
}

#[derive(Clone, Debug)]
pub struct Progress {
    pub status: JobStatus,
    /// 0..1
    pub progress: f64,
    /// The engine running the job, recorded on the job once known.
    pub engine: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct SweepReport {
    pub requeued: Vec<Uuid>,
    pub failed: Vec<Uuid>,
}

/// Who asks for work: a worker's name and the LoRA sets (`codec::style_set_key`) it has
/// resident, and how long the oldest queued job may wait while the worker is given a job of
/// one of those sets instead (the server's `--affinity-max-wait-secs`; zero: oldest first).
#[derive(Clone, Debug, Default)]
pub struct WorkerLease {
    pub name: String,
    pub resident_style_sets: Vec<String>,
    pub affinity_max_wait: std::time::Duration,
}

impl WorkerLease {
    pub fn named(name: impl Into<String>) -> WorkerLease {
        WorkerLease { name: name.into(), resident_style_sets: Vec::new(), affinity_max_wait: std::time::Duration::ZERO }
    }

    /// The same worker, preferring jobs of `sets` for at most `max_wait` of the oldest job's time.
    pub fn preferring(self, sets: Vec<String>, max_wait: std::time::Duration) -> WorkerLease {
        WorkerLease { resident_style_sets: sets, affinity_max_wait: max_wait, ..self }
    }
}

/// What a worker announces about itself (shown by `/readyz` and `/metrics`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub name: String,
    pub engine: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub gpu: Option<String>,
    #[serde(default)]
    pub gpu_memory_bytes: Option<u64>,
    #[serde(default)]
    pub resident_style_sets: Vec<String>,
    /// The quality presets its engine has loaded (`Engine::presets`); the API accepts an
    /// additive request's `quality` only when a live worker has it (`api::presets`). Kept in
    /// the registry's JSON; empty from a worker that announces none.
    #[serde(default)]
    pub presets: Vec<crate::domain::request::Quality>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkerRecord {
    #[serde(flatten)]
    pub info: WorkerInfo,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

#[derive(Clone, Debug)]
pub struct WorkerTokenRecord {
    pub id: Uuid,
    pub secret_hash: String,
    pub revoked: bool,
}
