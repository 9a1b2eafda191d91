//! `POST /prompts/enhance`: the engine's rewrite of a prompt, strict about its body, billed at
//! `--prompt-enhance-price-usd`, and a 503 with a stable code on a replica without an engine.
use crate::helpers::*;
use ltx_serve::domain::money::MicroUsd;
use ltx_serve::store::LedgerKind;
use serde_json::{json, Value};

const ENHANCE: &str = "/prompts/enhance";

async fn enhance(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url(ENHANCE)).bearer_auth(key).json(&body).send().await.unwrap()
}

async fn enhanced(app: &TestApp, key: &str, body: Value) -> String {
    let response = enhance(app, key, body.clone()).await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body} answered {answer}");
    assert_eq!(answer.as_object().map(|o| o.len()), Some(1), "only `prompt`: {answer}");
    answer["prompt"].as_str().expect("a `prompt` string").to_owned()
}

#[tokio::test]
async fn the_preview_engine_keeps_the_prompt_and_adds_a_marked_sentence_for_free() {
    let app = TestApp::start().await;
    let account = app.account("1").await;
    let prompt = "a lighthouse at dusk, waves breaking";
    let first = enhanced(&app, &account.key, json!({ "prompt": prompt })).await;
    assert!(first.starts_with(&format!("{prompt}\n\n[preview enhancement] ")), "{first}");
    assert_eq!(first, enhanced(&app, &account.key, json!({ "prompt": prompt })).await, "deterministic");
    let with_image =
        enhanced(&app, &account.key, json!({ "prompt": prompt, "image": png_data_uri(32, 32, [10, 200, 30]) })).await;
    assert!(with_image.contains("from the given first frame"), "{with_image}");
    let free = app.store.account(account.id).await.unwrap();
    assert_eq!(free.balance, MicroUsd::parse_usd("1").unwrap(), "free by default");
    assert!(app
        .store
        .ledger(account.id, 10)
        .await
        .unwrap()
        .iter()
        .all(|e| e.kind == LedgerKind::Credit && e.amount.0 > 0));
}

#[tokio::test]
async fn a_priced_enhancement_is_charged_once_and_refused_with_402_when_the_balance_is_short() {
    let app = TestApp::start_with(|c| c.prompt_enhance_price = MicroUsd::parse_usd("0.01").unwrap()).await;
    let account = app.account("0.015").await;
    enhanced(&app, &account.key, json!({ "prompt": "a fox" })).await;
    let after = app.store.account(account.id).await.unwrap();
    assert_eq!(after.balance, MicroUsd::parse_usd("0.005").unwrap());
    let ledger = app.store.ledger(account.id, 10).await.unwrap();
    let charges: Vec<_> = ledger.iter().filter(|e| e.amount.0 < 0).collect();
    assert_eq!(charges.len(), 1, "{ledger:?}");
    assert_eq!(charges[0].note.as_deref(), Some("prompt enhancement"));
    let short = assert_error(enhance(&app, &account.key, json!({ "prompt": "a fox" })).await, 402, "$0.01").await;
    assert_eq!(short["code"], "insufficient_credits");
    assert_eq!(app.store.account(account.id).await.unwrap().balance, after.balance, "nothing charged");
    // A refused body is not charged either.
    let rich = app.account("1").await;
    assert_error(enhance(&app, &rich.key, json!({ "prompt": "" })).await, 400, "`prompt`").await;
    assert_eq!(app.store.account(rich.id).await.unwrap().balance, MicroUsd::parse_usd("1").unwrap());
}

