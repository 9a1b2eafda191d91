//! `serve`'s retention: how long result files and assets are kept (src/retention).
use crate::config::{defaults, ServeConfig};
use crate::retention::policy::days;
use clap::Args;

#[derive(Args, Clone)]
pub struct RetentionArgs {
    /// Days a finished job's result files are kept; then they are deleted and its result URLs
    /// answer 410 (the job itself stays). 0 keeps them forever.
    #[arg(long, env = "LTX_SERVE_RESULT_RETENTION_DAYS", default_value_t = defaults::RESULT_RETENTION_DAYS)]
    pub result_retention_days: u64,
    /// Days an uploaded asset is kept; then it is deleted as if its owner had (its storage is
    /// given back). 0 keeps assets forever.
    #[arg(long, env = "LTX_SERVE_ASSET_RETENTION_DAYS", default_value_t = defaults::ASSET_RETENTION_DAYS)]
    pub asset_retention_days: u64,
}

impl RetentionArgs {
    pub fn apply(&self, config: ServeConfig) -> ServeConfig {
        ServeConfig {
            result_retention: days(self.result_retention_days),
            asset_retention: days(self.asset_retention_days),
            ..config
        }
    }
}
