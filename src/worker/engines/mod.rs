//! The engines, and starting the one a role is configured with.
pub mod clip;
pub mod ltx;
pub mod preview;

use crate::worker::engine::Engine;
use std::sync::Arc;
use std::time::Duration;

/// What a role runs jobs on (`--engine`).
#[derive(Clone, Debug)]
pub enum EngineChoice {
    /// The deterministic CPU sandbox.
    Preview,
    /// LTX-2.3 through the engine process.
    Ltx(Box<ltx::LtxConfig>),
}

/// Starts the configured engine. The LTX engine loads its models here, so a bad model path or
/// environment stops the role at start-up rather than failing its first job.
pub async fn start(choice: &EngineChoice, preview_sampling_time: Duration) -> anyhow::Result<Arc<dyn Engine>> {
    Ok(match choice {
        EngineChoice::Ltx(config) => Arc::new(
            ltx::LtxEngine::start((**config).clone())
                .await
                .map_err(|e| anyhow::anyhow!("starting the LTX engine: {e}"))?,
        ),
        EngineChoice::Preview => Arc::new(preview::PreviewEngine::new(preview_sampling_time)),
    })
}
