//! Draws the request into the preview engine's frames, so a developer can tell which request made
//! which clip: the prompt (wrapped, cut with an ellipsis when long) in a box at the top left, and
//! the seed, size, frame counter and timecode in a box at the bottom left. White text on a
//! semi-transparent dark box reads on any picture; the size of everything follows the frame's
//! shorter side, and small frames show less (fewer prompt lines, a shorter counter).
//!
//! Rendered here in Rust with `ab_glyph` (a pure-Rust glyph rasteriser) and an embedded font,
//! not with ffmpeg's `drawtext`: Debian's ffmpeg does have `drawtext`, but it draws with the
//! machine's FreeType and a font file found at run time, so the same request could give
//! different bytes on two machines, or no text where no font is installed. With the font inside
//! the binary and arithmetic that does not depend on the machine, the same request gives the
//! same frames everywhere, and the encoder stays a plain encoder shared with the LTX engine.
//!
//! The font is Noto Sans Regular 1.04 (about 200 KB, Apache License 2.0, © Google), copied from
//! the `ttf-noto-sans` 0.1.2 crate; its licence is `font/LICENSE-2.0.txt` beside this file.
use super::caption::{self, FrameLabel};
use crate::worker::engine::RenderSpec;
use ab_glyph::{point, Font, FontRef, Glyph, PxScale, ScaleFont};

static FONT: &[u8] = include_bytes!("font/NotoSans-Regular.ttf");

/// How much of the picture behind a text box shows through it.
const BOX_SHOW_THROUGH: f32 = 0.35;
/// The prompt never takes more lines than this, however large the frame.
const PROMPT_MAX_LINES: usize = 3;
/// The text boxes together take at most about this share of the frame's height.
const TEXT_SHARE_OF_HEIGHT: f32 = 0.5;

/// A box in frame pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && y >= self.y && x < self.x + self.w && y < self.y + self.h
    }
}

/// Where the seed and size go.
enum RequestLine {
    /// Before the frame counter, on its line.
    Joined(String),
    /// On a line of its own above the counter.
    Own(String),
    /// Not shown: the frame is too small.
    Hidden,
}

/// The text layout of one clip, made once; `draw` puts it on each frame.
pub struct Overlay {
    font: FontRef<'static>,
    scale: PxScale,
    frame_width: u32,
    pad: f32,
    line_height: f32,
    /// Small text's strokes are thinner than a pixel; their coverage is brightened so they read.
    stroke_gain: f32,
    ascent: f32,
    num_frames: u32,
    fps: u32,
    prompt: Vec<String>,
    /// The box the prompt is drawn in (none for an empty prompt).
    prompt_box: Option<Rect>,
    request: RequestLine,
    frame_label: FrameLabel,
    /// The box the seed, size and frame counter are drawn in.
    info_box: Rect,
}

impl Overlay {
    pub fn new(spec: &RenderSpec) -> Overlay {
        let font = FontRef::try_from_slice(FONT).expect("the embedded font parses");
        let (w, h) = (spec.width as f32, spec.height as f32);
        let px = (w.min(h) / 20.0).round().max(10.0);
        let scale = PxScale::from(px);
        let scaled = font.as_scaled(scale);
        let line_height = (scaled.height() + scaled.line_gap()).ceil();
        let (margin, pad) = ((px * 0.5).round(), (px * 0.3).round());
        let text_width = w - 2.0 * (margin + pad);
        let fits = |s: &str| line_width(&font, scale, s) <= text_width;

        // Lines the boxes have room for: always the frame counter and one prompt line.
        let budget = ((h * TEXT_SHARE_OF_HEIGHT - 2.0 * margin - 4.0 * pad) / line_height).floor().max(2.0) as usize;
        // Every frame's label fits when the last (widest) one does.
        let last = spec.num_frames.saturating_sub(1);
        let widest = |form: FrameLabel| form.text(last, spec.num_frames, spec.fps);
        let request = caption::request_label(spec.seed, spec.width, spec.height);
        let (request, frame_label) = if fits(&format!("{request} · {}", widest(FrameLabel::Full))) {
            (RequestLine::Joined(request), FrameLabel::Full)
        } else {
            let form = FrameLabel::ALL.into_iter().find(|f| fits(&widest(*f))).unwrap_or(FrameLabel::Time);
            if budget >= 3 {
                (RequestLine::Own(caption::ellipsize(&request, fits)), form)
            } else {
                (RequestLine::Hidden, form)
            }
        };
        let info_lines = if matches!(request, RequestLine::Own(_)) { 2 } else { 1 };
        let prompt = caption::wrap(&spec.prompt, (budget - info_lines).min(PROMPT_MAX_LINES), fits);

        let box_around = |lines: &[String], y: f32| {
            let widest_line = lines.iter().map(|l| line_width(&font, scale, l)).fold(0.0, f32::max);
            Rect {
                x: margin as u32,
                y: y.max(0.0) as u32,
                w: ((widest_line + 2.0 * pad).ceil() as u32).min(spec.width.saturating_sub(margin as u32)),
                h: ((lines.len() as f32 * line_height + 2.0 * pad) as u32).min(spec.height - y.max(0.0) as u32),
            }
        };
        let prompt_box = (!prompt.is_empty()).then(|| box_around(&prompt, margin));
        let mut overlay = Overlay {
            font: font.clone(),
            scale,
            frame_width: spec.width,
            pad,
            line_height,
            stroke_gain: (24.0 / px).clamp(1.0, 1.6),
            ascent: scaled.ascent(),
            num_frames: spec.num_frames,
            fps: spec.fps,
            prompt,
            prompt_box,
            request,
            frame_label,
            info_box: Rect { x: 0, y: 0, w: 0, h: 0 },
        };
        let widest_info = overlay.info_lines(last);
        let info_height = widest_info.len() as f32 * line_height + 2.0 * pad;
        overlay.info_box = box_around(&widest_info, h - margin - info_height);
        overlay
    }

