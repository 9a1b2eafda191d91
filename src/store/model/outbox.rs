//! The webhook outbox's values: a delivery, its outcome, and the state a job shows.
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

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

/// Where a webhook delivery stands (`WebhookState::status` shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Due now or at its next attempt.
    Pending,
    Delivered,
    /// Given up after its attempts.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl WebhookOutcome {
    /// The delivery's status after this outcome: a retry stays pending.
    pub fn delivery_status(&self) -> DeliveryStatus {
        match self {
            WebhookOutcome::Delivered { .. } => DeliveryStatus::Delivered,
            WebhookOutcome::Retry { .. } => DeliveryStatus::Pending,
            WebhookOutcome::GaveUp { .. } => DeliveryStatus::Failed,
        }
    }

    /// The HTTP status the receiver answered, if it answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            WebhookOutcome::Delivered { status } => Some(*status),
            WebhookOutcome::Retry { status, .. } | WebhookOutcome::GaveUp { status, .. } => *status,
        }
    }

    /// When a retry is due; `None` for the final outcomes.
    pub fn retry_at(&self) -> Option<OffsetDateTime> {
        match self {
            WebhookOutcome::Retry { at, .. } => Some(*at),
            _ => None,
        }
    }

    pub fn into_error(self) -> Option<String> {
        match self {
            WebhookOutcome::Delivered { .. } => None,
            WebhookOutcome::Retry { error, .. } | WebhookOutcome::GaveUp { error, .. } => error,
        }
    }
}
