//! The `ltx` engine: LTX-2.3 through Lightricks' official `ltx-core`/`ltx-pipelines`, run in a
//! long-lived Python process that keeps the models resident (engines/ltx/). This side starts it
//! and checks its `hello`, sends one job at a time, forwards progress, enforces the job timeout,
//! kills and restarts it after a crash or hang, maps its typed errors to job failures, and
//! encodes the frames and audio it returns with the same encoder as every engine.
mod canvas;
pub mod config;
mod encode;
mod intermediate;
mod process;
pub mod protocol;
mod source;

use super::super::engine::*;
use crate::domain::job::FailureCode;
use async_trait::async_trait;
use canvas::{job_progress, Canvas};
pub use config::{default_python, LtxConfig, Pipeline};
use process::EngineProcess;
use protocol::{Command, ErrorCode, Event, Generate, ImageInput, LoraInput};
pub use source::write_to as write_engine_source;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

pub struct LtxEngine {
    config: LtxConfig,
    /// `None` after a crash, hang or kill while a new process is being started (or if that
    /// failed: the next job tries again).
    process: Arc<Mutex<Option<EngineProcess>>>,
    /// What the engine process last said it has resident (its `hello`, then each `result`);
    /// forgotten when the process is lost.
    resident: Arc<ResidentStyleSet>,
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
        Ok(LtxEngine { config, process: Arc::new(Mutex::new(Some(process))), resident })
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

/// Tells the engine to stop a job whose future was dropped (cancelled, lease lost, shutdown)
/// before its result arrived; the engine stops at its next step.
struct CancelOnDrop {
    id: String,
    commands: mpsc::UnboundedSender<String>,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.commands.send(Command::Cancel { id: self.id.clone() }.to_line());
        }
    }
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

    async fn render(
        &self,
        spec: RenderSpec,
        out_dir: &Path,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<RenderedClip, EngineError> {
        let mut slot = self.process.lock().await;
        if slot.as_mut().is_some_and(|p| p.has_exited()) {
            tracing::warn!("the LTX engine process had exited; starting a new one");
            self.lose(&mut slot);
        }
        if slot.is_none() {
            let process = start_process(&self.config).await.map_err(|e| failure(FailureCode::EngineError, e))?;
            adopt_resident(&self.resident, &process);
            *slot = Some(process);
        }
        let process = slot.as_mut().expect("started above");
        let canvas = Canvas::covering(spec.width, spec.height);
        let mut command = generate_command(&spec, self.config.pipeline, canvas, out_dir)
            .map_err(|e| failure(FailureCode::EngineError, format!("could not write the engine's inputs: {e}")))?;
        command.preview = progress.wants_intermediate();
        let id = command.id.clone();
        if !process.send(&Command::Generate(command)) {
            let why = process.exit_description().await;
            self.lose(&mut slot);
            self.restart_soon();
            return Err(failure(FailureCode::EngineError, why));
        }
        let mut guard = CancelOnDrop { id: id.clone(), commands: process.sender(), armed: true };
        let deadline = tokio::time::sleep(self.config.job_timeout);
        tokio::pin!(deadline);
        let mut cancel_deadline: Option<tokio::time::Instant> = None;
        let outcome = loop {
            let cancel_wait = async {
                match cancel_deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = process.next_event() => match event {
                    Some(Event::Progress { id: of, stage, step, total }) if of == id => {
                        let (status, fraction) = job_progress(&stage, step, total);
                        progress.report(status, fraction);
                    }
                    Some(Event::Intermediate { id: of, frames }) if of == id => {
                        // Encoded beside the model's work; a preview that fails costs only itself.
                        let (spec, out_dir, progress) = (spec.clone(), out_dir.to_owned(), progress.clone());
                        tokio::task::spawn_blocking(move || match intermediate::clip(&spec, canvas, &frames, &out_dir) {
                            Ok(preview) => progress.intermediate(preview),
                            Err(e) => tracing::warn!(error = %e, "the stage-1 preview could not be encoded"),
                        });
                    }
                    Some(Event::Result(result)) if result.id == id => {
                        if let Some(key) = &result.resident_style_set {
                            self.resident.replace(key.clone());
                        }
                        break Ok(result);
                    }
                    Some(Event::Error { id: Some(of), code, message }) if of == id => {
                        // A job that failed may have stopped mid-swap or with a stage's LoRA
                        // still applied: what the engine holds is unknown until its next result.
                        self.resident.forget();
                        break Err((code, message));
                    }
                    Some(Event::Error { id: None, message, .. }) => tracing::warn!(%message, "LTX engine error"),
                    // Events of an earlier job that was dropped before its end.
                    Some(_) => {}
                    None => {
                        guard.armed = false;
                        let why = process.exit_description().await;
                        self.lose(&mut slot);
                        self.restart_soon();
                        return Err(failure(FailureCode::EngineError, format!("{why}; it will be restarted for the next job")));
                    }
                },
                _ = cancel.cancelled(), if cancel_deadline.is_none() => {
                    process.send(&Command::Cancel { id: id.clone() });
                    cancel_deadline = Some(tokio::time::Instant::now() + self.config.cancel_grace);
                }
                _ = cancel_wait => {
                    guard.armed = false;
                    process.kill().await;
                    self.lose(&mut slot);
                    self.restart_soon();
                    return Err(failure(FailureCode::EngineError, "cancelled; the engine did not stop in time and was restarted"));
                }
                _ = &mut deadline => {
                    guard.armed = false;
                    process.kill().await;
                    self.lose(&mut slot);
                    self.restart_soon();
                    return Err(failure(FailureCode::Timeout, format!(
                        "no result from the LTX engine within {} s; it was restarted", self.config.job_timeout.as_secs()
                    )));
                }
            }
        };
        guard.armed = false;
        drop(slot);
        progress.model_finished();
        let result = outcome.map_err(|(code, message)| {
            let code = match code {
                ErrorCode::InvalidInput => FailureCode::InvalidInput,
                ErrorCode::OutOfMemory => FailureCode::OutOfMemory,
                ErrorCode::Cancelled | ErrorCode::EngineError | ErrorCode::Unknown => FailureCode::EngineError,
            };
            failure(code, message)
        })?;
        progress.report(crate::domain::job::JobStatus::Sampling, 0.95);
        let out_dir = out_dir.to_owned();
        tokio::task::spawn_blocking(move || encode::clip(&spec, canvas, &result, &out_dir))
            .await
            .map_err(|e| failure(FailureCode::EngineError, format!("encoding panicked: {e}")))?
    }
}

