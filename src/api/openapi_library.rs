//! The assets and styles part of `/openapi.json`: Krea's shapes, our additive upload and delete
//! of styles marked `x-ltx-serve-additive`.
use super::openapi::{auth_errors, error_response};
use crate::domain::asset::MAX_ASSET_BYTES;
use serde_json::{json, Map, Value};

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn page_of(item: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "items": { "type": "array", "items": { "$ref": format!("#/components/schemas/{item}") } },
            "next_cursor": { "type": ["string", "null"] },
            "nextCursor": { "type": ["string", "null"], "x-ltx-serve-additive": true }
        },
        "required": ["items", "next_cursor"]
    })
}

fn deleted() -> Value {
    json!({ "type": "object", "properties": { "success": { "type": "boolean" }, "message": { "type": "string" } }, "required": ["success", "message"] })
}

pub fn paths() -> Map<String, Value> {
    let id = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } });
    let paging = json!([
        { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } },
        { "name": "cursor", "in": "query", "schema": { "type": "string", "format": "date-time" },
          "description": "A `next_cursor` value: the time of the last item seen (items older follow). Where the next item shares that time, `next_cursor` is that time, `~` and the item's id instead, which resumes right after it." }
    ]);
    let asset = json!({ "$ref": "#/components/schemas/Asset" });
    let style = json!({ "$ref": "#/components/schemas/Style" });
    let mut style_query = paging.as_array().cloned().unwrap_or_default();
    style_query.extend([
        json!({ "name": "filter", "in": "query", "schema": { "type": "string", "enum": ["all", "user", "community", "krea", "shared", "unapproved", "editor", "gallery", "public"], "default": "all" },
                "description": "`user`: your own; `public`, `community`, `gallery`: anyone's public ones; `all`: both. This server has no curated or workspace lists." }),
        json!({ "name": "user", "in": "query", "schema": { "type": "string", "format": "uuid" }, "description": "Only this owner's styles." }),
        json!({ "name": "ids", "in": "query", "schema": { "type": "string" }, "description": "Comma-separated style ids." }),
        json!({ "name": "model", "in": "query", "schema": { "type": "string" }, "description": "Styles here are for `ltx-2.3`." }),
        json!({ "name": "liked", "in": "query", "schema": { "type": "boolean", "default": false } }),
    ]);
    let paths = json!({
        "/assets": {
            "post": {
                "tags": ["Assets"], "summary": "Upload an asset",
                "requestBody": { "content": { "multipart/form-data": { "schema": {
                    "type": "object",
                    "properties": {
                        "file": { "type": "string", "format": "binary",
                                  "description": format!("The file to upload (JPEG, PNG, WebP, HEIC, MP4, MOV, WebM, GLB, WAV, MP3), told by its bytes. Maximum size: {MAX_ASSET_BYTES} bytes.") },
                        "description": { "type": "string", "maxLength": 10000 }
                    },
                    "required": ["file"],
                    "additionalProperties": false
                } } } },
                "responses": auth_errors(json!({
                    "200": ok("Asset uploaded successfully", asset.clone()),
                    "400": error_response("Invalid file type or content"),
                    "403": error_response("The account's storage quota (bytes or files) is used up: `storage_quota_exceeded`"),
                    "413": error_response("The file is too large")
                }))
            },
            "get": {
                "tags": ["Assets"], "summary": "List assets", "parameters": paging,
                "responses": auth_errors(json!({ "200": ok("List of assets", page_of("Asset")), "400": error_response("Invalid query parameters") }))
            }
        },
        "/assets/{id}": {
            "get": { "tags": ["Assets"], "summary": "Get an asset", "parameters": [id],
                "responses": auth_errors(json!({ "200": ok("Asset details", asset), "404": error_response("Asset not found") })) },
            "delete": { "tags": ["Assets"], "summary": "Delete an asset", "parameters": [id],
                "responses": auth_errors(json!({ "200": ok("Asset deleted successfully", deleted()), "404": error_response("Asset not found") })) }
        },
        "/styles": {
            "get": { "tags": ["Styles"], "summary": "Search styles", "parameters": style_query,
                "responses": auth_errors(json!({ "200": ok("List of styles", page_of("Style")), "400": error_response("Invalid query parameters") })) },
            "post": {
                "tags": ["Styles"], "summary": "Upload an LTX-2.3 LoRA as a style", "x-ltx-serve-additive": true,
                "requestBody": { "content": { "multipart/form-data": { "schema": {
                    "type": "object",
                    "properties": {
                        "file": { "type": "string", "format": "binary", "description": "A .safetensors LoRA for the LTX-2.3 transformer (keys diffusion_model.<layer>.lora_A/lora_B.weight)." },
                        "title": { "type": "string", "pattern": "\\S", "maxLength": 200 },
                        "prompt": { "type": "string", "maxLength": 10000 },
                        "public": { "type": "string", "enum": ["true", "false"], "default": "false" }
                    },
                    "required": ["file", "title"],
                    "additionalProperties": false
                } } } },
                "responses": auth_errors(json!({
                    "200": ok("The style", style.clone()),
                    "400": error_response("The LoRA does not fit LTX-2.3 (the message names the first bad key), or a field is invalid"),
                    "403": error_response("The account's storage quota (bytes or files) is used up: `storage_quota_exceeded`"),
                    "413": error_response("The file is too large")
                }))
            }
        },
        "/styles/{id}": {
            "get": { "tags": ["Styles"], "summary": "Get a single style by ID", "parameters": [id],
                "responses": auth_errors(json!({ "200": ok("Style details", style.clone()), "404": error_response("Style not found") })) },
            "patch": {
                "tags": ["Styles"], "summary": "Update a style", "parameters": [id],
                "requestBody": { "content": { "application/json": { "schema": {
                    "type": "object",
                    "properties": {
                        "public": { "type": ["boolean", "null"] },
                        "urls": { "type": "array", "items": { "type": "string", "format": "uri" } },
                        "title": { "type": "string" },
                        "cover_url": { "type": "string" }
                    },
                    "additionalProperties": false
                } } } },
                "responses": auth_errors(json!({
                    "200": ok("Style updated successfully", style),
                    "400": error_response("No valid fields to update"),
                    "404": error_response("Style not found or you are not the owner")
                }))
            },
            "delete": {
                "tags": ["Styles"], "summary": "Delete a style", "parameters": [id], "x-ltx-serve-additive": true,
                "responses": auth_errors(json!({
                    "200": ok("Style deleted", deleted()),
                    "404": error_response("Style not found or you are not the owner"),
                    "409": error_response("Unfinished jobs use the style")
                }))
            }
        }
    });
    paths.as_object().cloned().unwrap_or_default()
}

