//! LTX-2.3's two-stage pipelines need width and height in multiples of 64, and our outputs are
//! 1280×720 / 1920×1080. The engine renders the smallest 64-multiple canvas that covers the
//! output (1280×768, 1920×1088) and the worker crops its centre; a conditioning image is
//! extended to the canvas by repeating its edge rows and columns, so the part that is kept is
//! exactly the caller's image.
use crate::domain::job::JobStatus;
use image::RgbImage;

const MULTIPLE: u32 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    /// Offset of the output inside the canvas.
    pub left: u32,
    pub top: u32,
}

impl Canvas {
    pub fn covering(width: u32, height: u32) -> Canvas {
        let up = |v: u32| v.div_ceil(MULTIPLE) * MULTIPLE;
        let (cw, ch) = (up(width), up(height));
        Canvas { width: cw, height: ch, left: (cw - width) / 2, top: (ch - height) / 2 }
    }

    /// The image (output-sized) placed in the canvas, its border repeated outwards.
    pub fn extend(&self, image: &RgbImage) -> RgbImage {
        let (w, h) = image.dimensions();
        RgbImage::from_fn(self.width, self.height, |x, y| {
            let sx = x.saturating_sub(self.left).min(w - 1);
            let sy = y.saturating_sub(self.top).min(h - 1);
            *image.get_pixel(sx, sy)
        })
    }

    /// The output-sized centre of one canvas-sized RGB24 frame.
    pub fn crop(&self, frame: &[u8], width: u32, height: u32) -> Vec<u8> {
        let row = (self.width * 3) as usize;
        let mut out = Vec::with_capacity((width * height * 3) as usize);
        for y in self.top..self.top + height {
            let start = y as usize * row + self.left as usize * 3;
            out.extend_from_slice(&frame[start..start + width as usize * 3]);
        }
        out
    }
}

/// The job status and overall progress (0..1) for an engine progress event. Sampling (stage 1)
/// is most of the work; refining (stage 2, full resolution, 3 steps) the next largest.
pub fn job_progress(stage: &str, step: u32, total: u32) -> (JobStatus, f64) {
    let within = if total == 0 { 0.0 } else { f64::from(step.min(total)) / f64::from(total) };
    match stage {
        "encoding_prompt" => (JobStatus::Processing, 0.02),
        "sampling" => (JobStatus::Sampling, 0.05 + 0.60 * within),
        "upsampling" => (JobStatus::Sampling, 0.66),
        "refining" => (JobStatus::Sampling, 0.67 + 0.23 * within),
        "decoding" => (JobStatus::Sampling, 0.91),
        _ => (JobStatus::Sampling, 0.05),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_get_the_smallest_covering_canvas_of_64s() {
        assert_eq!(Canvas::covering(1280, 720), Canvas { width: 1280, height: 768, left: 0, top: 24 });
        assert_eq!(Canvas::covering(1080, 1920), Canvas { width: 1088, height: 1920, left: 4, top: 0 });
        assert_eq!(Canvas::covering(1920, 1080), Canvas { width: 1920, height: 1088, left: 0, top: 4 });
        assert_eq!(Canvas::covering(128, 128), Canvas { width: 128, height: 128, left: 0, top: 0 });
    }

    #[test]
    fn an_extended_image_cropped_back_is_the_image() {
        let image = RgbImage::from_fn(6, 4, |x, y| image::Rgb([x as u8 * 10, y as u8 * 10, 7]));
        let canvas = Canvas { width: 10, height: 8, left: 2, top: 2 };
        let extended = canvas.extend(&image);
        assert_eq!(extended.get_pixel(0, 0), image.get_pixel(0, 0), "corner repeats outwards");
        assert_eq!(extended.get_pixel(9, 7), image.get_pixel(5, 3));
        assert_eq!(canvas.crop(extended.as_raw(), 6, 4), image.into_raw());
    }

    #[test]
    fn progress_only_moves_forward_through_the_stages() {
        let order = [
            ("encoding_prompt", 0, 1),
            ("sampling", 0, 8),
            ("sampling", 8, 8),
            ("upsampling", 0, 1),
            ("refining", 0, 3),
            ("refining", 3, 3),
            ("decoding", 0, 1),
        ];
        let fractions: Vec<f64> = order.iter().map(|(s, i, n)| job_progress(s, *i, *n).1).collect();
        assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
        assert!(fractions.iter().all(|f| (0.0..1.0).contains(f)));
    }
}
