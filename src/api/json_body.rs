//! The one way the public API reads a JSON body: `Content-Type` checked, then parsed strictly.
//! `serde_json::Value` keeps the last of two equal keys without a word, so `{"prompt": "a",
//! "prompt": "b"}` would be read as whatever the last one says while a proxy or a log in front of
//! us may have read the first; a repeated key is refused instead, naming it with its path.
use super::error::{ApiError, ErrorCode};
use axum::body::BodyDataStream;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;
use std::time::Duration;

/// The most of a refused body that is read and dropped before the connection is given up: a
/// client that sends a few MiB too many gets the error instead of a reset; one sending without
/// end is cut off.
const DRAIN_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Reads and drops the rest of a refused body in the background (up to `DRAIN_MAX_BYTES`, while
/// it keeps arriving within `idle`), so the answer reaches a client that is still sending.
pub fn drain(mut stream: BodyDataStream, idle: Duration) {
    tokio::spawn(async move {
        let mut drained = 0;
        while drained < DRAIN_MAX_BYTES {
            match tokio::time::timeout(idle, stream.next()).await {
                Ok(Some(Ok(chunk))) => drained += chunk.len(),
                _ => break,
            }
        }
    });
}

/// Request bodies are read as sent: no content coding is decoded (they are small JSON, or media
/// files that are compressed already, and decoding would let a few KiB expand past every body
/// limit). A body with another `Content-Encoding` than `identity` is a 415 with
/// `Accept-Encoding: identity`, rather than read as if it were plain.
pub fn refuse_content_encoding(request: Request) -> Result<Request, Box<Response>> {
    let headers = request.headers();
    // HTTP/2 bodies may come without either header, so the methods that carry one count too.
    let has_body = matches!(*request.method(), Method::POST | Method::PUT | Method::PATCH)
        || headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).is_some_and(|len| len.as_bytes() != b"0");
    if !has_body {
        return Ok(request);
    }
    let codings: Vec<String> = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| String::from_utf8_lossy(v.as_bytes()).split(',').map(|c| c.trim().to_owned()).collect::<Vec<_>>())
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
        .collect();
    if codings.is_empty() {
        return Ok(request);
    }
    let refusal = ApiError {
        // The HTTP layer's own status, under `invalid_request` (docs/api.md, "Error codes").
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        code: ErrorCode::InvalidRequest,
        message: format!(
            "`Content-Encoding: {}` is not supported: send the request body uncompressed.",
            codings.join(", ").chars().take(100).collect::<String>()
        ),
        retry_after_secs: None,
    };
    drain(request.into_body().into_data_stream(), Duration::from_secs(10));
    let mut response = refusal.into_response();
    response.headers_mut().insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    Err(Box::new(response))
}

/// The key whose `data:` URI a body cut off at its size limit was in the middle of, if it was
/// in one: the last string the prefix opens with `"data:` and never closes, after `"key":`.
/// (Inside a JSON string a quote is escaped, so `"data:` there cannot be taken for a value.)
pub fn data_uri_cut_off(prefix: &[u8]) -> Option<String> {
    let start = prefix.windows(6).rposition(|w| w.eq_ignore_ascii_case(b"\"data:"))?;
    if prefix[start + 1..].contains(&b'"') {
        return None;
    }
    let before = prefix[..start].trim_ascii_end().strip_suffix(b":")?.trim_ascii_end().strip_suffix(b"\"")?;
    let key = &before[before.iter().rposition(|&b| b == b'"')? + 1..];
    let known = key.len() <= 64 && key.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    known.then(|| String::from_utf8_lossy(key).into_owned())
}

/// A JSON request body parsed by `parse` (for handlers that take axum's size-limited body).
pub struct StrictJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for StrictJson {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<StrictJson, ApiError> {
        check_content_type(request.headers())?;
        let bytes = axum::body::Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::of(ErrorCode::PayloadTooLarge, format!("The request body is too large: {}.", e.body_text()))
            } else {
                ApiError::bad_request(format!("The request body could not be read: {}.", e.body_text()))
            }
        })?;
        parse(&bytes).map(StrictJson)
    }
}

/// `application/json` or any `application/*+json`, with or without parameters.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        return Ok(());
    }
    let got = if content_type.is_empty() { "none".to_owned() } else { format!("`{content_type}`") };
    Err(ApiError::of(
        ErrorCode::InvalidContentType,
        format!("The request body must be JSON with `Content-Type: application/json` (got {got})."),
    ))
}

/// The body as a JSON value; a syntax error or a key repeated in one object is a 400.
pub fn parse(bytes: &[u8]) -> Result<Value, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict { at: &Path::Root }.deserialize(&mut deserializer).and_then(|value| {
        deserializer.end()?;
        Ok(value)
    });
    parsed.map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::bad_request(format!("The request body has a {e}: send each key of an object once."))
        }
        _ => ApiError::bad_request(format!("The request body is not valid JSON: {e}.")),
    })
}

/// Where a value sits in the document, kept as borrowed links and only written out for an error.
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(Path::Root, key) => write!(f, "{key}"),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Builds a `Value` as serde_json's own visitor does, except that a repeated key is an error.
struct Strict<'a> {
    at: &'a Path<'a>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict { at: &Path::Index(self.at, items.len()) })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format_args!("duplicate key `{}`", Path::Key(self.at, &key))));
            }
            let value = map.next_value_seed(Strict { at: &Path::Key(self.at, &key) })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(body: &str) -> String {
        parse(body.as_bytes()).unwrap_err().message
    }

    #[test]
    fn parses_what_serde_json_parses() {
        let body = r#"{"a": [1, -2, 2.5, -0.0, "s\u00e9", null, true, {"b": {}}], "c": 18446744073709551615}"#;
        let expected: Value = serde_json::from_str(body).unwrap();
        assert_eq!(parse(body.as_bytes()).unwrap(), expected);
        // Out of range is an error in both.
        assert!(serde_json::from_str::<Value>("1e400").is_err() && parse(b"1e400").is_err());
    }

    #[test]
    fn a_repeated_key_is_named_with_its_path() {
        assert!(refusal(r#"{"prompt": "a", "prompt": "b"}"#).contains("duplicate key `prompt`"));
        let nested = refusal(r#"{"styles": [{"id": "a", "strength": 1}, {"id": "b", "id": "c"}]}"#);
        assert!(nested.contains("duplicate key `styles[1].id`"), "{nested}");
        // The same key in two objects is not a repeat.
        assert!(parse(br#"[{"id": 1}, {"id": 2}]"#).is_ok());
    }

    #[test]
    fn the_data_uri_a_body_was_cut_off_in_is_named() {
        let cut = |body: &str| data_uri_cut_off(body.as_bytes());
        assert_eq!(cut(r#"{"prompt": "x", "end_image" : "data:image/png;base64,AAAA"#).as_deref(), Some("end_image"));
        // Closed already, or a quote inside a string: not the value the limit cut through.
        assert_eq!(cut(r#"{"end_image": "data:image/png;base64,AA", "prompt": "xxxx"#), None);
        assert_eq!(cut(r#"{"prompt": "say \"data:image/png;base64,AAAA"#), None);
    }

    #[test]
    fn syntax_errors_and_trailing_bytes_are_not_json() {
        assert!(refusal(r#"{"prompt": "#).contains("not valid JSON"));
        assert!(refusal(r#"{"prompt": "a"} x"#).contains("not valid JSON"));
    }
}
