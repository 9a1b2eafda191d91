//! The clip's shape: its aspect ratio, its length (`duration` or `num_frames`), its seed and
//! whether it has audio.
use super::{integer_in_range, invalid, json_kind, ValidationError};
use crate::domain::pricing::FPS;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const MIN_FRAMES: u32 = 9;
pub const MAX_FRAMES: u32 = 481;
pub const MAX_SEED: u64 = 2_147_483_647;
pub const DURATIONS: [u32; 4] = [5, 10, 15, 20];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AspectRatio {
    #[serde(rename = "16:9")]
    Landscape,
    #[serde(rename = "9:16")]
    Portrait,
}

impl AspectRatio {
    pub fn as_str(self) -> &'static str {
        match self {
            AspectRatio::Landscape => "16:9",
            AspectRatio::Portrait => "9:16",
        }
    }
}

pub(super) fn aspect_ratio(fields: &Map<String, Value>) -> Result<AspectRatio, ValidationError> {
    match fields.get("aspect_ratio") {
        None => Ok(AspectRatio::Landscape),
        Some(Value::String(s)) if s == "16:9" => Ok(AspectRatio::Landscape),
        Some(Value::String(s)) if s == "9:16" => Ok(AspectRatio::Portrait),
        Some(other) => invalid(format!("`aspect_ratio` must be \"16:9\" or \"9:16\", not {other}.")),
    }
}

/// `duration` in seconds, one of `DURATIONS` (5 when absent).
pub(super) fn duration(fields: &Map<String, Value>) -> Result<u32, ValidationError> {
    match fields.get("duration") {
        None => Ok(5),
        Some(Value::Number(n)) => match n.as_f64().filter(|d| d.fract() == 0.0 && DURATIONS.contains(&(*d as u32))) {
            Some(d) => Ok(d as u32),
            None => invalid(format!("`duration` must be one of 5, 10, 15 or 20 seconds, not {n}.")),
        },
        Some(other) => invalid(format!("`duration` must be a number (5, 10, 15 or 20), not {}.", json_kind(other))),
    }
}

/// The frames to generate: `num_frames` rounded up to `8k + 1` when given, else `duration`'s.
pub(super) fn num_frames(fields: &Map<String, Value>, duration: u32) -> Result<u32, ValidationError> {
    match fields.get("num_frames") {
        None => Ok(duration * FPS + 1),
        Some(v) => {
            Ok(round_up_to_8k_plus_1(
                integer_in_range(v, "num_frames", u64::from(MIN_FRAMES), u64::from(MAX_FRAMES))? as u32
            ))
        }
    }
}

/// The model generates `8k + 1` frames; a request between two such counts gets the next one up.
pub fn round_up_to_8k_plus_1(frames: u32) -> u32 {
    (frames.saturating_sub(1)).div_ceil(8) * 8 + 1
}

pub(super) fn seed(fields: &Map<String, Value>) -> Result<Option<u32>, ValidationError> {
    match fields.get("seed") {
        None => Ok(None),
        Some(v) => Ok(Some(integer_in_range(v, "seed", 0, MAX_SEED)? as u32)),
    }
}

pub(super) fn generate_audio(fields: &Map<String, Value>) -> Result<bool, ValidationError> {
    match fields.get("generate_audio") {
        None => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => invalid(format!("`generate_audio` must be true or false, not {}.", json_kind(other))),
    }
}
