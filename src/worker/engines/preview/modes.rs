//! How the preview engine emulates the additive modes (docs/api.md, "Beyond Krea"), so the whole
//! API runs without a GPU and each mode's defining property can be checked in its output:
//!
//! - **Keyframes**: the frame at a keyframe's `frame` is the synthetic frame blended with its
//!   image by `strength` (1: exactly the image), like `start_image`. Between two keyframes the
//!   image cross-fades from one to the next while the synthetic scene shows through, most at
//!   the midpoint; before the first and after the last keyframe the image fades out towards the
//!   clip's ends (unless the keyframe is at the end).
//! - **Audio-to-video**: the clip's audio is the input's (decoded here; the worker then puts the
//!   input's exact track in, `media::mux_audio`), and the picture pulses with its loudness.
//! - **Retake**: frames outside `[start_frame, end_frame)` (all of them with
//!   `regenerate_video: false`) are the input's decoded frames, exactly, without the text
//!   overlay; frames inside are synthetic. Audio: `regenerate_audio: false` keeps the input's
//!   (the worker muxes its exact track); `true` keeps it outside the span and synthesises the
//!   preview's tone inside it (silence outside when the input has none).
use super::{render_audio, Look};
use crate::domain::job::FailureCode;
use crate::media::encode::audio_samples_for;
use crate::media::input_video::FrameReader;
use crate::media::{input_audio, AUDIO_CHANNELS, AUDIO_RATE};
use crate::worker::engine::{EngineError, KeyframeImage, RenderMode, RenderSpec};
use image::imageops::FilterType;

/// How much of each keyframe's image frame `index` shows, as `(keyframe index, weight)`; the
/// weights sum to at most 1 and the synthetic frame takes the rest. `keyframes` are ascending.
pub fn keyframe_weights(keyframes: &[KeyframeImage], num_frames: u32, index: u32) -> Vec<(usize, f32)> {
    let (Some(first), Some(last)) = (keyframes.first(), keyframes.last()) else {
        return Vec::new();
    };
    let strength = |k: &KeyframeImage| k.strength.clamp(0.0, 1.0) as f32;
    if index <= first.frame {
        // Fades in from frame 0 to the first keyframe.
        let ramp = if first.frame == 0 { 1.0 } else { index as f32 / first.frame as f32 };
        return vec![(0, strength(first) * ramp)];
    }
    let end = num_frames.saturating_sub(1);
    if index >= last.frame {
        let ramp = if last.frame >= end { 1.0 } else { (end - index.min(end)) as f32 / (end - last.frame) as f32 };
        return vec![(keyframes.len() - 1, strength(last) * ramp)];
    }
    let b = keyframes.iter().position(|k| k.frame > index).expect("index is below the last keyframe");
    let (ka, kb) = (&keyframes[b - 1], &keyframes[b]);
    let t = (index - ka.frame) as f32 / (kb.frame - ka.frame) as f32;
    // The synthetic scene shows through between keyframes, half of it at the midpoint.
    let dip = 1.0 - 0.5 * (t * std::f32::consts::PI).sin();
    let mut weights = vec![(b - 1, strength(ka) * (1.0 - t) * dip), (b, strength(kb) * t * dip)];
    weights.retain(|(_, weight)| *weight > 0.0);
    weights
}

