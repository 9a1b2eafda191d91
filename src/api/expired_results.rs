//! `/results/…` where no file is: 410 `result_expired` when the retention sweeper deleted that
//! result (the store keeps a record of each deleted result directory), else 404. Only requests
//! for which ServeDir found no file come here, so serving a file never reads the store.
use super::error::ApiError;
use super::error_code::ErrorCode;
use super::job_view::rfc3339;
use super::AppState;
use crate::retention::policy::result_dir_of;
use axum::extract::State;
use axum::http::Uri;

pub async fn missing_result(State(state): State<AppState>, uri: Uri) -> ApiError {
    let path = uri.path();
    let Some(dir) = result_dir_of(path.strip_prefix("/results").unwrap_or(path)) else { return not_found() };
    match state.store.result_expired_at(dir.to_owned()).await {
        Ok(Some(at)) => ApiError::of(
            ErrorCode::ResultExpired,
            format!(
                "This result file was deleted on {} under the server's retention policy; the job remains \
                 (GET /jobs/{{id}}), its files do not.",
                rfc3339(at)
            ),
        ),
        Ok(None) => not_found(),
        Err(e) => e.into(),
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("No such file.")
}