#[tokio::test]
async fn bad_bodies_are_400s_naming_the_field() {
    let app = TestApp::start().await;
    let account = app.account("1").await;
    let key = &account.key;
    assert_error(enhance(&app, key, json!({ "prompt": "x", "seed": 3 })).await, 400, "Unknown field `seed`").await;
    assert_error(enhance(&app, key, json!({})).await, 400, "`prompt` is required").await;
    assert_error(enhance(&app, key, json!({ "prompt": 5 })).await, 400, "`prompt` must be a string").await;
    assert_error(enhance(&app, key, json!({ "prompt": "x", "image": 5 })).await, 400, "`image` must be").await;
    assert_error(
        enhance(&app, key, json!({ "prompt": "x", "image": "data:image/png;base64,AAAA" })).await,
        400,
        "`image`",
    )
    .await;
    assert_error(
        enhance(&app, key, json!({ "prompt": "x", "image": "data:text/plain;base64,AAAA" })).await,
        400,
        "`image`",
    )
    .await;
    let other_site = json!({ "prompt": "x", "image": "http://127.0.0.1:9/a.png" });
    assert_error(enhance(&app, key, other_site).await, 400, "`image`").await;
    let not_ours = json!({ "prompt": "x", "image": app.url("/files/assets/0123456789abcdef0123456789abcdef.png") });
    assert_error(enhance(&app, key, not_ours).await, 400, "`image`: no asset").await;
    let text = app.client.post(app.url(ENHANCE)).bearer_auth(key).body("{\"prompt\":\"x\"}").send().await.unwrap();
    assert_eq!(text.status(), 400, "no JSON content type");
    let repeated = app
        .client
        .post(app.url(ENHANCE))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(r#"{"prompt":"a","prompt":"b"}"#)
        .send()
        .await
        .unwrap();
    assert_error(repeated, 400, "prompt").await;
    let anonymous = app.client.post(app.url(ENHANCE)).json(&json!({ "prompt": "x" })).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn an_asset_of_the_callers_can_be_the_image() {
    let app = TestApp::start().await;
    let account = app.account("1").await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(png_bytes(16, 16, [200, 0, 0]))
            .file_name("a.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let response = app.client.post(app.url("/assets")).bearer_auth(&account.key).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let asset: Value = response.json().await.unwrap();
    let url = asset["image_url"].as_str().or(asset["url"].as_str()).expect("an asset URL").to_owned();
    let prompt = enhanced(&app, &account.key, json!({ "prompt": "a red square", "image": url })).await;
    assert!(prompt.contains("from the given first frame"), "{prompt}");
    let stranger = app.account("1").await;
    let refused = enhance(&app, &stranger.key, json!({ "prompt": "a red square", "image": url })).await;
    assert_error(refused, 400, "no asset at this URL").await;
}

#[tokio::test]
async fn a_replica_without_in_process_workers_answers_503_enhance_unavailable() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let account = app.account("1").await;
    let refused = assert_error(enhance(&app, &account.key, json!({ "prompt": "x" })).await, 503, "--workers 0").await;
    assert_eq!(refused["code"], "enhance_unavailable");
}

#[tokio::test]
async fn a_job_asking_for_enhancement_keeps_its_prompt_and_shows_the_one_the_engine_used() {
    let app = TestApp::start().await;
    let account = app.account("5").await;
    let image = png_data_uri(16, 16, [0, 90, 200]);
    let body = json!({
        "prompt": "a boat crossing a bay",
        "num_frames": 25,
        "keyframes": [{"image": image, "frame": 0}, {"image": image, "frame": 24}],
        "enhance_prompt": true,
    });
    let url = app.url(&format!("{GENERATE}/keyframes"));
    let response = app.client.post(url).bearer_auth(&account.key).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let job: Value = response.json().await.unwrap();
    let done = app.wait_terminal(&account.key, &job_id(&job)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request"]["prompt"], "a boat crossing a bay", "the job keeps the prompt it was sent");
    let used = done["result"]["enhanced_prompt"].as_str().unwrap_or_else(|| panic!("no enhanced prompt: {done}"));
    assert_eq!(used, enhanced(&app, &account.key, json!({ "prompt": "a boat crossing a bay" })).await);
}

#[tokio::test]
async fn the_openapi_document_describes_the_endpoint_as_additive_with_its_price() {
    let app = TestApp::start_with(|c| c.prompt_enhance_price = MicroUsd::parse_usd("0.002").unwrap()).await;
    let document: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let operation = &document["paths"][ENHANCE]["post"];
    assert_eq!(operation["x-ltx-serve-additive"], true, "{operation}");
    assert_eq!(operation["x-ltx-serve-price-usd"], 0.002);
    assert_eq!(operation["requestBody"]["content"]["application/json"]["schema"]["additionalProperties"], false);
    assert!(operation["responses"]["503"].is_object());
}
