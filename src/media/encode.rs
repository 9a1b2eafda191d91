//! Streams raw RGB frames into an `ffmpeg` child process that writes an MP4: H.264 High
//! (libx264, yuv420p, BT.709-tagged) and AAC stereo 48 kHz, with `+faststart` so players can
//! start before the whole file arrives. A separate process keeps GPL ffmpeg out of our binary.
use super::{AUDIO_CHANNELS, AUDIO_RATE};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("could not start ffmpeg ({0}); install it with `apt-get install ffmpeg`")]
    Spawn(std::io::Error),
    #[error("ffmpeg failed: {0}")]
    Failed(String),
    #[error("I/O error while encoding: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Mp4Encoder {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<String>>,
    frame_bytes: usize,
    frames_written: u32,
    expected_frames: u32,
    _audio: Option<tempfile::NamedTempFile>,
}

pub struct VideoSpec<'a> {
    pub path: &'a Path,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub num_frames: u32,
    /// Interleaved stereo f32 at 48 kHz; padded or trimmed to the clip's exact length.
    pub audio: Option<Vec<f32>>,
}

/// Samples per channel that exactly cover `num_frames` at `fps`.
pub fn audio_samples_for(num_frames: u32, fps: u32) -> usize {
    (u64::from(num_frames) * u64::from(AUDIO_RATE) / u64::from(fps)) as usize
}

impl Mp4Encoder {
    pub fn start(spec: VideoSpec<'_>) -> Result<Mp4Encoder, EncodeError> {
        if !spec.width.is_multiple_of(2) || !spec.height.is_multiple_of(2) {
            return Err(EncodeError::Failed(format!("{}x{} is not an even size", spec.width, spec.height)));
        }
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y"]);
        cmd.args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", &format!("{}x{}", spec.width, spec.height)]);
        cmd.args(["-framerate", &spec.fps.to_string(), "-i", "pipe:0"]);
        // ffmpeg must not stop reading stdin early (EPIPE), so the audio is exactly the clip's
        // length and neither -shortest nor -t is used.
        let audio_file = match spec.audio {
            Some(mut samples) => {
                samples.resize(audio_samples_for(spec.num_frames, spec.fps) * AUDIO_CHANNELS as usize, 0.0);
                let mut file = tempfile::NamedTempFile::new()?;
                let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
                file.write_all(&bytes)?;
                file.flush()?;
                cmd.args(["-f", "f32le", "-ar", &AUDIO_RATE.to_string(), "-ac", &AUDIO_CHANNELS.to_string(), "-i"]);
                cmd.arg(file.path());
                cmd.args(["-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "128k"]);
                cmd.args(["-ar", &AUDIO_RATE.to_string(), "-ac", &AUDIO_CHANNELS.to_string()]);
                Some(file)
            }
            None => {
                cmd.args(["-map", "0:v"]);
                None
            }
        };
        cmd.args(["-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p"]);
        cmd.args(["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-profile:v", "high"]);
        cmd.args(["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv"]);
        cmd.args(["-movflags", "+faststart", "-f", "mp4"]);
        cmd.arg(spec.path);
        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(EncodeError::Spawn)?;
        let stdin = child.stdin.take();
        // Drained on its own thread: a chatty ffmpeg would otherwise block and deadlock our writes.
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Ok(Mp4Encoder {
            child,
            stdin,
            stderr: Some(stderr),
            frame_bytes: (spec.width * spec.height * 3) as usize,
            frames_written: 0,
            expected_frames: spec.num_frames,
            _audio: audio_file,
        })
    }

    pub fn push_frame(&mut self, rgb: &[u8]) -> Result<(), EncodeError> {
        assert_eq!(rgb.len(), self.frame_bytes, "frame size does not match the video size");
        let stdin = self.stdin.as_mut().ok_or_else(|| EncodeError::Failed("encoder already finished".into()))?;
        if let Err(e) = stdin.write_all(rgb) {
            // ffmpeg died: its stderr says why.
            self.stdin = None;
            let _ = self.child.wait();
            let log = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
            return Err(EncodeError::Failed(if log.trim().is_empty() { e.to_string() } else { log.trim().to_owned() }));
        }
        self.frames_written += 1;
        Ok(())
    }

    pub fn finish(mut self) -> Result<(), EncodeError> {
        drop(self.stdin.take());
        let status = self.child.wait()?;
        let log = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        if !status.success() {
            return Err(EncodeError::Failed(format!("exit {status}: {}", log.trim())));
        }
        if self.frames_written != self.expected_frames {
            return Err(EncodeError::Failed(format!(
                "{} frames written, {} expected",
                self.frames_written, self.expected_frames
            )));
        }
        Ok(())
    }
}

impl Drop for Mp4Encoder {
    fn drop(&mut self) {
        // An abandoned encode (cancel, error) must not leave ffmpeg running.
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A scratch directory for one render; removed unless kept.
pub fn scratch_dir(parent: &Path) -> std::io::Result<tempfile::TempDir> {
    std::fs::create_dir_all(parent)?;
    tempfile::Builder::new().prefix("render-").tempdir_in(parent)
}

pub fn video_path(dir: &Path) -> PathBuf {
    dir.join("video.mp4")
}

pub fn poster_path(dir: &Path) -> PathBuf {
    dir.join("poster.jpg")
}
