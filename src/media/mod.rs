//! Media: H.264 + AAC encoding through Debian's `ffmpeg`, JPEG posters, and input images.
pub mod encode;
pub mod input_audio;
pub mod input_image;
pub mod input_video;
pub mod mux_audio;
pub mod poster;

/// Audio sample rate of every clip.
pub const AUDIO_RATE: u32 = 48_000;
/// Interleaved stereo.
pub const AUDIO_CHANNELS: u32 = 2;
