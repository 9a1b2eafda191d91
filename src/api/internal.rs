//! The internal worker API that remote workers (`ltx-serve worker`) use, authenticated by
//! worker tokens (`admin worker-token create`). Every report names its lease; a report from a
//! lease that was lost (cancelled, expired, taken over) gets 409 and changes nothing. The
//! messages and paths are the ones of `worker_protocol`, which the worker client speaks too.
use super::error::ApiError;
use super::AppState;
use crate::domain::api_key;
use crate::domain::job::JobStatus;
use crate::leasing::{finish, lease_within, work_item, Finish, FinishError};
use crate::store::{JobResult, LeaseRef, StoreError, WorkerLease};
use crate::worker_protocol::{
    self as protocol, paths, Fail, Heartbeat, Hello, LeaseRequest, UploadFile, PROTOCOL_HEADER, PROTOCOL_VERSION,
};
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The longest a lease request waits for work.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// The worker API's routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::HELLO, get(hello))
        .route(paths::LEASE, post(lease))
        .route(paths::HEARTBEAT, post(heartbeat))
        .route(paths::UPLOAD, put(upload))
        .route(paths::COMPLETE, post(complete))
        .route(paths::PREVIEW, post(super::internal_preview::publish))
        .route(paths::FAIL, post(fail))
        .route(paths::HAND_BACK, post(hand_back))
        .route(paths::KEPT_FILE, get(kept_file))
}

/// A caller holding a valid worker token and speaking our protocol version (a worker that
/// names none speaks the first).
pub struct WorkerCaller;

impl FromRequestParts<AppState> for WorkerCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<WorkerCaller, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(api_key::parse_authorization)
            .ok_or_else(|| ApiError::unauthorized("Missing or malformed worker token."))?;
        // One secret comparison whether or not the token id exists (`verify`).
        let token = state.store.worker_token(presented.key_id).await?;
        if !api_key::verify(presented.secret, token.as_ref().map(|t| (t.secret_hash.as_str(), t.revoked))) {
            return Err(ApiError::unauthorized("Invalid or revoked worker token."));
        }
        let sent = parts.headers.get(PROTOCOL_HEADER).map(|v| v.to_str().unwrap_or("(not text)"));
        protocol::check_version(sent).map_err(ApiError::bad_request)?;
        Ok(WorkerCaller)
    }
}

pub(super) fn lease_lost(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        crate::api::error::ErrorCode::LeaseLost,
        format!("The lease is no longer held (cancelled, expired or taken over); {what}."),
    )
}

pub(super) fn lease_error(e: StoreError, what: &str) -> ApiError {
    match e {
        StoreError::LeaseLost => lease_lost(what),
        other => other.into(),
    }
}

pub async fn hello(_: WorkerCaller, State(state): State<AppState>) -> Json<Hello> {
    Json(Hello {
        version: env!("CARGO_PKG_VERSION").into(),
        protocol: PROTOCOL_VERSION,
        lease_ttl_ms: state.config.lease_ttl.as_millis() as u64,
        heartbeat_every_ms: protocol::heartbeat_interval(state.config.lease_ttl).as_millis() as u64,
        kept_files_url: format!("{}/files/", state.public_url),
    })
}

/// A kept file (an asset used as an input image, a LoRA) for a worker, streamed from storage.
pub async fn kept_file(
    _: WorkerCaller,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let valid = key.split('/').count() == 2
        && (key.starts_with("assets/") || key.starts_with("styles/"))
        && !key.contains("..");
    if !valid {
        return Err(ApiError::not_found("No such file."));
    }
    match state.results.stream_file(&key).await {
        Ok(stream) => Ok(Body::from_stream(stream).into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::not_found("No such file.")),
        Err(e) => Err(ApiError::from(StoreError::Unavailable(format!("kept file: {e}")))),
    }
}

