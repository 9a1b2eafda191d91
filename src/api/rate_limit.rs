//! The per-key request rate limit of the public API: `--rate-limit-per-minute`, or the account's
//! own (`admin limits set --rate-limit-per-minute`). `Caller` checks it once the key is verified,
//! so every authenticated route has it and nothing else does (health, metrics, result files,
//! the worker API). The buckets live in this process (domain::rate_limit); on a fleet each
//! replica enforces an equal share of the limit, from a count of live replicas the store keeps
//! (one query every `HEARTBEAT`, none per request). docs/operations.md, "Rate limits".
use super::error::{ApiError, ErrorCode};
use crate::domain::rate_limit::{self, Bucket, Decision};
use axum::http::{header, HeaderName, HeaderValue};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Buckets kept before full ones (the same as none) are dropped. Only verified keys get one.
const MAX_BUCKETS: usize = 10_000;
/// How often a replica says it is alive and counts the others.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A replica not heard from for this long no longer counts (three missed heartbeats).
pub const REPLICA_LIVENESS: Duration = Duration::from_secs(30);

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

pub struct RateLimiter {
    /// The operator's limit per key and minute; 0 is none.
    default_per_minute: u32,
    /// API replicas sharing the store, this one included (1 on SQLite).
    replicas: AtomicU32,
    origin: Instant,
    buckets: Mutex<foldhash::HashMap<Uuid, Bucket>>,
}

impl RateLimiter {
    pub fn new(default_per_minute: u32) -> RateLimiter {
        RateLimiter {
            default_per_minute,
            replicas: AtomicU32::new(1),
            origin: Instant::now(),
            buckets: Mutex::default(),
        }
    }

    /// Takes one request of the key's bucket; `None` when no limit applies (the account's own
    /// limit, else the operator's, is 0).
    pub fn check(&self, key_id: Uuid, own_per_minute: Option<u32>) -> Option<Decision> {
        let limit = own_per_minute.unwrap_or(self.default_per_minute);
        if limit == 0 {
            return None;
        }
        let share = rate_limit::replica_share(limit, self.replicas.load(Ordering::Relaxed));
        let now = self.origin.elapsed().as_nanos() as u64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&key_id) {
            buckets.retain(|_, bucket| !bucket.is_full(now));
        }
        Some(rate_limit::take(buckets.entry(key_id).or_default(), share, now))
    }

    pub fn set_replicas(&self, live: u32) {
        self.replicas.store(live.max(1), Ordering::Relaxed);
    }
}

/// Takes one request of the verified key's bucket, leaving the decision for the response
/// headers; a 429 `rate_limited` when the bucket is empty.
pub fn admit(limiter: &RateLimiter, key_id: Uuid, own_per_minute: Option<u32>) -> Result<(), ApiError> {
    let Some(decision) = limiter.check(key_id, own_per_minute) else { return Ok(()) };
    HeaderSlot::fill(decision);
    match decision.retry_after_secs() {
        None => Ok(()),
        Some(secs) => Err(ApiError::of(
            ErrorCode::RateLimited,
            format!("Too many requests for this API key: retry after {secs} s."),
        )
        .retry_after(secs)),
    }
}

/// Keeps the count of live replicas current: says every `HEARTBEAT` that this one is alive.
/// A failed heartbeat keeps the last count (the store being down is /readyz's business).
pub fn spawn_replica_count(
    store: Arc<dyn crate::store::Store>,
    limiter: Arc<RateLimiter>,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let replica = Uuid::new_v4();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            match store.count_api_replicas(replica, REPLICA_LIVENESS).await {
                Ok(live) => limiter.set_replicas(live),
                Err(e) => tracing::debug!(error = %e, "cannot count API replicas; keeping the last count"),
            }
        }
    })
}

tokio::task_local! {
    /// Where `Caller` leaves its decision for the response headers: the request's own, for as
    /// long as `HeaderSlot::around` runs its handler. (Task-local rather than a shared slot in
    /// the request's extensions: one allocation and one map insertion less on every request.)
    static DECIDED: std::cell::Cell<Option<Decision>>;
}

/// The rate-limit decision of one request, for its response: the outer layer runs every
/// handler inside one and copies what it holds onto the response, success or 429 alike.
#[derive(Clone, Copy, Default)]
pub struct HeaderSlot(Option<Decision>);

impl HeaderSlot {
    /// Runs `handler` with a slot of its own, and gives back what it answered with the
    /// decision it left.
    pub async fn around<F: std::future::Future>(handler: F) -> (F::Output, HeaderSlot) {
        DECIDED
            .scope(std::cell::Cell::new(None), async { (handler.await, HeaderSlot(DECIDED.with(|d| d.get()))) })
            .await
    }

    /// Leaves `decision` for the response of the request being handled (the first one stays,
    /// should a handler take two). Outside `around` (a test calling a handler directly) it
    /// goes nowhere.
    fn fill(decision: Decision) {
        let _ = DECIDED.try_with(|d| {
            if d.get().is_none() {
                d.set(Some(decision));
            }
        });
    }

    /// `RateLimit-Policy` and `RateLimit` on the response of a limited key (and `Retry-After`
    /// on its 429).
    pub fn stamp(&self, response: &mut axum::response::Response) {
        let Some(decision) = self.0 else { return };
        let headers = response.headers_mut();
        for (name, value) in [(RATELIMIT_POLICY, decision.policy_header()), (RATELIMIT, decision.state_header())] {
            // Handed over as `Bytes`, not copied again.
            if let Ok(value) = HeaderValue::from_maybe_shared(axum::body::Bytes::from(value)) {
                headers.insert(name, value);
            }
        }
        if let Some(secs) = decision.retry_after_secs() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_of_zero_is_no_limit_and_an_own_limit_wins() {
        let unlimited = RateLimiter::new(0);
        let key = Uuid::new_v4();
        assert!((0..1000).all(|_| unlimited.check(key, None).is_none()));
        assert!(unlimited.check(key, Some(0)).is_none());
        assert!(unlimited.check(key, Some(1)).is_some_and(|d| d.is_allowed()));
        assert!(unlimited.check(key, Some(1)).is_some_and(|d| !d.is_allowed()));
        let limited = RateLimiter::new(1);
        assert!(limited.check(key, Some(0)).is_none(), "an account's 0 lifts the operator's limit");
    }

    #[test]
    fn keys_have_buckets_of_their_own() {
        let limiter = RateLimiter::new(2);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!((0..5).filter(|_| limiter.check(a, None).unwrap().is_allowed()).count(), 2);
        assert!(limiter.check(b, None).unwrap().is_allowed());
    }

    #[test]
    fn each_replica_enforces_its_share() {
        let limiter = RateLimiter::new(10);
        limiter.set_replicas(5);
        let key = Uuid::new_v4();
        assert_eq!((0..10).filter(|_| limiter.check(key, None).unwrap().is_allowed()).count(), 2);
        let decision = limiter.check(key, None).unwrap();
        assert_eq!(decision.policy_header(), "\"default\";q=2;w=60", "the headers speak of this replica's share");
    }
}
