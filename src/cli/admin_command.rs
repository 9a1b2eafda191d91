//! `ltx-serve admin`: accounts, keys, credits, limits, storage quotas, webhook secrets, worker
//! tokens, admin tokens, usage and any account's jobs (prints JSON). The same actions
//! (crate::admin) answer the admin HTTP API.
use super::*;
use crate::store::QuotaSetting;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Args)]
pub(super) struct AdminArgs {
    /// The data dir of the server to manage.
    #[arg(long, env = "LTX_SERVE_DATA_DIR", default_value = "./data", global = true)]
    data_dir: PathBuf,
    /// PostgreSQL URL of the fleet's store (instead of the SQLite file in --data-dir).
    #[arg(long, env = "LTX_SERVE_DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Credits.
    #[command(subcommand)]
    Credits(CreditsCommand),
    /// API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Concurrency, backlog and request rate limits.
    #[command(subcommand)]
    Limits(LimitsCommand),
    /// Storage quotas of an account's uploads (assets and style LoRA files).
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// The account's webhook signing secret.
    #[command(subcommand)]
    WebhookSecret(WebhookSecretCommand),
    /// Tokens that let remote workers (`ltx-serve worker`) take jobs.
    #[command(subcommand)]
    WorkerToken(WorkerTokenCommand),
    /// Tokens that open the admin HTTP API (`/admin/v1/…`).
    #[command(subcommand)]
    Token(AdminTokenCommand),
    /// An account's jobs and money over a period.
    Usage {
        #[arg(long)]
        account: Uuid,
        /// Start of the period (RFC 3339, included).
        #[arg(long, value_parser = parse_rfc3339)]
        from: OffsetDateTime,
        /// End of the period (RFC 3339, excluded; default: now).
        #[arg(long, value_parser = parse_rfc3339)]
        to: Option<OffsetDateTime>,
    },
    /// Any account's job.
    #[command(subcommand)]
    Job(JobCommand),
}

#[derive(Subcommand)]
enum AdminTokenCommand {
    /// Create an admin token (printed once).
    Create {
        #[arg(long)]
        label: Option<String>,
    },
    /// Revoke an admin token by its id (the part before the colon); effective at once.
    Revoke { id: Uuid },
}

#[derive(Subcommand)]
enum JobCommand {
    /// The job, its account, price and attempts.
    Show { id: Uuid },
    /// Cancel the job (its hold is released).
    Cancel { id: Uuid },
}

#[derive(Subcommand)]
enum WorkerTokenCommand {
    /// Create a worker token (printed once).
    Create {
        #[arg(long)]
        label: Option<String>,
    },
    /// Revoke a worker token by its id (the part before the colon).
    Revoke {
        #[arg(long)]
        id: Uuid,
    },
}

#[derive(Subcommand)]
enum WebhookSecretCommand {
    /// Replace the secret (deliveries from now on are signed with the new one).
    Rotate {
        #[arg(long)]
        account: Uuid,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account and its first API key (printed once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "0", value_parser = parse_usd)]
        credits_usd: MicroUsd,
        #[arg(long, default_value_t = admin::DEFAULT_MAX_CONCURRENT, value_parser = parse_max_concurrent)]
        max_concurrent: u32,
        #[arg(long, default_value_t = admin::DEFAULT_MAX_BACKLOG)]
        max_backlog: u32,
    },
    /// Balance, holds, limits, usage and recent ledger entries.
    Show {
        #[arg(long)]
        account: Uuid,
    },
    /// Accounts, newest first.
    List {
        /// Accounts on the page (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only accounts created before this time (RFC 3339: a `next_cursor` value).
        #[arg(long, value_parser = parse_rfc3339)]
        before: Option<OffsetDateTime>,
    },
    /// Refuse the account's API keys (403 `account_suspended`) until `unsuspend`.
    Suspend {
        #[arg(long)]
        account: Uuid,
    },
    /// Accept the account's API keys again.
    Unsuspend {
        #[arg(long)]
        account: Uuid,
    },
}

