//! `styles` (the LoRAs a clip is rendered with) and `has_lora`, which must agree with them because
//! they decide the price.
use super::{invalid, json_kind, ValidationError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StyleRef {
    pub id: String,
    pub strength: f64,
}

/// `styles`: at most `max_styles` `{id, strength}` objects, each id once; then `has_lora`.
pub(super) fn styles(fields: &Map<String, Value>, max_styles: usize) -> Result<Vec<StyleRef>, ValidationError> {
    let styles: Vec<StyleRef> = match fields.get("styles") {
        None => Vec::new(),
        Some(Value::Array(items)) => {
            items.iter().enumerate().map(|(i, item)| style_item(i, item)).collect::<Result<_, _>>()?
        }
        Some(other) => {
            return invalid(format!("`styles` must be an array of {{id, strength}} objects, not {}.", json_kind(other)))
        }
    };
    if styles.len() > max_styles {
        return invalid(format!("`styles` may hold at most {} styles (got {}).", max_styles, styles.len()));
    }
    for (i, style) in styles.iter().enumerate() {
        if styles[..i].iter().any(|earlier: &StyleRef| earlier.id == style.id) {
            return invalid(format!("`styles[{i}].id` repeats `{}`; give each style once.", style.id));
        }
    }
    check_has_lora(fields.get("has_lora"), styles.len())?;
    Ok(styles)
}

fn style_item(index: usize, item: &Value) -> Result<StyleRef, ValidationError> {
    let at = format!("styles[{index}]");
    let Some(obj) = item.as_object() else {
        return invalid(format!("`{at}` must be an object with `id` and `strength`, not {}.", json_kind(item)));
    };
    if let Some(key) = obj.keys().find(|key| !matches!(key.as_str(), "id" | "strength")) {
        return invalid(format!("Unknown field `{at}.{key}`: a style accepts only `id` and `strength`."));
    }
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
