//! The `preview` engine: a deterministic synthetic clip rendered on the CPU that honours every
//! parameter (size, frames, fps, seed, prompt, start/end image, audio, styles). It is the free
//! sandbox of the API: same request, same bytes of video, every time. The request itself (prompt,
//! seed, size, frame counter and timecode) is drawn into the frames (`overlay`).
mod caption;
pub mod enhance;
mod first_stage;
mod modes;
mod overlay;

use super::super::engine::*;
use super::clip::ClipWriter;
use crate::domain::job::{FailureCode, JobStatus};
use crate::media::encode::audio_samples_for;
use crate::media::AUDIO_RATE;
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct PreviewEngine {
    /// Simulated model time spread over the sampling stage (0 = as fast as the CPU renders).
    pub sampling_time: Duration,
    /// Behaves like the GPU engine's one resident LoRA set: the set of the last clip rendered
    /// (the plain model at first), a switch counted whenever a clip needs another.
    pub resident: ResidentStyleSet,
}

impl PreviewEngine {
    pub fn new(sampling_time: Duration) -> PreviewEngine {
        PreviewEngine { sampling_time, resident: ResidentStyleSet::starting_with("") }
    }
}

#[async_trait]
impl Engine for PreviewEngine {
    fn name(&self) -> &'static str {
        "preview"
    }
    fn is_sandbox(&self) -> bool {
        true
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
        // Like a real engine, it needs the LoRA files it was given (their bytes do not change the look).
        if let Some(missing) = spec.loras.iter().find(|l| !l.path.is_file()) {
            return Err(EngineError::new(
                FailureCode::EngineError,
                format!("the LoRA file of style `{}` is missing from the worker", missing.style_id),
            ));
        }
        self.resident.replace(spec.style_set_key());
        let (spec, enhanced_prompt) = enhance::apply(spec);
        let out_dir = out_dir.to_owned();
        let delay = self.sampling_time / spec.num_frames.max(1);
        tokio::task::spawn_blocking(move || render_blocking(&spec, &out_dir, &progress, &cancel, delay))
            .await
            .map_err(|e| EngineError::new(FailureCode::EngineError, format!("the preview renderer panicked: {e}")))?
            .map(|clip| RenderedClip { enhanced_prompt, ..clip })
    }
    fn presets(&self) -> Vec<crate::domain::request::Quality> {
        crate::domain::request::Quality::ALL.to_vec()
    }
    async fn enhance_prompt(&self, prompt: &str, image: Option<image::RgbImage>) -> Result<String, EngineError> {
        Ok(enhance::enhance(prompt, image.as_ref()))
    }
}

/// Per-clip look derived from the seed and prompt.
pub(crate) struct Look {
    hue: f32,
    hue_speed: f32,
    stripes: f32,
    tone_hz: f32,
    /// RGB gain from the styles (each style id and strength tints the clip).
    grade: [f32; 3],
}

fn look(spec: &RenderSpec) -> Look {
    let digest = Sha256::new().chain_update(spec.seed.to_le_bytes()).chain_update(spec.prompt.as_bytes()).finalize();
    let unit = |i: usize| f32::from(digest[i]) / 255.0;
    let mut grade = [1.0f32; 3];
    for style in &spec.loras {
        let d = Sha256::digest(style.style_id.as_bytes());
        for (c, g) in grade.iter_mut().enumerate() {
            // Each channel moves by at least half the style's reach, up or down as its id says:
            // an id whose digest sat near the middle graded the clip too faintly to see.
            let x = f32::from(d[c]) / 127.5 - 1.0;
            *g *= 1.0 + 0.25 * style.strength as f32 * x.signum() * (0.5 + 0.5 * x.abs());
        }
    }
    Look {
        hue: unit(0),
        hue_speed: 0.2 + unit(1) * 0.6,
        stripes: 2.0 + unit(2) * 10.0,
        tone_hz: 220.0 + unit(3) * 440.0,
        grade,
    }
}

fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h = h.rem_euclid(1.0) * 6.0;
    let x = v * s * (1.0 - ((h % 2.0) - 1.0).abs());
    let c = v * s;
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r + m, g + m, b + m]
}

