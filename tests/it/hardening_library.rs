//! Hardening of the library and the request edge (issue 21, low findings): a public style shows
//! its owner to the owner only, every response says `nosniff`, an upload must be what its part
//! claims, a blank style title is refused, and a client's request id is kept only when short
//! and plain (neither echoed nor logged otherwise).
use crate::assets::{database, encode, quadrants, upload_form, upload_ok};
use crate::helpers::*;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

fn lora() -> Vec<u8> {
    crate::styles::safetensors(&[
        ("diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight", [4, 4096]),
        ("diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight", [4096, 4]),
    ])
}

async fn new_style(app: &TestApp, key: &str, title: &str) -> reqwest::Response {
    let form =
        Form::new().part("file", Part::bytes(lora()).file_name("style.safetensors")).text("title", title.to_owned());
    upload_form(app, key, "/styles", form).await
}

async fn patch(app: &TestApp, key: &str, id: &str, body: Value) -> reqwest::Response {
    app.client.patch(app.url(&format!("/styles/{id}"))).bearer_auth(key).json(&body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_public_style_shows_its_owner_to_the_owner_only() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let (owner, other) = (app.account("1").await, app.account("1").await);
    let renamed =
        database(&app).execute("UPDATE accounts SET name = 'Ada Quietname' WHERE id = ?1", [owner.id.to_string()]);
    assert_eq!(renamed.unwrap(), 1);
    let response = new_style(&app, &owner.key, "noir").await;
    assert_eq!(response.status(), 200);
    let style: Value = response.json().await.unwrap();
    let id = style["id"].as_str().unwrap().to_owned();
    let shown_to_owner = json!({"id": owner.id.to_string(), "name": "Ada Quietname", "avatar_url": null});
    assert_eq!(style["owner"], shown_to_owner, "the owner still sees itself");
    let response = patch(&app, &owner.key, &id, json!({"public": true})).await;
    assert_eq!(response.status(), 200);
    let public: Value = response.json().await.unwrap();
    assert_eq!(public["owner"], shown_to_owner);

    // Krea's `owner` is nullable (its own styles have none): another account gets `null`, and
    // the account id and name appear nowhere in what it reads.
    let mut seen_by_others = public.clone();
    seen_by_others["owner"] = Value::Null;
    let lists = ["/styles", "/styles?filter=all", "/styles?filter=public", "/styles?filter=community"];
    let lists = lists.iter().map(|p| p.to_string()).chain([format!("/styles?ids={id}")]);
    for path in std::iter::once(format!("/styles/{id}")).chain(lists) {
        let response = app.client.get(app.url(&path)).bearer_auth(&other.key).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let text = response.text().await.unwrap();
        assert!(!text.contains(&owner.id.to_string()) && !text.contains("Quietname"), "{path}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        let items = if path.starts_with("/styles/") { json!([body]) } else { body["items"].clone() };
        assert_eq!(items, json!([seen_by_others]), "{path}");
    }
    for path in [format!("/styles/{id}"), "/styles?filter=user".to_owned()] {
        let (status, body) = app.get(&owner.key, &path).await;
        let mine = if path.starts_with("/styles/") { body } else { body["items"][0].clone() };
        assert_eq!((status, &mine["owner"]), (200, &shown_to_owner), "{path}");
    }
}

fn assert_nosniff(response: &reqwest::Response, what: &str) {
    let value = response.headers().get("x-content-type-options").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(value.as_deref(), Some("nosniff"), "{what} ({})", response.status());
}

/// A real PNG that is also an HTML page to a browser that sniffs.
fn polyglot() -> Vec<u8> {
    let mut bytes = png_bytes(16, 16, [10, 20, 30]);
    bytes.extend_from_slice(b"<html><body><script>alert(document.cookie)</script></body></html>");
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_says_nosniff_and_a_polyglot_is_served_as_the_image_it_is() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let asset = upload_ok(&app, &acct.key, polyglot(), "cat.png").await;
    let served = app.client.get(asset["image_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!((served.status().as_u16(), served.headers()["content-type"].to_str().unwrap()), (200, "image/png"));
    assert_nosniff(&served, "an asset file");
    assert_eq!(served.bytes().await.unwrap().to_vec(), polyglot());

    let done = app.wait_terminal(&acct.key, &job_id(&app.submit_ok(&acct.key, quick("nosniff")).await)).await;
    assert_eq!(done["status"], "completed", "{done}");
    let result = app.client.get(done["result"]["urls"][0].as_str().unwrap()).send().await.unwrap();
    assert_eq!(result.status(), 200);
    assert_nosniff(&result, "a result file");

    let missing_file = format!("/files/assets/{}.png", "0".repeat(32));
    for path in ["/healthz", "/", "/openapi.json", "/account", "/jobs", "/assets", "/no/such/route", &missing_file] {
        let response = app.client.get(app.url(path)).bearer_auth(&acct.key).send().await.unwrap();
        assert_nosniff(&response, path);
    }
    let anonymous = app.client.get(app.url("/jobs")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_nosniff(&anonymous, "a 401");
}

async fn upload_claiming(
    app: &TestApp,
    key: &str,
    bytes: Vec<u8>,
    name: &str,
    mime: Option<&str>,
) -> reqwest::Response {
    let mut part = Part::bytes(bytes).file_name(name.to_owned());
    if let Some(mime) = mime {
        part = part.mime_str(mime).unwrap();
    }
    upload_form(app, key, "/assets", Form::new().part("file", part)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_whose_bytes_are_not_what_it_claims_is_refused_naming_both() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("1").await;
    let png = encode(&quadrants(8, 8, [[200, 0, 0]; 4]), image::ImageFormat::Png);
    let jpeg = encode(&quadrants(8, 8, [[0, 200, 0]; 4]), image::ImageFormat::Jpeg);
    let mut mp4 = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2mp41".to_vec();
    mp4.resize(4096, 0x5a);
    let cases = [
        (png.clone(), "a", Some("image/jpeg"), "declared `image/jpeg` but its bytes are image/png"),
        (polyglot(), "page.png", Some("text/html"), "declared `text/html` but its bytes are image/png"),
        (jpeg.clone(), "photo.png", None, "named `photo.png` (image/png) but its bytes are image/jpeg"),
        (mp4.clone(), "clip.mp4", Some("image/png"), "declared `image/png` but its bytes are video/mp4"),
        (png.clone(), "still.mp4", Some("image/png"), "named `still.mp4` (video/mp4) but its bytes are image/png"),
    ];
    for (bytes, name, mime, needle) in cases {
        let body = assert_error(upload_claiming(&app, &acct.key, bytes, name, mime).await, 400, needle).await;
        assert!(body["error"].as_str().unwrap().starts_with("`file`: "), "{body}");
    }
    assert_eq!(app.get(&acct.key, "/assets").await.1["items"], json!([]), "nothing refused was kept");

    // A claim that agrees, or none at all (the bytes alone decide), is fine.
    let fine = [
        (png.clone(), "a.png", Some("image/png"), "image/png"),
        (png, "upload", Some("application/octet-stream"), "image/png"),
        (jpeg, "photo.JPEG", Some("image/jpeg"), "image/jpeg"),
        (mp4, "clip", None, "video/mp4"),
    ];
    for (bytes, name, mime, is) in fine {
        let response = upload_claiming(&app, &acct.key, bytes, name, mime).await;
        let status = response.status();
        let asset: Value = response.json().await.unwrap();
        assert_eq!((status.as_u16(), asset["mime_type"].as_str()), (200, Some(is)), "{name}: {asset}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blank_style_title_is_refused_at_creation_and_by_patch() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("1").await;
    assert_error(new_style(&app, &acct.key, " \t ").await, 400, "`title`").await;
    let response = new_style(&app, &acct.key, "noir").await;
    assert_eq!(response.status(), 200);
    let style: Value = response.json().await.unwrap();
    let id = style["id"].as_str().unwrap();
    for blank in ["", "   ", "\n\t"] {
        assert_error(patch(&app, &acct.key, id, json!({"title": blank})).await, 400, "`title` must not be empty").await;
    }
    assert_eq!(app.get(&acct.key, &format!("/styles/{id}")).await, (200, style.clone()), "unchanged");
    let renamed: Value = patch(&app, &acct.key, id, json!({"title": "film noir"})).await.json().await.unwrap();
    assert_eq!(renamed["title"], "film noir");
}

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_or_odd_request_id_is_replaced_and_a_plain_one_kept() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let send = |id: String| app.client.get(app.url("/healthz")).header("x-request-id", id).send();
    for kept in ["trace-me-42".to_owned(), "0af7651916cd43dd8448eb211c80319c:b7ad6b71.1_x".to_owned(), "k".repeat(128)]
    {
        assert_eq!(request_id(&send(kept.clone()).await.unwrap()), kept);
    }
    for replaced in
        ["a".repeat(50_000), "k".repeat(129), "<script>alert(1)</script>".to_owned(), "two words".to_owned()]
    {
        let response = send(replaced.clone()).await.unwrap();
        assert_eq!(response.status(), 200);
        let id = request_id(&response);
        let (prefix, n) = id.split_once('-').expect("a generated prefix-counter id");
        assert!(prefix.len() == 12 && u64::from_str_radix(n, 16).is_ok(), "{} chars sent, got {id}", replaced.len());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_request_id_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.txt");
    let mut server = crate::cli::start_server_logging_to(&dir.path().join("data"), &log, &["--log-format", "json"]);
    let key = server.printed_key();
    let huge = "Z".repeat(50_000);
    let response = reqwest::Client::new()
        .get(format!("{}/account", server.base))
        .bearer_auth(&key)
        .header("x-request-id", &huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let given = request_id(&response);
    assert!(given.len() < 100, "{given}");
    assert!(crate::cli::sigterm(&mut server).success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(&huge[..64]), "the client's id is not in the log");
    let logged: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["path"] == "/account")
        .collect();
    assert!(!logged.is_empty(), "{text}");
    for line in logged {
        assert_eq!(line["span"]["request_id"], given.as_str(), "the log names the id the client was given: {line}");
    }
}
