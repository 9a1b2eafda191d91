//! The security matrix: every authenticated endpoint × {no key, a revoked key, another
//! account's key} gives its documented status and never shows one account's data to another;
//! and keys never reach the logs.
use crate::assets::{encode, quadrants, upload_ok};
use crate::helpers::*;
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

struct Owned {
    job: String,
    asset: String,
    asset_url: String,
    style: String,
    account: String,
}

fn lora() -> Vec<u8> {
    crate::styles::safetensors(&[
        ("diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight", [2, 4096]),
        ("diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight", [4096, 2]),
    ])
}

async fn call(app: &TestApp, key: Option<&str>, method: Method, path: &str, body: Option<Value>) -> (u16, String) {
    let mut request = app.client.request(method, app.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.timeout(Duration::from_secs(10)).send().await.unwrap();
    let status = response.status().as_u16();
    // An event stream of a job never ends by itself; its first bytes are enough here.
    let text = if response.headers().get("content-type").is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"))
    {
        String::new()
    } else {
        response.text().await.unwrap_or_default()
    };
    (status, text)
}

async fn upload(app: &TestApp, key: Option<&str>, path: &str, form: Form) -> (u16, String) {
    let mut request = app.client.post(app.url(path)).multipart(form);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_refuses_strangers_and_shows_nothing_of_another_account() {
    let app = TestApp::start_with(|c| {
        c.workers = 0;
        c.key_cache_ttl = Duration::ZERO;
    })
    .await;
    let owner = app.account("5").await;
    let stranger = app.account("5").await;
    let revoked = ltx_serve::admin::create_key(&*app.store, owner.id, None).await.unwrap();
    let revoked_key = revoked["api_key"].as_str().unwrap().to_owned();
    ltx_serve::admin::revoke_key(&*app.store, revoked["key_id"].as_str().unwrap().parse().unwrap()).await.unwrap();

    let asset =
        upload_ok(&app, &owner.key, encode(&quadrants(8, 8, [[1, 2, 3]; 4]), image::ImageFormat::Png), "a.png").await;
    let form = Form::new().part("file", Part::bytes(lora()).file_name("s.safetensors")).text("title", "mine");
    let (status, style) = upload(&app, Some(&owner.key), "/styles", form).await;
    assert_eq!(status, 200, "{style}");
    let style: Value = serde_json::from_str(&style).unwrap();
    let job = app.submit_ok(&owner.key, quick("private")).await;
    let owned = Owned {
        job: job_id(&job),
        asset: asset["id"].as_str().unwrap().into(),
        asset_url: asset["image_url"].as_str().unwrap().into(),
        style: style["id"].as_str().unwrap().into(),
        account: owner.id.to_string(),
    };

    // (method, path, body, the status another account gets)
    let endpoints: Vec<(Method, String, Option<Value>, u16)> = vec![
        (Method::GET, "/jobs".into(), None, 200),
        (Method::GET, format!("/jobs/{}", owned.job), None, 404),
        (Method::GET, format!("/jobs/{}/events", owned.job), None, 404),
        (Method::DELETE, format!("/jobs/{}", owned.job), None, 404),
        (Method::GET, "/account".into(), None, 200),
        (Method::GET, "/assets".into(), None, 200),
        (Method::GET, format!("/assets/{}", owned.asset), None, 404),
        (Method::DELETE, format!("/assets/{}", owned.asset), None, 404),
        (Method::GET, "/styles".into(), None, 200),
        (Method::GET, format!("/styles?ids={}", owned.style), None, 200),
        (Method::GET, format!("/styles/{}", owned.style), None, 404),
        (Method::PATCH, format!("/styles/{}", owned.style), Some(json!({"public": true})), 404),
        (Method::DELETE, format!("/styles/{}", owned.style), None, 404),
        (Method::POST, GENERATE.into(), Some(json!({"prompt": "x", "start_image": owned.asset_url})), 400),
        (
            Method::POST,
            GENERATE.into(),
            Some(json!({"prompt": "x", "styles": [{"id": owned.style, "strength": 1}]})),
            400,
        ),
    ];
    for (method, path, body, theirs) in &endpoints {
        for (who, key) in [("no key", None), ("a revoked key", Some(revoked_key.as_str()))] {
            let (status, text) = call(&app, key, method.clone(), path, body.clone()).await;
            assert_eq!(status, 401, "{method} {path} with {who}: {text}");
        }
        let (status, text) = call(&app, Some(&stranger.key), method.clone(), path, body.clone()).await;
        assert_eq!(status, *theirs, "{method} {path} with another account's key: {text}");
        let asked = format!("{path} {}", body.as_ref().map(Value::to_string).unwrap_or_default());
        // What the stranger sent may be echoed in an error; nothing else of the owner's may appear.
        for secret in [&owned.job, &owned.asset, &owned.style, &owned.account, &owned.asset_url] {
            if asked.contains(secret.as_str()) && status >= 400 {
                continue;
            }
            assert!(!text.contains(secret.as_str()), "{method} {path} showed another account's {secret}: {text}");
        }
    }
    for path in ["/assets", "/styles"] {
        for (who, key) in [("no key", None), ("a revoked key", Some(revoked_key.as_str()))] {
            let form = Form::new().part("file", Part::bytes(vec![1, 2, 3])).text("title", "x");
            assert_eq!(upload(&app, key, path, form).await.0, 401, "POST {path} with {who}");
        }
    }
    // The owner still has everything, untouched by the attempts.
    assert_eq!(app.job(&owner.key, &owned.job).await["status"], "queued");
    assert_eq!(app.get(&owner.key, &format!("/assets/{}", owned.asset)).await.0, 200);
    let (_, style) = app.get(&owner.key, &format!("/styles/{}", owned.style)).await;
    assert_eq!(style["public"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_tokens_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ltx-serve"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut printed = String::new();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let base = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.strip_prefix("ltx-serve listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let key = printed.split("export LTX_SERVE_API_KEY='").nth(1).unwrap().split('\'').next().unwrap().to_owned();
    let secret = key.split_once(':').unwrap().1.to_owned();
    let client = reqwest::Client::new();
    let submit = client
        .post(format!("{base}{GENERATE}"))
        .bearer_auth(&key)
        .json(&json!({"prompt": "logged?", "num_frames": 9}))
        .send()
        .await
        .unwrap();
    assert_eq!(submit.status(), 200);
    let wrong = format!("{}:{}", key.split_once(':').unwrap().0, "not-the-secret-at-all");
    for presented in [key.as_str(), wrong.as_str(), "garbage"] {
        let _ = client.get(format!("{base}/account")).bearer_auth(presented).send().await.unwrap();
        let _ = client
            .get(format!("{base}/jobs?cursor=bad"))
            .header("Authorization", format!("Key {presented}"))
            .send()
            .await;
    }
    let worker = client.get(format!("{base}/internal/v1/hello")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(worker.status(), 401, "an API key is not a worker token");
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.lines().filter(|l| l.contains("\"request\"")).count() >= 8, "every request was logged: {logged}");
    let leaks: Vec<&str> = logged.lines().filter(|l| l.contains(&secret)).collect();
    assert!(leaks.is_empty(), "an API key's secret is in the log: {leaks:?}");
    assert!(!logged.contains("not-the-secret-at-all"), "a presented (wrong) secret is in the log");
}
