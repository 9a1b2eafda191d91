//! The webhook outbox: a terminal job's delivery is claimed once, then delivered, retried when
//! due, or given up for good; a claim that is never recorded runs out; a new delivery wakes the
//! dispatcher.
use super::{account, new_job, result};
use ltx_serve::store::*;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

async fn a_terminal_job_with_a_webhook_is_claimed_once(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 10_000_000, 10, 0).await;
    let mut job = new_job(acct.id, 1000);
    job.webhook_url = Some("https://example.com/hook".into());
    let job = store.submit(job).await.unwrap().unwrap();
    assert!(store.claim_due_webhooks(10, Duration::from_secs(60)).await.unwrap().is_empty(), "nothing before the end");
    let lease = store.lease(WorkerLease::named("w"), Duration::from_secs(60)).await.unwrap().unwrap();
    store.complete(lease.lease, result()).await.unwrap();
    let claimed = store.claim_due_webhooks(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed.iter().map(|d| (d.job_id, d.attempts)).collect::<Vec<_>>(), vec![(job.id, 1)]);
    assert!(store.claim_due_webhooks(10, Duration::from_secs(60)).await.unwrap().is_empty(), "hidden while claimed");
    store.record_webhook(claimed[0].id.clone(), WebhookOutcome::Delivered { status: 204 }).await.unwrap();
    let state = store.job(acct.id, job.id).await.unwrap().unwrap().webhook.unwrap();
    assert_eq!((state.status.as_str(), state.attempts, state.last_status), ("delivered", 1, Some(204)));
}

fn hooked_job(account: Uuid) -> NewJob {
    let mut job = new_job(account, 1000);
    job.webhook_url = Some("https://example.com/hook".into());
    job
}

/// A job with a webhook, run to completion: its delivery is due.
async fn finished_hooked_job(store: &dyn Store, account: Uuid) -> Uuid {
    let job = store.submit(hooked_job(account)).await.unwrap().unwrap();
    let lease = store.lease(WorkerLease::named("w"), Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(lease.job.id, job.id);
    store.complete(lease.lease, result()).await.unwrap();
    job.id
}

async fn webhook_state(store: &dyn Store, account: Uuid, job: Uuid) -> WebhookState {
    store.job(account, job).await.unwrap().unwrap().webhook.unwrap()
}

async fn a_retried_delivery_comes_back_once_due_as_the_same_message(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 10_000_000, 10, 0).await;
    let job = finished_hooked_job(store, acct.id).await;
    let claimed = store.claim_due_webhooks(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let due = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(300);
    let retry = WebhookOutcome::Retry { status: Some(503), error: Some("unavailable".into()), at: due };
    store.record_webhook(claimed[0].id.clone(), retry).await.unwrap();
    let state = webhook_state(store, acct.id, job).await;
    assert_eq!(
        (state.status.as_str(), state.attempts, state.last_status, state.last_error.as_deref()),
        ("pending", 1, Some(503), Some("unavailable"))
    );
    assert!((state.next_attempt_at.unwrap() - due).abs() < time::Duration::milliseconds(1), "retried when asked");
    assert!(store.claim_due_webhooks(10, Duration::from_secs(60)).await.unwrap().is_empty(), "not before it is due");

    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = store.claim_due_webhooks(10, Duration::from_secs(60)).await.unwrap();
    let seen = |d: &WebhookDelivery| (d.id.clone(), d.job_id, d.account_id, d.url.clone(), d.attempts);
    let first = WebhookDelivery { attempts: 2, ..claimed[0].clone() };
    assert_eq!(again.iter().map(seen).collect::<Vec<_>>(), vec![seen(&first)], "the same message, second attempt");
    assert_eq!((first.job_id, first.account_id, first.url.as_str()), (job, acct.id, "https://example.com/hook"));
    store.record_webhook(again[0].id.clone(), WebhookOutcome::Delivered { status: 200 }).await.unwrap();
    let state = webhook_state(store, acct.id, job).await;
    assert_eq!(
        (state.status.as_str(), state.attempts, state.last_status, state.last_error, state.next_attempt_at),
        ("delivered", 2, Some(200), None, None)
    );
}

async fn a_delivery_given_up_is_never_claimed_again(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 10_000_000, 10, 0).await;
    let job = finished_hooked_job(store, acct.id).await;
    let claimed = store.claim_due_webhooks(10, Duration::from_millis(50)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let gave_up = WebhookOutcome::GaveUp { status: Some(410), error: Some("gone".into()) };
    store.record_webhook(claimed[0].id.clone(), gave_up).await.unwrap();
    let failed = webhook_state(store, acct.id, job).await;
    assert_eq!(
        (
            failed.status.as_str(),
            failed.attempts,
            failed.last_status,
            failed.last_error.as_deref(),
            failed.next_attempt_at
        ),
        ("failed", 1, Some(410), Some("gone"), None)
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        store.claim_due_webhooks(10, Duration::from_secs(60)).await.unwrap().is_empty(),
        "past the claim: still not"
    );
    // An outcome that arrives after the delivery ended changes nothing.
    let late = WebhookOutcome::Retry { status: None, error: None, at: time::OffsetDateTime::now_utc() };
    store.record_webhook(claimed[0].id.clone(), late).await.unwrap();
    assert_eq!(webhook_state(store, acct.id, job).await, failed);
    assert!(store.claim_due_webhooks(10, Duration::from_secs(60)).await.unwrap().is_empty());
}

async fn a_claim_left_unrecorded_runs_out_and_the_delivery_is_claimed_again(store: Arc<dyn Store>) {
    let store = &*store;
    let acct = account(store, 10_000_000, 10, 0).await;
    let (a, b) = (finished_hooked_job(store, acct.id).await, finished_hooked_job(store, acct.id).await);
    let first = store.claim_due_webhooks(1, Duration::from_millis(100)).await.unwrap();
    assert_eq!(first.iter().map(|d| d.job_id).collect::<Vec<_>>(), vec![a], "the limit, oldest first");
    let second = store.claim_due_webhooks(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(second.iter().map(|d| d.job_id).collect::<Vec<_>>(), vec![b]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The dispatcher holding the first claim died: the delivery is due again, as the next attempt.
    let again = store.claim_due_webhooks(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(again.iter().map(|d| (d.id.clone(), d.attempts)).collect::<Vec<_>>(), vec![(first[0].id.clone(), 2)]);
}

async fn a_finished_job_with_a_webhook_wakes_the_dispatcher(store: Arc<dyn Store>) {
    let acct = account(&*store, 100_000_000, 100, 0).await;
    let signal = store.webhook_signal();
    // PostgreSQL forwards the wake-up through LISTEN, which the store starts beside `connect`: a
    // delivery added before it listens wakes nobody, so a few are tried.
    let mut woken = false;
    for _ in 0..10 {
        let mut notified = std::pin::pin!(signal.notified());
        notified.as_mut().enable();
        finished_hooked_job(&*store, acct.id).await;
        if tokio::time::timeout(Duration::from_secs(1), notified).await.is_ok() {
            woken = true;
            break;
        }
    }
    assert!(woken, "no delivery woke the waiting dispatcher");
}

crate::conformance!(
    a_terminal_job_with_a_webhook_is_claimed_once,
    a_retried_delivery_comes_back_once_due_as_the_same_message,
    a_delivery_given_up_is_never_claimed_again,
    a_claim_left_unrecorded_runs_out_and_the_delivery_is_claimed_again,
    a_finished_job_with_a_webhook_wakes_the_dispatcher,
);
