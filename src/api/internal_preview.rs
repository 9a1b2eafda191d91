//! `POST /internal/v1/leases/{job}/{lease}/preview`: a remote worker publishes a first-stage
//! preview (`--intermediate-previews`) it uploaded as `preview.mp4` and `preview.jpg`. The files
//! go to result storage under their own unguessable directory, like a final clip, and the job
//! shows them as `intermediate-complete` until it completes.
use super::error::ApiError;
use super::internal::{lease_error, staging_dir, store_uploaded, WorkerCaller, RESULT_FILES};
use super::AppState;
use crate::store::{JobResult, LeaseRef};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use uuid::Uuid;

pub async fn publish(
    _: WorkerCaller,
    State(state): State<AppState>,
    Path((job_id, lease_id)): Path<(Uuid, Uuid)>,
    Json(preview): Json<JobResult>,
) -> Result<StatusCode, ApiError> {
    // `put` moves the files out of staging (local storage), so the final clip's uploads that
    // follow never mix with them.
    let stored = store_uploaded(&state, lease_id, [RESULT_FILES[2], RESULT_FILES[3]], "publishing it").await?;
    let dir = staging_dir(&state, lease_id);
    let _ = tokio::fs::remove_file(dir.join(RESULT_FILES[2])).await;
    let _ = tokio::fs::remove_file(dir.join(RESULT_FILES[3])).await;
    let preview = JobResult { video_key: stored.video_key.clone(), poster_key: stored.poster_key.clone(), ..preview };
    match state.store.publish_preview(LeaseRef { job_id, lease_id }, preview).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e) => {
            state.results.remove(&stored).await;
            Err(lease_error(e, "the preview was discarded"))
        }
    }
}
