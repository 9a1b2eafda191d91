//! The one interface every engine implements: a job's render spec, a progress sink and a cancel
//! token in; a finished MP4 and poster (or a typed failure) out.
use crate::domain::job::{FailureCode, JobStatus};
use async_trait::async_trait;
use image::RgbImage;
use std::path::{Path, PathBuf};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Everything an engine needs, with inputs already decoded and fitted to the canvas.
#[derive(Clone, Debug)]
pub struct RenderSpec {
    pub prompt: String,
    pub seed: u32,
    pub width: u32,
    pub height: u32,
    pub num_frames: u32,
    pub fps: u32,
    pub generate_audio: bool,
    pub start_image: Option<RgbImage>,
    pub end_image: Option<RgbImage>,
    /// The styles' LoRAs, in request order, with their files in the worker's LoRA cache.
    pub loras: Vec<LoraFile>,
    /// An additive mode's inputs, staged in the job's scratch dir (`RenderMode::Standard`: Krea's).
    pub mode: RenderMode,
    /// The pipeline preset (`None`: the engine's default, `fast`).
    pub quality: Option<crate::domain::request::Quality>,
    /// Rewrite the prompt before generating; the engine returns what it used in
    /// `RenderedClip::enhanced_prompt`.
    pub enhance_prompt: bool,
}

/// What a job of an additive endpoint gives the engine beyond Krea's inputs.
#[derive(Clone, Debug, Default)]
pub enum RenderMode {
    /// Krea's text/image-to-video (`start_image`, `end_image`).
    #[default]
    Standard,
    /// Images that must appear at their (0-based, `< num_frames`, ascending) frames, fitted to
    /// the canvas.
    Keyframes(Vec<KeyframeImage>),
    /// The clip follows this audio file (as sent, any format ffmpeg reads); the output's audio
    /// track is its samples, unchanged, cut or padded to the clip's length.
    AudioToVideo { audio: PathBuf },
    /// Regenerate frames `[start_frame, end_frame)` of `video` (as sent) and keep the others.
    Retake { video: PathBuf, start_frame: u32, end_frame: u32, regenerate_video: bool, regenerate_audio: bool },
}

#[derive(Clone, Debug)]
pub struct KeyframeImage {
    pub frame: u32,
    pub image: RgbImage,
    /// 0..=1
    pub strength: f64,
}