fn render_frame(spec: &RenderSpec, look: &Look, index: u32, frame: &mut [u8]) {
    let t = if spec.num_frames > 1 { index as f32 / (spec.num_frames - 1) as f32 } else { 0.0 };
    let (w, h) = (spec.width as usize, spec.height as usize);
    // Blend weights: the synthetic scene fades in from the start image and out to the end image.
    let from_start = if spec.start_image.is_some() { (1.0 - 2.0 * t).max(0.0) } else { 0.0 };
    let to_end = if spec.end_image.is_some() { (2.0 * t - 1.0).max(0.0) } else { 0.0 };
    let bar = (t * 1.3 - 0.15) * w as f32;
    let keyframes = match &spec.mode {
        RenderMode::Keyframes(keyframes) => modes::keyframe_weights(keyframes, spec.num_frames, index)
            .into_iter()
            .filter(|(_, weight)| *weight > 0.0)
            .map(|(k, weight)| (&keyframes[k].image, weight))
            .collect(),
        _ => Vec::new(),
    };
    for y in 0..h {
        let fy = y as f32 / h as f32;
        let row = &mut frame[y * w * 3..(y + 1) * w * 3];
        let base = hsv(look.hue + t * look.hue_speed + fy * 0.25, 0.65, 0.85);
        for x in 0..w {
            let fx = x as f32 / w as f32;
            let wave = 0.5 + 0.5 * ((fx * look.stripes + t * std::f32::consts::TAU + fy * 3.0).sin());
            let mut px = [0.0f32; 3];
            for c in 0..3 {
                px[c] = (base[c] * (0.55 + 0.45 * wave) * look.grade[c] * 255.0).clamp(0.0, 255.0);
            }
            if (x as f32 - bar).abs() < w as f32 * 0.01 {
                px = [245.0, 245.0, 245.0];
            }
            if let Some(start) = spec.start_image.as_ref().filter(|_| from_start > 0.0) {
                let s = start.get_pixel(x as u32, y as u32).0;
                for c in 0..3 {
                    px[c] = px[c] * (1.0 - from_start) + f32::from(s[c]) * from_start;
                }
            }
            if let Some(end) = spec.end_image.as_ref().filter(|_| to_end > 0.0) {
                let e = end.get_pixel(x as u32, y as u32).0;
                for c in 0..3 {
                    px[c] = px[c] * (1.0 - to_end) + f32::from(e[c]) * to_end;
                }
            }
            // Keyframes blend in like the start and end images (`modes`).
            let keyed: f32 = keyframes.iter().map(|(_, weight)| weight).sum();
            if keyed > 0.0 {
                let mut mixed = [0.0f32; 3];
                for (image, weight) in &keyframes {
                    let k = image.get_pixel(x as u32, y as u32).0;
                    for c in 0..3 {
                        mixed[c] += f32::from(k[c]) * weight;
                    }
                }
                for c in 0..3 {
                    px[c] = px[c] * (1.0 - keyed) + mixed[c];
                }
            }
            row[x * 3..x * 3 + 3].copy_from_slice(&[px[0] as u8, px[1] as u8, px[2] as u8]);
        }
    }
}

/// A chord that follows the clip, different left and right, with a gentle fade in and out.
fn render_audio(spec: &RenderSpec, look: &Look) -> Vec<f32> {
    let n = audio_samples_for(spec.num_frames, spec.fps);
    let mut out = Vec::with_capacity(n * 2);
    let fade = (AUDIO_RATE / 50) as usize;
    for i in 0..n {
        let t = i as f32 / AUDIO_RATE as f32;
        let env = (i.min(n - 1 - i).min(fade) as f32 / fade as f32).min(1.0) * 0.25;
        let left = (t * look.tone_hz * std::f32::consts::TAU).sin();
        let right = (t * look.tone_hz * 1.5 * std::f32::consts::TAU).sin();
        out.push(left * env);
        out.push(right * env);
    }
    out
}

/// Frame `index` as the encoder gets it (call for every frame in order: a retake reads its
/// input's frames as it goes).
fn compose_frame(
    spec: &RenderSpec,
    look: &Look,
    emulation: &mut modes::Emulation,
    text: &overlay::Overlay,
    index: u32,
    frame: &mut [u8],
) -> Result<(), EngineError> {
    // A retake keeps the input's frames outside its span, exactly (no overlay).
    if let Some(kept) = emulation.kept_frame(index)? {
        frame.copy_from_slice(kept);
    } else {
        render_frame(spec, look, index, frame);
        emulation.shade(index, frame);
        text.draw(index, frame);
    }
    Ok(())
}

