//! Start and end frames: decoded with size limits (a decompression bomb is refused, not decoded),
//! EXIF orientation applied, then cover-cropped and resized to the output canvas.
use crate::domain::request::{decode_data_uri, IMAGE_MIME_TYPES};
use image::{imageops, DynamicImage, ImageDecoder, ImageReader, RgbImage};
use std::io::Cursor;

/// Largest input image side we decode.
const MAX_SIDE: u32 = 8192;
/// Largest decoder allocation.
const MAX_ALLOC: u64 = 256 * 1024 * 1024;

/// Decodes a `data:` image and fits it to `width`×`height`. The error says what was wrong.
pub fn load_data_uri(uri: &str, width: u32, height: u32) -> Result<RgbImage, String> {
    let (mime, bytes) = decode_data_uri(uri).ok_or("it is not a base64 data: URI")?;
    if !IMAGE_MIME_TYPES.contains(&mime.as_str()) {
        return Err(format!("{mime} is not a supported image type"));
    }
    decode_and_fit(&bytes, width, height)
}

pub fn decode_and_fit(bytes: &[u8], width: u32, height: u32) -> Result<RgbImage, String> {
    let image = decode(ImageReader::new(Cursor::new(bytes)))?;
    Ok(cover(&image.to_rgb8(), width, height))
}

/// Decodes an uploaded image file whole (so a truncated or corrupt one is found at upload, not
/// when a job uses it) and returns its upright width and height.
pub fn probe_file(path: &std::path::Path) -> Result<(u32, u32), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("the file could not be read ({e})"))?;
    let image = decode(ImageReader::new(std::io::BufReader::new(file)))?;
    Ok((image.width(), image.height()))
}

/// JPEG, PNG or WebP only, within the size limits (checked from the header, before any pixel
/// buffer is allocated), EXIF orientation applied.
fn decode<R: std::io::BufRead + std::io::Seek>(reader: ImageReader<R>) -> Result<DynamicImage, String> {
    let mut reader = reader.with_guessed_format().map_err(|e| e.to_string())?;
    if !matches!(reader.format(), Some(image::ImageFormat::Jpeg | image::ImageFormat::Png | image::ImageFormat::WebP)) {
        return Err("it is not a JPEG, PNG or WebP image".into());
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(describe)?;
    let orientation = decoder.orientation().map_err(describe)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(describe)?;
    image.apply_orientation(orientation);
    Ok(image)
}

fn describe(e: image::ImageError) -> String {
    match e {
        image::ImageError::Limits(_) => {
            format!("the image is larger than {MAX_SIDE}×{MAX_SIDE} pixels")
        }
        other => format!("the image could not be decoded ({other})"),
    }
}

/// Scales to cover the canvas, then crops the centre.
pub fn cover(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let scale = (f64::from(width) / f64::from(image.width())).max(f64::from(height) / f64::from(image.height()));
    let scaled_w = ((f64::from(image.width()) * scale).ceil() as u32).max(width);
    let scaled_h = ((f64::from(image.height()) * scale).ceil() as u32).max(height);
    let scaled = imageops::resize(image, scaled_w, scaled_h, imageops::FilterType::Triangle);
    imageops::crop_imm(&scaled, (scaled_w - width) / 2, (scaled_h - height) / 2, width, height).to_image()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn png(width: u32, height: u32, colour: [u8; 3]) -> Vec<u8> {
        let img = RgbImage::from_pixel(width, height, image::Rgb(colour));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    }

    #[test]
    fn fits_any_aspect_to_the_canvas() {
        let fitted = decode_and_fit(&png(300, 100, [200, 10, 10]), 64, 112).unwrap();
        assert_eq!(fitted.dimensions(), (64, 112));
        assert_eq!(fitted.get_pixel(32, 56).0, [200, 10, 10]);
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        assert!(decode_and_fit(b"hello world, not an image", 64, 64).unwrap_err().contains("not a JPEG, PNG or WebP"));
        let mut truncated = png(50, 50, [1, 2, 3]);
        truncated.truncate(40);
        assert!(decode_and_fit(&truncated, 64, 64).unwrap_err().contains("could not be decoded"));
    }

    #[test]
    fn refuses_a_decompression_bomb_without_decoding_it() {
        // A 20000×20000 PNG header: refused from its dimensions alone.
        let bomb = {
            let img = image::GrayImage::new(1, 1);
            let mut out = Vec::new();
            img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
            // Patch IHDR width/height (bytes 16..24) to 20000 and fix the CRC.
            out[16..20].copy_from_slice(&20000u32.to_be_bytes());
            out[20..24].copy_from_slice(&20000u32.to_be_bytes());
            let crc = crc32(&out[12..29]);
            out[29..33].copy_from_slice(&crc.to_be_bytes());
            out
        };
        let err = decode_and_fit(&bomb, 64, 64).unwrap_err();
        assert!(err.contains("larger than 8192"), "{err}");
    }

    #[test]
    fn data_uris_are_decoded() {
        let uri = format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(png(8, 8, [0, 255, 0]))
        );
        assert_eq!(load_data_uri(&uri, 16, 16).unwrap().get_pixel(3, 3).0, [0, 255, 0]);
        let lie = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(b"GIF89a...."));
        assert!(load_data_uri(&lie, 16, 16).is_err());
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
}
