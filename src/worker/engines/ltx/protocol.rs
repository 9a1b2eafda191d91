//! The JSON-lines protocol between the worker and the engine process, version 2 (the Python
//! side is engines/ltx/ltx_engine/protocol.py). One object per line; commands on the engine's
//! stdin, events on its stdout. Anything the engine prints elsewhere goes to stderr.
//! Version 2 added the additive modes (`mode`), `quality`, `enhance_prompt` and the `enhance`
//! command; the worker writes the engine's source itself, so both sides always match.
use crate::domain::request::Quality;
use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 2;

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    Generate(Generate),
    /// Rewrite a prompt with the resident Gemma (no video); answered by `enhanced` or `error`.
    Enhance {
        id: String,
        prompt: String,
        image: Option<String>,
        seed: u32,
    },
    Cancel {
        id: String,
    },
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
    /// An additive mode's inputs (files in the job's scratch dir); standard jobs leave it out.
    #[serde(skip_serializing_if = "ModeInput::is_standard")]
    pub mode: ModeInput,
    /// The preset to run (`None`: the loaded pipeline's own).
    pub quality: Option<Quality>,
    /// Rewrite the prompt first; the result's `enhanced_prompt` says what the model was given.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enhance_prompt: bool,
}

/// `mode`: which official pipeline's conditioning the job runs with.
#[derive(Debug, Default, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModeInput {
    #[default]
    Standard,
    /// `KeyframeInterpolationPipeline`: each image a guiding latent at its frame.
    Keyframes { keyframes: Vec<ImageInput> },
    /// `A2VidPipelineTwoStage`: the video follows this audio file.
    AudioToVideo { audio: String },
    /// `RetakePipeline`: frames `[start_frame, end_frame)` of `video` regenerated.
    Retake { video: String, start_frame: u32, end_frame: u32, regenerate_video: bool, regenerate_audio: bool },
}

impl ModeInput {
    fn is_standard(&self) -> bool {
        matches!(self, ModeInput::Standard)
    }
}

#[derive(Debug, Serialize, PartialEq)]
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
    Progress {
        id: String,
        stage: String,
        step: u32,
        total: u32,
    },
    Intermediate {
        id: String,
        frames: Frames,
    },
    Result(Finished),
    /// The answer to `enhance`.
    Enhanced {
        id: String,
        prompt: String,
    },
    Error {
        id: Option<String>,
        code: ErrorCode,
        message: String,
    },
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
    /// The quality presets the loaded weights can run; absent from older engines.
    #[serde(default)]
    pub presets: Vec<Quality>,
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
    /// The prompt the model was given, when the job asked for enhancement.
    #[serde(default)]
    pub enhanced_prompt: Option<String>,
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
        let hello: Event =
            serde_json::from_str(r#"{"type":"hello","protocol":2,"presets":["balanced","best"]}"#).unwrap();
        assert!(matches!(hello, Event::Hello(Hello { presets, .. }) if presets == [Quality::Balanced, Quality::Best]));
        let enhanced: Event =
            serde_json::from_str(r#"{"type":"enhanced","id":"e1","prompt":"a fox, at dawn"}"#).unwrap();
        assert_eq!(enhanced, Event::Enhanced { id: "e1".into(), prompt: "a fox, at dawn".into() });
        let result: Event = serde_json::from_str(
            r#"{"type":"result","id":"j1","frames":{"path":"/t/f.rgb","width":64,"height":64,"count":9},"audio":null,"enhanced_prompt":"more"}"#,
        )
        .unwrap();
        assert!(matches!(result, Event::Result(Finished { enhanced_prompt: Some(p), .. }) if p == "more"));
        let enhance = Command::Enhance { id: "e1".into(), prompt: "fox".into(), image: None, seed: 3 }.to_line();
        assert_eq!(enhance, "{\"type\":\"enhance\",\"id\":\"e1\",\"prompt\":\"fox\",\"image\":null,\"seed\":3}\n");
    }

    #[test]
    fn each_mode_has_its_documented_shape() {
        let image = |frame_idx| ImageInput { path: format!("/s/k{frame_idx}.png"), frame_idx, strength: 1.0 };
        let modes = [
            (
                ModeInput::Keyframes { keyframes: vec![image(0), image(8)] },
                serde_json::json!({"kind": "keyframes",
                "keyframes": [{"path": "/s/k0.png", "frame_idx": 0, "strength": 1.0},
                              {"path": "/s/k8.png", "frame_idx": 8, "strength": 1.0}]}),
            ),
            (
                ModeInput::AudioToVideo { audio: "/s/a.wav".into() },
                serde_json::json!({"kind": "audio_to_video", "audio": "/s/a.wav"}),
            ),
            (
                ModeInput::Retake {
                    video: "/s/v.mp4".into(),
                    start_frame: 9,
                    end_frame: 17,
                    regenerate_video: true,
                    regenerate_audio: false,
                },
                serde_json::json!({"kind": "retake", "video": "/s/v.mp4", "start_frame": 9, "end_frame": 17,
                                "regenerate_video": true, "regenerate_audio": false}),
            ),
        ];
        for (mode, json) in modes {
            assert_eq!(serde_json::to_value(&mode).unwrap(), json);
        }
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
