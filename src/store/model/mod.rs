//! Values that cross the store boundary: accounts and jobs here; the outbox, leases and the
//! library beside.
mod admin;
mod leases;
mod library;
mod outbox;

use crate::domain::job::{FailureCode, JobStatus};
use crate::domain::lifecycle::{self, AccountLoad, AdmissionRefusal, Settlement};
use crate::domain::money::MicroUsd;
use crate::domain::request::GenerateRequest;
pub use admin::*;
pub use leases::*;
pub use library::*;
pub use outbox::*;
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
    /// What its stored assets and style LoRA files take.
    pub storage: super::StorageUse,
    /// Its own storage quota; where `None`, the operator's default applies.
    pub storage_quota: super::QuotaOverride,
    /// Suspended by the operator: its API keys are refused (403 `account_suspended`).
    pub suspended: bool,
    /// Its own limit of API requests per key and minute (0: none); where `None`, the operator's
    /// default (`--rate-limit-per-minute`) applies.
    pub rate_limit_per_minute: Option<u32>,
}

impl Account {
    pub fn available(&self) -> MicroUsd {
        self.balance.saturating_sub(self.held)
    }

    /// What admission reads from the row (`domain::lifecycle::admit`).
    pub fn load(&self) -> AccountLoad {
        AccountLoad {
            available: self.available(),
            active_jobs: self.active_jobs,
            backlogged_jobs: self.backlogged_jobs,
            max_concurrent: self.max_concurrent,
            max_backlog: self.max_backlog,
        }
    }
}

#[derive(Clone, Debug)]
pub struct KeyRecord {
    pub key_id: Uuid,
    pub account_id: Uuid,
    pub secret_hash: String,
    pub revoked: bool,
    /// Whether the key's account is suspended (read with the key, so the key cache answers it).
    pub account_suspended: bool,
    /// The account's own request rate limit (`Account::rate_limit_per_minute`), read with the
    /// key so the key cache answers it on every request.
    pub rate_limit_per_minute: Option<u32>,
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

impl From<Settlement> for LedgerKind {
    fn from(settlement: Settlement) -> LedgerKind {
        match settlement {
            Settlement::Charge => LedgerKind::Charge,
            Settlement::Release => LedgerKind::Release,
        }
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

impl NewJob {
    /// The job an accepted submit created, as its row now holds it (no read back): `status` from
    /// admission, `created_at` as stored. A backlogged job is last in its account's backlog; a
    /// queued job's place in the global queue is left for reads to count (counting it here would
    /// slow every submit).
    pub fn accepted(self, status: JobStatus, created_at: OffsetDateTime, backlogged_before: u32) -> Job {
        Job {
            id: self.id,
            account_id: self.account_id,
            kind: self.kind,
            status,
            created_at,
            started_at: None,
            completed_at: None,
            request: self.request,
            seed: self.seed,
            width: self.width,
            height: self.height,
            price: self.price,
            price_tier_seconds: self.price_tier_seconds,
            progress: 0.0,
            attempts: 0,
            engine: None,
            result: None,
            failure: None,
            webhook_url: self.webhook_url,
            queue_position: lifecycle::backlog_position_on_admission(status, backlogged_before),
            webhook: None,
            results_expired_at: None,
        }
    }
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

impl From<AdmissionRefusal> for SubmitRefusal {
    fn from(refusal: AdmissionRefusal) -> SubmitRefusal {
        match refusal {
            AdmissionRefusal::InsufficientBalance { price, available } => {
                SubmitRefusal::InsufficientBalance { price, available }
            }
            AdmissionRefusal::BacklogFull { max_concurrent, max_backlog } => {
                SubmitRefusal::BacklogFull { max_concurrent, max_backlog }
            }
        }
    }
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
    /// The prompt the model was given, when the job asked for enhancement (additive modes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enhanced_prompt: Option<String>,
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
    /// When the retention sweeper deleted its result files (its URLs then answer 410).
    pub results_expired_at: Option<OffsetDateTime>,
}

/// Jobs for unit tests: one plain request, the fields a test cares about set after.
#[cfg(test)]
pub mod fixtures {
    use super::*;

    pub fn new_job(account_id: Uuid) -> NewJob {
        NewJob {
            id: Uuid::now_v7(),
            account_id,
            kind: "ltx-video-2.3-22b".into(),
            request: GenerateRequest {
                prompt: "a red fox".into(),
                start_image: None,
                start_video: None,
                end_image: None,
                aspect_ratio: crate::domain::request::AspectRatio::Landscape,
                duration: 5,
                num_frames: 121,
                seed: Some(7),
                generate_audio: true,
                styles: vec![],
                mode: None,
                quality: None,
                enhance_prompt: false,
            },
            seed: 7,
            width: 1280,
            height: 720,
            price: MicroUsd(1),
            price_tier_seconds: 5,
            webhook_url: None,
            idempotency: None,
        }
    }

    /// An account with no money, no jobs and limits of one.
    pub fn account(id: Uuid) -> Account {
        Account {
            id,
            name: "a".into(),
            balance: MicroUsd(0),
            held: MicroUsd(0),
            max_concurrent: 1,
            max_backlog: 1,
            active_jobs: 0,
            backlogged_jobs: 0,
            webhook_secret: String::new(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            storage: Default::default(),
            storage_quota: Default::default(),
            suspended: false,
            rate_limit_per_minute: None,
        }
    }

    /// An accepted job of a new account.
    pub fn job(status: JobStatus) -> Job {
        new_job(Uuid::new_v4()).accepted(status, OffsetDateTime::now_utc(), 0)
    }
}