#[derive(Subcommand)]
enum CreditsCommand {
    /// Add (or with a negative amount, remove) credits.
    Add {
        #[arg(long)]
        account: Uuid,
        #[arg(long, value_parser = parse_usd, allow_hyphen_values = true)]
        usd: MicroUsd,
        #[arg(long, default_value = "admin credit")]
        note: String,
    },
    /// The account's latest ledger entries, newest first.
    Ledger {
        #[arg(long)]
        account: Uuid,
        /// Entries to show (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create another API key for an account (printed once).
    Create {
        #[arg(long)]
        account: Uuid,
        #[arg(long)]
        label: Option<String>,
    },
    /// Revoke a key by its id (the part before the colon).
    Revoke {
        #[arg(long)]
        key_id: Uuid,
    },
}

#[derive(Subcommand)]
enum LimitsCommand {
    /// Change an account's limits.
    Set {
        #[arg(long)]
        account: Uuid,
        /// Jobs running at once (at least 1).
        #[arg(long, value_parser = parse_max_concurrent)]
        max_concurrent: Option<u32>,
        #[arg(long)]
        max_backlog: Option<u32>,
        /// Requests each of its API keys may make a minute: a number (0: no limit) or
        /// `default` (the server's --rate-limit-per-minute).
        #[arg(long, value_parser = parse_rate_limit)]
        rate_limit_per_minute: Option<RateLimitSetting>,
    },
}

/// `admin limits set --rate-limit-per-minute`: the account's own limit, or `None` for the
/// server's default.
#[derive(Clone, Copy)]
struct RateLimitSetting(Option<u32>);

fn parse_rate_limit(text: &str) -> Result<RateLimitSetting, String> {
    if text == "default" {
        return Ok(RateLimitSetting(None));
    }
    let n = text.parse::<u32>().map_err(|e| format!("`{text}` is neither a count of requests nor `default`: {e}"))?;
    Ok(RateLimitSetting(Some(n)))
}

#[derive(Subcommand)]
enum QuotaCommand {
    /// Give an account its own storage quota (the others follow `serve --account-storage-*`).
    Set {
        #[arg(long)]
        account: Uuid,
        /// Bytes its uploads may take: a number (0: no limit) or `default` (the server's).
        #[arg(long, value_parser = parse_quota)]
        bytes: Option<QuotaSetting>,
        /// Files (assets and styles) it may store: a number (0: no limit) or `default`.
        #[arg(long, value_parser = parse_quota)]
        files: Option<QuotaSetting>,
    },
}

/// Refused here, before the store is opened, with the rule's reason (the store refuses it too).
fn parse_max_concurrent(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Err("must be at least 1: an account always has room for one job".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("`{text}` is not a count of jobs: {e}")),
    }
}

fn parse_rfc3339(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("`{text}` is not an RFC 3339 time: {e}"))
}

fn parse_quota(text: &str) -> Result<QuotaSetting, String> {
    if text == "default" {
        return Ok(QuotaSetting::Default);
    }
    let n = text.parse::<u64>().map_err(|e| format!("`{text}` is neither a number nor `default`: {e}"))?;
    if n > i64::MAX as u64 {
        return Err(format!("`{text}` is more than the store keeps ({})", i64::MAX));
    }
    Ok(QuotaSetting::Limit(n))
}

pub(super) async fn admin(args: AdminArgs) -> anyhow::Result<()> {
    let store = crate::store::open(args.database_url.as_deref(), &args.data_dir).await?;
    let store: &dyn Store = &*store;
    let out = match args.command {
        AdminCommand::Account(AccountCommand::Create { name, credits_usd, max_concurrent, max_backlog }) => {
            if credits_usd.0 < 0 {
                anyhow::bail!("--credits-usd must not be negative");
            }
            admin::create_account(store, NewAccount { name, credits: credits_usd, max_concurrent, max_backlog }).await?
        }
        AdminCommand::Account(AccountCommand::Show { account }) => admin::show_account(store, account, None).await?,
        AdminCommand::Account(AccountCommand::List { limit, before }) => {
            admin::list_accounts(store, before, limit).await?
        }
        AdminCommand::Account(AccountCommand::Suspend { account }) => {
            admin::set_suspended(store, account, true).await?
        }
        AdminCommand::Account(AccountCommand::Unsuspend { account }) => {
            admin::set_suspended(store, account, false).await?
        }
        AdminCommand::Credits(CreditsCommand::Ledger { account, limit }) => {
            admin::ledger(store, account, limit).await?
        }
        AdminCommand::Token(AdminTokenCommand::Create { label }) => admin::create_admin_token(store, label).await?,
        AdminCommand::Token(AdminTokenCommand::Revoke { id }) => admin::revoke_admin_token(store, id).await?,
        AdminCommand::Usage { account, from, to } => {
            let to = to.unwrap_or_else(OffsetDateTime::now_utc);
            admin::usage_between(store, account, from, to).await?
        }
        AdminCommand::Job(JobCommand::Show { id }) => admin::show_job(store, None, id).await?,
        AdminCommand::Job(JobCommand::Cancel { id }) => admin::cancel_job(store, None, id).await?,
        AdminCommand::Credits(CreditsCommand::Add { account, usd, note }) => {
            admin::add_credits(store, account, usd, note).await?
        }
        AdminCommand::Key(KeyCommand::Create { account, label }) => admin::create_key(store, account, label).await?,
        AdminCommand::Key(KeyCommand::Revoke { key_id }) => admin::revoke_key(store, key_id).await?,
        AdminCommand::WebhookSecret(WebhookSecretCommand::Rotate { account }) => {
            admin::rotate_webhook_secret(store, account).await?
        }
        AdminCommand::Limits(LimitsCommand::Set { account, max_concurrent, max_backlog, rate_limit_per_minute }) => {
            let changed = admin::set_limits(store, account, max_concurrent, max_backlog).await?;
            match rate_limit_per_minute {
                Some(RateLimitSetting(per_minute)) => admin::set_rate_limit(store, account, per_minute).await?,
                None => changed,
            }
        }
        AdminCommand::Quota(QuotaCommand::Set { account, bytes, files }) => {
            if bytes.is_none() && files.is_none() {
                anyhow::bail!("give --bytes, --files or both");
            }
            admin::set_storage_quota(store, account, bytes, files).await?
        }
        AdminCommand::WorkerToken(WorkerTokenCommand::Create { label }) => {
            admin::create_worker_token(store, label).await?
        }
        AdminCommand::WorkerToken(WorkerTokenCommand::Revoke { id }) => admin::revoke_worker_token(store, id).await?,
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