/// The mode with its images shrunk to `width`×`height` (a first-stage preview). Retake and
/// audio-to-video inputs are files, used as they are.
pub fn shrink(mode: &RenderMode, width: u32, height: u32) -> RenderMode {
    match mode {
        RenderMode::Keyframes(keyframes) => RenderMode::Keyframes(
            keyframes
                .iter()
                .map(|k| KeyframeImage {
                    image: image::imageops::resize(&k.image, width, height, FilterType::Triangle),
                    ..k.clone()
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn invalid(field: &str, why: String) -> EngineError {
    EngineError::new(FailureCode::InvalidInput, format!("`{field}` could not be used: it {why}."))
}

/// A render's mode inputs, decoded once: the clip's audio, the loudness the picture follows
/// (audio-to-video), and the frames a retake keeps.
pub struct Emulation {
    pub audio: Option<Vec<f32>>,
    /// Per frame, 0..=1 (audio-to-video).
    levels: Option<Vec<f32>>,
    retake: Option<KeptFrames>,
}

struct KeptFrames {
    /// `None` once the input has no more frames (later frames are synthetic).
    reader: Option<FrameReader>,
    frame: Vec<u8>,
    start: u32,
    end: u32,
    regenerate_video: bool,
}

impl Emulation {
    pub fn prepare(spec: &RenderSpec, look: &Look) -> Result<Emulation, EngineError> {
        let samples = audio_samples_for(spec.num_frames, spec.fps);
        let decode = |field: &str, path: &std::path::Path| {
            input_audio::decode_f32(path, AUDIO_RATE, AUDIO_CHANNELS, samples).map_err(|why| invalid(field, why))
        };
        Ok(match &spec.mode {
            RenderMode::Standard | RenderMode::Keyframes(_) => {
                Emulation { audio: spec.generate_audio.then(|| render_audio(spec, look)), levels: None, retake: None }
            }
            RenderMode::AudioToVideo { audio } => {
                let track = decode("audio", audio)?.unwrap_or_else(|| vec![0.0; samples * AUDIO_CHANNELS as usize]);
                Emulation { levels: Some(loudness(&track, spec.num_frames)), audio: Some(track), retake: None }
            }
            RenderMode::Retake { video, start_frame, end_frame, regenerate_video, regenerate_audio } => {
                let kept = decode("video", video)?;
                let audio = if *regenerate_audio {
                    let mut mixed = kept.unwrap_or_else(|| vec![0.0; samples * AUDIO_CHANNELS as usize]);
                    let synthetic = render_audio(spec, look);
                    let per_frame = (AUDIO_RATE / spec.fps.max(1)) as usize * AUDIO_CHANNELS as usize;
                    let span = (*start_frame as usize * per_frame).min(mixed.len())
                        ..(*end_frame as usize * per_frame).min(mixed.len());
                    mixed[span.clone()].copy_from_slice(&synthetic[span]);
                    Some(mixed)
                } else {
                    kept
                };
                let reader = FrameReader::open(video, spec.width, spec.height).map_err(|why| invalid("video", why))?;
                Emulation {
                    audio,
                    levels: None,
                    retake: Some(KeptFrames {
                        reader: Some(reader),
                        frame: vec![0; (spec.width * spec.height * 3) as usize],
                        start: *start_frame,
                        end: *end_frame,
                        regenerate_video: *regenerate_video,
                    }),
                }
            }
        })
    }

    /// The input's frame `index` when a retake keeps it (read in order: call once per frame).
    pub fn kept_frame(&mut self, index: u32) -> Result<Option<&[u8]>, EngineError> {
        let Some(kept) = self.retake.as_mut() else {
            return Ok(None);
        };
        let Some(reader) = kept.reader.as_mut() else {
            return Ok(None);
        };
        if !reader.next_into(&mut kept.frame).map_err(|why| invalid("video", why))? {
            kept.reader = None;
            return Ok(None);
        }
        let inside = (kept.start..kept.end).contains(&index);
        Ok((!inside || !kept.regenerate_video).then_some(&kept.frame[..]))
    }

    /// Audio-to-video: the picture brightens with the audio's loudness at this frame.
    pub fn shade(&self, index: u32, frame: &mut [u8]) {
        if let Some(level) = self.levels.as_ref().and_then(|l| l.get(index as usize)) {
            let gain = 0.55 + 0.45 * level;
            for v in frame.iter_mut() {
                *v = (f32::from(*v) * gain) as u8;
            }
        }
    }
}

/// Each frame's RMS loudness over its share of `samples` (interleaved stereo), scaled so the
/// loudest frame is 1.
fn loudness(samples: &[f32], num_frames: u32) -> Vec<f32> {
    let per_frame = (samples.len() / num_frames.max(1) as usize).max(1);
    let rms: Vec<f32> = samples
        .chunks(per_frame)
        .take(num_frames as usize)
        .map(|c| (c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32).sqrt())
        .collect();
    let loudest = rms.iter().copied().fold(0.0f32, f32::max);
    rms.iter().map(|r| if loudest > 0.0 { r / loudest } else { 0.0 }).collect()
}

#[cfg(test)]
mod tests {
    use super::super::{compose_frame, look, overlay::Overlay};
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn spec(mode: RenderMode) -> RenderSpec {
        RenderSpec {
            prompt: "a lighthouse".into(),
            seed: 7,
            width: 64,
            height: 32,
            num_frames: 17,
            fps: 24,
            generate_audio: true,
            start_image: None,
            end_image: None,
            loras: vec![],
            mode,
            quality: None,
            enhance_prompt: false,
        }
    }

    /// Every frame of the clip as the encoder would get it.
    fn frames(spec: &RenderSpec) -> (Vec<Vec<u8>>, Option<Vec<f32>>) {
        let look = look(spec);
        let mut emulation = Emulation::prepare(spec, &look).unwrap();
        let text = Overlay::new(spec);
        let frames = (0..spec.num_frames)
            .map(|i| {
                let mut frame = vec![0; (spec.width * spec.height * 3) as usize];
                compose_frame(spec, &look, &mut emulation, &text, i, &mut frame).unwrap();
                frame
            })
            .collect();
        (frames, emulation.audio.take())
    }

    fn ffmpeg(args: &[&str], out: &Path) -> PathBuf {
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .arg(out)
            .status()
            .unwrap();
        assert!(status.success(), "ffmpeg {args:?}");
        out.to_owned()
    }

    #[test]
    fn outside_the_retake_span_the_frames_are_the_inputs_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let input = ffmpeg(
            &["-f", "lavfi", "-i", "testsrc=s=128x64:r=24:d=1", "-f", "lavfi", "-i", "sine=f=300:d=1"]
                .into_iter()
                .chain(["-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"])
                .collect::<Vec<_>>(),
            &dir.path().join("in.mp4"),
        );
        let retake = |regenerate_video, regenerate_audio| {
            spec(RenderMode::Retake {
                video: input.clone(),
                start_frame: 4,
                end_frame: 12,
                regenerate_video,
                regenerate_audio,
            })
        };
        let (out, audio) = frames(&retake(true, false));
        let mut reader = FrameReader::open(&input, 64, 32).unwrap();
        let (synthetic, _) = frames(&spec(RenderMode::Standard));
        for (i, frame) in out.iter().enumerate() {
            let mut expected = vec![0; 64 * 32 * 3];
            assert!(reader.next_into(&mut expected).unwrap());
            if (4..12).contains(&i) {
                assert_eq!(*frame, synthetic[i], "frame {i} is regenerated");
            } else {
                assert_eq!(*frame, expected, "frame {i} is the input's, exactly");
            }
        }
        // `regenerate_audio: false`: the input's audio (the worker then muxes its exact track).
        let kept = input_audio::decode_f32(&input, AUDIO_RATE, AUDIO_CHANNELS, 17 * 2000).unwrap();
        assert_eq!(audio, kept);
        // `regenerate_video: false` keeps every frame; `regenerate_audio: true` replaces the span's audio.
        let (kept_frames, mixed) = frames(&retake(false, true));
        let mut reader = FrameReader::open(&input, 64, 32).unwrap();
        let mut expected = vec![0; 64 * 32 * 3];
        for frame in &kept_frames {
            assert!(reader.next_into(&mut expected).unwrap());
            assert_eq!(*frame, expected);
        }
        let (mixed, kept) = (mixed.unwrap(), kept.unwrap());
        let span = 4 * 2000 * 2..12 * 2000 * 2;
        assert_eq!(mixed[..span.start], kept[..span.start]);
        assert_eq!(mixed[span.end..], kept[span.end..]);
        assert_ne!(mixed[span.clone()], kept[span]);
    }

    #[test]
    fn keyframes_appear_at_their_frames() {
        let red = image::RgbImage::from_pixel(64, 32, image::Rgb([250, 0, 0]));
        let blue = image::RgbImage::from_pixel(64, 32, image::Rgb([0, 0, 250]));
        let keys = vec![
            KeyframeImage { frame: 0, image: red, strength: 1.0 },
            KeyframeImage { frame: 16, image: blue, strength: 0.5 },
        ];
        let s = spec(RenderMode::Keyframes(keys));
        let plain = spec(RenderMode::Standard);
        let mut frame = vec![0; 64 * 32 * 3];
        super::super::render_frame(&s, &look(&s), 0, &mut frame);
        assert!(frame.chunks(3).all(|p| p == [250, 0, 0]), "strength 1: exactly the image");
        let mut synthetic = vec![0; 64 * 32 * 3];
        super::super::render_frame(&plain, &look(&plain), 16, &mut synthetic);
        super::super::render_frame(&s, &look(&s), 16, &mut frame);
        for (p, q) in frame.chunks(3).zip(synthetic.chunks(3)) {
            let half = |a: u8, b: u8| (f32::from(a) * 0.5 + f32::from(b) * 0.5) as i32;
            assert!((i32::from(p[2]) - half(q[2], 250)).abs() <= 1, "strength 0.5: half the image");
        }
    }

    #[test]
    fn audio_to_video_plays_the_input_and_pulses_with_it() {
        let dir = tempfile::tempdir().unwrap();
        // Silence, then a tone: the picture is darker in the silence.
        let wav = ffmpeg(
            &["-f", "lavfi", "-i", "sine=f=440:d=0.5", "-af", "volume=enable='lt(t,0.25)':volume=0"],
            &dir.path().join("a.wav"),
        );
        let s = spec(RenderMode::AudioToVideo { audio: wav.clone() });
        let (out, audio) = frames(&s);
        let expected = input_audio::decode_f32(&wav, AUDIO_RATE, AUDIO_CHANNELS, 17 * 2000).unwrap();
        assert_eq!(audio, expected);
        // Brightness relative to the same frame without audio (the text overlay is on both).
        let (plain, _) = frames(&spec(RenderMode::Standard));
        let brightness = |f: &[u8]| f.iter().map(|v| f64::from(*v)).sum::<f64>();
        let relative = |i: usize| brightness(&out[i]) / brightness(&plain[i]);
        assert!(relative(2) + 0.2 < relative(10), "silent frames are dimmed: {} vs {}", relative(2), relative(10));
    }

    fn key(frame: u32, strength: f64) -> KeyframeImage {
        KeyframeImage { frame, strength, image: image::RgbImage::new(1, 1) }
    }

    #[test]
    fn a_keyframe_is_all_there_at_its_frame_and_fades_between() {
        let keys = [key(0, 1.0), key(16, 0.5), key(24, 1.0)];
        assert_eq!(keyframe_weights(&keys, 33, 0), vec![(0, 1.0)]);
        assert_eq!(keyframe_weights(&keys, 33, 16), vec![(1, 0.5)]);
        assert_eq!(keyframe_weights(&keys, 33, 24), vec![(2, 1.0)]);
        // Midway between the first two: both images at half, dipped so the scene shows through.
        let mid = keyframe_weights(&keys, 33, 8);
        assert_eq!(mid.iter().map(|w| w.0).collect::<Vec<_>>(), vec![0, 1]);
        assert!((mid[0].1 - 0.25).abs() < 1e-6 && (mid[1].1 - 0.125).abs() < 1e-6, "{mid:?}");
        // After the last: fades out to the clip's last frame.
        assert_eq!(keyframe_weights(&keys, 33, 32), vec![(2, 0.0)], "nothing of it at the end");
        assert_eq!(keyframe_weights(&keys, 33, 28), vec![(2, 0.5)]);
    }

    #[test]
    fn before_the_first_keyframe_its_image_fades_in() {
        let keys = [key(8, 1.0), key(32, 1.0)];
        assert_eq!(keyframe_weights(&keys, 33, 0), vec![(0, 0.0)]);
        assert_eq!(keyframe_weights(&keys, 33, 4), vec![(0, 0.5)]);
        assert_eq!(keyframe_weights(&keys, 33, 32), vec![(1, 1.0)]);
        assert!(keyframe_weights(&[], 33, 4).is_empty());
    }

    #[test]
    fn loudness_follows_the_audio_and_tops_out_at_one() {
        let mut samples = vec![0.0f32; 4 * 100];
        samples[200..300].iter_mut().for_each(|s| *s = 0.5);
        samples[300..].iter_mut().for_each(|s| *s = 0.25);
        assert_eq!(loudness(&samples, 4), vec![0.0, 0.0, 1.0, 0.5]);
        assert_eq!(loudness(&[0.0; 8], 4), vec![0.0; 4]);
    }
}
