//! Black-box tests: the real app on port 0 with a fresh data dir, spoken to over HTTP.
mod auth;
mod backlog;
mod billing;
mod cli;
mod client;
mod events;
mod helpers;
mod idempotency;
mod jobs;
mod media;
mod openapi;
mod operations;
mod pg;
mod probe;
mod store;
mod validation;
mod webhooks;