fn render_blocking(
    spec: &RenderSpec,
    out_dir: &Path,
    progress: &ProgressSink,
    cancel: &CancellationToken,
    frame_delay: Duration,
) -> Result<RenderedClip, EngineError> {
    let look = look(spec);
    let mut emulation = modes::Emulation::prepare(spec, &look)?;
    let mut clip = ClipWriter::start(spec, out_dir, emulation.audio.take())?;
    let text = overlay::Overlay::new(spec);
    let mut frame = vec![0u8; (spec.width * spec.height * 3) as usize];
    for i in 0..spec.num_frames {
        if cancel.is_cancelled() {
            return Err(EngineError::new(FailureCode::EngineError, "cancelled"));
        }
        compose_frame(spec, &look, &mut emulation, &text, i, &mut frame)?;
        clip.push(&frame)?;
        progress.report(JobStatus::Sampling, f64::from(i + 1) / f64::from(spec.num_frames));
        // Its "first stage" ends halfway (`--intermediate-previews`).
        if progress.wants_intermediate() && i + 1 == spec.num_frames.div_ceil(2) {
            progress.intermediate(first_stage::render(spec, out_dir)?);
        }
        if !frame_delay.is_zero() {
            std::thread::sleep(frame_delay);
        }
    }
    clip.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::engine::LoraFile;

    fn spec() -> RenderSpec {
        RenderSpec {
            prompt: "a lighthouse".into(),
            seed: 7,
            width: 64,
            height: 32,
            num_frames: 9,
            fps: 24,
            generate_audio: true,
            start_image: None,
            end_image: None,
            loras: vec![],
            mode: RenderMode::Standard,
            quality: None,
            enhance_prompt: false,
        }
    }

    fn frame_of(spec: &RenderSpec, index: u32) -> Vec<u8> {
        let mut frame = vec![0; (spec.width * spec.height * 3) as usize];
        render_frame(spec, &look(spec), index, &mut frame);
        frame
    }

    #[test]
    fn same_request_same_pixels_other_seed_other_pixels() {
        assert_eq!(frame_of(&spec(), 3), frame_of(&spec(), 3));
        assert_ne!(frame_of(&spec(), 3), frame_of(&RenderSpec { seed: 8, ..spec() }, 3));
        assert_ne!(frame_of(&spec(), 3), frame_of(&RenderSpec { prompt: "a forest".into(), ..spec() }, 3));
        assert_ne!(frame_of(&spec(), 0), frame_of(&spec(), 8));
    }

    #[test]
    fn starts_on_the_start_image_and_ends_on_the_end_image() {
        let red = image::RgbImage::from_pixel(64, 32, image::Rgb([250, 0, 0]));
        let blue = image::RgbImage::from_pixel(64, 32, image::Rgb([0, 0, 250]));
        let s = RenderSpec { start_image: Some(red), end_image: Some(blue), ..spec() };
        assert!(frame_of(&s, 0).chunks(3).all(|p| p == [250, 0, 0]));
        assert!(frame_of(&s, 8).chunks(3).all(|p| p == [0, 0, 250]));
    }

    fn lora(id: &str, strength: f64) -> LoraFile {
        LoraFile { style_id: id.into(), strength, path: "unused.safetensors".into() }
    }

    #[test]
    fn styles_grade_the_colours() {
        let styled = RenderSpec { loras: vec![lora("noir", 1.5)], ..spec() };
        assert_ne!(frame_of(&spec(), 4), frame_of(&styled, 4));
        let zero = RenderSpec { loras: vec![lora("noir", 0.0)], ..spec() };
        assert_eq!(frame_of(&spec(), 4), frame_of(&zero, 4));
    }

    #[test]
    fn every_style_id_grades_the_clip_visibly() {
        let plain = frame_of(&spec(), 4);
        let least = (0..300)
            .map(|i| {
                let styled = frame_of(&RenderSpec { loras: vec![lora(&format!("style-{i}"), 1.5)], ..spec() }, 4);
                let sum: u64 = plain.iter().zip(&styled).map(|(a, b)| u64::from(a.abs_diff(*b))).sum();
                sum as f64 / plain.len() as f64
            })
            .fold(f64::MAX, f64::min);
        assert!(least > MIN_VISIBLE, "a style moved the frame by {least:.2} on average");
    }

    /// What the black-box style test (tests/it/styles.rs) requires of a graded clip, after encoding.
    const MIN_VISIBLE: f64 = 3.0;

    #[test]
    fn audio_covers_the_clip_exactly() {
        assert_eq!(render_audio(&spec(), &look(&spec())).len(), 9 * 2000 * 2);
    }
}
