//! Request rate limits: a token bucket per API key, kept as GCRA (the generic cell rate
//! algorithm), which stores one number per key, its "theoretical arrival time", instead of a
//! count and a refill time.
//!
//! A limit of `n` per minute is a bucket that holds `n` requests and refills one every `60/n`
//! seconds: a key may spend its whole minute at once (a burst), then goes at the steady rate.
//! That is exactly what the IETF draft headers say (`RateLimit-Policy: "default";q=n;w=60`):
//! `r` is what is left in the bucket, `t` the seconds until it is full again.
//!
//! Times are nanoseconds on a clock the caller owns (tests use a fake one).
use std::time::Duration;

const MINUTE_NS: u64 = 60_000_000_000;

/// The policy's name in the headers.
pub const POLICY: &str = "default";

/// One key's bucket: the time its bucket would be full again if it made no request (its
/// theoretical arrival time); a time in the past means full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    full_at_ns: u64,
}

impl Bucket {
    /// Whether the bucket is full at `now_ns`: then it is the same as no bucket (and may be
    /// forgotten).
    pub fn is_full(&self, now_ns: u64) -> bool {
        self.full_at_ns <= now_ns
    }
}

/// What one request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Admitted; `remaining` requests are left in the bucket, full again in `reset`.
    Allowed { limit: u32, remaining: u32, reset: Duration },
    /// Refused; the next request is admitted in `retry_after`, the bucket is full in `reset`.
    Limited { limit: u32, retry_after: Duration, reset: Duration },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }

    /// `RateLimit-Policy`: the quota and its window, in seconds.
    pub fn policy_header(&self) -> String {
        let (Decision::Allowed { limit, .. } | Decision::Limited { limit, .. }) = self;
        // Written out, not `format!`: these two headers go on every response of a limited key.
        let mut value = String::with_capacity(32);
        value.extend(["\"", POLICY, "\";q=", itoa::Buffer::new().format(*limit), ";w=60"]);
        value
    }

    /// `RateLimit`: what is left, and the seconds until the bucket is full again.
    pub fn state_header(&self) -> String {
        let (remaining, reset) = match *self {
            Decision::Allowed { remaining, reset, .. } => (remaining, reset),
            Decision::Limited { reset, .. } => (0, reset),
        };
        let mut value = String::with_capacity(40);
        let (mut remaining_digits, mut reset_digits) = (itoa::Buffer::new(), itoa::Buffer::new());
        value.extend(["\"", POLICY, "\";r=", remaining_digits.format(remaining), ";t="]);
        value.push_str(reset_digits.format(whole_seconds(reset)));
        value
    }

    /// `Retry-After`, in whole seconds (at least 1): only for a refused request.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match *self {
            Decision::Allowed { .. } => None,
            Decision::Limited { retry_after, .. } => Some(whole_seconds(retry_after).max(1)),
        }
    }
}

/// Seconds, rounded up: a client that waits this long is never early.
fn whole_seconds(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000_000) as u64
}

/// Takes one request from `bucket` at `now_ns` under a limit of `per_minute` (at least 1),
/// or refuses it and leaves the bucket as it was.
pub fn take(bucket: &mut Bucket, per_minute: u32, now_ns: u64) -> Decision {
    let limit = per_minute.max(1);
    // The time one request's token takes to come back, and the bucket's whole capacity.
    let interval = MINUTE_NS / u64::from(limit);
    let capacity = interval * u64::from(limit);
    let full_at = bucket.full_at_ns.max(now_ns);
    let after = full_at + interval;
    // Admitted while, with this request, the bucket is not over its capacity.
    let admitted_from = after.saturating_sub(capacity);
    if now_ns < admitted_from {
        return Decision::Limited {
            limit,
            retry_after: Duration::from_nanos(admitted_from - now_ns),
            reset: Duration::from_nanos(full_at - now_ns),
        };
    }
    bucket.full_at_ns = after;
    let used = after - now_ns;
    // Whole tokens left: a partly refilled one is not yet spendable.
    let remaining = (capacity - used) / interval;
    Decision::Allowed { limit, remaining: remaining as u32, reset: Duration::from_nanos(used) }
}

