//! Workers take jobs from a queue and run them on an engine. `serve` runs them in-process on
//! the store; `ltx-serve worker` runs them on another host through the internal worker API.
mod disk_full;
pub mod engine;
pub mod engines;
pub mod inputs;
mod intermediate;
pub mod modes;
pub mod queue;
pub mod remote;
mod run;

pub use run::{spawn_workers, WorkerConfig};
