//! Puts an input's audio track, unchanged, into a rendered clip: the output of
//! `…/audio-to-video` (and of a retake that keeps its audio) carries the input's samples, not an
//! engine's re-encoding of them. The worker does it after any engine's render, so every engine
//! gets it.
//!
//! - A codec MP4 carries (AAC, MP3, Opus, FLAC, ALAC) is **stream-copied**: the very packets of
//!   the input. The track is cut to the clip at a packet boundary (`-t` on the audio input), so
//!   it may run past the last video frame by less than one packet (AAC: 1024 samples); a track
//!   shorter than the clip simply ends early.
//! - Anything else (WAV/PCM, Vorbis, …) is decoded and encoded **losslessly as FLAC** at the
//!   input's own sample rate and channels, cut or padded with silence to exactly the clip's
//!   length. Decoded samples are identical for integer PCM up to 24 bits (FLAC's depth here);
//!   32-bit and float PCM and other lossy codecs keep 24 bits (an error below 2^-23).
//!
//! Either way the decoded samples within the clip equal the input's decoded samples (the tests
//! compare them). FLAC in MP4 is marked experimental in ffmpeg 5.1 (`-strict experimental`);
//! ffprobe, Chrome, Firefox and Safari read it.
use super::input_audio::{self, AudioProbe};
use std::path::Path;
use std::process::Command;

/// What the clip's audio track became.
#[derive(Clone, Debug, PartialEq)]
pub enum AudioTrack {
    /// The input's packets, copied (its codec).
    Copied(String),
    /// The input's decoded samples, as FLAC.
    Lossless,
    /// The input has no audio: the clip has none either.
    Silent,
}

/// Codecs the MP4 muxer takes as they are.
pub fn fits_mp4(codec: &str) -> bool {
    matches!(codec, "aac" | "mp3" | "opus" | "flac" | "alac")
}

/// Samples per channel at `rate` that cover `num_frames` at `fps` (rounded down).
pub fn samples_for_clip(num_frames: u32, fps: u32, rate: u32) -> u64 {
    u64::from(num_frames) * u64::from(rate) / u64::from(fps.max(1))
}

