//! Every way a submit can be refused, each with Krea's `{error}` body naming the problem.
use crate::helpers::*;
use serde_json::{json, Value};

async fn raw(
    app: &TestApp,
    key: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = app.client.post(app.url(GENERATE)).bearer_auth(key).body(body);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_are_400_with_a_sentence() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    assert_error(raw(&app, &acct.key, Some("application/json"), "{\"prompt\": ").await, 400, "not valid JSON").await;
    assert_error(
        raw(&app, &acct.key, Some("text/plain"), "{\"prompt\": \"x\"}").await,
        400,
        "Content-Type: application/json",
    )
    .await;
    assert_error(raw(&app, &acct.key, None, "{\"prompt\": \"x\"}").await, 400, "got none").await;
    assert_error(raw(&app, &acct.key, Some("application/json"), "[1, 2]").await, 400, "must be a JSON object").await;
    // A charset parameter is fine.
    let ok = raw(&app, &acct.key, Some("application/json; charset=utf-8"), "{\"prompt\": \"x\"}").await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_10_mb_body_is_refused_with_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    // Declared 10 MB: refused from the headers alone, before any of the body is sent.
    let mut conn = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST {GENERATE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        acct.key,
        10 * 1024 * 1024
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut response = vec![0u8; 4096];
    let n = conn.read(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response[..n]).into_owned();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("\"code\":\"payload_too_large\""), "{response}");

    // Sent without a length (chunked): cut off at the limit while reading.
    let chunks = futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024 * 1024])));
    let response = app
        .client
        .post(app.url(GENERATE))
        .bearer_auth(&acct.key)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    // The server may close the connection before the client finishes sending; if an answer
    // arrives, it is the 413.
    if let Ok(response) = response {
        assert_error(response, 413, "larger than").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_field_rule_names_its_field() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "`prompt` is required"),
        (json!({"prompt": ""}), "`prompt` must be at least 1 character"),
        (json!({"prompt": "x", "start_audio": "https://example.com/a.wav"}), "Unknown field `start_audio`"),
        (json!({"prompt": "x", "start_video": "data:image/gif;base64,R0lGODlh"}), "`start_video` must be an MP4"),
        (json!({"prompt": "x", "start_video": "file:///etc/passwd"}), "`start_video` must use http, https or data"),
        (json!({"prompt": "x", "has_lora": true}), "`has_lora` is true but `styles` is empty"),
        (json!({"prompt": "x", "has_lora": "yes"}), "`has_lora` must be true or false"),
        (json!({"prompt": "x", "hasLora": true}), "`hasLora` is no longer accepted"),
        (json!({"prompt": "x", "aspect_ratio": "1:1"}), "`aspect_ratio`"),
        (json!({"prompt": "x", "duration": 7}), "`duration` must be one of 5, 10, 15 or 20"),
        (json!({"prompt": "x", "num_frames": 8}), "`num_frames` must be an integer from 9 to 481 (got 8)"),
        (json!({"prompt": "x", "num_frames": 482}), "(got 482)"),
        (json!({"prompt": "x", "seed": 2147483648u64}), "`seed`"),
        (json!({"prompt": "x", "seed": -1}), "`seed`"),
        (json!({"prompt": "x", "generate_audio": "yes"}), "`generate_audio`"),
        (json!({"prompt": "x", "styles": [{"id": "s", "strength": -2.0001}]}), "`styles[0].strength`"),
        (json!({"prompt": "x", "styles": [{"id": "nope", "strength": 1}]}), "no style `nope` is available"),
        (json!({"prompt": "x", "start_image": "data:image/gif;base64,R0lGODlh"}), "JPEG, PNG or WebP"),
        (json!({"prompt": "x", "end_image": "http://169.254.169.254/latest/meta-data"}), "private or reserved address"),
        (json!({"prompt": "x", "end_image": "file:///etc/passwd"}), "`end_image` must use http, https or data"),
    ];
    for (body, needle) in cases {
        let response = app.submit(&acct.key, body.clone()).await;
        let got = assert_error(response, 400, needle).await;
        assert!(got["code"].is_string(), "{got}");
    }
    // Nothing refused was charged or created.
    let (_, jobs) = app.get(&acct.key, "/jobs").await;
    assert_eq!(jobs["items"].as_array().unwrap().len(), 0);
    assert_eq!(app.account_view(&acct.key).await["held_usd"], "0.00");
}

