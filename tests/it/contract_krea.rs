//! Contract fuzzing against KREA's document: schemathesis generates requests from Krea's own
//! published OpenAPI document (tests/fixtures/krea/krea-openapi-2026-05.json), cut down to the
//! operations both APIs have, and checks every answer of a live server against it — so a Krea
//! client's expectations, not only our own `/openapi.json`, are what is tested. The differences
//! we keep on purpose are amended in the copy below (statuses) or listed in
//! tests/contract/krea.toml (rules), each with its reason; anything else fails the test.
use crate::assets::upload_ok;
use crate::helpers::*;
use crate::styles::safetensors;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

const KREA_DOCUMENT: &str = include_str!("../fixtures/krea/krea-openapi-2026-05.json");

/// The operations of Krea's API that we implement; the rest of Krea's 67 paths are left out.
const SHARED_OPERATIONS: &[(&str, &[&str])] = &[
    (GENERATE, &["post"]),
    ("/jobs", &["get"]),
    ("/jobs/{id}", &["get", "delete"]),
    ("/assets", &["post", "get"]),
    ("/assets/{id}", &["get", "delete"]),
    ("/styles", &["get"]),
    ("/styles/{id}", &["get", "patch"]),
];

/// Statuses we answer that Krea's document leaves out of an operation: `(method, path, status, why)`.
const STATUSES_KREA_OMITS: &[(&str, &str, &str, &str)] = &[
    ("get", "/jobs/{id}", "401", "no or a wrong key: every operation needs one, and Krea lists 401 on its others"),
    ("delete", "/jobs/{id}", "401", "no or a wrong key: every operation needs one, and Krea lists 401 on its others"),
    ("delete", "/jobs/{id}", "409", "cancelling a job that has already ended: it stays as it ended"),
    ("post", GENERATE, "409", "an Idempotency-Key (our addition) reused with another body"),
    ("post", GENERATE, "413", "a body over the size limit (a `data:` URI image too large)"),
    ("post", "/assets", "413", "a file over 75,000,000 bytes: Krea states the limit (75MB), not its status"),
    ("get", "/assets", "400", "an invalid `limit` or `cursor`: Krea lists 400 for the same parameters of /jobs"),
];

/// Job fields Krea's document types as always present strings/objects, though Krea's own, newer
/// endpoint page (tests/fixtures/krea/krea-ltx-2.3-22b-endpoint.md, which wins where they
/// differ) answers `"completed_at": null, "result": null` for an unfinished job — as we do.
const NULL_UNTIL_FINISHED: &[&str] = &["completed_at", "result"];
const JOB_SCHEMAS: &[&str] = &[
    "/paths/~1jobs/get/responses/200/content/application~1json/schema/properties/items/items",
    "/paths/~1jobs~1{id}/get/responses/200/content/application~1json/schema",
];

/// Krea's document with only `SHARED_OPERATIONS`, served by `base`, with the amendments above.
fn krea_document_for(base: &str) -> Value {
    let mut document: Value = serde_json::from_str(KREA_DOCUMENT).expect("Krea's document is JSON");
    let mut paths = serde_json::Map::new();
    for (path, methods) in SHARED_OPERATIONS {
        let mut operations = serde_json::Map::new();
        for method in *methods {
            let operation = &document["paths"][path][method];
            assert!(operation.is_object(), "Krea's document has no {method} {path}");
            operations.insert(method.to_string(), operation.clone());
        }
        paths.insert(path.to_string(), Value::Object(operations));
    }
    document["paths"] = Value::Object(paths);
    document["servers"] = json!([{ "url": base }]);
    for (method, path, status, why) in STATUSES_KREA_OMITS {
        let responses = &mut document["paths"][path][method]["responses"];
        assert!(responses.get(status).is_none(), "Krea's document now lists {status} for {method} {path}");
        responses[status] = json!({
            "description": format!("Not in Krea's document: {why}"),
            "content": { "application/json": { "schema": {
                "type": "object", "properties": { "error": { "type": "string" } }, "required": ["error"]
            } } }
        });
    }
    for schema in JOB_SCHEMAS {
        for field in NULL_UNTIL_FINISHED {
            let property = document
                .pointer_mut(&format!("{schema}/properties/{field}"))
                .unwrap_or_else(|| panic!("Krea's job schema at {schema} has no {field}"));
            let krea_type = property["type"].take();
            property["type"] = json!([krea_type, "null"]);
        }
    }
    document
}

