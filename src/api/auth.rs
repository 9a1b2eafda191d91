//! `Authorization: Bearer <key>` or `Key <key>` → the calling account. Unknown, malformed and
//! revoked keys all get the same 401 so the answer reveals nothing about which keys exist.
use super::error::ApiError;
use super::key_cache::Cached;
use super::AppState;
use crate::domain::api_key;
use crate::store::KeyRecord;
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
        // A known and an unknown id take the same path: both answer from the cache once looked
        // up (unknown ids are cached too), and both check the secret once (see `caller_of`).
        let record = match state.key_cache.get(presented.key_id) {
            Cached::Known(record) => Some(record),
            Cached::Unknown => None,
            Cached::Miss => {
                let found = state.store.key(presented.key_id).await?;
                state.key_cache.put(presented.key_id, found.as_ref());
                found
            }
        };
        match caller_of(&presented.secret, record.as_ref()) {
            Some(account_id) => Ok(Caller { account_id }),
            None => Err(ApiError::unauthorized("Invalid or revoked API key.")),
        }
    }
}

/// The account a presented secret opens, given what the store holds for its key id. The secret
/// is hashed and compared once whether the id is known, revoked or unknown.
fn caller_of(secret: &str, record: Option<&KeyRecord>) -> Option<Uuid> {
    let stored = record.map(|k| (k.secret_hash.as_str(), k.revoked));
    let opens = api_key::verify(secret, stored);
    record.filter(|_| opens).map(|k| k.account_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_id_costs_the_same_secret_check_as_a_known_one() {
        let key = api_key::generate();
        let secret = api_key::parse_key(&key.token).unwrap().secret;
        let record = |revoked| KeyRecord {
            key_id: key.key_id,
            account_id: Uuid::nil(),
            secret_hash: key.secret_hash.clone(),
            revoked,
        };
        let (live, revoked) = (record(false), record(true));
        let cases = [
            ("known", Some(&live), secret.as_str(), Some(Uuid::nil())),
            ("wrong secret", Some(&live), "wrong", None),
            ("revoked", Some(&revoked), secret.as_str(), None),
            ("unknown id", None, secret.as_str(), None),
        ];
        for (what, record, presented, opens) in cases {
            let before = api_key::comparisons_on_this_thread();
            assert_eq!(caller_of(presented, record), opens, "{what}");
            assert_eq!(api_key::comparisons_on_this_thread() - before, 1, "{what}: one hash comparison");
        }
    }
}
