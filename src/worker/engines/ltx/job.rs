//! One job on the engine process: make sure a process is running, send it the job, then wait for
//! its result while forwarding progress and previews, passing on a cancel and enforcing the job
//! timeout. A process that exits, ignores a cancel or runs past the timeout is given up: killed,
//! forgotten with its resident LoRA set, and replaced in the background.
use super::super::super::engine::*;
use super::canvas::{job_progress, Canvas};
use super::process::EngineProcess;
use super::protocol::{Command, ErrorCode, Event, Finished, Generate, ImageInput, LoraInput, ModeInput};
use super::{adopt_resident, failure, intermediate, start_process, LtxEngine, Pipeline};
use crate::domain::job::FailureCode;
use std::path::Path;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the wait for a job ends with unless the process is given up: the engine's result, or the
/// typed error it reported for the job.
pub(super) type Outcome = Result<Finished, (ErrorCode, String)>;

/// A job sent to the engine process, and where its progress, previews and files go.
pub(super) struct SentJob<'a> {
    pub id: String,
    pub spec: &'a RenderSpec,
    pub canvas: Canvas,
    pub out_dir: &'a Path,
    pub progress: &'a ProgressSink,
}

/// Why a process is given up in the middle of a job.
enum Lost {
    /// It did not take the job: its input is closed.
    Unreachable,
    /// Its output ended before the job's result.
    Exited,
    /// It did not stop within the cancel grace.
    IgnoredCancel,
    /// No result within the job timeout.
    TimedOut,
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

impl LtxEngine {
    /// A running process in the slot: a new one replaces one that exited or was lost.
    pub(super) async fn ensure_process(&self, slot: &mut Option<EngineProcess>) -> Result<(), EngineError> {
        if slot.as_mut().is_some_and(|p| p.has_exited()) {
            tracing::warn!("the LTX engine process had exited; starting a new one");
            self.lose(slot);
        }
        if slot.is_none() {
            let process = start_process(&self.config).await.map_err(|e| failure(FailureCode::EngineError, e))?;
            adopt_resident(&self.resident, &process);
            *slot = Some(process);
        }
        Ok(())
    }

    /// Sends the job, then waits for how it ends. An `Err` means the process was given up.
    pub(super) async fn run_job(
        &self,
        slot: &mut Option<EngineProcess>,
        command: Generate,
        job: &SentJob<'_>,
        cancel: &CancellationToken,
    ) -> Result<Outcome, EngineError> {
        let process = slot.as_mut().expect("ensure_process started one");
        if !process.send(&Command::Generate(command)) {
            return Err(self.give_up(slot, Lost::Unreachable).await);
        }
        let mut guard = CancelOnDrop { id: job.id.clone(), commands: process.sender(), armed: true };
        let ended = self.wait_for_result(process, job, cancel).await;
        guard.armed = false;
        match ended {
            Ok(outcome) => Ok(outcome),
            Err(lost) => Err(self.give_up(slot, lost).await),
        }
    }

    /// Sends an `enhance` command and waits for its answer (within the job timeout). An `Err`
    /// means the process was given up.
    pub(super) async fn run_enhance(
        &self,
        slot: &mut Option<EngineProcess>,
        id: String,
        prompt: String,
        image: Option<String>,
    ) -> Result<Result<String, (ErrorCode, String)>, EngineError> {
        let process = slot.as_mut().expect("ensure_process started one");
        // The official default seed of `generate_enhanced_prompt`.
        if !process.send(&Command::Enhance { id: id.clone(), prompt, image, seed: 42 }) {
            return Err(self.give_up(slot, Lost::Unreachable).await);
        }
        let deadline = tokio::time::sleep(self.config.job_timeout);
        tokio::pin!(deadline);
        let lost = loop {
            tokio::select! {
                event = process.next_event() => match event {
                    Some(Event::Enhanced { id: of, prompt }) if of == id => return Ok(Ok(prompt)),
                    Some(Event::Error { id: Some(of), code, message }) if of == id => return Ok(Err((code, message))),
                    Some(_) => {}
                    None => break Lost::Exited,
                },
                _ = &mut deadline => break Lost::TimedOut,
            }
        };
        Err(self.give_up(slot, lost).await)
    }

    /// Forwards the job's events until its result or error. A cancel is passed on to the engine,
    /// which has `cancel_grace` to stop before the process is given up.
    async fn wait_for_result(
        &self,
        process: &mut EngineProcess,
        job: &SentJob<'_>,
        cancel: &CancellationToken,
    ) -> Result<Outcome, Lost> {
        let deadline = tokio::time::sleep(self.config.job_timeout);
        tokio::pin!(deadline);
        let mut cancel_deadline: Option<tokio::time::Instant> = None;
        loop {
            let cancel_wait = async {
                match cancel_deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = process.next_event() => match event {
                    Some(event) => {
                        if let Some(outcome) = self.on_event(event, job) {
                            return Ok(outcome);
                        }
                    }
                    None => return Err(Lost::Exited),
                },
                _ = cancel.cancelled(), if cancel_deadline.is_none() => {
                    process.send(&Command::Cancel { id: job.id.clone() });
                    cancel_deadline = Some(tokio::time::Instant::now() + self.config.cancel_grace);
                }
                _ = cancel_wait => return Err(Lost::IgnoredCancel),
                _ = &mut deadline => return Err(Lost::TimedOut),
            }
        }
    }

