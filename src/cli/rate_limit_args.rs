//! `serve`'s request rate limit per API key; an account given its own with `admin limits set
//! --rate-limit-per-minute` follows that instead.
use crate::config::{defaults, ServeConfig};
use clap::Args;

#[derive(Args, Clone)]
pub struct RateLimitArgs {
    /// Requests each API key may make a minute, spendable at once (a bucket of a minute's
    /// worth, refilled evenly); over it a request gets 429 `rate_limited`. 0 is no limit. On a
    /// fleet each replica enforces an equal share. `admin limits set` gives an account its own.
    #[arg(long, env = "LTX_SERVE_RATE_LIMIT_PER_MINUTE", default_value_t = defaults::RATE_LIMIT_PER_MINUTE)]
    pub rate_limit_per_minute: u32,
}

impl RateLimitArgs {
    pub fn apply(&self, config: ServeConfig) -> ServeConfig {
        ServeConfig { rate_limit_per_minute: self.rate_limit_per_minute, ..config }
    }
}
