//! The webhook dispatcher: claims due outbox rows, POSTs the job's JSON signed with the
//! Standard Webhooks scheme, and records the outcome — any 2xx ends a delivery; anything else
//! is retried with exponential backoff and jitter for about a day, then marked failed. Many
//! deliveries run at once, so one slow receiver never holds up the others.
use crate::domain::webhook::{retry_delay, sign};
use crate::fetch::{check_url, guarded_client, UrlPolicy};
use crate::job_view::{job_json, result_urls};
use crate::store::{Accounts, Jobs, Outbox, WebhookDelivery, WebhookOutcome};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct DispatcherConfig {
    pub policy: UrlPolicy,
    pub results: Arc<crate::storage::ResultStorage>,
    /// Delay before the first retry; later ones double (capped at an hour).
    pub retry_base: Duration,
    pub timeout: Duration,
    /// Retries stop this long after the job ended; the delivery is then marked failed.
    pub horizon: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

/// Reads the job and its account (for the body and the signing secret) besides the outbox.
pub fn spawn<S: Outbox + Jobs + Accounts + ?Sized>(
    store: Arc<S>,
    config: DispatcherConfig,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = guarded_client(config.policy, config.timeout);
        let slots = Arc::new(Semaphore::new(config.concurrency));
        let signal = store.webhook_signal();
        // A claim outlives the longest attempt, so only a dead dispatcher's claims come back.
        let claim_for = config.timeout + Duration::from_secs(30);
        while !shutdown.is_cancelled() {
            let notified = signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let free = slots.available_permits() as u32;
            let claimed = if free == 0 { Ok(Vec::new()) } else { store.claim_due_webhooks(free, claim_for).await };
            let claimed = claimed.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "claiming webhook deliveries failed");
                Vec::new()
            });
            let busy = claimed.len() as u32 == free;
            for delivery in claimed {
                let permit = slots.clone().acquire_owned().await.expect("never closed");
                let (store, client, config) = (store.clone(), client.clone(), config.clone());
                tokio::spawn(async move {
                    deliver(&*store, &client, &config, delivery).await;
                    drop(permit);
                });
            }
            if !busy {
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
        // Let deliveries in flight finish (each is bounded by the timeout).
        let _ = tokio::time::timeout(config.timeout, slots.acquire_many(config.concurrency as u32)).await;
    })
}

async fn deliver<S: Outbox + Jobs + Accounts + ?Sized>(
    store: &S,
    client: &reqwest::Client,
    config: &DispatcherConfig,
    delivery: WebhookDelivery,
) {
    let id = delivery.id.clone();
    let outcome = attempt(store, client, config, &delivery).await;
    match &outcome {
        WebhookOutcome::Delivered { status } => {
            tracing::info!(webhook_id = %id, job_id = %delivery.job_id, status, "webhook delivered")
        }
        WebhookOutcome::Retry { status, error, .. } | WebhookOutcome::GaveUp { status, error } => {
            tracing::warn!(webhook_id = %id, job_id = %delivery.job_id, attempt = delivery.attempts, ?status, ?error, "webhook not delivered")
        }
    }
    let label = match &outcome {
        WebhookOutcome::Delivered { .. } => "delivered",
        WebhookOutcome::Retry { .. } => "retry",
        WebhookOutcome::GaveUp { .. } => "failed",
    };
    metrics::counter!("ltx_webhook_deliveries_total", "outcome" => label).increment(1);
    if let Err(e) = store.record_webhook(id, outcome).await {
        tracing::error!(error = %e, "could not record a webhook outcome; it will be retried");
    }
}

async fn attempt(
    store: &(impl Jobs + Accounts + ?Sized),
    client: &reqwest::Client,
    config: &DispatcherConfig,
    d: &WebhookDelivery,
) -> WebhookOutcome {
    let fail = |status: Option<u16>, error: Option<String>| {
        let now = OffsetDateTime::now_utc();
        if now - d.created_at >= config.horizon {
            WebhookOutcome::GaveUp { status, error }
        } else {
            let jitter = rand::random::<f64>() * 2.0 - 1.0;
            WebhookOutcome::Retry { status, error, at: now + retry_delay(d.attempts, config.retry_base, jitter) }
        }
    };
    // Checked again at delivery: the rules may have changed since submit.
    let url = match check_url(&d.url, config.policy) {
        Ok(url) => url,
        Err(why) => return WebhookOutcome::GaveUp { status: None, error: Some(format!("the webhook URL {why}")) },
    };
    let (job, account) = match (store.job(d.account_id, d.job_id).await, store.account(d.account_id).await) {
        (Ok(Some(job)), Ok(account)) => (job, account),
        (Ok(None), _) => {
            return WebhookOutcome::GaveUp { status: None, error: Some("the job no longer exists".into()) }
        }
        _ => return fail(None, Some("the store was unavailable".into())),
    };
    let body = serde_json::to_vec(&job_json(&job, result_urls(&config.results, &job).await)).unwrap_or_default();
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let signature = match sign(&account.webhook_secret, &d.id, timestamp, &body) {
        Ok(signature) => signature,
        Err(e) => return WebhookOutcome::GaveUp { status: None, error: Some(e) },
    };
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => WebhookOutcome::Delivered { status: r.status().as_u16() },
        Ok(r) => fail(Some(r.status().as_u16()), None),
        Err(e) => fail(None, Some(describe(&e))),
    }
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}