#[tokio::test(flavor = "multi_thread")]
async fn boundaries_that_are_accepted() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("10").await;
    for (body, frames, price) in [
        (json!({"prompt": "x", "num_frames": 9, "seed": 0}), 9, "0.1798"),
        (json!({"prompt": "x", "num_frames": 481, "seed": 2147483647}), 481, "0.7126"),
        (json!({"prompt": "x", "duration": 10}), 241, "0.3579"),
        (json!({"prompt": "x", "duration": 20, "num_frames": 129}), 129, "0.3579"),
    ] {
        let job = app.submit_ok(&acct.key, body).await;
        assert_eq!(job["request"]["num_frames"], frames, "{job}");
        assert_eq!(job["price_usd"], price, "{job}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deprecated_aliases_after_their_sunset_are_refused() {
    // The default sunset (2026-06-19) has passed.
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    let response = app.submit(&acct.key, json!({"prompt": "x", "aspectRatio": "9:16"})).await;
    assert_error(response, 400, "use `aspect_ratio` instead").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deprecated_aliases_in_their_grace_period_work_with_deprecation_headers() {
    let app = TestApp::start_with(|c| {
        c.workers = 0;
        c.aliases_accepted_until = time::macros::date!(2099 - 12 - 31);
    })
    .await;
    let acct = app.account("5").await;
    let response = app
        .submit(&acct.key, json!({"prompt": "x", "aspectRatio": "9:16", "generateAudio": false, "num_frames": 9}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["deprecation"], "true");
    assert_eq!(response.headers()["sunset"], "Fri, 01 Jan 2100 00:00:00 GMT");
    assert!(response.headers()["link"].to_str().unwrap().contains("rel=\"deprecation\""));
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["request"]["aspect_ratio"], "9:16");
    assert_eq!(job["request"]["generate_audio"], false);
    assert_eq!((job["width"].as_u64(), job["height"].as_u64()), (Some(720), Some(1280)));

    let plain = app.submit(&acct.key, quick("no aliases")).await;
    assert!(plain.headers().get("deprecation").is_none());
    let both = app.submit(&acct.key, json!({"prompt": "x", "aspectRatio": "9:16", "aspect_ratio": "9:16"})).await;
    assert_error(both, 400, "send only `aspect_ratio`").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_webhook_urls_are_refused() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    for url in [
        "ftp://example.com/hook".to_owned(),
        "not a url".to_owned(),
        format!("https://example.com/{}", "a".repeat(2048)),
    ] {
        let response = app
            .client
            .post(app.url(GENERATE))
            .bearer_auth(&acct.key)
            .header("x-webhook-url", url)
            .json(&quick("x"))
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "X-Webhook-URL").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn has_lora_that_agrees_with_styles_is_accepted_at_the_matching_price() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    let response = app.submit(&acct.key, json!({"prompt": "x", "has_lora": false, "duration": 5})).await;
    assert_eq!(response.status(), 200);
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["price_usd"], "0.1798", "the price without LoRA: {job}");
    // With styles the LoRA column applies; `has_lora: false` beside them is refused, uncharged.
    let styled = json!({"prompt": "x", "has_lora": false, "styles": [{"id": "nope", "strength": 1}]});
    assert_error(app.submit(&acct.key, styled).await, 400, "`has_lora` is false but `styles` holds 1").await;
    assert_eq!(app.account_view(&acct.key).await["held_usd"], "0.1798", "only the accepted job holds credit");
}
