//! Request ids: a random per-process prefix and a counter (`3f9a1c2e5d7b-1b`). Unique across
//! restarts and replicas in practice, and without a random-number syscall per request.
use axum::http::HeaderValue;
use rand::RngCore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const HEADER: &str = "x-request-id";

pub fn next() -> HeaderValue {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 6];
        rand::thread_rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("{prefix}-{n:x}")).expect("hex and a dash are valid header text")
}
