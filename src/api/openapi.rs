//! `GET /openapi.json`: our OpenAPI 3.1 document, with Krea's path layout, the endpoint page's
//! request schema and its price table in the generate operation's description (Krea's tooling
//! reads prices from there). Built from the same constants the validator and pricing use, so
//! the document cannot drift from the code. Our additions are marked `x-ltx-serve-additive`.
use super::AppState;
use crate::domain::job::JobStatus;
use crate::domain::pricing::price_table_markdown;
use crate::domain::request::{DURATIONS, MAX_FRAMES, MAX_SEED, MIN_FRAMES};
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

pub async fn serve(State(state): State<AppState>) -> Json<Value> {
    let mut document = document(&state.public_url);
    super::openapi_modes::extend(&mut document, &state.config.additive_prices);
    super::openapi_prompts::extend(&mut document, state.config.prompt_enhance_price);
    Json(document)
}

pub(super) fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn job_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Job" } } } })
}

/// The request body of the endpoint page, property for property.
pub fn generate_request_schema() -> Value {
    let uri_or_null = json!({ "type": ["string", "null"], "format": "uri" });
    json!({
        "type": "object",
        "properties": {
            "prompt": { "type": "string", "minLength": 1 },
            "start_image": uri_or_null,
            "start_video": {
                "type": ["string", "null"],
                "format": "uri",
                "description": "A clip to continue (an asset URL of yours, an https URL or a data: MP4/MOV/WebM of at most 20 s, 481 frames, sides 64 to 8192 px). The new clip starts on its last frame. Not with `start_image`."
            },
            "aspect_ratio": { "type": "string", "enum": ["16:9", "9:16"], "default": "16:9" },
            "duration": { "type": "number", "enum": DURATIONS, "default": 5 },
            "num_frames": { "type": "integer", "minimum": MIN_FRAMES, "maximum": MAX_FRAMES },
            "seed": { "type": "integer", "minimum": 0, "maximum": MAX_SEED },
            "generate_audio": { "type": "boolean", "default": true },
            "end_image": uri_or_null,
            "has_lora": {
                "type": "boolean",
                "description": "Optional. Must agree with `styles` (true exactly when `styles` is non-empty: the LoRA price applies); otherwise 400."
            },
            "styles": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "string" },
                        "strength": { "type": "number", "minimum": -2, "maximum": 2 }
                    },
                    "required": ["id", "strength"]
                }
            }
        },
        "required": ["prompt"],
        "additionalProperties": false,
        "example": { "prompt": "Vast terracotta badlands, sculpted by wind and water over millennia." }
    })
}

fn job_schema() -> Value {
    let statuses: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
    let error = json!({ "type": "object", "properties": { "code": { "type": "string" }, "message": { "type": "string" } }, "required": ["code"] });
    json!({
        "type": "object",
        "properties": {
            "job_id": { "type": "string", "format": "uuid" },
            "status": { "type": "string", "enum": statuses },
            "created_at": { "type": "string", "format": "date-time" },
            "completed_at": { "type": ["string", "null"], "format": "date-time", "description": "Set on every terminal state." },
            "result": {
                "type": ["object", "null"],
                "description": "The final clip once `completed`; while `intermediate-complete` (`--intermediate-previews`), a half-size preview of the first stage in the same shape; the error of a `failed` job.",
                "properties": {
                    "urls": { "type": "array", "items": { "type": "string", "format": "uri" } },
                    "thumbnail_url": { "type": "string", "format": "uri", "x-ltx-serve-additive": true },
                    "expired_at": { "type": "string", "format": "date-time", "x-ltx-serve-additive": true, "description": "When the server's retention deleted the files (absent while kept); `urls` and `thumbnail_url` then answer 410 `result_expired`." },
                    "error": error
                }
            },
            "error": error,
            "type": { "type": "string", "x-ltx-serve-additive": true },
            "progress": { "type": "number", "minimum": 0, "maximum": 1, "x-ltx-serve-additive": true },
            "queue_position": { "type": ["integer", "null"], "x-ltx-serve-additive": true },
            "price_usd": { "type": "string", "x-ltx-serve-additive": true },
            "webhook": { "type": ["object", "null"], "x-ltx-serve-additive": true }
        },
        "required": ["job_id", "status", "created_at", "completed_at", "result"]
    })
}

/// `extra` responses and the 401 every authenticated operation has.
pub(super) fn auth_errors(extra: Value) -> Value {
    let mut responses = json!({ "401": error_response("You are not authenticated.") });
    if let (Some(map), Some(extra)) = (responses.as_object_mut(), extra.as_object()) {
        map.extend(extra.clone());
    }
    responses
}

