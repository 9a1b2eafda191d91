//! `…/retake`: `{prompt, video, start_seconds, end_seconds, regenerate_video?, regenerate_audio?,
//! seed, quality, enhance_prompt}`. Whether the span fits the video only a probe of the file
//! tells: the body is checked first (`normalise`), then the probed video fixes the clip
//! (`with_video`).
//!
//! Time and frames: the input is taken frame by frame at 24 fps (our outputs' rate), so frame
//! `i` covers `[i/24, (i+1)/24)` s. The output has the input's first `8k + 1` frames (the model's
//! frame grid: up to 7 trailing frames of the input are dropped), and the span regenerated is
//! frames `[round(start_seconds × 24), round(end_seconds × 24))` (`span_frames`).
use super::super::media::{check_data_total, VIDEO_MEDIA};
use super::super::{clip, prompt, AspectRatio, GenerateRequest, NormaliseOptions};
use super::super::{invalid, ValidationError, MIN_FRAMES};
use super::common::{flag, quality, required_media, seconds, strict_fields};
use super::Mode;
use crate::domain::pricing::FPS;
use serde_json::Value;

pub const FIELDS: [&str; 9] = [
    "prompt",
    "video",
    "start_seconds",
    "end_seconds",
    "regenerate_video",
    "regenerate_audio",
    "seed",
    "quality",
    "enhance_prompt",
];

/// The fewest frames a span may hold: one latent group of the model (`8k + 1` with k = 1 is 9
/// frames; the VAE packs 8 frames a latent step, plus the first). 9 frames are 0.375 s.
pub const MIN_SPAN_FRAMES: u32 = MIN_FRAMES;

/// The frames `[start, end)` of a span given in seconds.
pub fn span_frames(start_seconds: f64, end_seconds: f64) -> (u32, u32) {
    let frame = |s: f64| (s * f64::from(FPS)).round().min(f64::from(u32::MAX)) as u32;
    (frame(start_seconds), frame(end_seconds))
}

/// The most frames of `frames` on the model's `8k + 1` grid (0 when under 1).
pub fn round_down_to_8k_plus_1(frames: u32) -> u32 {
    match frames {
        0 => 0,
        n => (n - 1) / 8 * 8 + 1,
    }
}

/// A checked body whose span waits for the video's probe.
#[derive(Clone, Debug, PartialEq)]
pub struct AwaitingVideo {
    request: GenerateRequest,
    video: String,
    start_seconds: f64,
    end_seconds: f64,
    regenerate_video: bool,
    regenerate_audio: bool,
}

impl AwaitingVideo {
    /// The `video` URI to probe.
    pub fn video(&self) -> &str {
        &self.video
    }

    /// The preset asked for (checked against the loaded ones before the video is probed).
    pub fn quality(&self) -> Option<super::Quality> {
        self.request.quality
    }

    /// The request for a video of `frames` frames of `width`×`height`: the clip is its first
    /// `8k + 1` frames, in its orientation (`aspect_ratio`: 9:16 when taller than wide), and the
    /// span must lie inside it and hold at least `MIN_SPAN_FRAMES`.
    pub fn with_video(self, frames: u32, width: u32, height: u32) -> Result<GenerateRequest, ValidationError> {
        let num_frames = round_down_to_8k_plus_1(frames).min(super::super::MAX_FRAMES);
        if num_frames < MIN_FRAMES {
            return invalid(format!(
                "`video` has {frames} frames; a retake needs at least {MIN_FRAMES} (one latent group of the model)."
            ));
        }
        let length = f64::from(num_frames) / f64::from(FPS);
        let described = if num_frames == frames {
            format!("the video lasts {length:.3} s ({num_frames} frames at {FPS} fps)")
        } else {
            format!(
                "the video's retakeable part lasts {length:.3} s (its first {num_frames} of {frames} frames at {FPS} \
                 fps: the model takes 8k+1 frames)"
            )
        };
        let (start, end) = span_frames(self.start_seconds, self.end_seconds);
        if start >= num_frames {
            return invalid(format!("`start_seconds` is {}, outside the video: {described}.", self.start_seconds));
        }
        if end > num_frames {
            return invalid(format!("`end_seconds` is {}, past the end of the video: {described}.", self.end_seconds));
        }
        if end - start < MIN_SPAN_FRAMES {
            return invalid(format!(
                "`end_seconds`: the span {}–{} s holds {} frames; the model regenerates at least {MIN_SPAN_FRAMES} \
                 ({:.3} s at {FPS} fps).",
                self.start_seconds,
                self.end_seconds,
                end - start,
                f64::from(MIN_SPAN_FRAMES) / f64::from(FPS)
            ));
        }
        let mut request = self.request;
        request.num_frames = num_frames;
        request.duration = (num_frames - 1).div_ceil(FPS);
        request.aspect_ratio = if height > width { AspectRatio::Portrait } else { AspectRatio::Landscape };
        request.mode = Some(Mode::Retake {
            video: self.video,
            start_seconds: self.start_seconds,
            end_seconds: self.end_seconds,
            regenerate_video: self.regenerate_video,
            regenerate_audio: self.regenerate_audio,
        });
        Ok(request)
    }
}

