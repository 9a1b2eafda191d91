//! The defaults of `serve`'s settings, written once: the flags (`#[arg(default_value…)]` in
//! cli/mod.rs, hence the config file and ltx-serve.example.toml) and `ServeConfig::new` both read
//! these. Durations are in the unit their flag takes.
use super::Resolution;
use time::Date;

pub const LISTEN: &str = "127.0.0.1:8080";
pub const DATA_DIR: &str = "./data";
pub const STORAGE: &str = "local";
pub const RESULT_URL_TTL_SECS: u64 = 24 * 60 * 60;
pub const WORKERS: usize = 1;
pub const PREFETCH_JOBS: usize = 1;
/// A job leased ahead waits this long at most for the engine, then goes back to the queue for an
/// idle worker elsewhere (a slow job ahead of it must not hold it hostage).
pub const PREFETCH_MAX_WAIT_SECS: u64 = 10;
pub const AFFINITY_MAX_WAIT_SECS: u64 = 30;
pub const RESOLUTION: Resolution = Resolution::P720;
pub const ALIASES_ACCEPTED_UNTIL: Date = time::macros::date!(2026 - 06 - 19);
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
pub const MAX_RUN_TIME_SECS: u64 = 2 * 60 * 60;
pub const LEASE_TTL_SECS: u64 = 30;
pub const MAX_ATTEMPTS: u32 = 3;
pub const PREVIEW_SAMPLING_MS: u64 = 0;
pub const KEY_CACHE_SECS: u64 = 2;
pub const WEBHOOK_RETRY_BASE_SECS: u64 = 5;
pub const MAX_STYLES_PER_REQUEST: usize = 4;
pub const MAX_LORA_BYTES: u64 = 2 << 30;
pub const BODY_IDLE_TIMEOUT_SECS: u64 = 30;
/// Per-account storage quota for uploads (assets and style LoRA files); 0 is no limit.
pub const ACCOUNT_STORAGE_BYTES: u64 = 10 << 30;
pub const ACCOUNT_STORAGE_FILES: u64 = 10_000;
/// Result files are kept 30 days, then deleted (the job stays; its URLs answer 410). Results have
/// no quota, so without a bound the disk or bucket only grows. Krea documents no retention
/// (research: none found), hosted APIs keep outputs for far less (Replicate: 1 hour) and expect
/// clients to download what they keep; a month leaves any client ample time. 0 keeps forever.
pub const RESULT_RETENTION_DAYS: u64 = 30;
/// Assets are kept until their owner deletes them: they are a library clients reuse by URL (as
/// Krea's assets), already bounded by each account's storage quota. 0 keeps forever.
pub const ASSET_RETENTION_DAYS: u64 = 0;
/// Requests per API key and minute, spendable at once (the bucket holds a minute's worth). Ten
/// a second on average is far above what a client needs: Krea's own scripts poll a job every
/// few seconds (one key polling 20 jobs every 2 s is 600/min), and a submit is bounded by the
/// account's concurrency, backlog and balance anyway. It stops a runaway loop or a leaked key
/// from taking the API away from everyone else.
pub const RATE_LIMIT_PER_MINUTE: u32 = 600;
/// A request head is a few hundred bytes: 10 s is ample on any link and frees a slot quickly.
pub const HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Above the 60 s a reverse proxy or load balancer keeps its idle upstream connections (nginx,
/// AWS ALB), so the proxy, not us, closes them first and never reuses one we just closed.
pub const IDLE_TIMEOUT_SECS: u64 = 75;
/// Each connection is a file descriptor: keep `ulimit -n` (systemd LimitNOFILE) well above this.
pub const MAX_CONNECTIONS: usize = 4096;
