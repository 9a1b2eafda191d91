//! `Authorization: Bearer <key>` or `Key <key>` → the calling account. Unknown, malformed and
//! revoked keys all get the same 401 so the answer reveals nothing about which keys exist.
use super::error::ApiError;
use super::AppState;
use crate::domain::api_key;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use uuid::Uuid;

pub struct Caller {
    pub account_id: Uuid,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized("Missing API key: send `Authorization: Bearer <key>`."));
        };
        let presented = value.to_str().ok().and_then(api_key::parse_authorization).ok_or_else(|| {
            ApiError::unauthorized("Malformed API key: send `Authorization: Bearer <key-id>:<secret>`.")
        })?;
        let record = match state.key_cache.get(presented.key_id) {
            Some(hit) => Some(hit),
            None => {
                let found = state.store.key(presented.key_id).await?;
                if let Some(record) = &found {
                    state.key_cache.put(record.clone());
                }
                found
            }
        };
        match record {
            Some(key) if !key.revoked && api_key::secret_matches(&presented.secret, &key.secret_hash) => {
                Ok(Caller { account_id: key.account_id })
            }
            _ => Err(ApiError::unauthorized("Invalid or revoked API key.")),
        }
    }
}
