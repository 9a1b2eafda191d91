//! Turns the engine's raw output into the job's MP4 and poster: frames cropped from the canvas
//! to the output size, audio checked, both written by the common `ClipWriter`.
use super::canvas::Canvas;
use super::protocol::Finished;
use crate::media::{AUDIO_CHANNELS, AUDIO_RATE};
use crate::worker::engine::{EngineError, RenderSpec, RenderedClip};
use crate::worker::engines::clip::{engine_error, ClipWriter};
use std::io::Read;
use std::path::Path;

pub fn clip(spec: &RenderSpec, canvas: Canvas, result: &Finished, out_dir: &Path) -> Result<RenderedClip, EngineError> {
    let frames = &result.frames;
    if (frames.width, frames.height, frames.count) != (canvas.width, canvas.height, spec.num_frames) {
        return Err(engine_error(format!(
            "the engine returned {} frames of {}×{}, not {} of {}×{}",
            frames.count, frames.width, frames.height, spec.num_frames, canvas.width, canvas.height
        )));
    }
    let audio = match (&result.audio, spec.generate_audio) {
        (Some(file), true) => Some(read_audio(file)?),
        (None, true) => return Err(engine_error("the engine returned no audio")),
        (_, false) => None,
    };
    let mut clip = ClipWriter::start(spec, out_dir, audio)?;
    let mut file = std::fs::File::open(&frames.path)
        .map_err(|e| engine_error(format!("the engine's frames are unreadable: {e}")))?;
    let mut frame = vec![0u8; (canvas.width * canvas.height * 3) as usize];
    for _ in 0..spec.num_frames {
        file.read_exact(&mut frame).map_err(|e| engine_error(format!("the engine's frames end early: {e}")))?;
        clip.push(&canvas.crop(&frame, spec.width, spec.height))?;
    }
    clip.finish()
}

fn read_audio(file: &super::protocol::AudioFile) -> Result<Vec<f32>, EngineError> {
    if (file.sample_rate, file.channels) != (AUDIO_RATE, AUDIO_CHANNELS) {
        return Err(engine_error(format!(
            "the engine returned {} Hz × {} channels of audio, not {AUDIO_RATE} × {AUDIO_CHANNELS}",
            file.sample_rate, file.channels
        )));
    }
    let bytes =
        std::fs::read(&file.path).map_err(|e| engine_error(format!("the engine's audio is unreadable: {e}")))?;
    Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}
