//! `serve`'s default storage quota of an account's uploads (assets and style LoRA files); an
//! account given its own with `admin quota set` follows that instead.
use crate::config::{defaults, ServeConfig};
use clap::Args;

#[derive(Args, Clone)]
pub struct StorageQuotaArgs {
    /// Default storage quota of each account's uploads (assets and style LoRA files), in bytes;
    /// 0 is no limit. `admin quota set` gives an account its own.
    #[arg(long, env = "LTX_SERVE_ACCOUNT_STORAGE_BYTES", default_value_t = defaults::ACCOUNT_STORAGE_BYTES)]
    pub account_storage_bytes: u64,
    /// Default count of files (assets and styles) each account may store; 0 is no limit.
    #[arg(long, env = "LTX_SERVE_ACCOUNT_STORAGE_FILES", default_value_t = defaults::ACCOUNT_STORAGE_FILES)]
    pub account_storage_files: u64,
}

impl StorageQuotaArgs {
    pub fn apply(&self, config: ServeConfig) -> ServeConfig {
        ServeConfig {
            account_storage_bytes: self.account_storage_bytes,
            account_storage_files: self.account_storage_files,
            ..config
        }
    }
}