    /// Draws the text of frame `index` over `frame` (RGB24 of the clip's size).
    pub fn draw(&self, index: u32, frame: &mut [u8]) {
        if let Some(prompt_box) = self.prompt_box {
            self.draw_box(frame, prompt_box, &self.prompt);
        }
        self.draw_box(frame, self.info_box, &self.info_lines(index));
    }

    fn info_lines(&self, index: u32) -> Vec<String> {
        let counter = self.frame_label.text(index, self.num_frames, self.fps);
        match &self.request {
            RequestLine::Joined(request) => vec![format!("{request} · {counter}")],
            RequestLine::Own(request) => vec![request.clone(), counter],
            RequestLine::Hidden => vec![counter],
        }
    }

    fn draw_box(&self, frame: &mut [u8], area: Rect, lines: &[String]) {
        let stride = self.frame_width as usize * 3;
        for y in area.y..area.y + area.h {
            let row = &mut frame[y as usize * stride..(y as usize + 1) * stride];
            for value in &mut row[area.x as usize * 3..(area.x + area.w) as usize * 3] {
                *value = (f32::from(*value) * BOX_SHOW_THROUGH) as u8;
            }
        }
        for (i, line) in lines.iter().enumerate() {
            let baseline = area.y as f32 + self.pad + self.ascent + i as f32 * self.line_height;
            for glyph in layout(&self.font, self.scale, line, area.x as f32 + self.pad, baseline).0 {
                let Some(outlined) = self.font.outline_glyph(glyph) else { continue };
                let bounds = outlined.px_bounds();
                outlined.draw(|gx, gy, coverage| {
                    let (x, y) = (bounds.min.x as i64 + i64::from(gx), bounds.min.y as i64 + i64::from(gy));
                    let (Ok(x), Ok(y)) = (u32::try_from(x), u32::try_from(y)) else { return };
                    if !area.contains(x, y) {
                        return;
                    }
                    let at = y as usize * stride + x as usize * 3;
                    let alpha = (coverage * self.stroke_gain).clamp(0.0, 1.0);
                    for value in &mut frame[at..at + 3] {
                        *value = (f32::from(*value) * (1.0 - alpha) + 255.0 * alpha).round() as u8;
                    }
                });
            }
        }
    }
}

/// The glyphs of `text` set on a baseline from (`x`, `baseline`), and the width they take.
fn layout(font: &FontRef<'static>, scale: PxScale, text: &str, x: f32, baseline: f32) -> (Vec<Glyph>, f32) {
    let scaled = font.as_scaled(scale);
    let mut glyphs: Vec<Glyph> = Vec::with_capacity(text.len());
    let mut caret = x;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(previous) = glyphs.last() {
            caret += scaled.kern(previous.id, id);
        }
        glyphs.push(id.with_scale_and_position(scale, point(caret, baseline)));
        caret += scaled.h_advance(id);
    }
    (glyphs, caret - x)
}

