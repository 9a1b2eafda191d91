//! The command line: `serve`, `worker`, `admin`, and the client (`generate`, `jobs`, `account`).
//! Every flag also reads an `LTX_SERVE_*` environment variable.
use crate::admin;
use crate::app::{stop_signal, Starting};
use crate::config::{defaults, Resolution, ServeConfig};
use crate::domain::money::MicroUsd;
use crate::store::{NewAccount, Store};
use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use uuid::Uuid;

mod additive_price_args;
mod admin_command;
mod config_check;
#[cfg(test)]
mod config_flags;
mod connection_args;
mod engine_args;
mod engine_command;
mod jobs_command;
mod quota_args;
mod rate_limit_args;
mod retention_args;

use admin_command::{admin, AdminArgs};
use jobs_command::{jobs, JobsCommand};

#[derive(Parser)]
#[command(name = "ltx-serve", version, about = "Krea-compatible LTX-2.3 generation API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, the scheduler and (unless --workers 0) in-process workers.
    Serve(Box<ServeArgs>),
    /// Manage accounts, keys, credits and limits (prints JSON).
    Admin(AdminArgs),
    /// Run jobs for a server on this host (a GPU worker of a fleet), with a worker token.
    Worker(Box<WorkerArgs>),
    /// Generate a clip: submit, follow its progress, download the MP4.
    Generate(Box<crate::client::GenerateArgs>),
    /// List, show or cancel your jobs (prints JSON).
    Jobs {
        #[command(flatten)]
        connection: crate::client::Connection,
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Your balance, holds, limits and usage (prints JSON).
    Account {
        #[command(flatten)]
        connection: crate::client::Connection,
    },
    /// The LTX engine's GPU memory plan (`engine plan`), printed without a GPU or the weights.
    Engine {
        #[command(subcommand)]
        command: engine_command::EngineCommand,
    },
    /// Check a configuration file, or print the documented example.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate FILE and print the effective settings of a role (file, environment and
    /// defaults merged), secrets masked.
    Check {
        file: PathBuf,
        /// `serve` or `worker`.
        #[arg(long, default_value = "serve", value_parser = crate::config_file::ROLES)]
        role: String,
    },
    /// Print an example file with every key, its help and its default.
    Example,
}

