//! `GET /jobs/{id}/events` (additive): Server-Sent Events of every change of a job's status,
//! progress and place in line, ending at its terminal state. It follows the store (not this
//! process's memory), so it works whichever replica ran the change; the reading is shared by
//! every stream of this process (job_watch.rs).
use super::auth::Caller;
use super::error::ApiError;
use super::job_watch::Latest;
use super::AppState;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use std::convert::Infallible;
use tokio::sync::watch;
use uuid::Uuid;

enum Cursor {
    /// The state the stream has not sent yet (the current one at first), and its event id.
    Next {
        updates: watch::Receiver<Latest>,
        seq: u64,
    },
    Done,
}

pub async fn stream_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::job_not_found())?;
    let job = state.store.job(caller.account_id, id).await?.ok_or_else(ApiError::job_not_found)?;
    let updates = state.job_watch.subscribe(caller.account_id, job);
    let events = stream::unfold(Cursor::Next { updates, seq: 0 }, move |cursor| {
        let state = state.clone();
        async move {
            let Cursor::Next { mut updates, seq } = cursor else { return None };
            // Every state after the first is one the watcher saw change.
            if seq > 0 && updates.changed().await.is_err() {
                return None;
            }
            // Gone or unreadable: end the stream; the client can reconnect and poll.
            let job = updates.borrow_and_update().clone()?;
            let event = Event::default()
                .event("job")
                .id(seq.to_string())
                .json_data(state.view(&job).await)
                .unwrap_or_else(|_| Event::default().comment("unserialisable job"));
            let next = if job.status.is_terminal() { Cursor::Done } else { Cursor::Next { updates, seq: seq + 1 } };
            Some((Ok(event), next))
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
