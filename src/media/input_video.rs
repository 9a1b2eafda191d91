//! `start_video`: a clip to continue. It is probed with Debian's `ffprobe` (at submit, so a file
//! the model cannot continue is a 400 and nothing is charged) and its last frame is taken with
//! `ffmpeg` (by the worker, which starts the new clip on it).
use image::RgbImage;
use serde::Deserialize;
use std::path::Path;
use std::process::Command;

/// Longest clip we continue, in seconds and frames (the longest clip we generate: 20 s, 481
/// frames at 24 fps). A longer input is refused rather than trimmed: which part to keep is the
/// caller's choice.
pub const MAX_SECONDS: f64 = 20.0;
pub const MAX_FRAMES: u64 = 481;
/// Smallest and largest side we take: the model's latent grid needs at least 64 px (two
/// latent cells of 32 px), and input images have the same 8192 px ceiling.
pub const MIN_SIDE: u32 = 64;
pub const MAX_SIDE: u32 = 8192;

/// What `ffprobe` says about a file's first video stream.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoProbe {
    pub width: u32,
    pub height: u32,
    pub frames: u64,
    pub seconds: f64,
}

#[derive(Deserialize)]
struct ProbeJson {
    #[serde(default)]
    streams: Vec<StreamJson>,
    format: Option<FormatJson>,
}

#[derive(Deserialize)]
struct StreamJson {
    codec_type: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    nb_read_packets: Option<String>,
    duration: Option<String>,
}

#[derive(Deserialize)]
struct FormatJson {
    format_name: Option<String>,
    duration: Option<String>,
}

/// Container formats we continue (ffprobe's `format_name`): MP4/MOV and Matroska/WebM. A still
/// image also probes as a one-frame "video" stream; its format (`png_pipe`, …) tells it apart.
fn is_video_container(format_name: &str) -> bool {
    format_name.split(',').any(|f| matches!(f, "mov" | "mp4" | "matroska" | "webm"))
}

/// Probes the file at `path`. The error is a clause that fits after "`start_video` ".
pub fn probe(path: &Path) -> Result<VideoProbe, String> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-print_format", "json", "-show_format", "-show_streams"])
        .arg(path)
        .output()
        .map_err(|e| format!("could not be probed (ffprobe could not start: {e})"))?;
    if !output.status.success() {
        return Err("is not a video (ffprobe cannot read it as an MP4, MOV or WebM file)".into());
    }
    parse_probe(&output.stdout)
}

/// Reads ffprobe's JSON (`-count_packets -show_format -show_streams`).
pub fn parse_probe(json: &[u8]) -> Result<VideoProbe, String> {
    let parsed: ProbeJson =
        serde_json::from_slice(json).map_err(|_| "could not be probed (ffprobe's answer was not JSON)".to_owned())?;
    let format_name = parsed.format.as_ref().and_then(|f| f.format_name.clone()).unwrap_or_default();
    if !is_video_container(&format_name) {
        return Err(format!("is not an MP4, MOV or WebM video (its format is `{format_name}`)"));
    }
    let Some(stream) = parsed.streams.iter().find(|s| s.codec_type.as_deref() == Some("video")) else {
        return Err("has no video stream".into());
    };
    let (Some(width), Some(height)) = (stream.width, stream.height) else {
        return Err("has a video stream without a frame size".into());
    };
    let frames = stream.nb_read_packets.as_deref().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    if frames == 0 {
        return Err("has no video frames".into());
    }
    let seconds = stream
        .duration
        .as_deref()
        .or(parsed.format.as_ref().and_then(|f| f.duration.as_deref()))
        .and_then(|d| d.parse::<f64>().ok())
        .unwrap_or(0.0);
    Ok(VideoProbe { width, height, frames, seconds })
}

/// The limits of a clip we continue. The error is a clause that fits after "`start_video` ".
pub fn check(probe: &VideoProbe) -> Result<(), String> {
    // Container durations are rounded; a 20 s clip may read as 20.02 s.
    if probe.seconds > MAX_SECONDS + 0.05 {
        return Err(format!("is {:.2} s long; a clip to continue may be at most {MAX_SECONDS} s", probe.seconds));
    }
    if probe.frames > MAX_FRAMES {
        return Err(format!("has {} frames; a clip to continue may have at most {MAX_FRAMES}", probe.frames));
    }
    let (w, h) = (probe.width, probe.height);
    if w.min(h) < MIN_SIDE || w.max(h) > MAX_SIDE {
        return Err(format!("is {w}×{h}; each side must be from {MIN_SIDE} to {MAX_SIDE} pixels"));
    }
    Ok(())
}

/// Probes and checks in one step.
pub fn probe_and_check(path: &Path) -> Result<VideoProbe, String> {
    let probed = probe(path)?;
    check(&probed)?;
    Ok(probed)
}

/// The clip's last frame, cover-fitted to `width`×`height` like a start image. ffmpeg decodes
/// the whole clip (at most 481 frames) and keeps overwriting one PNG, so the file left is the
/// last frame whatever the container's index says.
pub fn last_frame(path: &Path, scratch: &Path, width: u32, height: u32) -> Result<RgbImage, String> {
    let png = scratch.join("start_video.last.png");
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-an", "-update", "1", "-pix_fmt", "rgb24", "-f", "image2"])
        .arg(&png)
        .output()
        .map_err(|e| format!("could not be decoded (ffmpeg could not start: {e})"))?;
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        return Err(format!("could not be decoded ({})", why.trim().lines().last().unwrap_or("ffmpeg failed")));
    }
    let bytes = std::fs::read(&png).map_err(|e| format!("could not be decoded (no last frame: {e})"))?;
    let _ = std::fs::remove_file(&png);
    super::input_image::decode_and_fit(&bytes, width, height)
}