#[derive(Args)]
struct ServeArgs {
    /// A TOML file of settings (see ltx-serve.example.toml); flags and LTX_SERVE_* win over it.
    #[arg(long, env = "LTX_SERVE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "LTX_SERVE_LISTEN", default_value = defaults::LISTEN)]
    listen: SocketAddr,
    /// Where the SQLite store and result files live.
    #[arg(long, env = "LTX_SERVE_DATA_DIR", default_value = defaults::DATA_DIR)]
    data_dir: PathBuf,
    /// PostgreSQL URL of a store shared by several replicas (postgres://user@host/db). Without
    /// it the store is SQLite in --data-dir.
    #[arg(long, env = "LTX_SERVE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Result storage: `local` (the data dir, served under /results) or `s3://bucket/prefix`
    /// (credentials and region from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
    #[arg(long, env = "LTX_SERVE_STORAGE", default_value = defaults::STORAGE, value_parser = crate::storage::StorageConfig::parse)]
    storage: crate::storage::StorageConfig,
    /// Endpoint of an S3-compatible service (MinIO, Ceph, R2…); default: AWS.
    #[arg(long, env = "LTX_SERVE_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// Seconds a presigned S3 result link stays valid (at most 7 days).
    #[arg(long, env = "LTX_SERVE_RESULT_URL_TTL_SECS", default_value_t = defaults::RESULT_URL_TTL_SECS)]
    result_url_ttl_secs: u64,
    /// In-process workers (0: jobs stay queued until a worker appears).
    #[arg(long, env = "LTX_SERVE_WORKERS", default_value_t = defaults::WORKERS)]
    workers: usize,
    /// Jobs leased ahead while the engine is busy, with their inputs fetched, so the GPU goes
    /// from one job to the next without waiting (0: leave queued jobs to idle workers).
    #[arg(long, env = "LTX_SERVE_PREFETCH_JOBS", default_value_t = defaults::PREFETCH_JOBS)]
    prefetch_jobs: usize,
    /// Seconds a job leased ahead waits for the engine at most; then it goes back to the queue
    /// for an idle worker elsewhere, and no job is leased ahead until the engine frees up.
    #[arg(long, env = "LTX_SERVE_PREFETCH_MAX_WAIT_SECS", default_value_t = defaults::PREFETCH_MAX_WAIT_SECS)]
    prefetch_max_wait_secs: u64,
    /// LoRA affinity: a worker gets a queued job whose styles it has resident ahead of older
    /// jobs while the oldest has waited less than this many seconds (0: strictly oldest first).
    #[arg(long, env = "LTX_SERVE_AFFINITY_MAX_WAIT_SECS", default_value_t = defaults::AFFINITY_MAX_WAIT_SECS)]
    affinity_max_wait_secs: u64,
    /// Base URL clients reach this server at (used in result URLs). Default: http://<listen>.
    #[arg(long, env = "LTX_SERVE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Output resolution profile.
    #[arg(long, env = "LTX_SERVE_RESOLUTION", value_enum, default_value_t = defaults::RESOLUTION)]
    resolution: Resolution,
    /// Last day the deprecated camelCase request fields are accepted (YYYY-MM-DD).
    #[arg(long, env = "LTX_SERVE_ALIASES_ACCEPTED_UNTIL", default_value_t = defaults::ALIASES_ACCEPTED_UNTIL, value_parser = parse_date)]
    aliases_accepted_until: time::Date,
    /// Largest request body in bytes.
    #[arg(long, env = "LTX_SERVE_MAX_BODY_BYTES", default_value_t = defaults::MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// A job running longer than this many seconds fails with `timeout` (no charge).
    #[arg(long, env = "LTX_SERVE_MAX_RUN_TIME_SECS", default_value_t = defaults::MAX_RUN_TIME_SECS)]
    max_run_time_secs: u64,
    /// A worker lease expires after this many seconds without a heartbeat.
    #[arg(long, env = "LTX_SERVE_LEASE_TTL_SECS", default_value_t = defaults::LEASE_TTL_SECS)]
    lease_ttl_secs: u64,
    /// Attempts before a job whose worker keeps disappearing fails with `worker_lost`.
    #[arg(long, env = "LTX_SERVE_MAX_ATTEMPTS", default_value_t = defaults::MAX_ATTEMPTS)]
    max_attempts: u32,
    /// Simulated model time of the preview engine per clip, in milliseconds.
    #[arg(long, env = "LTX_SERVE_PREVIEW_SAMPLING_MS", default_value_t = defaults::PREVIEW_SAMPLING_MS)]
    preview_sampling_ms: u64,
    /// Credits of the demo account created on first start with an empty store.
    #[arg(long, env = "LTX_SERVE_DEMO_CREDITS_USD", default_value = "2", value_parser = parse_usd)]
    demo_credits_usd: MicroUsd,
    /// Seconds a verified API key is trusted before the store is asked again (revocations by
    /// `admin key revoke` take effect within this time).
    #[arg(long, env = "LTX_SERVE_KEY_CACHE_SECS", default_value_t = defaults::KEY_CACHE_SECS)]
    key_cache_secs: u64,
    /// Allow webhook URLs that point to private networks (loopback, 10/8, 192.168/16, …).
    #[arg(long, env = "LTX_SERVE_ALLOW_PRIVATE_URLS")]
    allow_private_urls: bool,
    /// Seconds before the first webhook retry; later retries double, up to an hour, for a day.
    #[arg(long, env = "LTX_SERVE_WEBHOOK_RETRY_BASE_SECS", default_value_t = defaults::WEBHOOK_RETRY_BASE_SECS)]
    webhook_retry_base_secs: u64,
    /// Most styles (LoRAs) one request may use.
    #[arg(long, env = "LTX_SERVE_MAX_STYLES_PER_REQUEST", default_value_t = defaults::MAX_STYLES_PER_REQUEST)]
    max_styles_per_request: usize,
    /// Refuse `start_image`/`end_image` URLs of other sites (only asset URLs and data: URIs).
    #[arg(long, env = "LTX_SERVE_NO_EXTERNAL_IMAGE_URLS")]
    no_external_image_urls: bool,
    /// Largest LoRA file `POST /styles` accepts, in bytes.
    #[arg(long, env = "LTX_SERVE_MAX_LORA_BYTES", default_value_t = defaults::MAX_LORA_BYTES)]
    max_lora_bytes: u64,
    /// Seconds a request body may send nothing before it is cut off with 408.
    #[arg(long, env = "LTX_SERVE_BODY_IDLE_TIMEOUT_SECS", default_value_t = defaults::BODY_IDLE_TIMEOUT_SECS)]
    body_idle_timeout_secs: u64,
    /// Price of one `POST /prompts/enhance`, in dollars (0: free), charged from the caller's balance.
    #[arg(long, env = "LTX_SERVE_PROMPT_ENHANCE_PRICE_USD", default_value = "0", value_parser = parse_usd)]
    prompt_enhance_price_usd: MicroUsd,
    #[command(flatten)]
    storage_quota: quota_args::StorageQuotaArgs,
    #[command(flatten)]
    retention: retention_args::RetentionArgs,
    #[command(flatten)]
    rate_limit: rate_limit_args::RateLimitArgs,
    #[command(flatten)]
    additive_prices: additive_price_args::AdditivePriceArgs,
    #[command(flatten)]
    connections: connection_args::ConnectionArgs,
    #[command(flatten)]
    engine: engine_args::EngineArgs,
    /// Log format.
    #[arg(long, env = "LTX_SERVE_LOG_FORMAT", value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
}

