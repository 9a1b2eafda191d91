//! The preview engine's emulation of a first-stage preview (`--intermediate-previews`): the LTX
//! pipelines denoise the whole clip at half size first, so halfway through its frames this engine
//! renders the clip at half size (silent, without the text overlay) into `<out>/first-stage/`.
use super::{look, render_frame};
use crate::worker::engine::{EngineError, IntermediateClip, RenderSpec};
use crate::worker::engines::clip::{engine_error, ClipWriter};
use image::imageops::FilterType;
use std::path::Path;

pub fn render(spec: &RenderSpec, out_dir: &Path) -> Result<IntermediateClip, EngineError> {
    let (width, height) = IntermediateClip::half_size(spec.width, spec.height);
    let shrink = |image: &Option<image::RgbImage>| {
        image.as_ref().map(|i| image::imageops::resize(i, width, height, FilterType::Triangle))
    };
    let small = RenderSpec {
        width,
        height,
        generate_audio: false,
        start_image: shrink(&spec.start_image),
        end_image: shrink(&spec.end_image),
        // Keyframe images shrink too; a retake's first stage is all synthetic.
        mode: super::modes::shrink(&spec.mode, width, height),
        ..spec.clone()
    };
    let dir = out_dir.join("first-stage");
    std::fs::create_dir_all(&dir).map_err(engine_error)?;
    let look = look(&small);
    let mut clip = ClipWriter::start(&small, &dir, None)?;
    let mut frame = vec![0u8; (width * height * 3) as usize];
    for i in 0..small.num_frames {
        render_frame(&small, &look, i, &mut frame);
        clip.push(&frame)?;
    }
    Ok(IntermediateClip { clip: clip.finish()?, width, height, num_frames: small.num_frames })
}
