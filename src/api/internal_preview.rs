//! `POST /internal/v1/leases/{job}/{lease}/preview`: a remote worker publishes a first-stage
//! preview (`--intermediate-previews`) it uploaded as `preview.mp4` and `preview.jpg`. The files
//! go to result storage under their own unguessable directory, like a final clip, and the job
//! shows them as `intermediate-complete` until it completes.
use super::error::ApiError;
use super::internal::{finish_error, finish_uploaded, staging_dir, WorkerCaller};
use super::AppState;
use crate::leasing::{Finish, FinishError};
use crate::store::{JobResult, LeaseRef};
use crate::worker_protocol::UploadFile;
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
    let lease = LeaseRef { job_id, lease_id };
    let files = UploadFile::PREVIEW;
    let finished = finish_uploaded(&state, lease, files, preview, Finish::Preview, "publishing it").await?;
    // Stored (`put` moves local files out of staging; S3 copies them): the final clip's
    // uploads that follow never mix with them.
    if !matches!(finished, Err(FinishError::Storage(_))) {
        let dir = staging_dir(&state, lease_id);
        for file in files {
            let _ = tokio::fs::remove_file(dir.join(file.name())).await;
        }
    }
    finished.map_err(|e| finish_error(e, "the preview was discarded"))?;
    Ok(StatusCode::NO_CONTENT)
}