#[derive(Args)]
struct WorkerArgs {
    /// A TOML file of settings (see ltx-serve.example.toml); flags and LTX_SERVE_* win over it.
    #[arg(long, env = "LTX_SERVE_CONFIG")]
    config: Option<PathBuf>,
    /// Base URL of an ltx-serve server (any replica).
    #[arg(long, env = "LTX_SERVE_SERVER")]
    server: String,
    /// Worker token from `ltx-serve admin worker-token create`.
    #[arg(long, env = "LTX_SERVE_WORKER_TOKEN", hide_env_values = true)]
    token: String,
    #[command(flatten)]
    engine: engine_args::EngineArgs,
    /// Name shown in the worker registry (/readyz). Default: <hostname>-<pid>.
    #[arg(long, env = "LTX_SERVE_WORKER_NAME")]
    name: Option<String>,
    /// Jobs run at once (one per GPU).
    #[arg(long, env = "LTX_SERVE_WORKER_CONCURRENCY", default_value_t = 1)]
    concurrency: usize,
    /// Jobs leased ahead while the engine is busy, with their inputs fetched, so the GPU goes
    /// from one job to the next without waiting (0: leave queued jobs to idle workers).
    #[arg(long, env = "LTX_SERVE_PREFETCH_JOBS", default_value_t = defaults::PREFETCH_JOBS)]
    prefetch_jobs: usize,
    /// Where clips are rendered before upload.
    #[arg(long, env = "LTX_SERVE_SCRATCH_DIR")]
    scratch_dir: Option<PathBuf>,
    /// Simulated model time of the preview engine per clip, in milliseconds.
    #[arg(long, env = "LTX_SERVE_PREVIEW_SAMPLING_MS", default_value_t = defaults::PREVIEW_SAMPLING_MS)]
    preview_sampling_ms: u64,
    /// Allow input image URLs that point to private networks (loopback, 10/8, 192.168/16, …).
    #[arg(long, env = "LTX_SERVE_ALLOW_PRIVATE_URLS")]
    allow_private_urls: bool,
    /// Bytes of LoRA files kept cached in the scratch dir (least recently used removed beyond).
    #[arg(long, env = "LTX_SERVE_LORA_CACHE_BYTES", default_value_t = crate::worker::inputs::LORA_CACHE_BYTES)]
    lora_cache_bytes: u64,
    /// Log format.
    #[arg(long, env = "LTX_SERVE_LOG_FORMAT", value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
}

