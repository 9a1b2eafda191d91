//! `Authorization: Bearer <key>` or `Key <key>` → the calling account. Unknown, malformed and
//! revoked keys all get the same 401 so the answer reveals nothing about which keys exist.
use super::error::{ApiError, ErrorCode};
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
                found.map(std::sync::Arc::new)
            }
        };
        match caller_of(presented.secret, record.as_deref()) {
            Verdict::Opens(account_id) => {
                let own_limit = record.as_ref().and_then(|k| k.rate_limit_per_minute);
                super::rate_limit::admit(&state.rate_limiter, presented.key_id, own_limit)?;
                Ok(Caller { account_id })
            }
            Verdict::Suspended => Err(ApiError::of(
                ErrorCode::AccountSuspended,
                "This account is suspended; contact the operator of this service.",
            )),
            Verdict::Refused => Err(ApiError::unauthorized("Invalid or revoked API key.")),
        }
    }
}

/// What a presented key gets.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Opens(Uuid),
    /// The right secret of a live key whose account the operator suspended (said only to a
    /// caller who proved they hold the key).
    Suspended,
    Refused,
}

/// The account a presented secret opens, given what the store holds for its key id. The secret
/// is hashed and compared once whether the id is known, revoked or unknown. A suspended
/// account's flag comes with its key record (and so from the key cache): no extra read.
fn caller_of(secret: &str, record: Option<&KeyRecord>) -> Verdict {
    let stored = record.map(|k| (k.secret_hash.as_str(), k.revoked));
    let opens = api_key::verify(secret, stored);
    match record.filter(|_| opens) {
        Some(key) if key.account_suspended => Verdict::Suspended,
        Some(key) => Verdict::Opens(key.account_id),
        None => Verdict::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_id_costs_the_same_secret_check_as_a_known_one() {
        let key = api_key::generate();
        let secret = api_key::parse_key(&key.token).unwrap().secret;
        let record = |revoked, account_suspended| KeyRecord {
            key_id: key.key_id,
            account_id: Uuid::nil(),
            secret_hash: key.secret_hash.clone(),
            revoked,
            account_suspended,
            rate_limit_per_minute: None,
        };
        let (live, revoked) = (record(false, false), record(true, false));
        let (suspended, suspended_and_revoked) = (record(false, true), record(true, true));
        let cases = [
            ("known", Some(&live), secret, Verdict::Opens(Uuid::nil())),
            ("wrong secret", Some(&live), "wrong", Verdict::Refused),
            ("revoked", Some(&revoked), secret, Verdict::Refused),
            ("unknown id", None, secret, Verdict::Refused),
            ("suspended account", Some(&suspended), secret, Verdict::Suspended),
            ("suspended, wrong secret: says nothing of the account", Some(&suspended), "wrong", Verdict::Refused),
            ("suspended and revoked", Some(&suspended_and_revoked), secret, Verdict::Refused),
        ];
        for (what, record, presented, opens) in cases {
            let before = api_key::comparisons_on_this_thread();
            assert_eq!(caller_of(presented, record), opens, "{what}");
            assert_eq!(api_key::comparisons_on_this_thread() - before, 1, "{what}: one hash comparison");
        }
    }
}
