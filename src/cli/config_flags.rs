//! The flags, the configuration file and `ServeConfig` say the same things: every flag of a role
//! is a key of its table, every `ServeConfig` field has its flag (but the four config.rs names),
//! and `serve` with no flags runs on `ServeConfig::new`'s defaults.
use super::*;
use clap::{CommandFactory, FromArgMatches};
use std::collections::BTreeSet;

/// The flag that has no key: `--config` names the file itself.
const NOT_KEYS: [&str; 1] = ["config"];
/// Keys the file accepts that ltx-serve.example.toml leaves out: hidden flags (a test hook).
const UNDOCUMENTED_KEYS: [&str; 1] = ["ltx_engine_script"];
/// `ServeConfig` fields without a flag, fixed for operators (config.rs says why).
const FIELDS_WITHOUT_FLAGS: [&str; 4] =
    ["max_data_uri_bytes", "retry_after", "webhook_retry_horizon", "max_upload_bytes"];
/// `serve` flags that are not one field each: the file and the S3 endpoint (part of `storage`),
/// the demo account's credit and the log format (used before the config exists); the engine
/// flags make up `engine`.
const SERVE_FLAGS_WITHOUT_FIELDS: [&str; 4] = ["config", "s3-endpoint", "demo-credits-usd", "log-format"];

fn flags(role: &str) -> Vec<clap::Arg> {
    let cli = Cli::command();
    let command = cli.find_subcommand(role).expect("a role");
    command.get_arguments().filter(|a| !["help", "version"].contains(&a.get_id().as_str())).cloned().collect()
}

#[test]
fn every_flag_of_a_role_is_a_key_of_its_table_but_config() {
    let cli = Cli::command();
    for role in crate::config_file::ROLES {
        let mut keys = BTreeSet::new();
        for arg in flags(role) {
            let long = arg.get_long().unwrap_or_else(|| panic!("`{role}` {:?} has no --flag", arg.get_id()));
            let key = long.replace('-', "_");
            let parsed = crate::config_file::parse(&format!("[{role}]\n{key} = \"x\"\n"), role, &cli);
            if NOT_KEYS.contains(&long) {
                assert!(parsed.is_err(), "`{role}.{key}` must not be a key");
                continue;
            }
            let env = arg.get_env().unwrap_or_else(|| panic!("--{long} of `{role}` has no LTX_SERVE_* variable"));
            assert_eq!(parsed, Ok(vec![(env.to_string_lossy().into_owned(), "x".to_owned())]), "`{role}.{key}`");
            keys.insert(key);
        }
        // The example documents every key but the hidden ones, and nothing else.
        let example = crate::config_file::example(&cli);
        let table = example.split(&format!("[{role}]\n")).nth(1).expect("the role's table");
        let table = table.split("\n[").next().unwrap_or(table);
        let documented: BTreeSet<String> =
            table.lines().filter_map(|l| l.strip_prefix("# ")?.split_once(" = ")).map(|(k, _)| k.to_owned()).collect();
        let expected: BTreeSet<String> =
            keys.iter().filter(|k| !UNDOCUMENTED_KEYS.contains(&k.as_str())).cloned().collect();
        assert_eq!(documented, expected, "`[{role}]` of the example");
    }
}

