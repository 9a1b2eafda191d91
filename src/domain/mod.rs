//! Pure domain logic: no I/O, no clocks, no randomness. Everything here is unit-tested beside it.
pub mod address;
pub mod api_key;
pub mod asset;
pub mod job;
pub mod lifecycle;
pub mod lora;
pub mod money;
pub mod pricing;
pub mod rate_limit;
pub mod request;
pub mod webhook;
