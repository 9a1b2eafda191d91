//! Values that cross the store boundary.
use crate::domain::job::{FailureCode, JobStatus};
use crate::domain::money::MicroUsd;
use crate::domain::request::GenerateRequest;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, Debug)]
pub struct NewAccount {
    pub name: String,
    pub credits: MicroUsd,
    pub max_concurrent: u32,
    pub max_backlog: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Account {
    pub id: Uuid,
    pub name: String,
    /// Credits minus charges.
    pub balance: MicroUsd,
    /// Sum of the holds of unfinished jobs.
    pub held: MicroUsd,
    pub max_concurrent: u32,
    pub max_backlog: u32,
    /// Jobs holding a concurrency slot (queued through intermediate-complete).
    pub active_jobs: u32,
    pub backlogged_jobs: u32,
    /// Standard Webhooks signing secret (`whsec_…`).
    pub webhook_secret: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Account {
    pub fn available(&self) -> MicroUsd {
        self.balance.saturating_sub(self.held)
    }
}

#[derive(Clone, Debug)]
pub struct KeyRecord {
    pub key_id: Uuid,
    pub account_id: Uuid,
    pub secret_hash: String,
    pub revoked: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// Money added: balance +amount.
    Credit,
    /// Price reserved at submit: held +amount (balance unchanged).
    Hold,
    /// A completed job's hold turned into a charge: balance −amount, held −amount.
    Charge,
    /// A failed or cancelled job's hold given back: held −amount.
    Release,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Credit => "credit",
            LedgerKind::Hold => "hold",
            LedgerKind::Charge => "charge",
            LedgerKind::Release => "release",
        }
    }
    pub fn parse(s: &str) -> Option<LedgerKind> {
        [LedgerKind::Credit, LedgerKind::Hold, LedgerKind::Charge, LedgerKind::Release]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct LedgerEntry {
    pub kind: LedgerKind,
    pub amount: MicroUsd,
    pub job_id: Option<Uuid>,
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Usage {
    pub jobs_completed: u64,
    pub jobs_failed: u64,
    pub jobs_cancelled: u64,
    pub jobs_unfinished: u64,
    pub charged_last_7_days: MicroUsd,
    pub charged_total: MicroUsd,
}

impl Usage {
    /// Adds `n` jobs of `status` to the counts.
    pub fn count(&mut self, status: &str, n: u64) {
        match status {
            "completed" => self.jobs_completed += n,
            "failed" => self.jobs_failed += n,
            "cancelled" => self.jobs_cancelled += n,
            _ => self.jobs_unfinished += n,
        }
    }
}

#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: Uuid,
    pub account_id: Uuid,
    pub kind: String,
    pub request: GenerateRequest,
    pub seed: u32,
    pub width: u32,
    pub height: u32,
    pub price: MicroUsd,
    pub price_tier_seconds: u32,
    pub webhook_url: Option<String>,
    /// `Idempotency-Key`: a repeat with the same key and body within the window returns the
    /// first job instead of creating (and charging) another.
    pub idempotency: Option<Idempotency>,
}

#[derive(Clone, Debug)]
pub struct Idempotency {
    pub key: String,
    /// Hash of the normalised request and webhook URL.
    pub fingerprint: String,
    pub window: std::time::Duration,
}

/// Why a submit was not accepted (the account's money or backlog), decided in the transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitRefusal {
    InsufficientBalance {
        price: MicroUsd,
        available: MicroUsd,
    },
    BacklogFull {
        max_concurrent: u32,
        max_backlog: u32,
    },
    /// The idempotency key was used with another body.
    IdempotencyConflict {
        job_id: Uuid,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelRefusal {
    NotFound,
    AlreadyTerminal(JobStatus),
}

#[derive(Clone, Debug, Default)]
pub struct JobQuery {
    /// Jobs created strictly before this time.
    pub before: Option<OffsetDateTime>,
    pub limit: u32,
    pub status: Option<JobStatus>,
    pub kinds: Vec<String>,
}

/// What a finished job produced. Keys are paths in result storage; the API makes URLs of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub video_key: String,
    pub poster_key: String,
    pub width: u32,
    pub height: u32,
    pub num_frames: u32,
    pub fps: u32,
    pub has_audio: bool,
    pub engine: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct JobFailure {
    pub code: FailureCode,
    pub message: String,
}

#[derive(Clone, Debug)]
pub struct Job {
    pub id: Uuid,
    pub account_id: Uuid,
    pub kind: String,
    pub status: JobStatus,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub completed_at: Option<OffsetDateTime>,
    pub request: GenerateRequest,
    pub seed: u32,
    pub width: u32,
    pub height: u32,
    pub price: MicroUsd,
    pub price_tier_seconds: u32,
    pub progress: f64,
    pub attempts: u32,
    pub engine: Option<String>,
    pub result: Option<JobResult>,
    pub failure: Option<JobFailure>,
    pub webhook_url: Option<String>,
    /// 1-based place in line while `queued` (global FIFO) or `backlogged` (the account's FIFO).
    pub queue_position: Option<u64>,
    /// Delivery state of the job's webhook, once it has one.
    pub webhook: Option<WebhookState>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WebhookState {
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// A webhook delivery claimed by a dispatcher.
#[derive(Clone, Debug)]
pub struct WebhookDelivery {
    /// The Standard Webhooks message id, stable across retries.
    pub id: String,
    pub job_id: Uuid,
    pub account_id: Uuid,
    pub url: String,
    /// Including the one now claimed.
    pub attempts: u32,
    pub created_at: OffsetDateTime,
}

#[derive(Clone, Debug)]
pub enum WebhookOutcome {
    Delivered { status: u16 },
    Retry { status: Option<u16>, error: Option<String>, at: OffsetDateTime },
    GaveUp { status: Option<u16>, error: Option<String> },
}

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

/// An uploaded file (Krea's asset). The bytes live in storage under `file_key`.
#[derive(Clone, Debug, PartialEq)]
pub struct Asset {
    pub id: Uuid,
    pub account_id: Uuid,
    /// `assets/<unguessable>.<ext>`: also the last part of its public URL.
    pub file_key: String,
    pub mime_type: String,
    pub size_bytes: u64,
    /// Set for images.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub description: Option<String>,
    pub uploaded_at: OffsetDateTime,
}

/// A LoRA style. Its `.safetensors` file lives in storage under `file_key`.
#[derive(Clone, Debug, PartialEq)]
pub struct Style {
    pub id: Uuid,
    pub account_id: Uuid,
    /// The owner account's name (Krea's `owner.name`).
    pub owner_name: String,
    pub title: Option<String>,
    pub prompt: String,
    pub public: bool,
    pub urls: Vec<String>,
    pub cover_url: Option<String>,
    pub file_key: String,
    pub size_bytes: u64,
    pub lora_rank: u32,
    pub created_at: OffsetDateTime,
}

/// `PATCH /styles/{id}`: the fields given change, the others stay.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StylePatch {
    pub title: Option<String>,
    pub public: Option<bool>,
    pub urls: Option<Vec<String>>,
    pub cover_url: Option<String>,
}

impl StylePatch {
    /// The style with the given fields changed.
    pub fn apply(self, current: Style) -> Style {
        Style {
            title: self.title.or(current.title),
            public: self.public.unwrap_or(current.public),
            urls: self.urls.unwrap_or(current.urls),
            cover_url: self.cover_url.or(current.cover_url),
            ..current
        }
    }
}

/// Which styles `GET /styles` lists for an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StyleFilter {
    /// The account's own.
    Own,
    /// Anyone's public ones.
    Public,
    /// Own and public.
    All,
}

#[derive(Clone, Debug)]
pub struct StyleQuery {
    pub filter: StyleFilter,
    /// Only this owner's (Krea's `user` parameter).
    pub owner: Option<Uuid>,
    /// Created strictly before this time.
    pub before: Option<OffsetDateTime>,
    pub limit: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StyleDeleteRefusal {
    NotFound,
    /// Unfinished jobs still use it.
    InUse {
        jobs: u64,
    },
}
