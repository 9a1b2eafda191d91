//! The admin HTTP API under `/admin/v1`: what the `admin` CLI does, for operators' tools. Every
//! route needs an admin token (`ltx-serve admin token create`); none exists until an operator
//! makes one, so the API is closed by default. The handlers call the same actions as the CLI
//! (crate::admin) and answer their JSON. Not in the public `/openapi.json`.
mod accounts;
mod auth;
mod jobs;

use super::error::{ApiError, ErrorCode};
use super::AppState;
use crate::admin::AdminError;
use axum::routing::{delete, get, post};
use axum::Router;

/// The admin API's routes, relative to `/admin/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/accounts", post(accounts::create).get(accounts::list))
        .route("/accounts/{id}", get(accounts::show).patch(accounts::update))
        .route("/accounts/{id}/suspend", post(accounts::suspend))
        .route("/accounts/{id}/unsuspend", post(accounts::unsuspend))
        .route("/accounts/{id}/credits", post(accounts::credit))
        .route("/accounts/{id}/ledger", get(accounts::ledger))
        .route("/accounts/{id}/usage", get(accounts::usage))
        .route("/accounts/{id}/keys", post(accounts::create_key))
        .route("/accounts/{id}/keys/{key_id}", delete(accounts::revoke_key))
        .route("/jobs/{id}", get(jobs::show).delete(jobs::cancel))
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        match e {
            AdminError::NotFound(what) => ApiError::not_found(capitalised(what)),
            AdminError::Invalid(why) => ApiError::bad_request(capitalised(why)),
            AdminError::JobFinished(why) => ApiError::of(ErrorCode::JobFinished, capitalised(why)),
            AdminError::Store(e) => e.into(),
        }
    }
}

/// The CLI's lower-case message as an API sentence.
fn capitalised(text: String) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => {
            let sentence = first.to_uppercase().chain(chars).collect::<String>();
            if sentence.ends_with('.') {
                sentence
            } else {
                sentence + "."
            }
        }
        None => text,
    }
}

/// A path id: malformed names nothing, the same 404 as an unknown one.
fn path_id(raw: &str, what: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("No {what} with id {raw:.64}.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_errors_keep_their_codes() {
        let cases = [
            (AdminError::NotFound("no account with id x".into()), 404, "not_found", "No account with id x."),
            (
                AdminError::Invalid("the limit must be from 1 to 1000".into()),
                400,
                "invalid_request",
                "The limit must be from 1 to 1000.",
            ),
            (
                AdminError::JobFinished("the job is already completed".into()),
                409,
                "job_finished",
                "The job is already completed.",
            ),
        ];
        for (error, status, code, message) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status.as_u16(), api.code.as_str(), api.message.as_str()), (status, code, message));
        }
    }
}