/// Rewrites the MP4 at `clip` (its video stream copied, its audio, if any, dropped) with the
/// first audio stream of `source` as its audio track. `clip` is replaced only once the new file
/// is complete. The error is a sentence's clause ("the audio could not be muxed: …").
pub fn keep_input_audio(clip: &Path, source: &Path, num_frames: u32, fps: u32) -> Result<AudioTrack, String> {
    let probe = input_audio::probe(source)?;
    let muxed = clip.with_extension("muxed.mp4");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y", "-i"]).arg(clip);
    let track = match &probe {
        None => {
            cmd.args(["-map", "0:v:0", "-c", "copy"]);
            AudioTrack::Silent
        }
        Some(AudioProbe { codec, .. }) if fits_mp4(codec) => {
            // `-t` on the input: only the audio's packets that start within the clip are read.
            let seconds = f64::from(num_frames) / f64::from(fps.max(1));
            cmd.args(["-t", &format!("{seconds:.6}"), "-i"]).arg(source);
            cmd.args(["-map", "0:v:0", "-map", "1:a:0", "-c", "copy"]);
            AudioTrack::Copied(codec.clone())
        }
        Some(AudioProbe { sample_rate, .. }) => {
            let samples = samples_for_clip(num_frames, fps, *sample_rate);
            cmd.arg("-i").arg(source);
            cmd.args(["-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "flac"]);
            cmd.args(["-af", &format!("apad=whole_len={samples},atrim=end_sample={samples}")]);
            AudioTrack::Lossless
        }
    };
    cmd.args(["-strict", "experimental", "-movflags", "+faststart", "-f", "mp4"]).arg(&muxed);
    let output = cmd.output().map_err(|e| format!("ffmpeg could not start ({e})"))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&muxed);
        let why = String::from_utf8_lossy(&output.stderr);
        return Err(why.trim().lines().last().unwrap_or("ffmpeg failed").to_owned());
    }
    std::fs::rename(&muxed, clip).map_err(|e| e.to_string())?;
    Ok(track)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn ffmpeg(args: &[&str], out: &Path) {
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .arg(out)
            .status()
            .unwrap();
        assert!(status.success(), "ffmpeg {args:?}");
    }

    /// Two seconds of 24 fps video with a 440 Hz tone of its own (which must go).
    fn rendered(dir: &Path) -> PathBuf {
        let clip = dir.join("video.mp4");
        let args = ["-f", "lavfi", "-i", "testsrc=s=64x64:r=24:d=2", "-f", "lavfi", "-i", "sine=f=440:d=2"];
        ffmpeg(&[&args[..], &["-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"]].concat(), &clip);
        clip
    }

    /// The first audio stream decoded as raw `format` samples.
    fn decoded(path: &Path, format: &str) -> Vec<u8> {
        let out = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-i"])
            .arg(path)
            .args(["-map", "0:a:0", "-f", format, "pipe:1"])
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    }

    fn video_frames(path: &Path) -> String {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries"])
            .args(["stream=nb_read_frames", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Muxes `source` into a fresh 48-frame clip and checks the decoded samples: the clip's
    /// first `bytes_in_clip` bytes are the input's, and it has no more than `max_bytes`.
    fn check(source: &Path, expect: AudioTrack, format: &str, bytes_in_clip: usize, max_bytes: usize) {
        let dir = source.parent().unwrap();
        let clip = rendered(dir);
        assert_eq!(keep_input_audio(&clip, source, 48, 24).unwrap(), expect);
        let (input, output) = (decoded(source, format), decoded(&clip, format));
        assert!(output.len() >= bytes_in_clip.min(input.len()), "{} < {bytes_in_clip}", output.len());
        assert!(output.len() <= max_bytes, "{} > {max_bytes}", output.len());
        let n = output.len().min(input.len());
        assert!(input[..n] == output[..n], "the samples within the clip are the input's, exactly");
        assert_eq!(video_frames(&clip), "48", "the video is untouched");
    }

    #[test]
    fn pcm_is_stored_losslessly_cut_exactly_to_the_clip() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("in.wav");
        ffmpeg(&["-f", "lavfi", "-i", "sine=f=330:r=44100:d=3", "-ac", "2"], &wav);
        // 2 s at 44.1 kHz, stereo s16: exactly 88200 × 4 bytes.
        check(&wav, AudioTrack::Lossless, "s16le", 352_800, 352_800);
    }

    #[test]
    fn a_short_pcm_track_is_padded_with_silence_to_the_clip() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("in.wav");
        ffmpeg(&["-f", "lavfi", "-i", "sine=f=330:r=32000:d=1"], &wav);
        let clip = rendered(dir.path());
        assert_eq!(keep_input_audio(&clip, &wav, 48, 24).unwrap(), AudioTrack::Lossless);
        let (input, output) = (decoded(&wav, "s16le"), decoded(&clip, "s16le"));
        assert_eq!(output.len(), 64_000 * 2);
        assert!(output[..input.len()] == input[..] && output[input.len()..].iter().all(|b| *b == 0));
    }

    #[test]
    fn aac_is_copied_packet_for_packet() {
        let dir = tempfile::tempdir().unwrap();
        let m4a = dir.path().join("in.m4a");
        ffmpeg(&["-f", "lavfi", "-i", "sine=f=550:r=44100:d=3", "-c:a", "aac"], &m4a);
        // Float samples, as the AAC decoder gives them: within one packet (1024) past 2 s.
        check(&m4a, AudioTrack::Copied("aac".into()), "f32le", 88_200 * 4, (88_200 + 1024) * 4);
    }

    #[test]
    fn mp3_and_opus_are_copied_too() {
        let dir = tempfile::tempdir().unwrap();
        let mp3 = dir.path().join("in.mp3");
        ffmpeg(&["-f", "lavfi", "-i", "sine=f=550:r=44100:d=3", "-c:a", "libmp3lame"], &mp3);
        check(&mp3, AudioTrack::Copied("mp3".into()), "f32le", 88_200 * 4, (88_200 + 1152) * 4);
        let opus = dir.path().join("in.ogg");
        ffmpeg(&["-f", "lavfi", "-i", "sine=f=550:r=48000:d=3", "-c:a", "libopus"], &opus);
        check(&opus, AudioTrack::Copied("opus".into()), "f32le", 96_000 * 4, (96_000 + 960) * 4);
    }

    #[test]
    fn a_source_without_audio_leaves_a_silent_clip() {
        let dir = tempfile::tempdir().unwrap();
        let silent = dir.path().join("silent.mp4");
        ffmpeg(&["-f", "lavfi", "-i", "testsrc=s=64x64:r=24:d=1", "-pix_fmt", "yuv420p"], &silent);
        let clip = rendered(dir.path());
        assert_eq!(keep_input_audio(&clip, &silent, 48, 24).unwrap(), AudioTrack::Silent);
        assert!(input_audio::probe(&clip).unwrap().is_none());
        assert_eq!(video_frames(&clip), "48");
    }

    #[test]
    fn what_ffmpeg_cannot_read_is_an_error_and_the_clip_stays() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.bin");
        std::fs::write(&junk, b"not audio at all").unwrap();
        let clip = rendered(dir.path());
        let before = std::fs::read(&clip).unwrap();
        assert!(keep_input_audio(&clip, &junk, 48, 24).is_err());
        assert_eq!(std::fs::read(&clip).unwrap(), before);
    }

    #[test]
    fn clip_lengths_in_samples() {
        assert_eq!(samples_for_clip(48, 24, 44_100), 88_200);
        assert_eq!(samples_for_clip(49, 24, 44_100), 90_037);
        assert!(fits_mp4("aac") && !fits_mp4("pcm_s16le") && !fits_mp4("vorbis"));
    }
}
