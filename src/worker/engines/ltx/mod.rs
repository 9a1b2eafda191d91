//! The `ltx` engine: LTX-2.3 through Lightricks' official `ltx-core`/`ltx-pipelines`, run in a
//! long-lived Python process that keeps the models resident (engines/ltx/). This side starts it
//! and checks its `hello`, sends one job at a time, forwards progress, enforces the job timeout,
//! kills and restarts it after a crash or hang, maps its typed errors to job failures, and
//! encodes the frames and audio it returns with the same encoder as every engine.
mod canvas;
pub mod config;
mod encode;
mod intermediate;
mod job;
mod process;
pub mod protocol;
mod source;

use super::super::engine::*;
use crate::domain::job::FailureCode;
use async_trait::async_trait;
use canvas::Canvas;
pub use config::{default_python, LtxConfig, Pipeline};
use job::{failure_code, generate_command, SentJob};
use process::EngineProcess;
pub use source::write_to as write_engine_source;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

pub struct LtxEngine {
    config: LtxConfig,
    /// `None` after a crash, hang or kill while a new process is being started (or if that
    /// failed: the next job tries again).
    process: Arc<Mutex<Option<EngineProcess>>>,
    /// What the engine process last said it has resident (its `hello`, then each `result`);
    /// forgotten when the process is lost.
    resident: Arc<ResidentStyleSet>,
    /// The quality presets the engine's loaded weights can run, from its first `hello` (empty:
    /// it did not say; the configuration's are taken as they are).
    loaded_presets: Vec<crate::domain::request::Quality>,
}

impl LtxEngine {
    /// Checks the configuration and starts the engine process (loading the models), so that a
    /// bad path or a broken environment stops the worker at start-up.
    pub async fn start(config: LtxConfig) -> Result<LtxEngine, String> {
        config.check()?;
        let process = start_process(&config).await?;
        tracing::info!(hello = ?process.hello, "LTX engine ready");
        let resident = Arc::new(ResidentStyleSet::default());
        adopt_resident(&resident, &process);
        let loaded_presets = process.hello.presets.clone();
        Ok(LtxEngine { config, process: Arc::new(Mutex::new(Some(process))), resident, loaded_presets })
    }

    /// The engine process is gone (crashed, killed, exited): so is its resident LoRA set.
    fn lose(&self, slot: &mut Option<EngineProcess>) {
        *slot = None;
        self.resident.forget();
    }

    /// Starts a new engine process right away after one was lost, so its model load overlaps
    /// the time until the next job instead of delaying that job.
    fn restart_soon(&self) {
        let (slot, config, resident) = (self.process.clone(), self.config.clone(), self.resident.clone());
        tokio::spawn(async move {
            let mut slot = slot.lock().await;
            if slot.is_none() {
                match start_process(&config).await {
                    Ok(process) => {
                        adopt_resident(&resident, &process);
                        *slot = Some(process);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not restart the LTX engine; the next job will try again")
                    }
                }
            }
        });
    }
}

/// A new process has what its `hello` says resident (unknown if it does not say).
fn adopt_resident(resident: &ResidentStyleSet, process: &EngineProcess) {
    match &process.hello.resident_style_set {
        Some(key) => {
            resident.replace(key.clone());
        }
        None => resident.forget(),
    }
}

async fn start_process(config: &LtxConfig) -> Result<EngineProcess, String> {
    let launch = config.launch().map_err(|e| format!("could not write the engine's source: {e}"))?;
    EngineProcess::start(&launch).await
}

fn failure(code: FailureCode, message: impl Into<String>) -> EngineError {
    EngineError::new(code, message)
}

#[async_trait]
impl Engine for LtxEngine {
    fn name(&self) -> &'static str {
        "ltx"
    }
    fn is_sandbox(&self) -> bool {
        false
    }
    fn resident_style_sets(&self) -> Vec<String> {
        self.resident.sets()
    }
    /// The configured presets the loaded weights can run (a dev engine runs balanced and best,
    /// a distilled one fast; `--ltx-presets` offers a subset).
    fn presets(&self) -> Vec<crate::domain::request::Quality> {
        let configured = self.config.presets();
        if self.loaded_presets.is_empty() {
            return configured;
        }
        configured.into_iter().filter(|q| self.loaded_presets.contains(q)).collect()
    }

    /// The official enhancement (Gemma's `generate()` with ltx-core's system prompts) on the
    /// engine's resident Gemma; waits for a running job to finish first (one process).
    async fn enhance_prompt(&self, prompt: &str, image: Option<image::RgbImage>) -> Result<String, EngineError> {
        let id = uuid::Uuid::new_v4().to_string();
        let image_path = match image {
            Some(image) => {
                let dir = self.config.work_dir.join("enhance");
                let path = dir.join(format!("{id}.png"));
                std::fs::create_dir_all(&dir)
                    .and_then(|()| image.save(&path).map_err(std::io::Error::other))
                    .map_err(|e| failure(FailureCode::EngineError, format!("could not write the image: {e}")))?;
                Some(path)
            }
            None => None,
        };
        let mut slot = self.process.lock().await;
        let outcome = match self.ensure_process(&mut slot).await {
            Ok(()) => {
                let image = image_path.as_ref().map(|p| p.to_string_lossy().into_owned());
                self.run_enhance(&mut slot, id, prompt.to_owned(), image).await
            }
            Err(e) => Err(e),
        };
        drop(slot);
        if let Some(path) = image_path {
            let _ = std::fs::remove_file(path);
        }
        outcome?.map_err(|(code, message)| failure(failure_code(code), message))
    }

    /// One job at a time (the process lock): its inputs written, the engine's frames and audio
    /// waited for (`job`), then encoded as the clip.
    async fn render(
        &self,
        spec: RenderSpec,
        out_dir: &Path,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<RenderedClip, EngineError> {
        let mut slot = self.process.lock().await;
        self.ensure_process(&mut slot).await?;
        let canvas = Canvas::covering(spec.width, spec.height);
        let mut command = generate_command(&spec, self.config.pipeline, canvas, out_dir)
            .map_err(|e| failure(FailureCode::EngineError, format!("could not write the engine's inputs: {e}")))?;
        command.preview = progress.wants_intermediate();
        let job = SentJob { id: command.id.clone(), spec: &spec, canvas, out_dir, progress: &progress };
        let outcome = self.run_job(&mut slot, command, &job, &cancel).await?;
        drop(slot);
        progress.model_finished();
        let result = outcome.map_err(|(code, message)| failure(failure_code(code), message))?;
        progress.report(crate::domain::job::JobStatus::Sampling, 0.95);
        let out_dir = out_dir.to_owned();
        let enhanced_prompt = result.enhanced_prompt.clone();
        let clip = tokio::task::spawn_blocking(move || encode::clip(&spec, canvas, &result, &out_dir))
            .await
            .map_err(|e| failure(FailureCode::EngineError, format!("encoding panicked: {e}")))??;
        Ok(RenderedClip { enhanced_prompt, ..clip })
    }
}
