//! The one API error: an HTTP status, a stable machine-readable `code`, and a sentence under
//! `error` (Krea's shape; `code` is additive).
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub use super::error_code::ErrorCode;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// `status` must be the code's own (error_code.rs): debug builds (the tests) check it.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        debug_assert_eq!(status, code.status(), "`{}` is answered with its own status", code.as_str());
        ApiError { status, code, message: message.into(), retry_after_secs: None }
    }
    /// An error answered with its code's status.
    pub fn of(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::new(code.status(), code, message)
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::of(ErrorCode::InvalidRequest, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::of(ErrorCode::Unauthorized, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::of(ErrorCode::NotFound, message)
    }
    /// A request body that stopped arriving.
    pub fn body_stalled(idle: std::time::Duration) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Timeout,
            format!("The request body sent nothing for {} s and was cut off.", idle.as_secs()),
        )
    }
    pub fn job_not_found() -> ApiError {
        ApiError::not_found("The job was not found or the client is not authorized to see it.")
    }
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after_secs = Some(secs);
        self
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        use crate::store::StoreError;
        match e {
            StoreError::NotFound => ApiError::not_found("Not found."),
            StoreError::Unavailable(detail) | StoreError::Conflict(detail) => {
                tracing::warn!(error = %detail, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "The service is temporarily unavailable; retry shortly.",
                )
                .retry_after(2)
            }
            other => {
                tracing::error!(error = %other, "internal error");
                ApiError::of(ErrorCode::InternalError, "Internal error.")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(json!({ "error": self.message, "code": self.code.as_str() }))).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Gives error responses made outside our handlers (unknown route, wrong method, bad path
/// parameter, timeouts) the same `{error, code}` body.
pub fn with_json_error_body(response: Response) -> Response {
    let status = response.status();
    let is_json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "No such resource.".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => {
            (ErrorCode::MethodNotAllowed, "This method is not allowed on this resource.".to_owned())
        }
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::PayloadTooLarge, "The request body is too large.".to_owned()),
        StatusCode::REQUEST_TIMEOUT => (ErrorCode::Timeout, "The request took too long.".to_owned()),
        s if s.is_client_error() => {
            (ErrorCode::InvalidRequest, format!("Invalid request ({}).", s.canonical_reason().unwrap_or("error")))
        }
        _ => (ErrorCode::InternalError, "Internal error.".to_owned()),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    // The framework's status is kept: a 415 or a 504 stays one, under the nearest code.
    let mut fresh = ApiError { status, code, message, retry_after_secs: None }.into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
}
