//! An additive job's `request.mode` as clients see it: the stored `Mode`, with `data:` URIs
//! echoed as their type and size (`echo_image`) like Krea's media fields.
use super::echo_image;
use crate::domain::request::Mode;
use serde::Serialize;
use std::borrow::Cow;

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum ModeView<'a> {
    Keyframes { keyframes: Vec<KeyframeView<'a>> },
    AudioToVideo { audio: Cow<'a, str>, audio_seconds: f64 },
    Retake { video: Cow<'a, str>, start_seconds: f64, end_seconds: f64, regenerate_video: bool, regenerate_audio: bool },
}

#[derive(Serialize)]
pub(super) struct KeyframeView<'a> {
    image: Cow<'a, str>,
    frame: u32,
    strength: f64,
}

impl<'a> ModeView<'a> {
    pub(super) fn of(mode: &'a Mode) -> ModeView<'a> {
        match mode {
            Mode::Keyframes { keyframes } => ModeView::Keyframes {
                keyframes: keyframes
                    .iter()
                    .map(|k| KeyframeView { image: echo_image(&k.image), frame: k.frame, strength: k.strength })
                    .collect(),
            },
            Mode::AudioToVideo { audio, audio_seconds } => {
                ModeView::AudioToVideo { audio: echo_image(audio), audio_seconds: *audio_seconds }
            }
            Mode::Retake { video, start_seconds, end_seconds, regenerate_video, regenerate_audio } => {
                ModeView::Retake {
                    video: echo_image(video),
                    start_seconds: *start_seconds,
                    end_seconds: *end_seconds,
                    regenerate_video: *regenerate_video,
                    regenerate_audio: *regenerate_audio,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::request::Keyframe;

    #[test]
    fn data_uris_are_echoed_short_and_urls_as_they_are() {
        let mode = Mode::Keyframes {
            keyframes: vec![
                Keyframe { image: "data:image/png;base64,AAAA".into(), frame: 0, strength: 1.0 },
                Keyframe { image: "https://x.example/a.png".into(), frame: 8, strength: 0.5 },
            ],
        };
        let json = serde_json::to_value(ModeView::of(&mode)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "keyframes", "keyframes": [
                {"image": "data:image/png;base64,<3 bytes>", "frame": 0, "strength": 1.0},
                {"image": "https://x.example/a.png", "frame": 8, "strength": 0.5},
            ]})
        );
        let audio = Mode::AudioToVideo { audio: "data:audio/wav;base64,AAAAAAAA".into(), audio_seconds: 2.5 };
        let json = serde_json::to_value(ModeView::of(&audio)).unwrap();
        assert_eq!(json["kind"], "audio_to_video");
        assert_eq!(json["audio"], "data:audio/wav;base64,<6 bytes>");
    }
}
