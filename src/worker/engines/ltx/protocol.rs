//! The JSON-lines protocol between the worker and the engine process, version 1 (the Python
//! side is engines/ltx/ltx_engine/protocol.py). One object per line; commands on the engine's
//! stdin, events on its stdout. Anything the engine prints elsewhere goes to stderr.
use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    Generate(Generate),
    Cancel { id: String },
    Shutdown,
}

#[derive(Debug, Serialize)]
pub struct Generate {
    pub id: String,
    /// The pipeline the worker was configured for; the engine refuses a job for another one.
    pub pipeline: &'static str,
    pub prompt: String,
    pub seed: u32,
    pub width: u32,
    pub height: u32,
    pub num_frames: u32,
    pub fps: u32,
    pub images: Vec<ImageInput>,
    pub loras: Vec<LoraInput>,
    pub audio: bool,
    /// Where the engine writes `frames.rgb` and `audio.f32`.
    pub out_dir: String,
    /// Ask for an `intermediate` event after stage 1 (`--intermediate-previews`); left out when off.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub preview: bool,
}

#[derive(Debug, Serialize)]
pub struct ImageInput {
    pub path: String,
    pub frame_idx: u32,
    pub strength: f64,
}

#[derive(Debug, Serialize)]
pub struct LoraInput {
    /// The style the file belongs to: the engine keys its resident LoRA set by style id, the
    /// way the scheduler does (`store::codec::style_set_key`).
    pub style_id: String,
    pub path: String,
    pub strength: f64,
}

/// `Intermediate`: stage 1's half-size frames, decoded from its latents (asked for with `preview`).
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Hello(Hello),
    Progress { id: String, stage: String, step: u32, total: u32 },
    Intermediate { id: String, frames: Frames },
    Result(Finished),
    Error { id: Option<String>, code: ErrorCode, message: String },
}

#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct Hello {
    pub protocol: u32,
    #[serde(default)]
    pub pipeline: Option<String>,
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub versions: serde_json::Value,
    #[serde(default)]
    pub memory: serde_json::Value,
    /// The LoRA set the freshly loaded model has (`""`: none); absent from older engines.
    #[serde(default)]
    pub resident_style_set: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
pub struct Finished {
    pub id: String,
    pub frames: Frames,
    pub audio: Option<AudioFile>,
    #[serde(default)]
    pub timings: serde_json::Value,
    /// The LoRA set resident after the job (`store::codec::style_set_key` of the job's
    /// styles as the engine applied them); absent from older engines.
    #[serde(default)]
    pub resident_style_set: Option<String>,
}

/// Raw RGB24 frames, `count` × `height` × `width` × 3 bytes.
#[derive(Debug, Deserialize, PartialEq)]
pub struct Frames {
    pub path: String,
    pub width: u32,
    pub height: u32,
    pub count: u32,
}

/// Interleaved float32 little-endian samples.
#[derive(Debug, Deserialize, PartialEq)]
pub struct AudioFile {
    pub path: String,
    pub sample_rate: u32,
    pub channels: u32,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidInput,
    OutOfMemory,
    EngineError,
    Cancelled,
    #[serde(other)]
    Unknown,
}

impl Command {
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("commands serialize");
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_events_have_the_documented_shape() {
        let line = Command::Cancel { id: "j1".into() }.to_line();
        assert_eq!(line, "{\"type\":\"cancel\",\"id\":\"j1\"}\n");
        assert_eq!(Command::Shutdown.to_line(), "{\"type\":\"shutdown\"}\n");

        let progress: Event =
            serde_json::from_str(r#"{"type":"progress","id":"j1","stage":"sampling","step":2,"total":8}"#).unwrap();
        assert_eq!(progress, Event::Progress { id: "j1".into(), stage: "sampling".into(), step: 2, total: 8 });
        let error: Event =
            serde_json::from_str(r#"{"type":"error","id":null,"code":"out_of_memory","message":"CUDA"}"#).unwrap();
        assert_eq!(error, Event::Error { id: None, code: ErrorCode::OutOfMemory, message: "CUDA".into() });
        let strange: Event =
            serde_json::from_str(r#"{"type":"error","id":"j","code":"disk_on_fire","message":"?"}"#).unwrap();
        assert!(matches!(strange, Event::Error { code: ErrorCode::Unknown, .. }));
        let result: Event = serde_json::from_str(
            r#"{"type":"result","id":"j1","frames":{"path":"/t/f.rgb","width":64,"height":64,"count":9},"audio":null,"timings":{"total":1.5}}"#,
        )
        .unwrap();
        assert!(matches!(result, Event::Result(Finished { audio: None, resident_style_set: None, .. })));
        let keyed: Event = serde_json::from_str(
            r#"{"type":"result","id":"j1","frames":{"path":"/t/f.rgb","width":64,"height":64,"count":9},"audio":null,"resident_style_set":"a@0.5,b@1"}"#,
        )
        .unwrap();
        assert!(matches!(keyed, Event::Result(Finished { resident_style_set: Some(k), .. }) if k == "a@0.5,b@1"));
        let preview: Event = serde_json::from_str(
            r#"{"type":"intermediate","id":"j1","frames":{"path":"/t/p.rgb","width":32,"height":32,"count":9}}"#,
        )
        .unwrap();
        assert!(matches!(preview, Event::Intermediate { id, frames } if id == "j1" && frames.width == 32));
        let hello: Event = serde_json::from_str(r#"{"type":"hello","protocol":1,"resident_style_set":""}"#).unwrap();
        assert!(matches!(hello, Event::Hello(Hello { resident_style_set: Some(k), .. }) if k.is_empty()));
    }

    #[test]
    fn a_generate_command_names_the_style_of_each_lora() {
        let lora = LoraInput { style_id: "s1".into(), path: "/c/s1.safetensors".into(), strength: 0.5 };
        assert_eq!(
            serde_json::to_value(&lora).unwrap(),
            serde_json::json!({"style_id": "s1", "path": "/c/s1.safetensors", "strength": 0.5})
        );
    }
}
