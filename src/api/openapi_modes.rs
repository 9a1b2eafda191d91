//! The additive endpoints in `GET /openapi.json`: `…/keyframes`, `…/audio-to-video` and
//! `…/retake`, each marked `x-ltx-serve-additive` (Krea-only clients skip them), with its request
//! schema and the operator's price table (`x-ltx-serve-prices`, and in the description).
use super::openapi::{auth_errors, error_response};
use super::GENERATE_PATH;
use crate::domain::pricing::additive::AdditivePrices;
use crate::domain::request::modes::{audio, keyframes, retake, MAX_KEYFRAMES, MIN_KEYFRAMES};
use crate::domain::request::{DURATIONS, MAX_FRAMES, MAX_SEED, MIN_FRAMES};
use serde_json::{json, Map, Value};

/// Adds the three operations and their schemas to `document`.
pub fn extend(document: &mut Value, prices: &AdditivePrices) {
    if let Some(paths) = document["paths"].as_object_mut() {
        paths.extend(self::paths(prices));
    }
    if let Some(schemas) = document["components"]["schemas"].as_object_mut() {
        schemas.extend(self::schemas());
    }
}

fn paths(prices: &AdditivePrices) -> Map<String, Value> {
    let operations = [
        ("keyframes", "KeyframesRequest", "Keyframe interpolation: 2 to 8 images placed at given frames (official `KeyframeInterpolationPipeline`)."),
        ("audio-to-video", "AudioToVideoRequest", "A clip that follows an audio track, as long as the audio (up to 20 s); the output's audio track is the input's, unchanged (official `A2VidPipelineTwoStage`)."),
        ("retake", "RetakeRequest", "Regenerate a span of a clip and keep the rest (official `RetakePipeline`)."),
    ];
    let table = price_table_markdown(prices);
    operations
        .into_iter()
        .map(|(segment, schema, summary)| {
            let operation = json!({ "post": {
                "tags": ["Video"],
                "summary": format!("LTX-2.3 22B: {segment}"),
                "description": format!("{summary} Answers the same Job as Krea's endpoint; its `type` is `ltx-video-2.3-22b/{segment}`.\n\n## Pricing\n\n{table}"),
                "x-ltx-serve-additive": true,
                "x-ltx-serve-prices": prices.to_json(),
                "parameters": [
                    { "name": "X-Webhook-URL", "in": "header", "required": false, "schema": { "type": "string", "format": "uri" } },
                    { "name": "Idempotency-Key", "in": "header", "required": false, "schema": { "type": "string", "maxLength": 255 } },
                    { "name": "Prefer", "in": "header", "required": false, "schema": { "type": "string", "example": "wait=30" } }
                ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } },
                "responses": auth_errors(json!({
                    "200": { "description": "The job, as Krea's endpoint answers it.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Job" } } } },
                    "400": error_response("The request body is invalid, or its media cannot be used; the message names the field."),
                    "402": error_response("You have run out of credits."),
                    "409": error_response("The Idempotency-Key was used with another body."),
                    "413": error_response("The request body is too large."),
                    "429": error_response("You have reached the maximum number of concurrent jobs.")
                }))
            }});
            (format!("{GENERATE_PATH}/{segment}"), operation)
        })
        .collect()
}

/// The rates as a markdown table.
pub fn price_table_markdown(prices: &AdditivePrices) -> String {
    let mut out =
        String::from("| Quality | Per clip second | With LoRA |\n| ------- | --------------: | --------: |\n");
    let lora = prices.lora_per_second;
    for quality in crate::domain::request::Quality::ALL {
        let rate = prices.per_second(quality);
        let with = crate::domain::money::MicroUsd(rate.0 + lora.0);
        out.push_str(&format!("| {} | {rate} | {with} |\n", quality.as_str()));
    }
    out.push_str("\nBilled on whole seconds of the clip: ceil((num_frames − 1) / 24), at least 1.\n");
    out
}