pub fn schemas() -> Map<String, Value> {
    let schemas = json!({
        "Asset": {
            "type": "object",
            "properties": {
                "id": { "type": "string", "format": "uuid" },
                "image_url": { "type": "string", "format": "uri", "description": "Usable as `start_image` or `end_image` by its owner." },
                "uploaded_at": { "type": "string", "format": "date-time" },
                "width": { "type": ["number", "null"] },
                "height": { "type": ["number", "null"] },
                "size_bytes": { "type": ["number", "null"] },
                "mime_type": { "type": ["string", "null"] },
                "description": { "type": "string" }
            },
            "required": ["id", "image_url", "uploaded_at", "width", "height", "size_bytes", "mime_type"]
        },
        "Style": {
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "title": { "type": ["string", "null"] },
                "urls": { "type": "array", "items": { "type": "string", "format": "uri" } },
                "public": { "type": "boolean" },
                "cover_url": { "type": ["string", "null"], "format": "uri" },
                "prompt": { "type": "string" },
                "models": { "type": "array", "items": { "type": "string" } },
                "owner": { "type": ["object", "null"], "properties": {
                    "id": { "type": "string", "format": "uuid" }, "name": { "type": "string" }, "avatar_url": { "type": ["string", "null"], "format": "uri" }
                }, "required": ["id", "name"] },
                "like_count": { "type": "number" },
                "created_at": { "type": "string" },
                "lora": { "type": "object", "x-ltx-serve-additive": true, "properties": {
                    "rank": { "type": "integer" }, "size_bytes": { "type": "integer" }
                } }
            },
            "required": ["id", "title", "urls", "public", "prompt", "owner", "like_count", "created_at"]
        }
    });
    schemas.as_object().cloned().unwrap_or_default()
}
