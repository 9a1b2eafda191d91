//! The URI fields (`start_image`, `start_video`, `end_image`): a `data:` URI of an accepted type
//! and size, one of our asset URLs, or (when the operator allows it) a public http(s) URL.
use super::{invalid, json_kind, NormaliseOptions, ValidationError};
use crate::domain::address::is_local_name;
pub use crate::domain::address::is_public_ip;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::net::IpAddr;

/// `start_image` and `start_video`, which cannot go together.
pub(super) fn start_media(
    fields: &Map<String, Value>,
    options: &NormaliseOptions,
) -> Result<(Option<String>, Option<String>), ValidationError> {
    let start_image = image_field(fields, "start_image", options)?;
    let start_video = media_field(fields, "start_video", &VIDEO_MEDIA, options)?;
    if start_image.is_some() && start_video.is_some() {
        return invalid(
            "`start_video` and `start_image` cannot be used together: a continued clip starts on the video's \
             last frame. Send one of them (`end_image` may go with either).",
        );
    }
    Ok((start_image, start_video))
}

/// What one URI field takes: the `data:` types it accepts and the words its errors use.
pub(super) struct MediaKind {
    mime_types: &'static [&'static str],
    /// "a JPEG, PNG or WebP image"
    described: &'static str,
    /// "image", "video"
    noun: &'static str,
    /// The example in the error for a broken `data:` URI.
    example: &'static str,
}

pub(super) const IMAGE_MEDIA: MediaKind = MediaKind {
    mime_types: &IMAGE_MIME_TYPES,
    described: "a JPEG, PNG or WebP image",
    noun: "image",
    example: "data:image/png;base64,<data>",
};

pub(super) const VIDEO_MEDIA: MediaKind = MediaKind {
    mime_types: &VIDEO_MIME_TYPES,
    described: "an MP4, MOV or WebM video",
    noun: "video",
    example: "data:video/mp4;base64,<data>",
};

/// `audio` of `…/audio-to-video` (its content is probed at submit).
pub(super) const AUDIO_MEDIA: MediaKind = MediaKind {
    mime_types: &AUDIO_MIME_TYPES,
    described: "a WAV, MP3, M4A/AAC, Ogg, FLAC or WebM audio file",
    noun: "audio file",
    example: "data:audio/wav;base64,<data>",
};

pub(super) fn image_field(
    fields: &Map<String, Value>,
    field: &str,
    options: &NormaliseOptions,
) -> Result<Option<String>, ValidationError> {
    media_field(fields, field, &IMAGE_MEDIA, options)
}

pub(super) fn media_field(
    fields: &Map<String, Value>,
    field: &str,
    kind: &MediaKind,
    options: &NormaliseOptions,
) -> Result<Option<String>, ValidationError> {
    media_value(fields.get(field), field, kind, options)
}

