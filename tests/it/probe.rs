//! What `ffprobe` and `ffmpeg` say about a downloaded file.
use serde_json::Value;
use std::path::Path;
use std::process::Command;

pub fn ffprobe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams", "-count_frames"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn stream<'a>(probe: &'a Value, kind: &str) -> Option<&'a Value> {
    probe["streams"].as_array().unwrap().iter().find(|s| s["codec_type"] == kind)
}

/// Decoded frame `index` through the video filter `then`, as raw RGB bytes.
fn frame_rgb(path: &Path, index: u32, then: &str) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-vf",
            &format!("select=eq(n\\,{index}),{then}"),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The RGB pixel at (x, y) of decoded frame `index`.
pub fn pixel(path: &Path, index: u32, x: u32, y: u32) -> [u8; 3] {
    let rgb = frame_rgb(path, index, &format!("format=rgb24,crop=2:2:{x}:{y}"));
    [rgb[0], rgb[1], rgb[2]]
}

/// Decoded frame `index`, scaled to `width`×`height`, as RGB bytes.
pub fn frame(path: &Path, index: u32, width: u32, height: u32) -> Vec<u8> {
    let rgb = frame_rgb(path, index, &format!("scale={width}:{height}:flags=area,format=rgb24"));
    assert_eq!(rgb.len(), (width * height * 3) as usize);
    rgb
}

/// Top-level MP4 box names, in order (to check `moov` comes before `mdat`: faststart).
pub fn top_level_boxes(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let mut size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
        names.push(String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned());
        if size == 1 {
            size = u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap());
        }
        if size == 0 {
            break;
        }
        at += size as usize;
    }
    names
}

/// Mean absolute difference of two RGB buffers of the same size, 0..255.
pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (i32::from(*x) - i32::from(*y)).unsigned_abs() as f64).sum::<f64>() / a.len() as f64
}