/// What one replica of `replicas` enforces of a fleet-wide limit: an equal share, rounded down
/// so the shares never add up to more than the limit, but at least one request a minute.
pub fn replica_share(per_minute: u32, replicas: u32) -> u32 {
    (per_minute / replicas.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn a_full_bucket_admits_a_burst_of_the_whole_limit_then_refuses() {
        let mut bucket = Bucket::default();
        let now = 1_000 * SEC;
        for left in (0..10).rev() {
            let d = take(&mut bucket, 10, now);
            assert!(matches!(d, Decision::Allowed { remaining, .. } if remaining == left), "{d:?}");
        }
        let refused = take(&mut bucket, 10, now);
        assert_eq!(refused.retry_after_secs(), Some(6), "one token comes back every 6 s");
        assert!(!refused.is_allowed());
    }

    #[test]
    fn a_refusal_leaves_the_bucket_as_it_was() {
        let mut bucket = Bucket::default();
        take(&mut bucket, 1, 0);
        let before = bucket;
        assert!(!take(&mut bucket, 1, SEC).is_allowed());
        assert_eq!(bucket, before);
    }

    #[test]
    fn the_steady_rate_is_one_request_per_interval() {
        let mut bucket = Bucket::default();
        let start = 50 * SEC;
        for _ in 0..60 {
            assert!(take(&mut bucket, 60, start).is_allowed());
        }
        assert!(!take(&mut bucket, 60, start).is_allowed());
        // One token a second comes back: one request a second goes through, a second one not.
        for s in 1..=120 {
            let now = start + s * SEC;
            assert!(take(&mut bucket, 60, now).is_allowed(), "at +{s}s");
            assert!(!take(&mut bucket, 60, now).is_allowed(), "second one at +{s}s");
        }
        // Just before the next token, still refused, and told how long to wait.
        let almost = start + 120 * SEC + SEC / 2;
        let refused = take(&mut bucket, 60, almost);
        assert_eq!(
            refused,
            Decision::Limited {
                limit: 60,
                retry_after: Duration::from_nanos(SEC / 2),
                reset: Duration::from_nanos(60 * SEC - SEC / 2),
            }
        );
        assert_eq!(refused.retry_after_secs(), Some(1));
    }

    #[test]
    fn an_idle_key_gets_its_whole_bucket_back_and_no_more() {
        let mut bucket = Bucket::default();
        for _ in 0..5 {
            take(&mut bucket, 5, 0);
        }
        assert!(!bucket.is_full(59 * SEC));
        assert!(bucket.is_full(60 * SEC));
        // An hour idle still refills only the capacity.
        for left in (0..5).rev() {
            assert!(
                matches!(take(&mut bucket, 5, 3_600 * SEC), Decision::Allowed { remaining, .. } if remaining == left)
            );
        }
        assert!(!take(&mut bucket, 5, 3_600 * SEC).is_allowed());
    }

    #[test]
    fn the_headers_say_the_quota_what_is_left_and_when_it_is_full() {
        let mut bucket = Bucket::default();
        let first = take(&mut bucket, 600, 0);
        assert_eq!(first.policy_header(), "\"default\";q=600;w=60");
        assert_eq!(first.state_header(), "\"default\";r=599;t=1", "100 ms to refill, rounded up");
        assert_eq!(first.retry_after_secs(), None);
        let mut bucket = Bucket::default();
        take(&mut bucket, 2, 0);
        take(&mut bucket, 2, 0);
        let refused = take(&mut bucket, 2, 10 * SEC);
        assert_eq!(refused.state_header(), "\"default\";r=0;t=50");
        assert_eq!(refused.retry_after_secs(), Some(20), "a token every 30 s; 10 s have passed");
    }

    #[test]
    fn a_limit_that_does_not_divide_a_minute_keeps_its_count() {
        let mut bucket = Bucket::default();
        let admitted = (0..20).filter(|_| take(&mut bucket, 7, 0).is_allowed()).count();
        assert_eq!(admitted, 7);
    }

    #[test]
    fn replicas_share_a_limit_without_exceeding_it() {
        assert_eq!(replica_share(600, 1), 600);
        assert_eq!(replica_share(600, 0), 600, "no replica counted yet: this one");
        assert_eq!(replica_share(600, 4), 150);
        assert_eq!(replica_share(10, 3), 3);
        assert_eq!(replica_share(2, 5), 1, "never below one a minute");
    }
}
