//! `GET /jobs/{id}`, `GET /jobs`, `DELETE /jobs/{id}`. Another account's job is a 404.
use super::auth::Caller;
use super::error::ApiError;
use super::page::Page;
use super::prefer_wait;
use super::AppState;
use crate::domain::job::JobStatus;
use crate::store::{CancelRefusal, JobQuery};
use axum::extract::{Path, Query, State};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

fn job_id(raw: &str) -> Result<Uuid, ApiError> {
    // A malformed id cannot name any job: the same 404 as an unknown one.
    Uuid::parse_str(raw).map_err(|_| ApiError::job_not_found())
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    prefer_wait::Requested(wait): prefer_wait::Requested,
) -> Result<Response, ApiError> {
    poll(&state, caller, &id, wait).await
}

/// `GET /jobs/{id}` as the poll shortcut serves it (poll_shortcut.rs): the same extractors as
/// `get`, run by hand on the request's parts.
pub async fn get_from_parts(state: &AppState, parts: &mut Parts, id: &str) -> Response {
    use axum::extract::FromRequestParts;
    let caller = match Caller::from_request_parts(parts, state).await {
        Ok(caller) => caller,
        Err(refused) => return refused.into_response(),
    };
    let wait = prefer_wait::requested(&parts.headers);
    poll(state, caller, id, wait).await.into_response()
}

async fn poll(state: &AppState, caller: Caller, id: &str, wait: Option<Duration>) -> Result<Response, ApiError> {
    let job = state.store.shared_job(caller.account_id, job_id(id)?).await?.ok_or_else(ApiError::job_not_found)?;
    let Some(wait) = wait else {
        return Ok(job_response(state.job_body(&job).await));
    };
    let job = Arc::new(prefer_wait::until_terminal(state, Arc::unwrap_or_clone(job), wait).await?);
    Ok(([prefer_wait::applied_header(wait)], job_response(state.job_body(&job).await)).into_response())
}

/// A job's JSON (`AppState::job_body`) as the response.
fn job_response(body: Result<axum::body::Bytes, serde_json::Error>) -> Response {
    match body {
        Ok(body) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not render a job");
            ApiError::of(crate::api::error::ErrorCode::InternalError, "Internal error.").into_response()
        }
    }
}

pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.store.cancel(caller.account_id, job_id(&id)?).await? {
        Ok(job) => Ok(Json(state.view(&job).await).into_response()),
        Err(CancelRefusal::NotFound) => Err(ApiError::job_not_found()),
        Err(CancelRefusal::AlreadyTerminal(status)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            crate::api::error::ErrorCode::JobFinished,
            format!("The job is already {} and cannot be cancelled.", status.as_str()),
        )),
    }
}

#[derive(Deserialize)]
pub struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
    status: Option<String>,
    types: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let page = Page::parse(params.limit.as_deref(), params.cursor.as_deref())?;
    let status = match params.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(JobStatus::parse(text).ok_or_else(|| {
            let all: Vec<_> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::bad_request(format!("`status` must be one of {}.", all.join(", ")))
        })?),
    };
    let kinds: Vec<String> = params
        .types
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .take(32)
        .collect();
    let query = JobQuery { before: page.before, limit: page.limit, status, kinds };
    let jobs = state.store.list_jobs(caller.account_id, query).await?;
    let mut items = Vec::with_capacity(jobs.len());
    for job in &jobs {
        items.push(state.view(job).await);
    }
    Ok(Json(page.json(items, jobs.last().map(|j| j.created_at))))
}
