//! Raw JSON in, a `GenerateRequest` that cannot be invalid out (DESIGN §2.2). Every error is one
//! sentence that names the field and the rule.
use super::pricing::FPS;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::IpAddr;
use time::Date;

pub const MIN_FRAMES: u32 = 9;
pub const MAX_FRAMES: u32 = 481;
pub const MAX_SEED: u64 = 2_147_483_647;
pub const DURATIONS: [u32; 4] = [5, 10, 15, 20];

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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StyleRef {
    pub id: String,
    pub strength: f64,
}

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
    /// Largest decoded size of a `data:` image.
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

pub fn normalise(body: &Value, options: &NormaliseOptions) -> Result<Normalised, ValidationError> {
    let Some(raw) = body.as_object() else {
        return invalid(format!("The request body must be a JSON object, not {}.", json_kind(body)));
    };
    let (fields, aliases_used) = resolve_aliases(raw, options)?;

    let prompt = match fields.get("prompt") {
        None | Some(Value::Null) => return invalid("`prompt` is required."),
        Some(Value::String(p)) if p.is_empty() => return invalid("`prompt` must be at least 1 character long."),
        Some(Value::String(p)) => p.clone(),
        Some(other) => return invalid(format!("`prompt` must be a string, not {}.", json_kind(other))),
    };
    let aspect_ratio = match fields.get("aspect_ratio") {
        None => AspectRatio::Landscape,
        Some(Value::String(s)) if s == "16:9" => AspectRatio::Landscape,
        Some(Value::String(s)) if s == "9:16" => AspectRatio::Portrait,
        Some(other) => return invalid(format!("`aspect_ratio` must be \"16:9\" or \"9:16\", not {other}.")),
    };
    let duration = match fields.get("duration") {
        None => 5,
        Some(Value::Number(n)) => match n.as_f64().filter(|d| d.fract() == 0.0 && DURATIONS.contains(&(*d as u32))) {
            Some(d) => d as u32,
            None => return invalid(format!("`duration` must be one of 5, 10, 15 or 20 seconds, not {n}.")),
        },
        Some(other) => {
            return invalid(format!("`duration` must be a number (5, 10, 15 or 20), not {}.", json_kind(other)))
        }
    };
    let num_frames = match fields.get("num_frames") {
        None => duration * FPS + 1,
        Some(v) => {
            round_up_to_8k_plus_1(
                integer_in_range(v, "num_frames", u64::from(MIN_FRAMES), u64::from(MAX_FRAMES))? as u32
            )
        }
    };
    let seed = match fields.get("seed") {
        None => None,
        Some(v) => Some(integer_in_range(v, "seed", 0, MAX_SEED)? as u32),
    };
    let generate_audio = match fields.get("generate_audio") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => return invalid(format!("`generate_audio` must be true or false, not {}.", json_kind(other))),
    };
    let start_image = image_field(&fields, "start_image", options)?;
    let start_video = media_field(&fields, "start_video", &VIDEO_MEDIA, options)?;
    if start_image.is_some() && start_video.is_some() {
        return invalid(
            "`start_video` and `start_image` cannot be used together: a continued clip starts on the video's \
             last frame. Send one of them (`end_image` may go with either).",
        );
    }
    let end_image = image_field(&fields, "end_image", options)?;
    let styles = match fields.get("styles") {
        None => Vec::new(),
        Some(Value::Array(items)) => {
            items.iter().enumerate().map(|(i, item)| style_item(i, item)).collect::<Result<_, _>>()?
        }
        Some(other) => {
            return invalid(format!("`styles` must be an array of {{id, strength}} objects, not {}.", json_kind(other)))
        }
    };
    if styles.len() > options.max_styles {
        return invalid(format!("`styles` may hold at most {} styles (got {}).", options.max_styles, styles.len()));
    }
    for (i, style) in styles.iter().enumerate() {
        if styles[..i].iter().any(|earlier: &StyleRef| earlier.id == style.id) {
            return invalid(format!("`styles[{i}].id` repeats `{}`; give each style once.", style.id));
        }
    }
    check_has_lora(fields.get("has_lora"), styles.len())?;

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
        },
        aliases_used,
    })
}