/// Long poll: a job (200) or, after waiting up to `wait_ms`, nothing (204).
pub async fn lease(
    _: WorkerCaller,
    State(state): State<AppState>,
    Json(ask): Json<LeaseRequest>,
) -> Result<Response, ApiError> {
    if ask.worker.name.is_empty() || ask.worker.name.len() > 200 {
        return Err(ApiError::bad_request("`worker.name` must be 1 to 200 characters."));
    }
    state.store.record_worker(ask.worker.clone()).await?;
    let who = WorkerLease::named(ask.worker.name.clone())
        .preferring(ask.worker.resident_style_sets.clone(), state.config.affinity_max_wait);
    let wait = Duration::from_millis(ask.wait_ms).min(MAX_WAIT);
    match lease_within(&*state.store, &who, state.config.lease_ttl, wait, &CancellationToken::new()).await? {
        Some(lease) => Ok(Json(work_item(&*state.store, lease).await?).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

pub async fn heartbeat(
    _: WorkerCaller,
    State(state): State<AppState>,
    Path((job_id, lease_id)): Path<(Uuid, Uuid)>,
    Json(body): Json<Heartbeat>,
) -> Result<StatusCode, ApiError> {
    let update = body.progress().map_err(ApiError::bad_request)?;
    let lease = LeaseRef { job_id, lease_id };
    match state.store.heartbeat(lease, update, state.config.lease_ttl).await {
        Ok(()) => {}
        Err(StoreError::LeaseLost) => {
            // Tell the worker why, so it can say so in its log.
            let why = match state.store.job_status(job_id).await? {
                Some(JobStatus::Cancelled) => "the job was cancelled; stop working on it",
                _ => "stop working on this job",
            };
            return Err(lease_lost(why));
        }
        Err(e) => return Err(e.into()),
    }
    state.store.touch_worker(body.worker).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Where a lease's uploads wait for its `complete`: in the data dir (so moving them into local
/// storage is a rename) but outside the served results.
pub(super) fn staging_dir(state: &AppState, lease_id: Uuid) -> std::path::PathBuf {
    uploads_root(&state.config.data_dir).join(lease_id.simple().to_string())
}

pub fn uploads_root(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("uploads")
}

/// Removes uploads of leases that never completed (their worker died mid-upload): anything
/// staged longer ago than `older_than`.
pub fn remove_stale_uploads(data_dir: &std::path::Path, older_than: Duration) -> usize {
    let stale = |entry: &std::fs::DirEntry| {
        let age = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        age.is_some_and(|age| age > older_than)
    };
    let mut removed = 0;
    for entry in std::fs::read_dir(uploads_root(data_dir)).into_iter().flatten().flatten() {
        if stale(&entry) && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    // Asset and style uploads staged by a process that died before it could delete them.
    for entry in std::fs::read_dir(data_dir.join("tmp")).into_iter().flatten().flatten() {
        let staged = entry.file_name().to_string_lossy().starts_with("upload-");
        if staged && stale(&entry) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Streams one result file to disk (never whole in memory), up to the upload limit.
pub async fn upload(
    _: WorkerCaller,
    State(state): State<AppState>,
    Path((job_id, lease_id, name)): Path<(Uuid, Uuid, String)>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    if UploadFile::parse(&name).is_none() {
        let names = UploadFile::ALL.map(UploadFile::name);
        return Err(ApiError::not_found(format!("A result file is one of {names:?}.")));
    }
    // A cancelled or expired lease uploads nothing (the worker stops on the 409).
    if !state.store.lease_is_held(LeaseRef { job_id, lease_id }).await? {
        return Err(lease_lost("the upload was refused"));
    }
    let dir = staging_dir(&state, lease_id);
    let io = |e: std::io::Error| ApiError::from(StoreError::Unavailable(format!("result staging: {e}")));
    tokio::fs::create_dir_all(&dir).await.map_err(io)?;
    let path = dir.join(&name);
    let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
    let mut stream = body.into_data_stream();
    let mut written: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("The upload broke off: {e}")))?;
        written += chunk.len() as u64;
        if written > state.config.max_upload_bytes {
            drop(file);
            let _ = tokio::fs::remove_file(&path).await;
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                crate::api::error::ErrorCode::PayloadTooLarge,
                "The result file is too large.",
            ));
        }
        file.write_all(&chunk).await.map_err(io)?;
    }
    // A failed background write (ENOSPC) surfaces at flush, not at sync_all: without it a full
    // disk would keep a truncated result.
    file.flush().await.map_err(io)?;
    file.sync_all().await.map_err(io)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn complete(
    _: WorkerCaller,
    State(state): State<AppState>,
    Path((job_id, lease_id)): Path<(Uuid, Uuid)>,
    Json(result): Json<JobResult>,
) -> Result<StatusCode, ApiError> {
    let lease = LeaseRef { job_id, lease_id };
    let finished =
        finish_uploaded(&state, lease, UploadFile::RESULT, result, Finish::Complete, "completing it").await?;
    // The uploads are done with once stored, whatever the store said.
    if !matches!(finished, Err(FinishError::Storage(_))) {
        let _ = tokio::fs::remove_dir_all(staging_dir(&state, lease_id)).await;
    }
    finished.map_err(|e| finish_error(e, "the result was discarded"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Finishes a lease with a clip and its poster that the worker uploaded for it (a 400 naming
/// them when one is missing), through the completion path in-process workers take too.
pub(super) async fn finish_uploaded(
    state: &AppState,
    lease: LeaseRef,
    files: [UploadFile; 2],
    result: JobResult,
    what: Finish,
    before: &str,
) -> Result<Result<(), FinishError>, ApiError> {
    let dir = staging_dir(state, lease.lease_id);
    let [video, poster] = files.map(|f| dir.join(f.name()));
    if !video.is_file() || !poster.is_file() {
        let [video, poster] = files.map(UploadFile::name);
        return Err(ApiError::bad_request(format!("Upload {video} and {poster} for this lease before {before}.")));
    }
    Ok(finish(&*state.store, &state.results, lease, [&video, &poster], result, what).await)
}

/// The answer to a finish that failed: 503 when result storage did not take the files, 409
/// when the lease was lost.
pub(super) fn finish_error(e: FinishError, what: &str) -> ApiError {
    match e {
        FinishError::Storage(e) => ApiError::from(StoreError::Unavailable(format!("result storage: {e}"))),
        FinishError::Store(e) => lease_error(e, what),
    }
}

pub async fn fail(
    _: WorkerCaller,
    State(state): State<AppState>,
    Path((job_id, lease_id)): Path<(Uuid, Uuid)>,
    Json(body): Json<Fail>,
) -> Result<StatusCode, ApiError> {
    let (code, message) = body.parse().map_err(ApiError::bad_request)?;
    let _ = tokio::fs::remove_dir_all(staging_dir(&state, lease_id)).await;
    state
        .store
        .fail(LeaseRef { job_id, lease_id }, code, message)
        .await
        .map_err(|e| lease_error(e, "nothing changed"))?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn hand_back(
    _: WorkerCaller,
    State(state): State<AppState>,
    Path((job_id, lease_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let _ = tokio::fs::remove_dir_all(staging_dir(&state, lease_id)).await;
    state.store.hand_back(LeaseRef { job_id, lease_id }).await.map_err(|e| lease_error(e, "nothing changed"))?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stale_uploads_are_removed() {
        let data = tempfile::tempdir().unwrap();
        let staged = uploads_root(data.path()).join("lease-a");
        std::fs::create_dir_all(&staged).unwrap();
        std::fs::write(staged.join("video.mp4"), b"partial").unwrap();
        let tmp = data.path().join("tmp");
        std::fs::create_dir_all(tmp.join("loras")).unwrap();
        std::fs::write(tmp.join("upload-abc"), b"half an asset").unwrap();
        assert_eq!(remove_stale_uploads(data.path(), Duration::from_secs(3600)), 0, "fresh uploads stay");
        assert!(staged.exists());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(remove_stale_uploads(data.path(), Duration::from_millis(10)), 2);
        assert!(!staged.exists() && !tmp.join("upload-abc").exists());
        assert!(tmp.join("loras").exists(), "the LoRA cache is not an upload");
        assert_eq!(remove_stale_uploads(tempfile::tempdir().unwrap().path(), Duration::ZERO), 0, "no uploads dir");
    }
}
