//! An additive mode's inputs, gathered before the engine runs (keyframe images fitted to the
//! canvas; the audio or the clip to retake staged in the job's scratch dir), and what the worker
//! does to every engine's clip after it: the input's exact audio track muxed in where the mode
//! keeps it (`media::mux_audio`), so no engine's re-encoding stands for it. Anything wrong with
//! an input fails the job `invalid_input` (uncharged) with a sentence that says what.
use super::engine::{EngineError, KeyframeImage, RenderMode, RenderedClip};
use super::inputs::{self, invalid};
use super::queue::{WorkItem, WorkQueue};
use crate::domain::job::FailureCode;
use crate::domain::request::Mode;
use crate::media::mux_audio::{self, AudioTrack};
use crate::media::{input_audio, input_video};
use std::path::{Path, PathBuf};

/// The job's `RenderMode`, with its inputs fetched.
pub async fn render_mode(
    queue: &dyn WorkQueue,
    client: &reqwest::Client,
    scratch: &Path,
    item: &WorkItem,
    canvas: (u32, u32),
) -> Result<RenderMode, EngineError> {
    let num_frames = item.request.num_frames;
    Ok(match &item.request.mode {
        None => RenderMode::Standard,
        Some(Mode::Keyframes { keyframes }) => {
            let mut images = Vec::with_capacity(keyframes.len());
            for (i, keyframe) in keyframes.iter().enumerate() {
                if keyframe.frame >= num_frames {
                    return Err(EngineError::new(
                        FailureCode::InvalidInput,
                        format!(
                            "`keyframes[{i}].frame` ({}) is past the clip's last frame ({}).",
                            keyframe.frame,
                            num_frames - 1
                        ),
                    ));
                }
                let field = format!("keyframes[{i}].image");
                let image = inputs::image(queue, client, scratch, &field, &keyframe.image, canvas).await?;
                images.push(KeyframeImage {
                    frame: keyframe.frame,
                    image,
                    strength: keyframe.strength.clamp(0.0, 1.0),
                });
            }
            images.sort_by_key(|k| k.frame);
            RenderMode::Keyframes(images)
        }
        Some(Mode::AudioToVideo { audio, .. }) => {
            let path = inputs::staged_file(queue, client, scratch, "audio", audio, "audio").await?;
            // Probed again: another site's file was not seen at submit.
            let probed = blocking({
                let path = path.clone();
                move || input_audio::probe(&path)
            })
            .await?
            .map_err(|why| invalid("audio", format!("it {why}")))?;
            if probed.is_none() {
                return Err(invalid("audio", "it has no audio stream"));
            }
            RenderMode::AudioToVideo { audio: path }
        }
        Some(Mode::Retake { video, start_seconds, end_seconds, regenerate_video, regenerate_audio }) => {
            let path = inputs::staged_file(queue, client, scratch, "video", video, "video").await?;
            blocking({
                let path = path.clone();
                move || input_video::probe_and_check(&path)
            })
            .await?
            .map_err(|why| invalid("video", format!("it {why}")))?;
            let (start_frame, end_frame) = retake_frames(*start_seconds, *end_seconds, num_frames);
            RenderMode::Retake {
                video: path,
                start_frame,
                end_frame,
                regenerate_video: *regenerate_video,
                regenerate_audio: *regenerate_audio,
            }
        }
    })
}

/// A retake's span in frames at the clip's 24 fps: `[round(start × 24), round(end × 24))`
/// (the rule submit checked it by), within the clip.
pub fn retake_frames(start_seconds: f64, end_seconds: f64, num_frames: u32) -> (u32, u32) {
    let (start, end) = crate::domain::request::modes::retake::span_frames(start_seconds, end_seconds);
    let end = end.min(num_frames);
    (start.min(end), end)
}

/// The file whose audio track the clip must carry unchanged: audio-to-video's input, and a
/// retake's clip when its audio is kept (`regenerate_audio: false`).
pub fn kept_audio(mode: &RenderMode) -> Option<PathBuf> {
    match mode {
        RenderMode::AudioToVideo { audio } => Some(audio.clone()),
        RenderMode::Retake { video, regenerate_audio: false, .. } => Some(video.clone()),
        _ => None,
    }
}

/// Replaces the clip's audio with `source`'s track (none when `source` is `None`).
pub async fn keep_input_audio(
    clip: RenderedClip,
    source: Option<PathBuf>,
    num_frames: u32,
    fps: u32,
) -> Result<RenderedClip, EngineError> {
    let Some(source) = source else {
        return Ok(clip);
    };
    let video = clip.video.clone();
    let track =
        blocking(move || mux_audio::keep_input_audio(&video, &source, num_frames, fps)).await?.map_err(|why| {
            EngineError::new(FailureCode::EngineError, format!("the input's audio could not be muxed: {why}"))
        })?;
    Ok(RenderedClip { has_audio: track != AudioTrack::Silent, ..clip })
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| EngineError::new(FailureCode::InternalError, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retake_span_rounds_to_frames_within_the_clip() {
        assert_eq!(retake_frames(1.0, 2.0, 121), (24, 48));
        assert_eq!(retake_frames(0.52, 1.01, 121), (12, 24));
        assert_eq!(retake_frames(4.0, 9.0, 121), (96, 121), "the end is clamped to the clip");
        assert_eq!(retake_frames(-1.0, 0.5, 121), (0, 12));
        assert_eq!(retake_frames(9.0, 10.0, 121), (121, 121));
    }

    #[test]
    fn the_input_audio_is_kept_for_audio_to_video_and_a_retake_that_keeps_its_audio() {
        let a2v = RenderMode::AudioToVideo { audio: "a.wav".into() };
        assert_eq!(kept_audio(&a2v), Some(PathBuf::from("a.wav")));
        let retake = |regenerate_audio| RenderMode::Retake {
            video: "v.mp4".into(),
            start_frame: 0,
            end_frame: 8,
            regenerate_video: true,
            regenerate_audio,
        };
        assert_eq!(kept_audio(&retake(false)), Some(PathBuf::from("v.mp4")));
        assert_eq!(kept_audio(&retake(true)), None);
        assert_eq!(kept_audio(&RenderMode::Standard), None);
    }
}
