//! The poster: one RGB frame, downscaled, as JPEG. No video decode needed.
use image::{codecs::jpeg::JpegEncoder, imageops, ImageBuffer, Rgb};
use std::path::Path;

/// Longest side of a poster.
const POSTER_MAX_SIDE: u32 = 640;

pub fn write_poster(rgb: &[u8], width: u32, height: u32, path: &Path) -> std::io::Result<()> {
    let frame: ImageBuffer<Rgb<u8>, &[u8]> = ImageBuffer::from_raw(width, height, rgb)
        .ok_or_else(|| std::io::Error::other("frame buffer has the wrong size"))?;
    let scale = f64::from(POSTER_MAX_SIDE) / f64::from(width.max(height));
    let (w, h) = if scale < 1.0 {
        (((f64::from(width) * scale).round() as u32).max(1), ((f64::from(height) * scale).round() as u32).max(1))
    } else {
        (width, height)
    };
    let small = imageops::thumbnail(&frame, w, h);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    JpegEncoder::new_with_quality(&mut out, 85).encode_image(&small).map_err(std::io::Error::other)?;
    Ok(())
}