pub fn normalise(body: &Value, options: &NormaliseOptions) -> Result<AwaitingVideo, ValidationError> {
    let fields = strict_fields(body, &FIELDS)?;
    let prompt = prompt(fields)?;
    let video = required_media(fields, "video", &VIDEO_MEDIA, options)?;
    check_data_total([("video", Some(video.as_str()))], options.max_data_uri_bytes)?;
    let start_seconds = match fields.get("start_seconds") {
        None | Some(Value::Null) => return invalid("`start_seconds` is required."),
        Some(v) => seconds(v, "start_seconds")?,
    };
    let end_seconds = match fields.get("end_seconds") {
        None | Some(Value::Null) => return invalid("`end_seconds` is required."),
        Some(v) => seconds(v, "end_seconds")?,
    };
    if end_seconds <= start_seconds {
        return invalid(format!("`end_seconds` ({end_seconds}) must be after `start_seconds` ({start_seconds})."));
    }
    let regenerate_video = flag(fields, "regenerate_video", true)?;
    let regenerate_audio = flag(fields, "regenerate_audio", true)?;
    if !regenerate_video && !regenerate_audio {
        return invalid(
            "`regenerate_audio` and `regenerate_video` are both false: a retake regenerates at least one of them.",
        );
    }
    let seed = clip::seed(fields)?;
    let request = GenerateRequest {
        prompt,
        start_image: None,
        start_video: None,
        end_image: None,
        // Set from the probed video by `with_video`.
        aspect_ratio: AspectRatio::Landscape,
        duration: 0,
        num_frames: 0,
        seed,
        // The output keeps (or regenerates) an audio track.
        generate_audio: true,
        styles: Vec::new(),
        mode: None,
        quality: quality(fields)?,
        enhance_prompt: flag(fields, "enhance_prompt", false)?,
    };
    Ok(AwaitingVideo { request, video, start_seconds, end_seconds, regenerate_video, regenerate_audio })
}

#[cfg(test)]
mod tests {
    use super::super::tests::options;
    use super::*;
    use serde_json::json;

    const MP4: &str = "data:video/mp4;base64,AAAAIGZ0eXBpc29t";

    fn awaiting(start: f64, end: f64) -> AwaitingVideo {
        normalise(&json!({"prompt": "rain", "video": MP4, "start_seconds": start, "end_seconds": end}), &options())
            .unwrap()
    }

    #[test]
    fn the_clip_is_the_videos_frames_on_the_grid_in_its_orientation() {
        let r = awaiting(1.0, 2.0).with_video(72, 180, 320).unwrap();
        assert_eq!((r.num_frames, r.duration, r.aspect_ratio), (65, 3, AspectRatio::Portrait));
        let Some(Mode::Retake { start_seconds, end_seconds, regenerate_video, regenerate_audio, .. }) = r.mode else {
            panic!("{r:?}")
        };
        assert_eq!((start_seconds, end_seconds, regenerate_video, regenerate_audio), (1.0, 2.0, true, true));
        assert_eq!(span_frames(1.0, 2.0), (24, 48));
        assert_eq!(awaiting(0.0, 1.0).with_video(121, 320, 180).unwrap().aspect_ratio, AspectRatio::Landscape);
        assert_eq!(round_down_to_8k_plus_1(72), 65);
        assert_eq!(round_down_to_8k_plus_1(73), 73);
        assert_eq!(round_down_to_8k_plus_1(0), 0);
    }

    #[test]
    fn a_span_outside_the_video_or_too_short_is_refused_naming_its_end() {
        let e = awaiting(1.0, 4.0).with_video(73, 320, 180).unwrap_err().0;
        assert!(e.starts_with("`end_seconds` is 4, past the end of the video: the video lasts 3.042 s"), "{e}");
        let e = awaiting(3.5, 4.0).with_video(73, 320, 180).unwrap_err().0;
        assert!(e.starts_with("`start_seconds` is 3.5, outside the video"), "{e}");
        let e = awaiting(1.0, 1.3).with_video(73, 320, 180).unwrap_err().0;
        assert!(
            e.starts_with("`end_seconds`: the span 1–1.3 s holds 7 frames; the model regenerates at least 9"),
            "{e}"
        );
        let e = awaiting(2.9, 3.0).with_video(72, 320, 180).unwrap_err().0;
        assert!(e.contains("its first 65 of 72 frames"), "{e}");
        let e = awaiting(0.0, 0.2).with_video(5, 320, 180).unwrap_err().0;
        assert!(e.starts_with("`video` has 5 frames; a retake needs at least 9"), "{e}");
    }

    #[test]
    fn the_body_is_strict() {
        let err = |body: Value| normalise(&body, &options()).unwrap_err().0;
        assert_eq!(err(json!({"prompt": "x", "video": MP4, "end_seconds": 1})), "`start_seconds` is required.");
        let e = err(json!({"prompt": "x", "video": MP4, "start_seconds": 2, "end_seconds": 1}));
        assert_eq!(e, "`end_seconds` (1) must be after `start_seconds` (2).");
        let e = err(json!({"prompt": "x", "video": MP4, "start_seconds": -1, "end_seconds": 1}));
        assert!(e.starts_with("`start_seconds` must be a number of seconds, 0 or more"), "{e}");
        let e = err(json!({"prompt": "x", "video": MP4, "start_seconds": 0, "end_seconds": 1,
            "regenerate_video": false, "regenerate_audio": false}));
        assert!(e.contains("both false"), "{e}");
        let e = err(json!({"prompt": "x", "video": MP4, "start_seconds": 0, "end_seconds": 1, "styles": []}));
        assert!(e.starts_with("Unknown field `styles`"), "{e}");
        let e =
            err(json!({"prompt": "x", "video": "data:audio/wav;base64,AAAA", "start_seconds": 0, "end_seconds": 1}));
        assert!(e.starts_with("`video` must be an MP4, MOV or WebM video"), "{e}");
    }
}
