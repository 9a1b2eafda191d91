//! Workers lease jobs from the store and run them on an engine. `serve` runs them in-process;
//! remote workers (fleet) will use the same `run_job` over HTTP.
pub mod engine;
pub mod engines;
mod in_process;
pub mod results;

pub use in_process::{spawn_workers, WorkerConfig};