fn schemas() -> Map<String, Value> {
    let quality = json!({ "type": "string", "enum": ["fast", "balanced", "best"], "description": "The pipeline preset (default fast); refused with 400 when no engine has loaded it." });
    let enhance = json!({ "type": "boolean", "default": false, "description": "Rewrite the prompt with the model's Gemma first; the job shows it as `result.enhanced_prompt`." });
    let seed = json!({ "type": "integer", "minimum": 0, "maximum": MAX_SEED });
    let aspect = json!({ "type": "string", "enum": ["16:9", "9:16"], "default": "16:9" });
    let styles = json!({ "type": "array", "items": { "type": "object",
        "properties": { "id": { "type": "string" }, "strength": { "type": "number", "minimum": -2, "maximum": 2 } },
        "required": ["id", "strength"], "additionalProperties": false } });
    let uri = |description: &str| json!({ "type": "string", "format": "uri", "description": description });
    let prompt = json!({ "type": "string", "minLength": 1 });
    let mut out = Map::new();
    out.insert("KeyframesRequest".into(), json!({
        "type": "object", "x-ltx-serve-additive": true, "additionalProperties": false,
        "required": ["prompt", "keyframes"],
        "properties": properties(&keyframes::FIELDS, json!({
            "prompt": prompt,
            "keyframes": { "type": "array", "minItems": MIN_KEYFRAMES, "maxItems": MAX_KEYFRAMES,
                "description": "Strictly ascending frames within the clip (0 to num_frames − 1), each once.",
                "items": { "type": "object", "additionalProperties": false, "required": ["image"],
                    "properties": {
                        "image": uri("An asset URL of yours, an http(s) URL or a data: JPEG/PNG/WebP."),
                        "frame": { "type": "integer", "minimum": 0, "maximum": MAX_FRAMES - 1, "description": "0-based output frame; exactly one of `frame` and `seconds`." },
                        "seconds": { "type": "number", "minimum": 0, "description": "Placed at frame round(seconds × 24)." },
                        "strength": { "type": "number", "minimum": 0, "maximum": 1, "default": 1 }
                    } } },
            "duration": { "type": "number", "enum": DURATIONS, "default": 5 },
            "num_frames": { "type": "integer", "minimum": MIN_FRAMES, "maximum": MAX_FRAMES },
            "aspect_ratio": aspect, "seed": seed,
            "generate_audio": { "type": "boolean", "default": true },
            "styles": styles, "quality": quality, "enhance_prompt": enhance
        }))
    }));
    out.insert("AudioToVideoRequest".into(), json!({
        "type": "object", "x-ltx-serve-additive": true, "additionalProperties": false,
        "required": ["prompt", "audio"],
        "properties": properties(&audio::FIELDS, json!({
            "prompt": prompt,
            "audio": uri("An asset URL of yours, an http(s) URL or a data: WAV/MP3/M4A/Ogg/FLAC/WebM, at most 20 s. The clip is as long as the audio (rounded up to 8k+1 frames at 24 fps)."),
            "start_image": uri("An optional first frame."),
            "seed": seed, "styles": styles, "aspect_ratio": aspect, "quality": quality, "enhance_prompt": enhance
        }))
    }));
    out.insert("RetakeRequest".into(), json!({
        "type": "object", "x-ltx-serve-additive": true, "additionalProperties": false,
        "required": ["prompt", "video", "start_seconds", "end_seconds"],
        "properties": properties(&retake::FIELDS, json!({
            "prompt": prompt,
            "video": uri("An asset URL of yours, an http(s) URL or a data: MP4/MOV/WebM of at most 20 s, 481 frames. The output is its first 8k+1 frames, at the server's resolution in its orientation."),
            "start_seconds": { "type": "number", "minimum": 0 },
            "end_seconds": { "type": "number", "description": "After start_seconds, within the video; the span holds at least 9 frames (0.375 s)." },
            "regenerate_video": { "type": "boolean", "default": true },
            "regenerate_audio": { "type": "boolean", "default": true, "description": "Not false together with regenerate_video." },
            "seed": seed, "quality": quality, "enhance_prompt": enhance
        }))
    }));
    out
}

/// The properties in the order the endpoint lists its fields (every field documented once).
fn properties(fields: &[&str], described: Value) -> Value {
    let mut ordered = Map::new();
    for field in fields {
        ordered.insert((*field).to_owned(), described[*field].clone());
    }
    Value::Object(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_of_each_endpoint_is_described() {
        let schemas = schemas();
        for (name, fields) in [
            ("KeyframesRequest", &keyframes::FIELDS[..]),
            ("AudioToVideoRequest", &audio::FIELDS[..]),
            ("RetakeRequest", &retake::FIELDS[..]),
        ] {
            for field in fields {
                assert!(schemas[name]["properties"][*field].is_object(), "{name}.{field}");
            }
        }
    }

    #[test]
    fn the_price_table_lists_each_preset_with_and_without_lora() {
        let table = price_table_markdown(&AdditivePrices::default());
        assert!(table.contains("| fast | $0.03596 | $0.04044 |"), "{table}");
        assert!(table.contains("| best | $0.1798 | $0.18428 |"), "{table}");
    }
}
