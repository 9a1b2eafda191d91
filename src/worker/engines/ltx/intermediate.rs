//! `--intermediate-previews` on the ltx engine: the engine decodes stage 1's half-resolution
//! latents (no extra denoising) into raw frames of half the canvas, and the worker crops and
//! encodes them like the final clip, at half the output size.
use super::canvas::Canvas;
use super::protocol::Frames;
use crate::worker::engine::{EngineError, IntermediateClip, RenderSpec};
use crate::worker::engines::clip::{engine_error, ClipWriter};
use std::io::Read;
use std::path::Path;

/// Stage 1's canvas: half of every side and offset (the canvas is made of 64s, so halves are
/// whole).
pub fn half_canvas(canvas: Canvas) -> Canvas {
    Canvas { width: canvas.width / 2, height: canvas.height / 2, left: canvas.left / 2, top: canvas.top / 2 }
}

/// Encodes the engine's stage-1 frames into `<out_dir>/first-stage/` as a silent MP4 and poster.
pub fn clip(
    spec: &RenderSpec,
    canvas: Canvas,
    frames: &Frames,
    out_dir: &Path,
) -> Result<IntermediateClip, EngineError> {
    let half = half_canvas(canvas);
    if (frames.width, frames.height, frames.count) != (half.width, half.height, spec.num_frames) {
        return Err(engine_error(format!(
            "the engine's stage-1 preview has {} frames of {}×{}, not {} of {}×{}",
            frames.count, frames.width, frames.height, spec.num_frames, half.width, half.height
        )));
    }
    let (width, height) = IntermediateClip::half_size(spec.width, spec.height);
    let small = RenderSpec { width, height, generate_audio: false, start_image: None, end_image: None, ..spec.clone() };
    let dir = out_dir.join("first-stage");
    std::fs::create_dir_all(&dir).map_err(engine_error)?;
    let mut writer = ClipWriter::start(&small, &dir, None)?;
    let mut file = std::fs::File::open(&frames.path)
        .map_err(|e| engine_error(format!("the engine's preview frames are unreadable: {e}")))?;
    let mut frame = vec![0u8; (half.width * half.height * 3) as usize];
    for _ in 0..spec.num_frames {
        file.read_exact(&mut frame).map_err(|e| engine_error(format!("the preview frames end early: {e}")))?;
        writer.push(&half.crop(&frame, width, height))?;
    }
    Ok(IntermediateClip { clip: writer.finish()?, width, height, num_frames: spec.num_frames })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_half_size_output_fits_inside_the_half_canvas() {
        for (w, h) in [(1280, 720), (720, 1280), (1920, 1080), (1080, 1920), (1088, 1920), (960, 960)] {
            let half = half_canvas(Canvas::covering(w, h));
            let (pw, ph) = IntermediateClip::half_size(w, h);
            assert!(half.left + pw <= half.width && half.top + ph <= half.height, "{w}×{h}: {half:?} {pw}×{ph}");
        }
        assert_eq!(half_canvas(Canvas::covering(1280, 720)), Canvas { width: 640, height: 384, left: 0, top: 12 });
    }
}