/// A LoRA the server accepts for LTX-2.3 (zero-filled, rank 4).
fn lora() -> Vec<u8> {
    safetensors(&[
        ("diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight", [4, 4096]),
        ("diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight", [4096, 4]),
    ])
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the test tools venv: LTX_TEST_PYTHON (scripts/test makes it)"]
async fn schemathesis_with_kreas_document_finds_no_violation_but_the_listed_differences() {
    let app = TestApp::start_with(|c| c.allow_private_urls = false).await;
    let acct = app.account("5000").await;
    // A style and an asset of the caller's, so `GET`/`PATCH /styles/{id}` and `GET /assets/{id}`
    // answer 200s whose bodies are checked against Krea's objects (see krea.toml).
    let form = Form::new().part("file", Part::bytes(lora()).file_name("style.safetensors")).text("title", "noir");
    let style = app.client.post(app.url("/styles")).bearer_auth(&acct.key).multipart(form).send().await.unwrap();
    assert_eq!(style.status(), 200);
    let style: Value = style.json().await.unwrap();
    let asset = upload_ok(&app, &acct.key, png_bytes(64, 36, [200, 40, 40]), "frame.png").await;

    let work = tempfile::tempdir().unwrap();
    let document = work.path().join("krea-shared-operations.json");
    std::fs::write(&document, serde_json::to_vec_pretty(&krea_document_for(&app.base)).unwrap()).unwrap();
    let mut command = crate::contract::schemathesis();
    command
        // schemathesis keeps its example database and reports in the working dir: the temp dir.
        .current_dir(work.path())
        .env("LTX_CONTRACT_STYLE_ID", style["id"].as_str().unwrap())
        .env("LTX_CONTRACT_ASSET_ID", asset["id"].as_str().unwrap())
        .args(["--no-color", "--config-file", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contract/krea.toml")])
        .arg("run")
        .arg(&document)
        .args(["--url", &app.base, "--max-examples", "12", "--seed", "1"])
        .args(["--header", &format!("Authorization: Bearer {}", acct.key)]);
    crate::contract::passes(command, "violations of Krea's document").await;
}

/// Found by schemathesis with Krea's document: `PATCH /styles/{id}` took a null `title`, `urls`
/// or `cover_url` as "unchanged", though only `public` is nullable in Krea's schema and ours.
#[tokio::test(flavor = "multi_thread")]
async fn a_style_patch_refuses_null_for_fields_that_are_not_nullable() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("1").await;
    let form = Form::new().part("file", Part::bytes(lora()).file_name("style.safetensors")).text("title", "noir");
    let style = app.client.post(app.url("/styles")).bearer_auth(&acct.key).multipart(form).send().await.unwrap();
    let style: Value = style.json().await.unwrap();
    let path = format!("/styles/{}", style["id"].as_str().unwrap());
    for (field, named) in [("title", "`title`"), ("urls", "`urls`"), ("cover_url", "`cover_url`")] {
        let response =
            app.client.patch(app.url(&path)).bearer_auth(&acct.key).json(&json!({ field: null })).send().await.unwrap();
        assert_error(response, 400, named).await;
    }
    let response =
        app.client.patch(app.url(&path)).bearer_auth(&acct.key).json(&json!({ "public": null })).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), app.get(&acct.key, &path).await.1);
    assert_eq!(app.get(&acct.key, &path).await.1["title"], "noir");
}
