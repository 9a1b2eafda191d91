//! `…/audio-to-video`: `{prompt, audio, start_image?, seed, styles, aspect_ratio, quality,
//! enhance_prompt}`. The clip's length is the audio's, which only a probe of the file tells: the
//! body is checked first (`normalise`), then the probed length fixes the frames (`with_length`).
use super::super::media::{check_data_total, image_field, AUDIO_MEDIA};
use super::super::{clip, prompt, round_up_to_8k_plus_1, styles, GenerateRequest, NormaliseOptions};
use super::super::{invalid, ValidationError, DURATIONS, MIN_FRAMES};
use super::common::{flag, quality, required_media, strict_fields};
use super::Mode;
use crate::domain::pricing::FPS;
use serde_json::Value;

pub const FIELDS: [&str; 8] =
    ["prompt", "audio", "start_image", "seed", "styles", "aspect_ratio", "quality", "enhance_prompt"];

/// The longest audio we follow: the longest clip of the price table (20 s). Container durations
/// are rounded, so 20.02 s reads as 20 s.
pub const MAX_AUDIO_SECONDS: f64 = DURATIONS[DURATIONS.len() - 1] as f64;
const ROUNDING_SLACK_SECONDS: f64 = 0.05;

/// A checked body whose clip length waits for the audio's probe.
#[derive(Clone, Debug, PartialEq)]
pub struct AwaitingAudioLength {
    request: GenerateRequest,
    audio: String,
}

impl AwaitingAudioLength {
    /// The `audio` URI to probe.
    pub fn audio(&self) -> &str {
        &self.audio
    }

    /// The preset asked for (checked against the loaded ones before the audio is probed).
    pub fn quality(&self) -> Option<super::Quality> {
        self.request.quality
    }

    /// `start_image`, whose source is checked like Krea's.
    pub fn start_image(&self) -> Option<&str> {
        self.request.start_image.as_deref()
    }

    /// The request, with the clip as long as the audio: `ceil(seconds × 24)` frames of motion
    /// (plus the first), rounded up to the model's `8k + 1` grid (at least 9). The output's audio
    /// track is the input's; the few frames the grid adds past its end are silent.
    pub fn with_length(self, audio_seconds: f64) -> Result<GenerateRequest, ValidationError> {
        if !audio_seconds.is_finite() || audio_seconds <= 0.0 {
            return invalid("`audio` has no length: it holds no audio samples.");
        }
        if audio_seconds > MAX_AUDIO_SECONDS + ROUNDING_SLACK_SECONDS {
            return invalid(format!(
                "`audio` is {audio_seconds:.2} s long; a clip follows at most {MAX_AUDIO_SECONDS} s of audio (the longest \
                 duration of the price table). Trim it and send it again."
            ));
        }
        let motion_frames = ((audio_seconds * f64::from(FPS)) - 1e-6).ceil().max(0.0) as u32;
        let num_frames = round_up_to_8k_plus_1((motion_frames + 1).max(MIN_FRAMES)).min(super::super::MAX_FRAMES);
        let mut request = self.request;
        request.num_frames = num_frames;
        request.duration = (num_frames - 1).div_ceil(FPS);
        request.mode = Some(Mode::AudioToVideo { audio: self.audio, audio_seconds });
        Ok(request)
    }
}

pub fn normalise(body: &Value, options: &NormaliseOptions) -> Result<AwaitingAudioLength, ValidationError> {
    let fields = strict_fields(body, &FIELDS)?;
    let prompt = prompt(fields)?;
    let aspect_ratio = clip::aspect_ratio(fields)?;
    let seed = clip::seed(fields)?;
    let audio = required_media(fields, "audio", &AUDIO_MEDIA, options)?;
    let start_image = image_field(fields, "start_image", options)?;
    check_data_total(
        [("audio", Some(audio.as_str())), ("start_image", start_image.as_deref())],
        options.max_data_uri_bytes,
    )?;
    let styles = styles::styles(fields, options.max_styles)?;
    let request = GenerateRequest {
        prompt,
        start_image,
        start_video: None,
        end_image: None,
        aspect_ratio,
        // Set from the probed audio by `with_length`.
        duration: 0,
        num_frames: 0,
        seed,
        // The output's audio track is the input's.
        generate_audio: true,
        styles,
        mode: None,
        quality: quality(fields)?,
        enhance_prompt: flag(fields, "enhance_prompt", false)?,
    };
    Ok(AwaitingAudioLength { request, audio })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{options, PNG};
    use super::*;
    use serde_json::json;

    const WAV: &str = "data:audio/wav;base64,UklGRgAAAABXQVZF";

    fn awaiting(body: Value) -> AwaitingAudioLength {
        normalise(&body, &options()).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    #[test]
    fn the_clip_is_as_long_as_the_audio_on_the_frame_grid() {
        let a = awaiting(json!({"prompt": "a drummer", "audio": WAV, "start_image": PNG, "seed": 3}));
        assert_eq!(a.audio(), WAV);
        let r = a.clone().with_length(5.0).unwrap();
        assert_eq!((r.num_frames, r.duration, r.seed), (121, 5, Some(3)));
        assert_eq!(r.mode, Some(Mode::AudioToVideo { audio: WAV.into(), audio_seconds: 5.0 }));
        assert_eq!(r.start_image.as_deref(), Some(PNG));
        // 2.5 s: 60 frames of motion, 61 frames → 65 on the grid.
        assert_eq!(a.clone().with_length(2.5).unwrap().num_frames, 65);
        assert_eq!(a.clone().with_length(0.1).unwrap().num_frames, 9);
        assert_eq!(a.clone().with_length(20.02).unwrap().num_frames, 481);
    }

    #[test]
    fn too_long_or_empty_audio_is_refused_naming_it() {
        let a = awaiting(json!({"prompt": "x", "audio": WAV}));
        let e = a.clone().with_length(21.0).unwrap_err().0;
        assert!(e.starts_with("`audio` is 21.00 s long; a clip follows at most 20 s"), "{e}");
        assert!(a.with_length(0.0).unwrap_err().0.starts_with("`audio` has no length"));
    }

    #[test]
    fn the_body_is_strict() {
        let e = normalise(&json!({"prompt": "x"}), &options()).unwrap_err().0;
        assert_eq!(e, "`audio` is required.");
        let e = normalise(&json!({"prompt": "x", "audio": PNG}), &options()).unwrap_err().0;
        assert!(e.starts_with("`audio` must be a WAV, MP3"), "{e}");
        let e = normalise(&json!({"prompt": "x", "audio": WAV, "duration": 5}), &options()).unwrap_err().0;
        assert!(e.starts_with("Unknown field `duration`"), "{e}");
    }
}
