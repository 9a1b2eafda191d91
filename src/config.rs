//! Settings of the `serve` role. Every field has a flag and an `LTX_SERVE_*` variable (cli/mod.rs)
//! except four that are fixed for operators and changed only by tests: `max_data_uri_bytes` and
//! `webhook_retry_horizon` (promised to clients in docs/api.md: 6,000,000 `data:` bytes, webhooks
//! retried for 24 h), `retry_after` (the `Retry-After` of a full backlog) and `max_upload_bytes`
//! (a bound on a remote worker's result file). cli/config_flags.rs holds the code to this list.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use time::Date;

pub mod defaults;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Resolution {
    /// 1280×720 (16:9) or 720×1280 (9:16)
    #[value(name = "720p")]
    P720,
    /// 1920×1080 (16:9) or 1080×1920 (9:16)
    #[value(name = "1080p")]
    P1080,
}

impl Resolution {
    /// Output size (width, height) for an aspect ratio.
    pub fn size(self, aspect: crate::domain::request::AspectRatio) -> (u32, u32) {
        let (long, short) = match self {
            Resolution::P720 => (1280, 720),
            Resolution::P1080 => (1920, 1080),
        };
        match aspect {
            crate::domain::request::AspectRatio::Landscape => (long, short),
            crate::domain::request::AspectRatio::Portrait => (short, long),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// PostgreSQL URL of a shared store (a fleet of replicas); `None`: SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Base of the URLs we hand out (result files). Defaults to `http://<bound address>`.
    pub public_url: Option<String>,
    pub workers: usize,
    /// Jobs the in-process workers lease ahead while the engine is busy (worker::WorkerConfig).
    pub prefetch_jobs: usize,
    /// How long a job leased ahead waits for the engine before it is handed back to the queue
    /// (worker::WorkerConfig::prefetch_max_wait).
    pub prefetch_max_wait: Duration,
    /// LoRA affinity: a worker is given a queued job whose LoRA set it has resident ahead of
    /// older jobs only while the oldest queued job has waited less than this (zero: strictly
    /// oldest first).
    pub affinity_max_wait: Duration,
    pub resolution: Resolution,
    pub aliases_accepted_until: Date,
    pub max_body_bytes: usize,
    pub max_data_uri_bytes: usize,
    pub max_run_time: Duration,
    pub lease_ttl: Duration,
    pub max_attempts: u32,
    pub preview_sampling_time: Duration,
    /// `--intermediate-previews`: the in-process workers publish first-stage previews.
    pub intermediate_previews: bool,
    /// Seconds a client is told to wait after a 429.
    pub retry_after: Duration,
    /// How long a verified API key is trusted without asking the store again (a revocation
    /// made by another process takes effect within this time).
    pub key_cache_ttl: Duration,
    /// Allow webhook URLs on private networks (loopback, RFC 1918, …). Off: SSRF guard.
    pub allow_private_urls: bool,
    /// Delay before the first webhook retry (later ones double, capped at an hour).
    pub webhook_retry_base: Duration,
    /// How long a webhook is retried before it is marked failed.
    pub webhook_retry_horizon: Duration,
    /// Largest result file a remote worker may upload.
    pub max_upload_bytes: u64,
    /// Where results go: the data dir, or an S3-compatible bucket.
    pub storage: crate::storage::StorageConfig,
    /// How long a presigned S3 result link stays valid.
    pub result_url_ttl: Duration,
    /// Most styles (LoRAs) one request may use.
    pub max_styles_per_request: usize,
    /// Fetch `start_image`/`end_image` from other sites' URLs (through the SSRF guard). Off:
    /// only our asset URLs and `data:` URIs are accepted.
    pub external_image_urls: bool,
    /// Largest LoRA file `POST /styles` accepts.
    pub max_lora_bytes: u64,
    /// A request body that sends nothing for this long is cut off (408): a client trickling a
    /// body cannot hold a connection and its memory forever.
    pub body_idle_timeout: Duration,
    /// A connection that has not sent a complete request head this long after it was opened
    /// (or after its first byte following an idle spell) is closed (server.rs).
    pub header_read_timeout: Duration,
    /// A kept-alive connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Most connections open at once; more wait in the kernel's accept backlog.
    pub max_connections: usize,
    /// Default storage quota of an account's uploads (assets and style LoRA files), in bytes and
    /// in files; 0 is no limit. `admin quota set` gives an account its own.
    pub account_storage_bytes: u64,
    pub account_storage_files: u64,
    /// Result files of jobs that finished longer ago than this are deleted (the job stays; its
    /// result URLs answer 410 `result_expired`); zero keeps them forever. Flag in days; tests
    /// set seconds.
    pub result_retention: Duration,
    /// Assets uploaded longer ago than this are deleted as if their owner had; zero keeps them
    /// forever. Flag in days.
    pub asset_retention: Duration,
    /// Requests each API key may make a minute (a bucket of that many, refilled evenly); 0 is
    /// no limit. `admin limits set --rate-limit-per-minute` gives an account its own.
    pub rate_limit_per_minute: u32,
    /// What `POST /prompts/enhance` costs (0: free).
    pub prompt_enhance_price: crate::domain::money::MicroUsd,
    /// Prices of the additive endpoints (keyframes, audio-to-video, retake): per clip second,
    /// per quality preset, plus a LoRA surcharge (domain::pricing::additive).
    pub additive_prices: crate::domain::pricing::additive::AdditivePrices,
    /// What the in-process workers run jobs on.
    pub engine: EngineChoice,
}

/// Defined with the engines, which start from it.
pub use crate::worker::engines::EngineChoice;

impl ServeConfig {
    /// Defaults for a data dir; what `serve` uses with no flags.
    pub fn new(data_dir: PathBuf) -> ServeConfig {
        ServeConfig {
            listen: defaults::LISTEN.parse().expect("valid address"),
            data_dir,
            database_url: None,
            public_url: None,
            workers: defaults::WORKERS,
            prefetch_jobs: defaults::PREFETCH_JOBS,
            prefetch_max_wait: Duration::from_secs(defaults::PREFETCH_MAX_WAIT_SECS),
            affinity_max_wait: Duration::from_secs(defaults::AFFINITY_MAX_WAIT_SECS),
            resolution: defaults::RESOLUTION,
            aliases_accepted_until: defaults::ALIASES_ACCEPTED_UNTIL,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            // With the longest prompt, 6,000,000 decoded bytes (8,000,000 base64) fit the 8 MiB body.
            max_data_uri_bytes: 6_000_000,
            max_run_time: Duration::from_secs(defaults::MAX_RUN_TIME_SECS),
            lease_ttl: Duration::from_secs(defaults::LEASE_TTL_SECS),
            max_attempts: defaults::MAX_ATTEMPTS,
            preview_sampling_time: Duration::from_millis(defaults::PREVIEW_SAMPLING_MS),
            intermediate_previews: false,
            retry_after: Duration::from_secs(10),
            key_cache_ttl: Duration::from_secs(defaults::KEY_CACHE_SECS),
            allow_private_urls: false,
            webhook_retry_base: Duration::from_secs(defaults::WEBHOOK_RETRY_BASE_SECS),
            webhook_retry_horizon: crate::domain::webhook::RETRY_HORIZON,
            max_upload_bytes: 1 << 30,
            storage: crate::storage::StorageConfig::parse(defaults::STORAGE).expect("a valid storage"),
            result_url_ttl: Duration::from_secs(defaults::RESULT_URL_TTL_SECS),
            max_styles_per_request: defaults::MAX_STYLES_PER_REQUEST,
            external_image_urls: true,
            max_lora_bytes: defaults::MAX_LORA_BYTES,
            body_idle_timeout: Duration::from_secs(defaults::BODY_IDLE_TIMEOUT_SECS),
            header_read_timeout: Duration::from_secs(defaults::HEADER_READ_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(defaults::IDLE_TIMEOUT_SECS),
            max_connections: defaults::MAX_CONNECTIONS,
            account_storage_bytes: defaults::ACCOUNT_STORAGE_BYTES,
            account_storage_files: defaults::ACCOUNT_STORAGE_FILES,
            result_retention: crate::retention::policy::days(defaults::RESULT_RETENTION_DAYS),
            asset_retention: crate::retention::policy::days(defaults::ASSET_RETENTION_DAYS),
            rate_limit_per_minute: defaults::RATE_LIMIT_PER_MINUTE,
            prompt_enhance_price: crate::domain::money::MicroUsd(0),
            additive_prices: crate::domain::pricing::additive::AdditivePrices::default(),
            engine: EngineChoice::Preview,
        }
    }

    /// How long results and assets are kept (the retention sweeper's settings).
    pub fn retention_policy(&self) -> crate::retention::policy::RetentionPolicy {
        crate::retention::policy::RetentionPolicy::new(self.result_retention, self.asset_retention)
    }

    /// The storage quota of an account without its own.
    pub fn default_storage_quota(&self) -> crate::store::StorageQuota {
        crate::store::StorageQuota { bytes: self.account_storage_bytes, files: self.account_storage_files }
    }
}
