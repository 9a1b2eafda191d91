//! Raw JSON in, a `GenerateRequest` that cannot be invalid out (docs/architecture.md). Every error is one
//! sentence that names the field and the rule.
use super::pricing::FPS;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::Date;

mod clip;
mod media;
pub mod modes;
mod styles;

pub use clip::{round_up_to_8k_plus_1, AspectRatio, DURATIONS, MAX_FRAMES, MAX_SEED, MIN_FRAMES};
pub use media::{data_uri_budget, decode_data_uri, is_public_ip, IMAGE_MIME_TYPES, MAX_URL_CHARS, VIDEO_MIME_TYPES};
pub use modes::{Keyframe, Mode, Quality};
pub use styles::StyleRef;

/// The longest `prompt`, in characters (Unicode scalar values). The text encoder (Gemma) reads at
/// most 1024 tokens; English prose averages about 4 characters a token, so 1024 tokens are about
/// 4,000 characters, and text that tokenises unusually well (long words, runs of spaces or
/// punctuation that Gemma's vocabulary holds as one token) stays several times under this bound.
/// A prompt the encoder would read in full is therefore never refused, while a job's stored prompt
/// (and its part of each item of `GET /jobs`) stays under 80,000 bytes of JSON (4 bytes a
/// character at most: control characters, which JSON escapes as 6, are refused). Krea's schema
/// of this endpoint states no maximum (only `minLength: 1`).
pub const MAX_PROMPT_CHARS: usize = 20_000;

const FIELDS: [&str; 11] = [
    "prompt",
    "start_image",
    "start_video",
    "aspect_ratio",
    "duration",
    "num_frames",
    "seed",
    "generate_audio",
    "end_image",
    "styles",
    "has_lora",
];

/// Deprecated camelCase aliases and the field each stands for (endpoint page).
pub const ALIASES: [(&str, &str); 7] = [
    ("startImage", "start_image"),
    ("startVideo", "start_video"),
    ("aspectRatio", "aspect_ratio"),
    ("generateAudio", "generate_audio"),
    ("endImage", "end_image"),
    ("presetStyles", "styles"),
    ("hasLora", "has_lora"),
];

/// A validated request. `num_frames` is what will be generated (already `8k+1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub prompt: String,
    pub start_image: Option<String>,
    /// A clip to continue: the new clip begins where this one ends. Never with `start_image`.
    /// (Defaulted so that jobs stored before the field existed still read.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_video: Option<String>,
    pub end_image: Option<String>,
    pub aspect_ratio: AspectRatio,
    /// `duration` as sent (or its default) — `num_frames` wins when both are given.
    pub duration: u32,
    pub num_frames: u32,
    /// Absent means the server picks one at submit; the job reports the seed it used.
    pub seed: Option<u32>,
    pub generate_audio: bool,
    pub styles: Vec<StyleRef>,
    /// The additive mode (modes.rs); `None`: Krea's text/image-to-video. (Defaulted and omitted
    /// when absent, so Krea jobs are stored and fingerprinted exactly as before.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Additive endpoints only: the pipeline preset; `None`: the engine's default (`fast`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Quality>,
    /// Additive endpoints only: rewrite the prompt with the engine's Gemma before generating
    /// (the job keeps this prompt and shows the enhanced one in its result).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enhance_prompt: bool,
}

impl GenerateRequest {
    pub fn clip_seconds(&self) -> f64 {
        f64::from(self.num_frames - 1) / f64::from(FPS)
    }
}