fn parse_date(text: &str) -> Result<time::Date, String> {
    time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("`{text}` is not a YYYY-MM-DD date"))
}

fn parse_usd(text: &str) -> Result<MicroUsd, String> {
    MicroUsd::parse_usd(text)
}

pub fn main() -> ExitCode {
    use clap::CommandFactory;
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Err(e) = crate::config_file::apply_from_args(&args, &Cli::command()) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse_from(args);
    if let Command::Engine { command } = cli.command {
        // Runs the engine's Python planner and passes its exit status through (3: does not fit).
        return engine_command::run(command).unwrap_or_else(|e| {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        });
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(*args).await,
            Command::Admin(args) => admin(args).await,
            Command::Worker(args) => worker(*args).await,
            Command::Generate(args) => crate::client::generate(*args).await,
            Command::Jobs { connection, command } => jobs(connection, command).await,
            Command::Account { connection } => {
                let client = crate::client::Client::new(&connection)?;
                print_json(&client.get("/account").await?)
            }
            Command::Config { command: ConfigCommand::Check { file, role } } => config_check::run(&file, &role),
            Command::Config { command: ConfigCommand::Example } => {
                print!("{}", crate::config_file::example(&Cli::command()));
                Ok(())
            }
            Command::Engine { .. } => unreachable!("handled before the runtime starts"),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        // Each line inside a request carries its span (`span.request_id`, and `spans`); the test
        // `a_log_file_gets_plain_text_and_json_lines_carry_the_request_id` holds it to that.
        builder.json().with_current_span(true).init();
    } else {
        builder.with_ansi(log_colours(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR"))).init();
    }
}

/// Colour codes only on a terminal, and never when `NO_COLOR` is set to anything non-empty
/// (no-color.org): a log file or a journal gets plain text.
fn log_colours(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(&args.log_format);
    check_ffmpeg()?;
    let demo_credits = args.demo_credits_usd;
    let config = serve_config(args)?;
    let starting = Starting::bind(config).await?;
    tracing::info!(address = %starting.address(), "bound; loading the engine (/readyz answers 503 until it is loaded)");
    let app = starting.load().await?;
    let base = app.base_url();
    let engine = app.engine_name();
    if app.store().count_accounts().await? == 0 {
        let demo = NewAccount {
            name: "default".into(),
            credits: demo_credits,
            max_concurrent: admin::DEFAULT_MAX_CONCURRENT,
            max_backlog: admin::DEFAULT_MAX_BACKLOG,
        };
        // Only if still none: a replica starting at the same moment may have created it.
        let created = admin::create_first_account(&*app.store(), demo).await?;
        let key = created.as_ref().and_then(|c| c["api_key"].as_str()).unwrap_or_default();
        print_first_start(key, demo_credits, &base);
    }
    println!("ltx-serve listening on {base} (engine: {engine}; Ctrl-C to stop)");
    app.run_until_stopped(stop_signal()).await
}

/// What a first start prints: the demo account's key (shown only this once) and how to use it.
/// Nothing when `key` is empty (another replica created the account).
fn print_first_start(key: &str, demo_credits: MicroUsd, base: &str) {
    if !key.is_empty() {
        println!("ltx-serve: created the default account with {demo_credits} of demo credit.");
        println!("Its API key is shown only this once — keep it:\n\n  export LTX_SERVE_API_KEY='{key}'\n");
        println!("Try it:\n");
        println!(
            "  curl -s {base}{} -H \"Authorization: Bearer $LTX_SERVE_API_KEY\" -H 'Content-Type: application/json' \\\n    -d '{{\"prompt\": \"A lighthouse on a cliff at dusk, waves crashing\", \"num_frames\": 49}}'\n",
            crate::api::GENERATE_PATH
        );
        println!("  curl -s {base}/jobs/<job_id> -H \"Authorization: Bearer $LTX_SERVE_API_KEY\"\n");
        println!("Or open {base}/ in a browser (the playground) and paste the key.\n");
    }
}

/// The settings `serve` runs with, checked (what `config check` validates too).
fn serve_config(args: ServeArgs) -> anyhow::Result<ServeConfig> {
    let mut storage = args.storage;
    if let crate::storage::StorageConfig::S3 { endpoint, .. } = &mut storage {
        endpoint.clone_from(&args.s3_endpoint);
    }
    if args.result_url_ttl_secs == 0 || args.result_url_ttl_secs > 7 * 24 * 60 * 60 {
        anyhow::bail!("--result-url-ttl-secs must be between 1 and 604800 (S3's limit for presigned links)");
    }
    let engine = args.engine.choice(&args.data_dir.join("tmp"))?;
    if args.prompt_enhance_price_usd.0 < 0 {
        anyhow::bail!("--prompt-enhance-price-usd must not be negative");
    }
    let config = ServeConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        database_url: args.database_url,
        storage,
        result_url_ttl: Duration::from_secs(args.result_url_ttl_secs),
        public_url: args.public_url,
        workers: args.workers,
        prefetch_jobs: args.prefetch_jobs,
        prefetch_max_wait: Duration::from_secs(args.prefetch_max_wait_secs),
        affinity_max_wait: Duration::from_secs(args.affinity_max_wait_secs),
        resolution: args.resolution,
        aliases_accepted_until: args.aliases_accepted_until,
        max_body_bytes: args.max_body_bytes,
        max_run_time: Duration::from_secs(args.max_run_time_secs),
        lease_ttl: Duration::from_secs(args.lease_ttl_secs.max(1)),
        max_attempts: args.max_attempts.max(1),
        preview_sampling_time: Duration::from_millis(args.preview_sampling_ms),
        intermediate_previews: args.engine.intermediate_previews,
        key_cache_ttl: Duration::from_secs(args.key_cache_secs),
        allow_private_urls: args.allow_private_urls,
        webhook_retry_base: Duration::from_secs(args.webhook_retry_base_secs.max(1)),
        max_styles_per_request: args.max_styles_per_request,
        external_image_urls: !args.no_external_image_urls,
        max_lora_bytes: args.max_lora_bytes,
        body_idle_timeout: Duration::from_secs(args.body_idle_timeout_secs.max(1)),
        prompt_enhance_price: args.prompt_enhance_price_usd,
        engine,
        ..ServeConfig::new(PathBuf::new())
    };
    let config = args.additive_prices.apply(config)?;
    Ok(args.retention.apply(args.rate_limit.apply(args.storage_quota.apply(args.connections.apply(config)))))
}

async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    init_logging(&args.log_format);
    check_ffmpeg()?;
    let name = args.name.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
        format!("{}-{}", if host.is_empty() { "worker" } else { &host }, std::process::id())
    });
    let scratch_dir = args.scratch_dir.unwrap_or_else(|| std::env::temp_dir().join("ltx-serve-worker"));
    let engine_choice = args.engine.choice(&scratch_dir)?;
    let engine = crate::worker::engines::start(&engine_choice, Duration::from_millis(args.preview_sampling_ms)).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        stop_signal().await;
        tracing::info!("stopping: handing running jobs back");
        trigger.cancel();
    });
    let worker = crate::worker::remote::RemoteWorker {
        server: args.server,
        token: args.token,
        name,
        concurrency: args.concurrency.max(1),
        prefetch_jobs: args.prefetch_jobs,
        scratch_dir,
        engine,
        allow_private_urls: args.allow_private_urls,
        lora_cache_bytes: args.lora_cache_bytes,
        intermediate_previews: args.engine.intermediate_previews,
    };
    crate::worker::remote::run(worker, shutdown).await
}

fn check_ffmpeg() -> anyhow::Result<()> {
    match std::process::Command::new("ffmpeg").arg("-version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => anyhow::bail!("ffmpeg is not installed or does not run; install it with `apt-get install ffmpeg`"),
    }
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::log_colours;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(log_colours(true, None));
        assert!(!log_colours(false, None), "a file or a pipe gets plain text");
        assert!(!log_colours(true, Some("1".into())), "NO_COLOR turns colour off");
        assert!(log_colours(true, Some("".into())), "an empty NO_COLOR is unset (no-color.org)");
    }
}
