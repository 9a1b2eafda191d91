//! ltx-serve: a self-hosted, Krea-compatible generation API for Lightricks' LTX-2.3 22B.
pub mod admin;
pub mod api;
pub mod app;
pub mod cli;
pub mod client;
pub mod config;
pub mod config_file;
pub mod domain;
pub mod fetch;
pub mod media;
pub mod scheduler;
pub mod storage;
pub mod store;
pub mod webhooks;
pub mod worker;