#[derive(Clone, Debug)]
pub struct NormaliseOptions {
    pub today: Date,
    /// Deprecated aliases are accepted through this date (inclusive).
    pub aliases_accepted_until: Date,
    /// Largest decoded size of the `data:` URIs of one request together (`data_uri_budget`).
    pub max_data_uri_bytes: usize,
    /// Most styles one request may use.
    pub max_styles: usize,
    /// URLs that start with this are our own asset files (the caller checks they exist and
    /// belong to the account).
    pub asset_url_prefix: String,
    /// Whether the server fetches images from other http(s) URLs (an operator switch).
    pub external_image_urls: bool,
    /// Whether image URLs may point to private networks (tests, closed deployments).
    pub allow_private_urls: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Normalised {
    pub request: GenerateRequest,
    /// Deprecated aliases this request used (so the response can carry `Deprecation` headers).
    pub aliases_used: Vec<&'static str>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

fn invalid<T>(message: impl Into<String>) -> Result<T, ValidationError> {
    Err(ValidationError(message.into()))
}

/// The fields are checked in this order, so a body with several faults is refused for the first.
pub fn normalise(body: &Value, options: &NormaliseOptions) -> Result<Normalised, ValidationError> {
    let Some(raw) = body.as_object() else {
        return invalid(format!("The request body must be a JSON object, not {}.", json_kind(body)));
    };
    let (fields, aliases_used) = resolve_aliases(raw, options)?;
    let prompt = prompt(&fields)?;
    let aspect_ratio = clip::aspect_ratio(&fields)?;
    let duration = clip::duration(&fields)?;
    let num_frames = clip::num_frames(&fields, duration)?;
    let seed = clip::seed(&fields)?;
    let generate_audio = clip::generate_audio(&fields)?;
    let (start_image, start_video) = media::start_media(&fields, options)?;
    let end_image = media::image_field(&fields, "end_image", options)?;
    media::check_data_total(
        [
            ("start_image", start_image.as_deref()),
            ("start_video", start_video.as_deref()),
            ("end_image", end_image.as_deref()),
        ],
        options.max_data_uri_bytes,
    )?;
    let styles = styles::styles(&fields, options.max_styles)?;
    Ok(Normalised {
        request: GenerateRequest {
            prompt,
            start_image,
            start_video,
            end_image,
            aspect_ratio,
            duration,
            num_frames,
            seed,
            generate_audio,
            styles,
            mode: None,
            quality: None,
            enhance_prompt: false,
        },
        aliases_used,
    })
}

/// `prompt` as a request holds it (also `POST /prompts/enhance`'s).
pub(crate) fn prompt(fields: &Map<String, Value>) -> Result<String, ValidationError> {
    match fields.get("prompt") {
        None | Some(Value::Null) => invalid("`prompt` is required."),
        Some(Value::String(p)) if p.is_empty() => invalid("`prompt` must be at least 1 character long."),
        Some(Value::String(p)) if p.trim().is_empty() => {
            invalid("`prompt` must describe the clip: it holds only whitespace.")
        }
        Some(Value::String(p)) => match p.chars().count() {
            n if n > MAX_PROMPT_CHARS => invalid(format!(
                "`prompt` may be at most {MAX_PROMPT_CHARS} characters (got {n}); the text encoder reads at most 1024 \
                 tokens of it."
            )),
            _ => match p.chars().enumerate().find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
                // Never text a model reads, and JSON escapes each as 6 bytes.
                Some((i, c)) => invalid(format!(
                    "`prompt` may not hold control characters (U+{:04X} at character {i}); line breaks and tabs are fine.",
                    c as u32
                )),
                None => Ok(p.clone()),
            },
        },
        Some(other) => invalid(format!("`prompt` must be a string, not {}.", json_kind(other))),
    }
}

/// Rejects unknown keys and expired or conflicting aliases; maps live aliases to their field.
fn resolve_aliases(
    raw: &Map<String, Value>,
    options: &NormaliseOptions,
) -> Result<(Map<String, Value>, Vec<&'static str>), ValidationError> {
    let mut fields = Map::new();
    let mut used = Vec::new();
    for (key, value) in raw {
        if FIELDS.contains(&key.as_str()) {
            fields.insert(key.clone(), value.clone());
            continue;
        }
        let Some(&(alias, field)) = ALIASES.iter().find(|(alias, _)| alias == key) else {
            return invalid(format!(
                "Unknown field `{key}`: this endpoint accepts only {}.",
                FIELDS.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
            ));
        };
        if raw.contains_key(field) {
            return invalid(format!("`{alias}` is a deprecated alias of `{field}`; send only `{field}`, not both."));
        }
        if options.today > options.aliases_accepted_until {
            return invalid(format!(
                "`{alias}` is no longer accepted (it was a deprecated alias until {}); use `{field}` instead.",
                options.aliases_accepted_until
            ));
        }
        fields.insert(field.to_owned(), value.clone());
        used.push(alias);
    }
    Ok((fields, used))
}

fn integer_in_range(value: &Value, field: &str, min: u64, max: u64) -> Result<u64, ValidationError> {
    let rule = format!("`{field}` must be an integer from {min} to {max}");
    let Value::Number(n) = value else {
        return invalid(format!("{rule}, not {}.", json_kind(value)));
    };
    let as_int = n
        .as_u64()
        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64).map(|f| f as u64));
    match as_int {
        Some(i) if (min..=max).contains(&i) => Ok(i),
        _ => invalid(format!("{rule} (got {n}).")),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
