//! Request ids: a random per-process prefix and a counter (`3f9a1c2e5d7b-1b`). Unique across
//! restarts and replicas in practice, and without a random-number syscall per request. A
//! client's own id is kept only when it is short plain text: anything else (50 KB of it, or
//! bytes a log reader would choke on) is replaced, so neither the response nor the log line
//! carries what a client chose to stuff into it.
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use rand::RngCore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// (A `HeaderName`, not text: text is parsed into a name on every use.)
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client request id kept (a UUID is 36, a W3C trace id 32).
pub const MAX_CHARS: usize = 128;

pub fn next() -> HeaderValue {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 6];
        rand::thread_rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Written out (`format!` costs more than the rest of this), handed over as `Bytes`.
    let mut id = String::with_capacity(prefix.len() + 17);
    id.push_str(prefix);
    id.push('-');
    let digits = (u64::BITS - n.leading_zeros()).div_ceil(4).max(1);
    id.extend((0..digits).rev().map(|i| char::from(b"0123456789abcdef"[(n >> (4 * i)) as usize & 0xf])));
    let id = axum::body::Bytes::from(id);
    HeaderValue::from_maybe_shared(id).expect("hex and a dash are valid header text")
}

/// Whether a client's id is kept: 1 to `MAX_CHARS` of `[A-Za-z0-9._:-]`.
pub fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=MAX_CHARS).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The request's id: the client's when acceptable, else a fresh one.
pub fn of(headers: &HeaderMap) -> HeaderValue {
    headers.get(&HEADER).filter(|v| acceptable(v)).cloned().unwrap_or_else(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_one_prefix_and_a_hex_counter() {
        let ids: Vec<String> = (0..40).map(|_| next().to_str().unwrap().to_owned()).collect();
        let parts: Vec<(&str, u64)> = ids
            .iter()
            .map(|id| {
                let (prefix, n) = id.split_once('-').unwrap();
                assert_eq!(n, n.to_lowercase(), "{id}");
                (prefix, u64::from_str_radix(n, 16).unwrap())
            })
            .collect();
        assert!(parts.iter().all(|(p, _)| p.len() == 12 && *p == parts[0].0));
        // Other tests take ids too, so the counter may skip, but never repeats or goes back.
        assert!(parts.windows(2).all(|w| w[1].1 > w[0].1), "{ids:?}");
    }

    #[test]
    fn short_plain_ids_are_kept_and_others_replaced() {
        for kept in ["trace-me-42", "a", "0f8e:span.1_x", &"x".repeat(MAX_CHARS)] {
            let mut headers = HeaderMap::new();
            headers.insert(HEADER, HeaderValue::from_str(kept).unwrap());
            assert_eq!(of(&headers), kept);
        }
        for replaced in ["", "has space", "semi;colon", "<script>", &"x".repeat(MAX_CHARS + 1)] {
            let mut headers = HeaderMap::new();
            headers.insert(HEADER, HeaderValue::from_str(replaced).unwrap());
            let id = of(&headers);
            assert_ne!(id, replaced);
            assert!(acceptable(&id), "a generated id is itself acceptable: {id:?}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        assert!(acceptable(&of(&headers)));
        assert!(acceptable(&of(&HeaderMap::new())));
    }
}
