//! Settings of the `serve` role. Every field has a flag and an `LTX_SERVE_*` variable (cli.rs).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use time::Date;

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
    /// What the in-process workers run jobs on.
    pub engine: EngineChoice,
}

#[derive(Clone, Debug)]
pub enum EngineChoice {
    /// The deterministic CPU sandbox.
    Preview,
    /// LTX-2.3 through the engine process.
    Ltx(Box<crate::worker::engines::ltx::LtxConfig>),
}

impl ServeConfig {
    /// Defaults for a data dir; what `serve` uses with no flags.
    pub fn new(data_dir: PathBuf) -> ServeConfig {
        ServeConfig {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            data_dir,
            database_url: None,
            public_url: None,
            workers: 1,
            prefetch_jobs: 1,
            affinity_max_wait: Duration::from_secs(30),
            resolution: Resolution::P720,
            aliases_accepted_until: time::macros::date!(2026 - 06 - 19),
            max_body_bytes: 8 * 1024 * 1024,
            max_data_uri_bytes: 6 * 1024 * 1024,
            max_run_time: Duration::from_secs(2 * 60 * 60),
            lease_ttl: Duration::from_secs(30),
            max_attempts: 3,
            preview_sampling_time: Duration::ZERO,
            intermediate_previews: false,
            retry_after: Duration::from_secs(10),
            key_cache_ttl: Duration::from_secs(2),
            allow_private_urls: false,
            webhook_retry_base: Duration::from_secs(5),
            webhook_retry_horizon: crate::domain::webhook::RETRY_HORIZON,
            max_upload_bytes: 1 << 30,
            storage: crate::storage::StorageConfig::Local,
            result_url_ttl: Duration::from_secs(24 * 60 * 60),
            max_styles_per_request: 4,
            external_image_urls: true,
            max_lora_bytes: 2 << 30,
            body_idle_timeout: Duration::from_secs(30),
            engine: EngineChoice::Preview,
        }
    }
}
