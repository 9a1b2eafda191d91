//! The internal worker API that remote workers (`ltx-serve worker`) use, authenticated by
//! worker tokens (`admin worker-token create`). Every report names its lease; a report from a
//! lease that was lost (cancelled, expired, taken over) gets 409 and changes nothing.
use super::error::ApiError;
use super::AppState;
use crate::domain::api_key;
use crate::domain::job::{FailureCode, JobStatus};
use crate::store::{JobResult, LeaseRef, Progress, StoreError, WorkerInfo, WorkerLease};
use crate::worker::queue::{lease_within, WorkItem};
use crate::worker::remote::Hello;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The longest a lease request waits for work.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// The files a worker uploads for a result, then for a first-stage preview
/// (`--intermediate-previews`, published by `internal_preview::publish`).
pub(super) const RESULT_FILES: [&str; 4] = ["video.mp4", "poster.jpg", "preview.mp4", "preview.jpg"];

/// A caller holding a valid worker token.
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
        match state.store.worker_token(presented.key_id).await? {
            Some(t) if !t.revoked && api_key::secret_matches(&presented.secret, &t.secret_hash) => Ok(WorkerCaller),
            _ => Err(ApiError::unauthorized("Invalid or revoked worker token.")),
        }
    }
}

pub(super) fn lease_lost(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "lease_lost",
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
        lease_ttl_ms: state.config.lease_ttl.as_millis() as u64,
        heartbeat_every_ms: crate::app::heartbeat_interval(state.config.lease_ttl).as_millis() as u64,
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

#[derive(Deserialize)]
pub struct LeaseRequest {
    worker: WorkerInfo,
    #[serde(default)]
    wait_ms: u64,
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
        Some(lease) => Ok(Json(WorkItem::of_lease(&*state.store, lease).await?).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

#[derive(Deserialize)]
pub struct HeartbeatBody {
    worker: String,
    status: String,
    progress: f64,
    #[serde(default)]
    engine: Option<String>,
}

pub async fn heartbeat(
    _: WorkerCaller,
    State(state): State<AppState>,
    Path((job_id, lease_id)): Path<(Uuid, Uuid)>,
    Json(body): Json<HeartbeatBody>,
) -> Result<StatusCode, ApiError> {
    let status = JobStatus::parse(&body.status).filter(|s| s.is_leased()).ok_or_else(|| {
        ApiError::bad_request(
            "`status` must be a running status (scheduled, processing, sampling, intermediate-complete).",
        )
    })?;
    let lease = LeaseRef { job_id, lease_id };
    let update = Progress { status, progress: body.progress, engine: body.engine.clone() };
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
    if !RESULT_FILES.contains(&name.as_str()) {
        return Err(ApiError::not_found(format!("A result file is one of {RESULT_FILES:?}.")));
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
                "payload_too_large",
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
    let stored = store_uploaded(&state, lease_id, [RESULT_FILES[0], RESULT_FILES[1]], "completing it").await?;
    let _ = tokio::fs::remove_dir_all(staging_dir(&state, lease_id)).await;
    let result = JobResult { video_key: stored.video_key.clone(), poster_key: stored.poster_key.clone(), ..result };
    match state.store.complete(LeaseRef { job_id, lease_id }, result).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(e) => {
            state.results.remove(&stored).await;
            Err(lease_error(e, "the result was discarded"))
        }
    }
}

/// Moves a clip and its poster that the worker uploaded for this lease into result storage (a
/// 400 naming them when one is missing); `put` takes them out of the staging dir.
pub(super) async fn store_uploaded(
    state: &AppState,
    lease_id: Uuid,
    [video, poster]: [&str; 2],
    before: &str,
) -> Result<crate::storage::StoredResult, ApiError> {
    let dir = staging_dir(state, lease_id);
    let (video_path, poster_path) = (dir.join(video), dir.join(poster));
    if !video_path.is_file() || !poster_path.is_file() {
        return Err(ApiError::bad_request(format!("Upload {video} and {poster} for this lease before {before}.")));
    }
    state
        .results
        .put(&video_path, &poster_path)
        .await
        .map_err(|e| ApiError::from(StoreError::Unavailable(format!("result storage: {e}"))))
}

#[derive(Deserialize)]
pub struct FailBody {
    code: String,
    message: String,
}

pub async fn fail(
    _: WorkerCaller,
    State(state): State<AppState>,
    Path((job_id, lease_id)): Path<(Uuid, Uuid)>,
    Json(body): Json<FailBody>,
) -> Result<StatusCode, ApiError> {
    let code = FailureCode::parse(&body.code).ok_or_else(|| ApiError::bad_request("Unknown failure `code`."))?;
    let message: String = body.message.chars().take(2000).collect();
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
