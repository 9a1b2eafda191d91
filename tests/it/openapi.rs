//! `GET /openapi.json` keeps the endpoint page's contract: its request schema and its prices.
use crate::helpers::*;
use serde_json::{json, Value};

const ENDPOINT_PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/krea/krea-ltx-2.3-22b-endpoint.md");

async fn document(app: &TestApp) -> Value {
    let response = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200, "the document needs no key");
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_schema_is_the_endpoint_pages() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let op = &doc["paths"]["/generate/video/lightricks/ltx-video-2.3-22b"]["post"];
    let schema = &op["requestBody"]["content"]["application/json"]["schema"];
    // Transcribed from the endpoint page (its nested anyOf of consts for `duration` is this enum).
    let uri_or_null = json!({"type": ["string", "null"], "format": "uri"});
    let page = json!({
        "prompt": {"type": "string", "minLength": 1},
        "start_image": uri_or_null,
        // In Krea's schema of this endpoint (tests/fixtures/krea); the description is ours.
        "start_video": {"type": ["string", "null"], "format": "uri",
            "description": "A clip to continue (an asset URL of yours, an https URL or a data: MP4/MOV/WebM of at most 20 s, 481 frames, sides 64 to 8192 px). The new clip starts on its last frame. Not with `start_image`."},
        "aspect_ratio": {"type": "string", "enum": ["16:9", "9:16"], "default": "16:9"},
        "duration": {"type": "number", "enum": [5, 10, 15, 20], "default": 5},
        "num_frames": {"type": "integer", "minimum": 9, "maximum": 481},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2147483647},
        "generate_audio": {"type": "boolean", "default": true},
        "end_image": uri_or_null,
        // Not on the page, but in Krea's schema of this endpoint (tests/fixtures/krea).
        "has_lora": {"type": "boolean",
            "description": "Optional. Must agree with `styles` (true exactly when `styles` is non-empty: the LoRA price applies); otherwise 400."},
        "styles": {"type": "array", "items": {"type": "object",
            "properties": {"id": {"type": "string"}, "strength": {"type": "number", "minimum": -2, "maximum": 2}},
            "required": ["id", "strength"]}}
    });
    assert_eq!(schema["properties"], page);
    assert_eq!(schema["required"], json!(["prompt"]));
    assert_eq!(schema["additionalProperties"], false);
    let headers: Vec<&str> = op["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(headers.contains(&"X-Webhook-URL"));
    for code in ["200", "400", "401", "402", "429"] {
        assert!(op["responses"][code].is_object(), "response {code} is documented");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_generate_description_carries_the_pages_prices() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let doc = document(&app).await;
    let description =
        doc["paths"]["/generate/video/lightricks/ltx-video-2.3-22b"]["post"]["description"].as_str().unwrap();
    let page = std::fs::read_to_string(ENDPOINT_PAGE).expect("tests/fixtures/krea holds Krea's endpoint page");
    let rows: Vec<(String, String, String)> = page
        .lines()
        .filter(|l| l.starts_with("| No ") || l.starts_with("| Yes "))
        .map(|l| {
            let cells: Vec<String> = l.split('|').map(|c| c.trim().replace('\\', "")).collect();
            (cells[1].clone(), cells[2].clone(), cells[3].clone())
        })
        .collect();
    assert_eq!(rows.len(), 8, "the page lists 8 prices");
    for (lora, duration, price) in rows {
        let ours = description.lines().any(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            cells.len() == 5 && cells[1..4] == [lora.as_str(), duration.as_str(), price.as_str()]
        });
        assert!(ours, "no row `{lora} | {duration} | {price}` in:\n{description}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_is_documented() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let doc = document(&app).await;
    for (path, method) in [
        ("/generate/video/lightricks/ltx-video-2.3-22b", "post"),
        ("/jobs", "get"),
        ("/jobs/{id}", "get"),
        ("/jobs/{id}", "delete"),
        ("/jobs/{id}/events", "get"),
        ("/account", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/openapi.json", "get"),
        ("/assets", "post"),
        ("/assets", "get"),
        ("/assets/{id}", "get"),
        ("/assets/{id}", "delete"),
        ("/styles", "get"),
        ("/styles", "post"),
        ("/styles/{id}", "get"),
        ("/styles/{id}", "patch"),
        ("/styles/{id}", "delete"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is not documented");
    }
    let job = &doc["components"]["schemas"]["Job"];
    assert_eq!(job["required"], json!(["job_id", "status", "created_at", "completed_at", "result"]));
    assert_eq!(job["properties"]["status"]["enum"].as_array().unwrap().len(), 9);
}

const KREA_OPENAPI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/krea/krea-openapi-2026-05.json");

#[tokio::test(flavor = "multi_thread")]
async fn assets_and_styles_have_kreas_shapes() {
    let krea: Value = serde_json::from_str(&std::fs::read_to_string(KREA_OPENAPI).unwrap()).unwrap();
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let doc = document(&app).await;
    let krea_asset = &krea["paths"]["/assets/{id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    let krea_style = &krea["paths"]["/styles/{id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    for (ours, theirs) in [("Asset", krea_asset), ("Style", krea_style)] {
        let schema = &doc["components"]["schemas"][ours];
        assert_eq!(schema["required"], theirs["required"], "{ours} requires what Krea's does");
        for (name, property) in theirs["properties"].as_object().unwrap() {
            if name == "metadata" {
                continue; // untyped in Krea's document; we send none
            }
            assert_eq!(schema["properties"][name]["type"], property["type"], "{ours}.{name}");
        }
    }
    let patch = &krea["paths"]["/styles/{id}"]["patch"]["requestBody"]["content"]["application/json"]["schema"];
    let ours = &doc["paths"]["/styles/{id}"]["patch"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(
        ours["properties"].as_object().unwrap().keys().collect::<Vec<_>>(),
        patch["properties"].as_object().unwrap().keys().collect::<Vec<_>>()
    );
}
