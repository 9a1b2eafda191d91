//! The additive LTX-2.3 modes beside Krea's text/image-to-video (docs/api.md, "Beyond Krea"):
//! keyframe interpolation, audio-to-video and retake, each with its own endpoint under
//! `GENERATE_PATH`, and the options every additive endpoint takes (`quality`, `enhance_prompt`).
//! A job of any mode is a `GenerateRequest` with `mode` set, so it runs on the same jobs,
//! billing, backlog, idempotency, webhooks, event streams, assets, styles and workers.
//!
//! Each endpoint's body is checked by its own module (`keyframes`, `audio`, `retake`) with the
//! field checks of Krea's endpoint (`prompt`, `aspect_ratio`, `seed`, `styles`, the URI rules);
//! `common` holds what the three share.
use serde::{Deserialize, Serialize};

pub mod audio;
mod common;
pub mod keyframes;
pub mod retake;

/// What a job of an additive endpoint asks for beyond Krea's fields. Stored with the job (JSON),
/// so variants and fields are only ever added.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mode {
    /// `…/keyframes`: 2 to 8 images placed at given frames (official `KeyframeInterpolationPipeline`).
    Keyframes { keyframes: Vec<Keyframe> },
    /// `…/audio-to-video`: the video follows `audio`, whose track the output keeps unchanged
    /// (official `A2VidPipelineTwoStage`). The clip's `num_frames` is the audio's length on the
    /// model's frame grid, measured at submit.
    AudioToVideo {
        audio: String,
        /// The audio's length as probed at submit, in seconds.
        audio_seconds: f64,
    },
    /// `…/retake`: regenerate `[start_seconds, end_seconds)` of `video` and keep the rest
    /// (official `RetakePipeline`). The clip's `num_frames` is the video's, measured at submit.
    Retake { video: String, start_seconds: f64, end_seconds: f64, regenerate_video: bool, regenerate_audio: bool },
}

impl Mode {
    /// The endpoint (under `GENERATE_PATH`) and the job `type` suffix of this mode.
    pub fn path_segment(&self) -> &'static str {
        match self {
            Mode::Keyframes { .. } => "keyframes",
            Mode::AudioToVideo { .. } => "audio-to-video",
            Mode::Retake { .. } => "retake",
        }
    }
}

/// One image of `…/keyframes`, at the (0-based) output frame it must appear at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Keyframe {
    /// An asset URL of the caller's, a `data:` URI, or another site's image URL.
    pub image: String,
    /// 0-based frame of the output, `< num_frames` (`seconds` in the request is turned into it).
    pub frame: u32,
    /// How strongly the frame is held to the image, 0..=1 (1: exactly).
    pub strength: f64,
}

/// `quality` of an additive request: which official pipeline runs it (operator config says
/// which the engine has loaded; each has its row of the price table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// The distilled model (8 + 3 steps): what Krea's endpoint runs.
    Fast,
    /// The dev model, two stages (`TI2VidTwoStagesPipeline`).
    Balanced,
    /// The official HQ two-stage pipeline (res_2s sampler).
    Best,
}

impl Quality {
    pub const ALL: [Quality; 3] = [Quality::Fast, Quality::Balanced, Quality::Best];

    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Fast => "fast",
            Quality::Balanced => "balanced",
            Quality::Best => "best",
        }
    }
}

/// Fewest and most keyframes of `…/keyframes`.
pub const MIN_KEYFRAMES: usize = 2;
pub const MAX_KEYFRAMES: usize = 8;

#[cfg(test)]
pub(super) mod tests {
    use super::super::NormaliseOptions;
    use time::macros::date;

    pub const PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

    pub fn options() -> NormaliseOptions {
        NormaliseOptions {
            today: date!(2026 - 06 - 01),
            aliases_accepted_until: date!(2026 - 06 - 19),
            max_data_uri_bytes: 1024,
            max_styles: 2,
            asset_url_prefix: "https://ltx.example/files/assets/".into(),
            external_image_urls: true,
            allow_private_urls: false,
        }
    }

    #[test]
    fn a_mode_names_its_endpoint() {
        let retake = super::Mode::Retake {
            video: "v".into(),
            start_seconds: 0.0,
            end_seconds: 1.0,
            regenerate_video: true,
            regenerate_audio: false,
        };
        assert_eq!(retake.path_segment(), "retake");
        assert_eq!(super::Mode::Keyframes { keyframes: vec![] }.path_segment(), "keyframes");
    }
}
