//! `POST /prompts/enhance` in `GET /openapi.json` (additive), with its operator-set price.
use super::openapi::{auth_errors, error_response};
use crate::domain::money::MicroUsd;
use serde_json::{json, Value};

/// Adds the operation to `document`.
pub fn extend(document: &mut Value, price: MicroUsd) {
    let price_text = if price.0 > 0 { format!("{price} per enhancement") } else { "free".to_owned() };
    let operation = json!({ "post": {
        "tags": ["Prompts"],
        "summary": "Enhance a prompt",
        "description": format!(
            "Rewrites `prompt` with the engine's own prompt enhancer (the Gemma text encoder of the `ltx` engine, \
             through the official system prompts; with `image`, the image-to-video one). Price: {price_text}. \
             Answered by the server's in-process engine: a server without one answers 503 `enhance_unavailable`."
        ),
        "x-ltx-serve-additive": true,
        "x-ltx-serve-price-usd": price.0 as f64 / 1_000_000.0,
        "requestBody": { "required": true, "content": { "application/json": { "schema": {
            "type": "object",
            "required": ["prompt"],
            "properties": {
                "prompt": { "type": "string", "minLength": 1, "maxLength": crate::domain::request::MAX_PROMPT_CHARS },
                "image": { "type": ["string", "null"], "format": "uri", "description": "An asset URL of yours, a data: URI, or another site's image URL." }
            },
            "additionalProperties": false
        } } } },
        "responses": auth_errors(json!({
            "200": { "description": "The enhanced prompt", "content": { "application/json": { "schema": {
                "type": "object", "required": ["prompt"], "properties": { "prompt": { "type": "string" } }
            } } } },
            "400": error_response("Invalid request body"),
            "402": error_response("The available balance is short of the price"),
            "403": error_response("The account is suspended"),
            "413": error_response("The request body is too large"),
            "503": error_response("No in-process engine here can enhance prompts")
        }))
    } });
    if let Some(paths) = document["paths"].as_object_mut() {
        paths.insert("/prompts/enhance".to_owned(), operation);
    }
}