    /// One event from the engine; `Some` when it ends the job.
    fn on_event(&self, event: Event, job: &SentJob<'_>) -> Option<Outcome> {
        match event {
            Event::Progress { id: of, stage, step, total } if of == job.id => {
                let (status, fraction) = job_progress(&stage, step, total);
                job.progress.report(status, fraction);
            }
            Event::Intermediate { id: of, frames } if of == job.id => {
                // Encoded beside the model's work; a preview that fails costs only itself.
                let (spec, canvas, out_dir, progress) =
                    (job.spec.clone(), job.canvas, job.out_dir.to_owned(), job.progress.clone());
                tokio::task::spawn_blocking(move || match intermediate::clip(&spec, canvas, &frames, &out_dir) {
                    Ok(preview) => progress.intermediate(preview),
                    Err(e) => tracing::warn!(error = %e, "the stage-1 preview could not be encoded"),
                });
            }
            Event::Result(result) if result.id == job.id => {
                if let Some(key) = &result.resident_style_set {
                    self.resident.replace(key.clone());
                }
                return Some(Ok(result));
            }
            Event::Error { id: Some(of), code, message } if of == job.id => {
                // A job that failed may have stopped mid-swap or with a stage's LoRA
                // still applied: what the engine holds is unknown until its next result.
                self.resident.forget();
                return Some(Err((code, message)));
            }
            Event::Error { id: None, message, .. } => tracing::warn!(%message, "LTX engine error"),
            // Events of an earlier job that was dropped before its end.
            _ => {}
        }
        None
    }

    /// Ends the process (killed unless it already exited), forgets it and starts a new one in the
    /// background; the job fails with why.
    async fn give_up(&self, slot: &mut Option<EngineProcess>, lost: Lost) -> EngineError {
        let process = slot.as_mut().expect("a job's process is in the slot");
        let error = match lost {
            Lost::Unreachable => failure(FailureCode::EngineError, process.exit_description().await),
            Lost::Exited => {
                let why = process.exit_description().await;
                failure(FailureCode::EngineError, format!("{why}; it will be restarted for the next job"))
            }
            Lost::IgnoredCancel => {
                process.kill().await;
                failure(FailureCode::EngineError, "cancelled; the engine did not stop in time and was restarted")
            }
            Lost::TimedOut => {
                process.kill().await;
                failure(
                    FailureCode::Timeout,
                    format!(
                        "no result from the LTX engine within {} s; it was restarted",
                        self.config.job_timeout.as_secs()
                    ),
                )
            }
        };
        self.lose(slot);
        self.restart_soon();
        error
    }
}

/// The engine's typed error as the job's failure code.
pub(super) fn failure_code(code: ErrorCode) -> FailureCode {
    match code {
        ErrorCode::InvalidInput => FailureCode::InvalidInput,
        ErrorCode::OutOfMemory => FailureCode::OutOfMemory,
        ErrorCode::Cancelled | ErrorCode::EngineError | ErrorCode::Unknown => FailureCode::EngineError,
    }
}

/// The job as the engine gets it: images extended to the canvas and written as PNG files, a
/// mode's audio or video passed as the file the worker staged.
pub(super) fn generate_command(
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
    let mode = mode_input(&spec.mode, canvas, out_dir)?;
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
        mode,
        quality: spec.quality,
        enhance_prompt: spec.enhance_prompt,
    })
}

fn mode_input(mode: &RenderMode, canvas: Canvas, out_dir: &Path) -> std::io::Result<ModeInput> {
    let path = |p: &Path| p.to_string_lossy().into_owned();
    Ok(match mode {
        RenderMode::Standard => ModeInput::Standard,
        RenderMode::Keyframes(keyframes) => {
            let mut inputs = Vec::with_capacity(keyframes.len());
            for (i, keyframe) in keyframes.iter().enumerate() {
                let file = out_dir.join(format!("keyframe_{i}.png"));
                canvas.extend(&keyframe.image).save(&file).map_err(std::io::Error::other)?;
                inputs.push(ImageInput { path: path(&file), frame_idx: keyframe.frame, strength: keyframe.strength });
            }
            ModeInput::Keyframes { keyframes: inputs }
        }
        RenderMode::AudioToVideo { audio } => ModeInput::AudioToVideo { audio: path(audio) },
        RenderMode::Retake { video, start_frame, end_frame, regenerate_video, regenerate_audio } => ModeInput::Retake {
            video: path(video),
            start_frame: *start_frame,
            end_frame: *end_frame,
            regenerate_video: *regenerate_video,
            regenerate_audio: *regenerate_audio,
        },
    })
}
