//! Writes an engine's frames into the job's MP4 and its middle frame as the poster — the same
//! for every engine.
use crate::domain::job::FailureCode;
use crate::media::encode::{poster_path, video_path, Mp4Encoder, VideoSpec};
use crate::media::poster::write_poster;
use crate::worker::engine::{EngineError, RenderSpec, RenderedClip};
use std::path::{Path, PathBuf};

pub struct ClipWriter {
    encoder: Mp4Encoder,
    video: PathBuf,
    poster: PathBuf,
    width: u32,
    height: u32,
    poster_frame: u32,
    written: u32,
    has_audio: bool,
}

pub fn engine_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::new(FailureCode::EngineError, e.to_string())
}

impl ClipWriter {
    /// `audio`: interleaved stereo f32 at 48 kHz, or `None` for a silent file.
    pub fn start(spec: &RenderSpec, out_dir: &Path, audio: Option<Vec<f32>>) -> Result<ClipWriter, EngineError> {
        let video = video_path(out_dir);
        let has_audio = audio.is_some();
        let encoder = Mp4Encoder::start(VideoSpec {
            path: &video,
            width: spec.width,
            height: spec.height,
            fps: spec.fps,
            num_frames: spec.num_frames,
            audio,
        })
        .map_err(engine_error)?;
        Ok(ClipWriter {
            encoder,
            video,
            poster: poster_path(out_dir),
            width: spec.width,
            height: spec.height,
            poster_frame: spec.num_frames / 2,
            written: 0,
            has_audio,
        })
    }

    /// The next frame, RGB24 of the clip's size.
    pub fn push(&mut self, rgb: &[u8]) -> Result<(), EngineError> {
        self.encoder.push_frame(rgb).map_err(engine_error)?;
        if self.written == self.poster_frame {
            write_poster(rgb, self.width, self.height, &self.poster).map_err(engine_error)?;
        }
        self.written += 1;
        Ok(())
    }

    pub fn finish(self) -> Result<RenderedClip, EngineError> {
        self.encoder.finish().map_err(engine_error)?;
        Ok(RenderedClip { video: self.video, poster: self.poster, has_audio: self.has_audio, enhanced_prompt: None })
    }
}
