//! `Prefer: wait=N` (RFC 7240, additive): hold a response up to N seconds (at most 60) until
//! the job reaches a terminal state, then answer with the job as it is.
use super::AppState;
use crate::store::{Job, StoreResult};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;
use tokio::time::Instant;

pub const MAX_WAIT: Duration = Duration::from_secs(60);
const POLL_EVERY: Duration = Duration::from_millis(100);
/// As a `HeaderName`, not a `&str` (which is parsed and checked on every lookup): every poll
/// looks.
const PREFER: HeaderName = HeaderName::from_static("prefer");

/// The wait a request asks for, capped at `MAX_WAIT`; None when it asks for none.
pub fn requested(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all(PREFER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|pref| pref.trim().strip_prefix("wait="))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(MAX_WAIT))
        .next()
}

/// The wait a request asks for, as an extractor: reads the one header rather than cloning
/// every header as a `HeaderMap` argument would (this runs on every poll).
pub struct Requested(pub Option<Duration>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Requested {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Requested, Self::Rejection> {
        Ok(Requested(requested(&parts.headers)))
    }
}

pub fn applied_header(wait: Duration) -> (&'static str, HeaderValue) {
    ("preference-applied", HeaderValue::from_str(&format!("wait={}", wait.as_secs())).expect("ascii"))
}

/// Polls the job (served from the store's cache while nothing changes) until it is terminal or
/// the wait is over.
pub async fn until_terminal(state: &AppState, mut job: Job, wait: Duration) -> StoreResult<Job> {
    let deadline = Instant::now() + wait;
    while !job.status.is_terminal() && Instant::now() < deadline {
        tokio::time::sleep(POLL_EVERY.min(deadline - Instant::now())).await;
        match state.store.job(job.account_id, job.id).await? {
            Some(fresh) => job = fresh,
            None => break,
        }
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("prefer", value.parse().unwrap());
        h
    }

    #[test]
    fn parses_and_caps_the_wait() {
        assert_eq!(requested(&headers("wait=5")), Some(Duration::from_secs(5)));
        assert_eq!(requested(&headers("respond-async, wait=7")), Some(Duration::from_secs(7)));
        assert_eq!(requested(&headers("wait=600")), Some(MAX_WAIT));
        assert_eq!(requested(&headers("wait=soon")), None);
        assert_eq!(requested(&HeaderMap::new()), None);
    }
}
