//! `Authorization: Bearer <admin-token>` → an operator. Admin tokens live in their own table, so
//! an API key never opens the admin API and an admin token never opens the public one (each
//! extractor looks only in its own table). Unknown, malformed, wrong and revoked tokens all get
//! the same 401, after one secret comparison whatever the case (`api_key::verify`). Tokens are
//! read from the store on each call, not cached: a revocation takes effect at once.
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::domain::api_key;
use crate::store::AdminTokenRecord;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use uuid::Uuid;

/// A caller holding a valid admin token.
pub struct Operator {
    /// The token's id (logged with what it changed).
    pub token_id: Uuid,
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Operator, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(api_key::parse_authorization)
            .ok_or_else(|| {
                ApiError::unauthorized("Missing or malformed admin token: send `Authorization: Bearer <token>`.")
            })?;
        let record = state.store.admin_token(presented.key_id).await?;
        if !opens(presented.secret, record.as_ref()) {
            return Err(ApiError::unauthorized("Invalid or revoked admin token."));
        }
        Ok(Operator { token_id: presented.key_id })
    }
}

/// Whether the secret opens the stored token; one comparison whether it is known, revoked or not.
fn opens(secret: &str, record: Option<&AdminTokenRecord>) -> bool {
    api_key::verify(secret, record.map(|t| (t.secret_hash.as_str(), t.revoked)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_secret_of_a_live_token_opens() {
        let token = api_key::generate();
        let secret = api_key::parse_key(&token.token).unwrap().secret;
        let record = |revoked| AdminTokenRecord { id: token.key_id, secret_hash: token.secret_hash.clone(), revoked };
        assert!(opens(secret, Some(&record(false))));
        assert!(!opens("wrong", Some(&record(false))));
        assert!(!opens(secret, Some(&record(true))), "revoked");
        assert!(!opens(secret, None), "unknown id");
    }
}