/// One URI value, named `field` in errors (`keyframes[2].image` is not a key of the body).
pub(super) fn media_value(
    value: Option<&Value>,
    field: &str,
    kind: &MediaKind,
    options: &NormaliseOptions,
) -> Result<Option<String>, ValidationError> {
    match value {
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

/// Audio types a `data:` URI in `audio` may carry (its content is probed at submit).
pub const AUDIO_MIME_TYPES: [&str; 9] = [
    "audio/wav",
    "audio/x-wav",
    "audio/wave",
    "audio/mpeg",
    "audio/mp4",
    "audio/aac",
    "audio/ogg",
    "audio/flac",
    "audio/webm",
];

/// A `data:` image decoded: its declared type and bytes (content is checked later, by decoding).
pub fn decode_data_uri(uri: &str) -> Option<(String, Vec<u8>)> {
    let rest = uri.strip_prefix("data:")?;
    let (meta, payload) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?.to_ascii_lowercase();
    let bytes = base64::engine::general_purpose::STANDARD.decode(payload.trim()).ok()?;
    Some((mime, bytes))
}

/// The longest URL (other than a `data:` URI) a media field takes. Presigned links with session
/// tokens run to a few thousand characters; 8 KiB is what common servers and proxies accept in a
/// request line. It keeps each job's echo of its request (`GET /jobs`) small.
pub const MAX_URL_CHARS: usize = 8192;

/// What the rest of a body needs beside its `data:` URIs: the longest prompt even if a client
/// escapes every character (`\uXXXX`, 6 bytes each: 120,000 bytes), the other fields and the
/// JSON around them, with room to spare.
const BODY_BYTES_BESIDE_DATA_URIS: usize = 256 * 1024;

/// The decoded bytes the `data:` URIs of one request may hold together: the operator's
/// `max_data_uri_bytes`, lowered where needed so that they still fit a body of `max_body_bytes`
/// (base64 carries 3 bytes in 4 characters). Otherwise a URI under the `data:` limit would be
/// refused by the body limit instead, with a 413 that cannot say which field was too large.
pub fn data_uri_budget(max_body_bytes: usize, max_data_uri_bytes: usize) -> usize {
    let fits = max_body_bytes.saturating_sub(BODY_BYTES_BESIDE_DATA_URIS) / 4 * 3;
    max_data_uri_bytes.min(fits)
}

/// The `data:` URIs of a request together (each was checked alone already): the field that takes
/// the total over `max_bytes` is named.
pub(super) fn check_data_total<'a, F: std::fmt::Display>(
    fields: impl IntoIterator<Item = (F, Option<&'a str>)>,
    max_bytes: usize,
) -> Result<(), ValidationError> {
    let mut total = 0;
    let mut earlier: Vec<String> = Vec::new();
    for (field, uri) in fields {
        let Some(size) = uri.and_then(data_uri_decoded_len) else { continue };
        total += size;
        if total > max_bytes {
            return invalid(format!(
                "`{field}` is a {size}-byte data: URI; with {} the request's data: URIs hold {total} bytes, and \
                 together they may hold at most {max_bytes} bytes. Upload the larger file with POST /assets and send \
                 its URL instead.",
                earlier.join(" and ")
            ));
        }
        earlier.push(format!("`{field}`"));
    }
    Ok(())
}

/// The decoded size of a well-formed base64 `data:` URI, from its length alone.
fn data_uri_decoded_len(uri: &str) -> Option<usize> {
    if !uri.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
        return None;
    }
    let payload = uri.split_once(',')?.1.trim();
    let padding = payload.bytes().rev().take_while(|&b| b == b'=').count();
    Some((payload.len() / 4 * 3).saturating_sub(padding))
}

/// Syntax and address class only; the content is checked when the job runs.
fn check_media_uri(
    uri: &str,
    field: &str,
    kind: &MediaKind,
    options: &NormaliseOptions,
) -> Result<(), ValidationError> {
    if uri.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
        return check_data_uri(uri, field, kind, options.max_data_uri_bytes);
    }
    if uri.chars().count() > MAX_URL_CHARS {
        return invalid(format!(
            "`{field}` may be at most {MAX_URL_CHARS} characters unless it is a data: URI; upload the {} with \
             POST /assets and send its URL instead.",
            kind.noun
        ));
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
    let refused = match url.host() {
        Some(url::Host::Ipv4(ip)) => !is_public_ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !is_public_ip(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => is_local_name(name),
        None => return invalid(format!("`{field}` has no host.")),
    };
    if !options.allow_private_urls && refused {
        return invalid(format!(
            "`{field}` points to a private or reserved address, which this server does not fetch."
        ));
    }
    Ok(())
}

/// A `data:` URI: base64 of an accepted type, at most `max_bytes` once decoded.
fn check_data_uri(uri: &str, field: &str, kind: &MediaKind, max_bytes: usize) -> Result<(), ValidationError> {
    let Some((mime, bytes)) = decode_data_uri(uri) else {
        return invalid(format!("`{field}` is not a valid data: URI (expected {}).", kind.example));
    };
    if !kind.mime_types.contains(&mime.as_str()) {
        return invalid(format!("`{field}` must be {}, not {mime}.", kind.described));
    }
    if bytes.len() > max_bytes {
        return invalid(format!(
            "`{field}` is {} bytes; data: {}s may be at most {} bytes.",
            bytes.len(),
            kind.noun,
            max_bytes
        ));
    }
    Ok(())
}