/// The job as the engine gets it: images extended to the canvas and written as PNG files.
fn generate_command(
    spec: &RenderSpec,
    pipeline: Pipeline,
    canvas: Canvas,
    out_dir: &Path,
) -> std::io::Result<Generate> {
    let mut images = Vec::new();
    let last = spec.num_frames.saturating_sub(1);
    for (name, image, frame_idx) in [("start", &spec.start_image, 0), ("end", &spec.end_image, last)] {
        if let Some(image) = image {
            let path = out_dir.join(format!("{name}_image.png"));
            canvas.extend(image).save(&path).map_err(std::io::Error::other)?;
            images.push(ImageInput { path: path.to_string_lossy().into_owned(), frame_idx, strength: 1.0 });
        }
    }
    Ok(Generate {
        id: uuid::Uuid::new_v4().to_string(),
        pipeline: pipeline.as_str(),
        prompt: spec.prompt.clone(),
        seed: spec.seed,
        width: canvas.width,
        height: canvas.height,
        num_frames: spec.num_frames,
        fps: spec.fps,
        images,
        loras: spec
            .loras
            .iter()
            .map(|l| LoraInput {
                style_id: l.style_id.clone(),
                path: l.path.to_string_lossy().into_owned(),
                strength: l.strength,
            })
            .collect(),
        audio: spec.generate_audio,
        out_dir: out_dir.join("engine").to_string_lossy().into_owned(),
        preview: false,
    })
}
