//! What every additive endpoint checks the same way: a strict body (no aliases, no field it does
//! not list), `quality`, `enhance_prompt`, and a required media field.
use super::super::media::{media_value, MediaKind};
use super::super::{invalid, json_kind, NormaliseOptions, ValidationError};
use super::Quality;
use serde_json::{Map, Value};

/// The body's fields, refusing a body that is not an object and the first key not in `accepted`.
/// The additive endpoints take no deprecated aliases: they never had camelCase names.
pub(super) fn strict_fields<'a>(body: &'a Value, accepted: &[&str]) -> Result<&'a Map<String, Value>, ValidationError> {
    let Some(fields) = body.as_object() else {
        return invalid(format!("The request body must be a JSON object, not {}.", json_kind(body)));
    };
    if let Some(key) = fields.keys().find(|key| !accepted.contains(&key.as_str())) {
        return invalid(format!(
            "Unknown field `{key}`: this endpoint accepts only {}.",
            accepted.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(fields)
}

/// `quality`: "fast", "balanced" or "best"; absent: the engine's default (fast).
pub(super) fn quality(fields: &Map<String, Value>) -> Result<Option<Quality>, ValidationError> {
    match fields.get("quality") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match Quality::ALL.iter().find(|q| q.as_str() == s) {
            Some(q) => Ok(Some(*q)),
            None => invalid(format!("`quality` must be \"fast\", \"balanced\" or \"best\", not \"{s}\".")),
        },
        Some(other) => {
            invalid(format!("`quality` must be \"fast\", \"balanced\" or \"best\", not {}.", json_kind(other)))
        }
    }
}

/// A boolean field that may be left out.
pub(super) fn flag(fields: &Map<String, Value>, field: &str, default: bool) -> Result<bool, ValidationError> {
    match fields.get(field) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => invalid(format!("`{field}` must be true or false, not {}.", json_kind(other))),
    }
}

/// A media field the endpoint cannot do without.
pub(super) fn required_media(
    fields: &Map<String, Value>,
    field: &str,
    kind: &MediaKind,
    options: &NormaliseOptions,
) -> Result<String, ValidationError> {
    match media_value(fields.get(field), field, kind, options)? {
        Some(uri) => Ok(uri),
        None => invalid(format!("`{field}` is required.")),
    }
}

/// A number of seconds, `>= 0` and finite (`start_seconds`, `keyframes[i].seconds`).
pub(super) fn seconds(value: &Value, field: &str) -> Result<f64, ValidationError> {
    match value {
        Value::Number(n) => match n.as_f64().filter(|s| s.is_finite() && *s >= 0.0) {
            Some(s) => Ok(s),
            None => invalid(format!("`{field}` must be a number of seconds, 0 or more (got {n}).")),
        },
        other => invalid(format!("`{field}` must be a number of seconds, not {}.", json_kind(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_unknown_field_is_named_with_what_the_endpoint_takes() {
        let e = strict_fields(&json!({"prompt": "x", "startImage": "y"}), &["prompt"]).unwrap_err().0;
        assert_eq!(e, "Unknown field `startImage`: this endpoint accepts only `prompt`.");
        assert!(strict_fields(&json!([1]), &["prompt"]).unwrap_err().0.contains("not an array"));
        assert_eq!(strict_fields(&json!({"prompt": "x"}), &["prompt"]).unwrap().len(), 1);
    }

    #[test]
    fn quality_is_one_of_three_presets() {
        assert_eq!(quality(json!({}).as_object().unwrap()), Ok(None));
        assert_eq!(quality(json!({"quality": "best"}).as_object().unwrap()), Ok(Some(Quality::Best)));
        let e = quality(json!({"quality": "ultra"}).as_object().unwrap()).unwrap_err().0;
        assert!(e.contains("`quality` must be \"fast\", \"balanced\" or \"best\""), "{e}");
        assert!(quality(json!({"quality": 1}).as_object().unwrap()).is_err());
    }

    #[test]
    fn flags_and_seconds_are_typed() {
        let fields = json!({"enhance_prompt": "yes"});
        let e = flag(fields.as_object().unwrap(), "enhance_prompt", false).unwrap_err().0;
        assert_eq!(e, "`enhance_prompt` must be true or false, not a string.");
        assert_eq!(flag(json!({}).as_object().unwrap(), "enhance_prompt", false), Ok(false));
        assert_eq!(seconds(&json!(1.5), "s"), Ok(1.5));
        assert!(seconds(&json!(-1), "s").unwrap_err().0.contains("0 or more"));
        assert!(seconds(&json!("1"), "s").unwrap_err().0.contains("not a string"));
    }
}