pub fn document(public_url: &str) -> Value {
    let job_id =
        json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } });
    let additive = |mut op: Value| {
        op["x-ltx-serve-additive"] = json!(true);
        op
    };
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ltx-serve",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A self-hosted, Krea-compatible API for Lightricks' LTX-2.3 22B. Operations and fields marked `x-ltx-serve-additive` are ours, beyond Krea's API; clients that ignore them lose nothing."
        },
        "servers": [{ "url": public_url }],
        "security": [{ "bearerAuth": [] }],
        "paths": {
            "/generate/video/lightricks/ltx-video-2.3-22b": { "post": {
                "tags": ["Video"],
                "summary": "LTX-2.3 22B",
                "description": format!("High-quality audio-video model from Lightricks.\n\n## Pricing\n\n{}", price_table_markdown()),
                "parameters": [
                    { "name": "X-Webhook-URL", "in": "header", "required": false, "schema": { "type": "string", "format": "uri" },
                      "description": "URL to receive a POST request when the job completes. The webhook will receive the job data including results." },
                    { "name": "Idempotency-Key", "in": "header", "required": false, "schema": { "type": "string", "maxLength": 255 },
                      "description": "The same key and body within 24 h return the same job and charge once; another body is a 409.", "x-ltx-serve-additive": true },
                    { "name": "Prefer", "in": "header", "required": false, "schema": { "type": "string", "example": "wait=30" },
                      "description": "`wait=N` (N ≤ 60) holds the response until the job is terminal or N seconds pass.", "x-ltx-serve-additive": true }
                ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": generate_request_schema() } } },
                "responses": auth_errors(json!({
                    "200": job_response("The resulting job data. This will be returned in a pending state until the job is completed."),
                    "400": error_response("The request body is invalid."),
                    "402": error_response("You have run out of credits."),
                    "409": error_response("The Idempotency-Key was used with another body."),
                    "413": error_response("The request body is too large."),
                    "429": error_response("You have reached the maximum number of concurrent jobs.")
                }))
            }},
            "/jobs": { "get": {
                "tags": ["General"],
                "summary": "List jobs, newest first",
                "parameters": [
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } },
                    { "name": "cursor", "in": "query", "schema": { "type": "string", "format": "date-time" }, "description": "Jobs created before this time." },
                    { "name": "status", "in": "query", "schema": { "type": "string", "enum": JobStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>() } },
                    { "name": "types", "in": "query", "schema": { "type": "string" }, "description": "Comma-separated job types." }
                ],
                "responses": auth_errors(json!({
                    "200": { "description": "A page of jobs.", "content": { "application/json": { "schema": {
                        "type": "object",
                        "properties": {
                            "items": { "type": "array", "items": { "$ref": "#/components/schemas/Job" } },
                            "next_cursor": { "type": ["string", "null"] },
                            "nextCursor": { "type": ["string", "null"] }
                        },
                        "required": ["items", "next_cursor"]
                    } } } },
                    "400": error_response("Invalid query parameters.")
                }))
            }},
            "/jobs/{id}": {
                "get": {
                    "tags": ["General"], "summary": "Get a job by ID", "parameters": [job_id],
                    "responses": auth_errors(json!({
                        "200": job_response("The job."),
                        "404": error_response("The job was not found or the client is not authorized to see it")
                    }))
                },
                "delete": {
                    "tags": ["General"], "summary": "Cancel a job", "parameters": [job_id],
                    "responses": auth_errors(json!({
                        "200": job_response("The cancelled job."),
                        "404": error_response("The job was not found or the client is not authorized to see it"),
                        "409": error_response("The job has already finished.")
                    }))
                }
            },
            "/jobs/{id}/events": { "get": additive(json!({
                "tags": ["General"], "summary": "Server-Sent Events of a job's changes, ending at its terminal state", "parameters": [job_id],
                "responses": auth_errors(json!({
                    "200": { "description": "`event: job` with the job as `data`, on every change.", "content": { "text/event-stream": {} } },
                    "404": error_response("The job was not found or the client is not authorized to see it")
                }))
            }))},
            "/account": { "get": additive(json!({
                "tags": ["General"], "summary": "Balance, holds, limits, usage and webhook secret",
                "responses": auth_errors(json!({ "200": { "description": "The calling account.", "content": { "application/json": { "schema": { "type": "object" } } } } }))
            }))},
            "/healthz": { "get": additive(json!({ "summary": "Alive", "security": [], "responses": { "200": { "description": "Alive." } } })) },
            "/readyz": { "get": additive(json!({ "summary": "Store reachable", "security": [],
                "responses": { "200": { "description": "Ready." }, "503": { "description": "Not ready." } } })) },
            "/openapi.json": { "get": additive(json!({ "summary": "This document", "security": [], "responses": { "200": { "description": "OpenAPI 3.1." } } })) },
            "/": { "get": additive(json!({ "summary": "The web playground", "security": [],
                "responses": { "200": { "description": "An HTML page that uses this API with the key typed into it.", "content": { "text/html": {} } } } })) }
        },
        "components": {
            "securitySchemes": { "bearerAuth": { "type": "http", "scheme": "bearer", "bearerFormat": "Bearer",
                "description": "`Authorization: Bearer <key-id>:<secret>` (or `Key <key>`)." } },
            "schemas": {
                "Error": { "type": "object", "properties": { "error": { "type": "string" }, "code": { "type": "string", "x-ltx-serve-additive": true } }, "required": ["error"] },
                "Job": job_schema()
            }
        }
    });
    if let Some(paths) = document["paths"].as_object_mut() {
        paths.extend(super::openapi_library::paths());
    }
    if let Some(schemas) = document["components"]["schemas"].as_object_mut() {
        schemas.extend(super::openapi_library::schemas());
    }
    document
}