impl RenderSpec {
    /// The LoRA set this job needs on the model, as the scheduler keys it (`""`: the plain model).
    pub fn style_set_key(&self) -> String {
        crate::store::codec::style_set_key_of(self.loras.iter().map(|l| (l.style_id.as_str(), l.strength)))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LoraFile {
    pub style_id: String,
    /// −2..2
    pub strength: f64,
    pub path: PathBuf,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RenderedClip {
    pub video: PathBuf,
    pub poster: PathBuf,
    pub has_audio: bool,
    /// The prompt the model was given when the job asked for enhancement.
    pub enhanced_prompt: Option<String>,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct EngineError {
    pub code: FailureCode,
    pub message: String,
}

impl EngineError {
    pub fn new(code: FailureCode, message: impl Into<String>) -> Self {
        EngineError { code, message: message.into() }
    }
}

/// Where an engine reports its stage and progress (0..1) — the worker forwards the latest value
/// — and the moment its model (the GPU) is done with the job, so the worker can start the next
/// job on it while this one's clip is still being encoded and uploaded.
#[derive(Clone)]
pub struct ProgressSink {
    progress: watch::Sender<(JobStatus, f64)>,
    model_finished: watch::Sender<bool>,
    /// `--intermediate-previews`: whether the worker publishes a preview of a first stage.
    wants_intermediate: bool,
    intermediate: watch::Sender<Option<IntermediateClip>>,
}

/// A low-resolution clip of an engine's first stage (`--intermediate-previews`), in its own
/// folder of the job's scratch dir (storage moves its files away).
#[derive(Clone, Debug, PartialEq)]
pub struct IntermediateClip {
    pub clip: RenderedClip,
    pub width: u32,
    pub height: u32,
    pub num_frames: u32,
}

impl IntermediateClip {
    /// A first stage's output size: half the clip's, rounded down to even sides (the MP4's
    /// 4:2:0 chroma needs them).
    pub fn half_size(width: u32, height: u32) -> (u32, u32) {
        let half = |side: u32| ((side / 2) & !1).max(2);
        (half(width), half(height))
    }
}

impl ProgressSink {
    pub fn new() -> (ProgressSink, watch::Receiver<(JobStatus, f64)>) {
        let (progress, rx) = watch::channel((JobStatus::Processing, 0.0));
        let sink = ProgressSink {
            progress,
            model_finished: watch::Sender::new(false),
            wants_intermediate: false,
            intermediate: watch::Sender::new(None),
        };
        (sink, rx)
    }
    /// Asks the engine for a preview of its first stage (off unless `--intermediate-previews`).
    pub fn with_intermediate_previews(mut self, wanted: bool) -> ProgressSink {
        self.wants_intermediate = wanted;
        self
    }
    /// Whether to spend the (small) time a first-stage preview costs: engines check it.
    pub fn wants_intermediate(&self) -> bool {
        self.wants_intermediate
    }
    /// A first-stage preview is ready; the worker stores it and shows it as
    /// `intermediate-complete`. Ignored unless asked for.
    pub fn intermediate(&self, clip: IntermediateClip) {
        if self.wants_intermediate {
            self.intermediate.send_replace(Some(clip));
        }
    }
    pub(crate) fn intermediate_signal(&self) -> watch::Receiver<Option<IntermediateClip>> {
        self.intermediate.subscribe()
    }
    pub fn report(&self, status: JobStatus, progress: f64) {
        self.progress.send_replace((status, progress.clamp(0.0, 1.0)));
    }
    /// The engine no longer needs the model for this job (what remains is CPU work: encoding).
    /// Engines that do not call it hold their model slot until `render` returns.
    pub fn model_finished(&self) {
        self.model_finished.send_replace(true);
    }
    pub(crate) fn model_finished_signal(&self) -> watch::Receiver<bool> {
        self.model_finished.subscribe()
    }
}

#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// The name jobs report (`preview`, `ltx`).
    fn name(&self) -> &'static str;
    /// True for engines that do not run the model (the job says so).
    fn is_sandbox(&self) -> bool;
    /// Renders into `out_dir`. Must return promptly once `cancel` fires.
    async fn render(
        &self,
        spec: RenderSpec,
        out_dir: &Path,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<RenderedClip, EngineError>;
    /// The LoRA sets (`store::codec::style_set_key`; `""`: the plain model) a job can start on
    /// without a switch, which the worker announces when it asks for work. Empty: not known.
    fn resident_style_sets(&self) -> Vec<String> {
        Vec::new()
    }
    /// The quality presets whose weights the engine has loaded: the API refuses an additive
    /// request for another at submit (`api::presets`), and workers announce them.
    fn presets(&self) -> Vec<crate::domain::request::Quality> {
        vec![crate::domain::request::Quality::Fast]
    }
    /// Rewrites `prompt` (with the optional first frame `image` as context) the way the model's
    /// own prompt enhancer does, for `POST /prompts/enhance` and jobs with `enhance_prompt`.
    async fn enhance_prompt(&self, prompt: &str, image: Option<RgbImage>) -> Result<String, EngineError> {
        let _ = (prompt, image);
        Err(EngineError::new(FailureCode::EngineError, format!("the `{}` engine cannot enhance prompts", self.name())))
    }
}

/// The LoRA set an engine has applied to its model, as the scheduler's key, and how many
/// times it changed. Engines keep it; the worker reads it at every lease request.
#[derive(Debug, Default)]
pub struct ResidentStyleSet {
    key: std::sync::Mutex<Option<String>>,
    switches: std::sync::atomic::AtomicU64,
}

impl ResidentStyleSet {
    /// Resident from the start (the plain model of a freshly loaded engine: `""`).
    pub fn starting_with(key: impl Into<String>) -> ResidentStyleSet {
        ResidentStyleSet { key: std::sync::Mutex::new(Some(key.into())), ..Default::default() }
    }

    /// As the worker announces it: one set, or none when unknown.
    pub fn sets(&self) -> Vec<String> {
        self.key.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    /// The engine now has `key` resident; true (and counted) when that was a switch from a
    /// known other set.
    pub fn replace(&self, key: String) -> bool {
        let mut resident = self.key.lock().unwrap_or_else(|e| e.into_inner());
        let switched = resident.as_ref().is_some_and(|old| *old != key);
        if switched {
            self.switches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        *resident = Some(key);
        switched
    }

    /// Nothing is known to be resident (the engine process was lost or restarted).
    pub fn forget(&self) {
        *self.key.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Switches counted by `replace` since the engine started.
    pub fn switches(&self) -> u64 {
        self.switches.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_stage_is_half_the_size_with_even_sides() {
        assert_eq!(IntermediateClip::half_size(1280, 720), (640, 360));
        assert_eq!(IntermediateClip::half_size(704, 1276), (352, 638));
        assert_eq!(IntermediateClip::half_size(900, 6), (450, 2));
        assert_eq!(IntermediateClip::half_size(4, 2), (2, 2));
    }

    #[test]
    fn a_resident_set_counts_changes_from_a_known_set_only() {
        let resident = ResidentStyleSet::starting_with("");
        assert_eq!(resident.sets(), vec![String::new()]);
        assert!(!resident.replace(String::new()), "the same set again: no switch");
        assert!(resident.replace("a@1".into()));
        assert!(!resident.replace("a@1".into()));
        assert_eq!((resident.sets(), resident.switches()), (vec!["a@1".to_owned()], 1));
        resident.forget();
        assert!(resident.sets().is_empty(), "unknown after a restart: nothing announced");
        assert!(!resident.replace("b@1".into()), "a load after a restart is not a switch between sets");
        assert!(resident.replace(String::new()));
        assert_eq!(resident.switches(), 2);
    }
}