#[test]
fn every_serve_config_field_has_its_flag_but_four() {
    // Spelled out with no `..`: a new field does not compile here until it is given its flag.
    let ServeConfig {
        listen: _,
        data_dir: _,
        database_url: _,
        public_url: _,
        workers: _,
        prefetch_jobs: _,
        prefetch_max_wait: _,
        affinity_max_wait: _,
        resolution: _,
        aliases_accepted_until: _,
        max_body_bytes: _,
        max_data_uri_bytes: _,
        max_run_time: _,
        lease_ttl: _,
        max_attempts: _,
        preview_sampling_time: _,
        intermediate_previews: _,
        retry_after: _,
        key_cache_ttl: _,
        allow_private_urls: _,
        webhook_retry_base: _,
        webhook_retry_horizon: _,
        max_upload_bytes: _,
        storage: _,
        result_url_ttl: _,
        max_styles_per_request: _,
        external_image_urls: _,
        max_lora_bytes: _,
        body_idle_timeout: _,
        header_read_timeout: _,
        idle_timeout: _,
        max_connections: _,
        account_storage_bytes: _,
        account_storage_files: _,
        result_retention: _,
        asset_retention: _,
        rate_limit_per_minute: _,
        prompt_enhance_price: _,
        additive_prices: _,
        engine: _,
    } = ServeConfig::new(PathBuf::new());
    let field_flags: [(&str, Option<&str>); 40] = [
        ("listen", Some("listen")),
        ("data_dir", Some("data-dir")),
        ("database_url", Some("database-url")),
        ("public_url", Some("public-url")),
        ("workers", Some("workers")),
        ("prefetch_jobs", Some("prefetch-jobs")),
        ("prefetch_max_wait", Some("prefetch-max-wait-secs")),
        ("affinity_max_wait", Some("affinity-max-wait-secs")),
        ("resolution", Some("resolution")),
        ("aliases_accepted_until", Some("aliases-accepted-until")),
        ("max_body_bytes", Some("max-body-bytes")),
        ("max_data_uri_bytes", None),
        ("max_run_time", Some("max-run-time-secs")),
        ("lease_ttl", Some("lease-ttl-secs")),
        ("max_attempts", Some("max-attempts")),
        ("preview_sampling_time", Some("preview-sampling-ms")),
        ("intermediate_previews", Some("intermediate-previews")),
        ("retry_after", None),
        ("key_cache_ttl", Some("key-cache-secs")),
        ("allow_private_urls", Some("allow-private-urls")),
        ("webhook_retry_base", Some("webhook-retry-base-secs")),
        ("webhook_retry_horizon", None),
        ("max_upload_bytes", None),
        ("storage", Some("storage")),
        ("result_url_ttl", Some("result-url-ttl-secs")),
        ("max_styles_per_request", Some("max-styles-per-request")),
        ("external_image_urls", Some("no-external-image-urls")),
        ("max_lora_bytes", Some("max-lora-bytes")),
        ("body_idle_timeout", Some("body-idle-timeout-secs")),
        ("header_read_timeout", Some("header-read-timeout-secs")),
        ("idle_timeout", Some("idle-timeout-secs")),
        ("max_connections", Some("max-connections")),
        ("account_storage_bytes", Some("account-storage-bytes")),
        ("account_storage_files", Some("account-storage-files")),
        ("result_retention", Some("result-retention-days")),
        ("asset_retention", Some("asset-retention-days")),
        ("rate_limit_per_minute", Some("rate-limit-per-minute")),
        ("prompt_enhance_price", Some("prompt-enhance-price-usd")),
        ("additive_prices", Some("additive-price-fast-usd")),
        ("engine", Some("engine")),
    ];
    let without: Vec<&str> = field_flags.iter().filter(|(_, f)| f.is_none()).map(|(field, _)| *field).collect();
    assert_eq!(without, FIELDS_WITHOUT_FLAGS);
    let serve: BTreeSet<String> = flags("serve").iter().filter_map(|a| a.get_long()).map(str::to_owned).collect();
    let mut unclaimed = serve.clone();
    for (field, flag) in field_flags {
        if let Some(flag) = flag {
            assert!(serve.contains(flag), "`{field}`: `serve` has no --{flag}");
            unclaimed.remove(flag);
        }
    }
    let engine = engine_args::EngineArgs::augment_args(clap::Command::new("engine"));
    for arg in engine.get_arguments() {
        unclaimed.remove(arg.get_long().expect("engine flags are long"));
    }
    // `additive_prices` is the four additive-price flags together.
    let prices = additive_price_args::AdditivePriceArgs::augment_args(clap::Command::new("prices"));
    for arg in prices.get_arguments() {
        unclaimed.remove(arg.get_long().expect("price flags are long"));
    }
    let expected: BTreeSet<String> = SERVE_FLAGS_WITHOUT_FIELDS.iter().map(|f| f.to_string()).collect();
    assert_eq!(unclaimed, expected, "`serve` flags that are no field");
}

#[test]
fn serve_with_no_flags_runs_on_the_config_defaults() {
    // The environment of the test run must not count: the variables are taken off the flags.
    let command = Cli::command().mut_subcommand("serve", |serve| serve.mut_args(|arg| arg.env(None)));
    let matches = command.try_get_matches_from(["ltx-serve", "serve"]).expect("no flag is required");
    let Command::Serve(args) = Cli::from_arg_matches(&matches).expect("parsed").command else { unreachable!() };
    let from_flags = serve_config(*args).expect("the defaults are valid");
    let from_code = ServeConfig::new(PathBuf::from(defaults::DATA_DIR));
    assert_eq!(format!("{from_flags:?}"), format!("{from_code:?}"));
}
