//! An input audio track (`…/audio-to-video`'s `audio`, a retake's clip): what `ffprobe` says of
//! its first audio stream, and its samples decoded by `ffmpeg` for an engine that draws from
//! them (the preview engine mixes them into its clip; the exact track is muxed by `mux_audio`).
use serde::Deserialize;
use std::path::Path;
use std::process::Command;

/// The first audio stream of a file.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioProbe {
    /// ffprobe's `codec_name` (`aac`, `mp3`, `pcm_s16le`, …).
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u32,
    /// The stream's length (the container's when the stream does not say), 0 when unknown.
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
    codec_name: Option<String>,
    sample_rate: Option<String>,
    channels: Option<u32>,
    duration: Option<String>,
}

#[derive(Deserialize)]
struct FormatJson {
    duration: Option<String>,
}

/// The file's first audio stream; `Ok(None)` for a readable file without one. The error is a
/// clause that fits after "it ".
pub fn probe(path: &Path) -> Result<Option<AudioProbe>, String> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams"])
        .arg(path)
        .output()
        .map_err(|e| format!("could not be probed (ffprobe could not start: {e})"))?;
    if !output.status.success() {
        return Err("is not a media file ffprobe can read".into());
    }
    parse_probe(&output.stdout)
}

/// Reads ffprobe's JSON (`-show_format -show_streams`).
pub fn parse_probe(json: &[u8]) -> Result<Option<AudioProbe>, String> {
    let parsed: ProbeJson =
        serde_json::from_slice(json).map_err(|_| "could not be probed (ffprobe's answer was not JSON)".to_owned())?;
    let Some(stream) = parsed.streams.iter().find(|s| s.codec_type.as_deref() == Some("audio")) else {
        return Ok(None);
    };
    let seconds = stream
        .duration
        .as_deref()
        .or(parsed.format.as_ref().and_then(|f| f.duration.as_deref()))
        .and_then(|d| d.parse::<f64>().ok())
        .unwrap_or(0.0);
    Ok(Some(AudioProbe {
        codec: stream.codec_name.clone().unwrap_or_default(),
        sample_rate: stream.sample_rate.as_deref().and_then(|r| r.parse().ok()).unwrap_or(0),
        channels: stream.channels.unwrap_or(0),
        seconds,
    }))
}

/// The first audio stream's samples as interleaved f32 at `rate` Hz with `channels` channels,
/// cut or padded with silence to exactly `samples` per channel; `Ok(None)` when the file has no
/// audio stream.
pub fn decode_f32(path: &Path, rate: u32, channels: u32, samples: usize) -> Result<Option<Vec<f32>>, String> {
    if probe(path)?.is_none() {
        return Ok(None);
    }
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-vn", "-f", "f32le", "-ar", &rate.to_string(), "-ac", &channels.to_string()])
        .args(["-af", &format!("apad=whole_len={samples},atrim=end_sample={samples}"), "pipe:1"])
        .output()
        .map_err(|e| format!("could not be decoded (ffmpeg could not start: {e})"))?;
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        return Err(format!("could not be decoded ({})", why.trim().lines().last().unwrap_or("ffmpeg failed")));
    }
    let mut out: Vec<f32> =
        output.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    out.resize(samples * channels as usize, 0.0);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_audio_stream_is_described_and_a_silent_file_has_none() {
        let json = br#"{"streams": [{"codec_type": "video"}, {"codec_type": "audio", "codec_name": "aac",
            "sample_rate": "44100", "channels": 2, "duration": "3.018000"}], "format": {"duration": "3.1"}}"#;
        let probe = parse_probe(json).unwrap().unwrap();
        assert_eq!(probe, AudioProbe { codec: "aac".into(), sample_rate: 44100, channels: 2, seconds: 3.018 });
        let silent = br#"{"streams": [{"codec_type": "video"}], "format": {"duration": "3.1"}}"#;
        assert_eq!(parse_probe(silent).unwrap(), None);
        assert!(parse_probe(b"not json").is_err());
    }

    #[test]
    fn decoded_samples_are_cut_and_padded_to_the_length_asked() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("a.wav");
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=f=440:r=48000:d=1"])
            .arg(&wav)
            .status()
            .unwrap();
        assert!(status.success());
        let short = decode_f32(&wav, 48_000, 2, 24_000).unwrap().unwrap();
        assert_eq!(short.len(), 48_000);
        let long = decode_f32(&wav, 48_000, 2, 96_000).unwrap().unwrap();
        assert_eq!(long.len(), 192_000);
        assert!(long[..96_000].iter().any(|s| s.abs() > 0.05), "the tone is there");
        assert!(long[100_000..].iter().all(|s| *s == 0.0), "padded with silence");
    }
}