fn line_width(font: &FontRef<'static>, scale: PxScale, text: &str) -> f32 {
    layout(font, scale, text, 0.0, 0.0).1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(prompt: &str, width: u32, height: u32) -> RenderSpec {
        RenderSpec {
            prompt: prompt.into(),
            seed: 42,
            width,
            height,
            num_frames: 121,
            fps: 24,
            generate_audio: false,
            start_image: None,
            end_image: None,
            loras: vec![],
            mode: Default::default(),
            quality: None,
            enhance_prompt: false,
        }
    }

    /// Frame `index` of `spec`'s text drawn over a flat mid-grey picture.
    fn drawn(spec: &RenderSpec, index: u32) -> Vec<u8> {
        let mut frame = vec![128u8; (spec.width * spec.height * 3) as usize];
        Overlay::new(spec).draw(index, &mut frame);
        frame
    }

    /// The RGB pixels of `frame` (`width` wide) inside `area`.
    fn pixels_in(frame: &[u8], width: u32, area: Rect) -> Vec<[u8; 3]> {
        let mut out = Vec::new();
        for y in area.y..area.y + area.h {
            for x in area.x..area.x + area.w {
                let at = (y * width + x) as usize * 3;
                out.push([frame[at], frame[at + 1], frame[at + 2]]);
            }
        }
        out
    }

    #[test]
    fn the_prompt_is_white_text_on_a_dark_box_and_the_rest_is_untouched() {
        let s = spec("Lighthouse", 1280, 720);
        let overlay = Overlay::new(&s);
        let frame = drawn(&s, 0);
        let prompt_box = overlay.prompt_box.unwrap();
        let inside = pixels_in(&frame, 1280, prompt_box);
        let white = inside.iter().filter(|p| p.iter().all(|&v| v >= 230)).count();
        let dark = inside.iter().filter(|p| p.iter().all(|&v| v <= 50)).count();
        assert!(white * 30 > inside.len(), "text strokes: {white} of {}", inside.len());
        assert!(dark * 2 > inside.len(), "box: {dark} of {}", inside.len());
        // Outside the two boxes the picture is as it was (the middle stays free for the scene).
        let untouched = (0..720u32)
            .flat_map(|y| (0..1280u32).map(move |x| (x, y)))
            .filter(|&(x, y)| !prompt_box.contains(x, y) && !overlay.info_box.contains(x, y))
            .all(|(x, y)| frame[(y * 1280 + x) as usize * 3..][..3] == [128, 128, 128]);
        assert!(untouched);
        assert!(prompt_box.y + prompt_box.h < 360 && overlay.info_box.y > 360, "{prompt_box:?}");
    }

    #[test]
    fn another_prompt_draws_other_text() {
        let a = spec(&"W".repeat(300), 1280, 720);
        let b = spec(&"i".repeat(300), 1280, 720);
        let area = Overlay::new(&a).prompt_box.unwrap();
        let (pa, pb) = (pixels_in(&drawn(&a, 0), 1280, area), pixels_in(&drawn(&b, 0), 1280, area));
        let differing = pa.iter().zip(&pb).filter(|(x, y)| x[0].abs_diff(y[0]) > 64).count();
        assert!(differing * 10 > pa.len(), "{differing} of {} pixels differ", pa.len());
    }

    #[test]
    fn a_long_prompt_is_cut_to_a_few_lines_that_fit_the_frame() {
        let overlay = Overlay::new(&spec(&"a lighthouse at dusk, waves below ".repeat(50), 1280, 720));
        assert_eq!(overlay.prompt.len(), PROMPT_MAX_LINES);
        assert!(overlay.prompt[2].ends_with(caption::ELLIPSIS), "{:?}", overlay.prompt);
        assert!(overlay.prompt_box.unwrap().w <= 1280);
    }

    #[test]
    fn the_counter_and_timecode_change_from_frame_to_frame_and_the_prompt_does_not() {
        let s = spec("a lighthouse", 640, 360);
        let overlay = Overlay::new(&s);
        assert_eq!(overlay.info_lines(12), ["seed 42 · 640×360 · frame 13/121 · 00:00.50"]);
        let (first, next) = (drawn(&s, 0), drawn(&s, 1));
        let info = overlay.info_box;
        assert_ne!(pixels_in(&first, 640, info), pixels_in(&next, 640, info));
        let prompt = overlay.prompt_box.unwrap();
        assert_eq!(pixels_in(&first, 640, prompt), pixels_in(&next, 640, prompt));
    }

    #[test]
    fn same_request_same_pixels() {
        let s = spec("determinism", 320, 180);
        assert_eq!(drawn(&s, 5), drawn(&s, 5));
    }

    #[test]
    fn every_size_from_tiny_to_full_hd_gets_text_inside_the_frame() {
        for (w, h) in [(64, 64), (64, 32), (96, 1280), (720, 1280), (1280, 720), (1920, 1080)] {
            let s = spec("a lighthouse at dusk with waves crashing below", w, h);
            let overlay = Overlay::new(&s);
            let frame = drawn(&s, 120);
            for area in [overlay.prompt_box.unwrap(), overlay.info_box] {
                assert!(area.x + area.w <= w && area.y + area.h <= h, "{w}x{h}: {area:?}");
                let white = pixels_in(&frame, w, area).iter().filter(|p| p[0] >= 200).count();
                assert!(white > 0, "{w}x{h}: no text in {area:?}");
            }
        }
        // Large frames show the whole request; the smallest at least the prompt and the time.
        assert_eq!(
            Overlay::new(&spec("x", 1920, 1080)).info_lines(0),
            ["seed 42 · 1920×1080 · frame 1/121 · 00:00.00"]
        );
        let tiny = Overlay::new(&spec("x", 64, 64));
        assert_eq!(tiny.prompt, ["x"]);
        assert!(tiny.info_lines(120).last().unwrap().ends_with("00:05.00"), "{:?}", tiny.info_lines(120));
    }
}