/// `has_lora` says which column of the price table the client expects (the LoRA price applies
/// when `styles` is non-empty). A client that disagrees with its own `styles` would be billed
/// another price than it expects, so the request is refused rather than silently repriced.
fn check_has_lora(value: Option<&Value>, styles: usize) -> Result<(), ValidationError> {
    match value {
        None => Ok(()),
        Some(Value::Bool(true)) if styles == 0 => invalid(
            "`has_lora` is true but `styles` is empty: a request without styles is billed at the price without \
             LoRA. Send the styles, or `has_lora: false`.",
        ),
        Some(Value::Bool(false)) if styles > 0 => invalid(format!(
            "`has_lora` is false but `styles` holds {styles} style(s), which are billed at the LoRA price. \
             Send `has_lora: true`, or no styles."
        )),
        Some(Value::Bool(_)) => Ok(()),
        Some(other) => invalid(format!("`has_lora` must be true or false, not {}.", json_kind(other))),
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

/// The model generates `8k + 1` frames; a request between two such counts gets the next one up.
pub fn round_up_to_8k_plus_1(frames: u32) -> u32 {
    (frames.saturating_sub(1)).div_ceil(8) * 8 + 1
}

fn style_item(index: usize, item: &Value) -> Result<StyleRef, ValidationError> {
    let at = format!("styles[{index}]");
    let Some(obj) = item.as_object() else {
        return invalid(format!("`{at}` must be an object with `id` and `strength`, not {}.", json_kind(item)));
    };
    let id = match obj.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(Value::String(_)) => return invalid(format!("`{at}.id` must not be empty.")),
        None => return invalid(format!("`{at}.id` is required.")),
        Some(other) => return invalid(format!("`{at}.id` must be a string, not {}.", json_kind(other))),
    };
    let strength = match obj.get("strength") {
        Some(Value::Number(n)) => match n.as_f64().filter(|s| (-2.0..=2.0).contains(s)) {
            Some(s) => s,
            None => return invalid(format!("`{at}.strength` must be a number from -2 to 2 (got {n}).")),
        },
        None => return invalid(format!("`{at}.strength` is required.")),
        Some(other) => {
            return invalid(format!("`{at}.strength` must be a number from -2 to 2, not {}.", json_kind(other)))
        }
    };
    Ok(StyleRef { id, strength })
}

/// What one URI field takes: the `data:` types it accepts and the words its errors use.
struct MediaKind {
    mime_types: &'static [&'static str],
    /// "a JPEG, PNG or WebP image"
    described: &'static str,
    /// "image", "video"
    noun: &'static str,
    /// The example in the error for a broken `data:` URI.
    example: &'static str,
}

const IMAGE_MEDIA: MediaKind = MediaKind {
    mime_types: &IMAGE_MIME_TYPES,
    described: "a JPEG, PNG or WebP image",
    noun: "image",
    example: "data:image/png;base64,<data>",
};

const VIDEO_MEDIA: MediaKind = MediaKind {
    mime_types: &VIDEO_MIME_TYPES,
    described: "an MP4, MOV or WebM video",
    noun: "video",
    example: "data:video/mp4;base64,<data>",
};

fn image_field(
    fields: &Map<String, Value>,
    field: &str,
    options: &NormaliseOptions,
) -> Result<Option<String>, ValidationError> {
    media_field(fields, field, &IMAGE_MEDIA, options)
}

fn media_field(
    fields: &Map<String, Value>,
    field: &str,
    kind: &MediaKind,
    options: &NormaliseOptions,
) -> Result<Option<String>, ValidationError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(uri)) => {
            check_media_uri(uri, field, kind, options)?;
            Ok(Some(uri.clone()))
        }
        Some(other) => invalid(format!("`{field}` must be a URI string or null, not {}.", json_kind(other))),
    }
}

/// Image types a `data:` URI may carry.
pub const IMAGE_MIME_TYPES: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];

/// Video types a `data:` URI in `start_video` may carry (its content is probed at submit).
pub const VIDEO_MIME_TYPES: [&str; 3] = ["video/mp4", "video/quicktime", "video/webm"];

/// A `data:` image decoded: its declared type and bytes (content is checked later, by decoding).
pub fn decode_data_uri(uri: &str) -> Option<(String, Vec<u8>)> {
    let rest = uri.strip_prefix("data:")?;
    let (meta, payload) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?.to_ascii_lowercase();
    let bytes = base64::engine::general_purpose::STANDARD.decode(payload.trim()).ok()?;
    Some((mime, bytes))
}

/// Syntax and address class only; the content is checked when the job runs.
fn check_media_uri(
    uri: &str,
    field: &str,
    kind: &MediaKind,
    options: &NormaliseOptions,
) -> Result<(), ValidationError> {
    if uri.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
        let Some((mime, bytes)) = decode_data_uri(uri) else {
            return invalid(format!("`{field}` is not a valid data: URI (expected {}).", kind.example));
        };
        if !kind.mime_types.contains(&mime.as_str()) {
            return invalid(format!("`{field}` must be {}, not {mime}.", kind.described));
        }
        if bytes.len() > options.max_data_uri_bytes {
            return invalid(format!(
                "`{field}` is {} bytes; data: {}s may be at most {} bytes.",
                bytes.len(),
                kind.noun,
                options.max_data_uri_bytes
            ));
        }
        return Ok(());
    }
    if uri.starts_with(&options.asset_url_prefix) {
        return Ok(()); // one of our assets: whether it exists and is the caller's is checked next
    }
    let Ok(url) = url::Url::parse(uri) else {
        return invalid(format!("`{field}` must be a URI (a data: {}, an asset URL or an http(s) URL).", kind.noun));
    };
    if !matches!(url.scheme(), "http" | "https") {
        return invalid(format!("`{field}` must use http, https or data, not {}.", url.scheme()));
    }
    if !options.external_image_urls {
        return invalid(format!(
            "`{field}`: this server does not fetch {noun}s from other sites; upload the {noun} with POST /assets \
             and send its `image_url`, or send a data: URI.",
            noun = kind.noun
        ));
    }
    let literal_ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
        None => return invalid(format!("`{field}` has no host.")),
    };
    if !options.allow_private_urls && literal_ip.is_some_and(|ip| !is_public_ip(ip)) {
        return invalid(format!(
            "`{field}` points to a private or reserved address, which this server does not fetch."
        ));
    }
    Ok(())
}

/// Public unicast addresses only: no loopback, private, link-local, CGNAT, multicast,
/// documentation or unspecified ranges, including IPv4 mapped into IPv6.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_ip(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
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
