//! `GET /jobs/{id}/events` (additive): Server-Sent Events of every change of a job's status,
//! progress and place in line, ending at its terminal state. It follows the store (not this
//! process's memory), so it works whichever replica ran the change.
use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::store::Job;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use std::convert::Infallible;
use std::time::Duration;
use uuid::Uuid;

const POLL_EVERY: Duration = Duration::from_millis(200);

/// What a subscriber sees change.
fn fingerprint(job: &Job) -> (crate::domain::job::JobStatus, u64, Option<u64>) {
    (job.status, (job.progress * 1000.0).round() as u64, job.queue_position)
}

enum Cursor {
    Next { last: Option<(crate::domain::job::JobStatus, u64, Option<u64>)>, seq: u64 },
    Done,
}

pub async fn stream_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::job_not_found())?;
    let account = caller.account_id;
    state.store.job(account, id).await?.ok_or_else(ApiError::job_not_found)?;
    let events = stream::unfold(Cursor::Next { last: None, seq: 0 }, move |cursor| {
        let state = state.clone();
        async move {
            let Cursor::Next { last, seq } = cursor else { return None };
            loop {
                let job = match state.store.job(account, id).await {
                    Ok(Some(job)) => job,
                    // Gone or unreadable: end the stream; the client can reconnect and poll.
                    Ok(None) | Err(_) => return None,
                };
                let now = fingerprint(&job);
                if Some(now) != last {
                    let event = Event::default()
                        .event("job")
                        .id(seq.to_string())
                        .json_data(state.view(&job).await)
                        .unwrap_or_else(|_| Event::default().comment("unserialisable job"));
                    let next = if job.status.is_terminal() {
                        Cursor::Done
                    } else {
                        Cursor::Next { last: Some(now), seq: seq + 1 }
                    };
                    return Some((Ok(event), next));
                }
                tokio::time::sleep(POLL_EVERY).await;
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