/// The clip's frames, one by one, as RGB24 cover-fitted to `width`×`height` (a retake keeps
/// them). Frames come as decoded, none dropped or repeated (`-fps_mode passthrough`), so frame
/// `i` of the reader is frame `i` of the clip. ffmpeg streams them, so memory stays one frame.
pub struct FrameReader {
    child: std::process::Child,
    stdout: std::process::ChildStdout,
    frame_bytes: usize,
}

impl FrameReader {
    pub fn open(path: &Path, width: u32, height: u32) -> Result<FrameReader, String> {
        let fit = format!("scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height}");
        let mut child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-i"])
            .arg(path)
            .args(["-map", "0:v:0", "-an", "-vf", &fit, "-fps_mode", "passthrough"])
            .args(["-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("could not be decoded (ffmpeg could not start: {e})"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        Ok(FrameReader { child, stdout, frame_bytes: (width * height * 3) as usize })
    }

    /// Reads the next frame into `frame`; false once the clip has no more.
    pub fn next_into(&mut self, frame: &mut [u8]) -> Result<bool, String> {
        use std::io::Read;
        assert_eq!(frame.len(), self.frame_bytes, "frame size does not match the canvas");
        let mut filled = 0;
        while filled < frame.len() {
            match self.stdout.read(&mut frame[filled..]) {
                Ok(0) => return Ok(false),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("could not be decoded ({e})")),
            }
        }
        Ok(true)
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_json(format: &str, stream: &str) -> Vec<u8> {
        format!(r#"{{"streams": [{stream}], "format": {{"format_name": "{format}", "duration": "3.000000"}}}}"#)
            .into_bytes()
    }

    #[test]
    fn an_mp4_is_read_and_a_still_image_is_not_a_video() {
        let mp4 = probe_json(
            "mov,mp4,m4a,3gp,3g2,mj2",
            r#"{"codec_type": "video", "width": 320, "height": 180, "nb_read_packets": "72", "duration": "3.000000"}"#,
        );
        assert_eq!(parse_probe(&mp4).unwrap(), VideoProbe { width: 320, height: 180, frames: 72, seconds: 3.0 });
        let png =
            probe_json("png_pipe", r#"{"codec_type": "video", "width": 32, "height": 32, "nb_read_packets": "1"}"#);
        assert!(parse_probe(&png).unwrap_err().contains("not an MP4, MOV or WebM video"));
        let audio_only = probe_json("mov,mp4,m4a,3gp,3g2,mj2", r#"{"codec_type": "audio", "nb_read_packets": "9"}"#);
        assert_eq!(parse_probe(&audio_only).unwrap_err(), "has no video stream");
    }

    #[test]
    fn a_webm_without_a_stream_duration_takes_the_containers() {
        let webm = probe_json(
            "matroska,webm",
            r#"{"codec_type": "video", "width": 640, "height": 360, "nb_read_packets": "25"}"#,
        );
        assert_eq!(parse_probe(&webm).unwrap().seconds, 3.0);
    }

    #[test]
    fn the_limits_are_twenty_seconds_481_frames_and_64_to_8192_pixels() {
        let ok = VideoProbe { width: 1280, height: 720, frames: 481, seconds: 20.02 };
        assert_eq!(check(&ok), Ok(()));
        let long = VideoProbe { seconds: 20.5, ..ok.clone() };
        assert!(check(&long).unwrap_err().contains("at most 20 s"));
        let many = VideoProbe { frames: 482, ..ok.clone() };
        assert!(check(&many).unwrap_err().contains("at most 481"));
        let tiny = VideoProbe { width: 32, height: 32, ..ok.clone() };
        assert!(check(&tiny).unwrap_err().contains("from 64 to 8192 pixels"));
        let huge = VideoProbe { width: 8200, ..ok };
        assert!(check(&huge).is_err());
    }

    /// A 160×90 clip at 24 fps: `red_seconds` of red, then one second of blue.
    fn red_then_blue(clip: &Path, red_seconds: u32) {
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", &format!("color=c=red:s=160x90:r=24:d={red_seconds}")])
            .args(["-f", "lavfi", "-i", "color=c=blue:s=160x90:r=24:d=1"])
            .args(["-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]", "-pix_fmt", "yuv420p"])
            .arg(clip)
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn the_last_frame_of_a_real_clip_is_its_last_colour() {
        // Two seconds of red then one of blue: the last frame is blue, fitted to the canvas.
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("in.mp4");
        red_then_blue(&clip, 2);
        let probed = probe_and_check(&clip).unwrap();
        assert_eq!((probed.width, probed.height, probed.frames), (160, 90, 72));
        let last = last_frame(&clip, dir.path(), 64, 64).unwrap();
        assert_eq!(last.dimensions(), (64, 64));
        let image::Rgb([r, g, b]) = *last.get_pixel(32, 32);
        assert!(b > 200 && r < 40 && g < 40, "the last frame is blue, got {r},{g},{b}");
    }

    #[test]
    fn the_frame_reader_gives_every_frame_in_order_at_the_canvas_size() {
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("in.mp4");
        red_then_blue(&clip, 1);
        let mut reader = FrameReader::open(&clip, 64, 32).unwrap();
        let mut frame = vec![0u8; 64 * 32 * 3];
        let mut reds_then_blues = Vec::new();
        while reader.next_into(&mut frame).unwrap() {
            reds_then_blues.push(if frame[0] > frame[2] { 'r' } else { 'b' });
        }
        assert_eq!(reds_then_blues.len(), 48);
        assert_eq!(reds_then_blues.iter().collect::<String>(), format!("{}{}", "r".repeat(24), "b".repeat(24)));
    }
}
