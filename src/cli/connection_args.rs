//! `serve`'s connection limits (server.rs): how long a client may take to send a request head,
//! how long a kept-alive connection may sit idle, and how many connections may be open.
use crate::config::defaults;
use clap::Args;
use std::time::Duration;

#[derive(Args, Clone)]
pub struct ConnectionArgs {
    /// Seconds a connection may take to send a complete request head (from when it opens, or
    /// from its first byte after an idle spell) before it is closed.
    #[arg(long, env = "LTX_SERVE_HEADER_READ_TIMEOUT_SECS", default_value_t = defaults::HEADER_READ_TIMEOUT_SECS)]
    pub header_read_timeout_secs: u64,
    /// Seconds a kept-alive connection may sit with no request in flight before it is closed
    /// (an event stream or a download in progress is not idle).
    #[arg(long, env = "LTX_SERVE_IDLE_TIMEOUT_SECS", default_value_t = defaults::IDLE_TIMEOUT_SECS)]
    pub idle_timeout_secs: u64,
    /// Most connections open at once; further ones wait in the kernel's accept backlog until
    /// one closes. Keep the open-file limit (ulimit -n, LimitNOFILE) well above it.
    #[arg(long, env = "LTX_SERVE_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS)]
    pub max_connections: usize,
}

impl ConnectionArgs {
    /// `config` with these limits (zero is taken as the least: one second, one connection).
    pub fn apply(&self, config: crate::config::ServeConfig) -> crate::config::ServeConfig {
        crate::config::ServeConfig {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            max_connections: self.max_connections.max(1),
            ..config
        }
    }
}
