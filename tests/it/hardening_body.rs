//! What an adversarial probe sent in request bodies (issue 21): prompts of megabytes, repeated
//! and unknown keys, bodies labelled gzip that are not, and `data:` URIs the body limit could not
//! hold. Each is refused with a `{error, code}` that names the problem.
use crate::assets::upload;
use crate::helpers::*;
use serde_json::{json, Value};

async fn post_raw(app: &TestApp, key: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).bearer_auth(key).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("an answer, not a reset")
}

const JSON: (&str, &str) = ("content-type", "application/json");

/// A `data:` PNG URI of `decoded` zero bytes (its content is only checked when the job runs).
fn data_png(decoded: usize) -> String {
    assert_eq!(decoded % 3, 0);
    format!("data:image/png;base64,{}", "A".repeat(decoded / 3 * 4))
}

#[tokio::test(flavor = "multi_thread")]
async fn prompts_are_bounded_and_must_say_something() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("50").await;
    let long = "x".repeat(1024 * 1024);
    assert_error(app.submit(&acct.key, quick(&long)).await, 400, "`prompt` may be at most 20000 characters").await;
    let over = "é".repeat(20_001);
    assert_error(app.submit(&acct.key, quick(&over)).await, 400, "(got 20001)").await;
    for blank in [" ", "\n\t  \r\n", "\u{3000}\u{a0}"] {
        assert_error(app.submit(&acct.key, quick(blank)).await, 400, "`prompt` must describe the clip").await;
    }
    assert_error(app.submit(&acct.key, quick("a\u{0}b")).await, 400, "`prompt` may not hold control characters").await;
    // The bound is characters, not bytes: 20,000 two-byte characters are accepted.
    let job = app.submit_ok(&acct.key, quick(&"é".repeat(20_000))).await;
    assert_eq!(job["request"]["prompt"].as_str().unwrap().chars().count(), 20_000);

    // A URL (not a data: URI) is bounded too, so each job in `GET /jobs` stays small.
    let url = format!("https://example.com/{}.png", "a".repeat(8200));
    let body = json!({"prompt": "x", "num_frames": 9, "end_image": url});
    assert_error(app.submit(&acct.key, body).await, 400, "`end_image` may be at most 8192 characters").await;
    let (status, page) = app.get(&acct.key, "/jobs?limit=1001").await;
    assert_eq!((status, page["error"].as_str().unwrap()), (400, "`limit` must be an integer from 1 to 1000."));
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_keys_and_unknown_style_keys_are_refused_by_name() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    let cases: [(&str, &str); 3] = [
        (r#"{"prompt": "a cat", "num_frames": 9, "prompt": "a dog"}"#, "duplicate key `prompt`"),
        (r#"{"prompt": "x", "styles": [{"id": "a", "strength": 1, "id": "b"}]}"#, "duplicate key `styles[0].id`"),
        (r#"{"prompt": "x", "styles": [{"id": "s", "strength": 1, "weight": 2}]}"#, "Unknown field `styles[0].weight`"),
    ];
    for (body, needle) in cases {
        let response = post_raw(&app, &acct.key, GENERATE, &[JSON], body.into()).await;
        let error = assert_error(response, 400, needle).await;
        assert_eq!(error["code"], "invalid_request", "{body}");
    }
    // Every JSON body goes through the same parser: a style's PATCH too, before the style is looked up.
    let patch = app
        .client
        .patch(app.url(&format!("/styles/{}", uuid::Uuid::new_v4())))
        .bearer_auth(&acct.key)
        .header("content-type", "application/json")
        .body(r#"{"title": "a", "title": "b"}"#)
        .send()
        .await
        .unwrap();
    assert_error(patch, 400, "duplicate key `title`").await;
    let (status, jobs) = app.get(&acct.key, "/jobs").await;
    assert_eq!((status, jobs["items"].as_array().unwrap().len()), (200, 0), "nothing was admitted: {jobs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_bodies_are_refused_not_read_as_plain() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    let plain = serde_json::to_vec(&quick("a cat")).unwrap();
    for coding in ["gzip", "br", "identity, deflate"] {
        let response = post_raw(&app, &acct.key, GENERATE, &[JSON, ("content-encoding", coding)], plain.clone()).await;
        assert_eq!(response.headers()["accept-encoding"], "identity");
        let error = assert_error(response, 415, "is not supported: send the request body uncompressed").await;
        assert_eq!(error["code"], "invalid_request");
    }
    // Uploads too: a multipart body is not decoded either.
    let png = png_bytes(8, 8, [1, 2, 3]);
    let form_body =
        "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n";
    let mut body = form_body.as_bytes().to_vec();
    body.extend_from_slice(&png);
    body.extend_from_slice(b"\r\n--b--\r\n");
    let headers = [("content-type", "multipart/form-data; boundary=b"), ("content-encoding", "gzip")];
    assert_error(post_raw(&app, &acct.key, "/assets", &headers, body).await, 415, "`Content-Encoding: gzip`").await;
    let (status, assets) = app.get(&acct.key, "/assets").await;
    assert_eq!((status, assets["items"].as_array().unwrap().len()), (200, 0));

    // `identity` is no coding at all; the same body without a coding is accepted.
    let ok = post_raw(&app, &acct.key, GENERATE, &[JSON, ("content-encoding", "identity")], plain).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(upload(&app, &acct.key, png, "a.png").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_data_uri_limit_fits_the_body_limit_and_names_the_field() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("50").await;
    // The documented maximum, split over both image fields, with the longest prompt escaped
    // character by character (`\u0041`, 6 bytes each), fits the default 8 MiB body.
    let bytes = format!(
        r#"{{"prompt": "{}", "num_frames": 9, "start_image": "{}", "end_image": "{}"}}"#,
        "\\u0041".repeat(20_000),
        data_png(3_000_000),
        data_png(3_000_000)
    )
    .into_bytes();
    assert!(bytes.len() > 8_000_000 && bytes.len() < 8 * 1024 * 1024, "{}", bytes.len());
    let accepted = post_raw(&app, &acct.key, GENERATE, &[JSON], bytes).await;
    assert_eq!(accepted.status(), 200);

    // Three bytes more is a 400 naming the field that went over, not a 413 naming none.
    let body =
        json!({"prompt": "x", "num_frames": 9, "start_image": data_png(3_000_003), "end_image": data_png(3_000_000)});
    let error = assert_error(app.submit(&acct.key, body).await, 400, "`end_image` is a 3000000-byte data: URI").await;
    assert!(error["error"].as_str().unwrap().contains("at most 6000000 bytes"), "{error}");
    let body = json!({"prompt": "x", "num_frames": 9, "start_image": data_png(6_000_003)});
    assert_error(app.submit(&acct.key, body).await, 400, "`start_image` is 6000003 bytes").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_gets_a_json_413_not_a_reset() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    // With a length: refused from the headers, and the rest is read and dropped, so the client
    // that is still sending gets the answer (every time, and on a connection it can reuse).
    let huge = json!({"prompt": "x", "start_image": data_png(9_000_000)});
    let bytes = serde_json::to_vec(&huge).unwrap();
    for _ in 0..3 {
        let response = post_raw(&app, &acct.key, GENERATE, &[JSON], bytes.clone()).await;
        let error = assert_error(response, 413, "larger than 8388608 bytes").await;
        assert_eq!(error["code"], "payload_too_large");
    }
    // Without one (chunked): cut off at the limit inside `start_image`, which the error names.
    let mut chunks: Vec<Vec<u8>> = vec![br#"{"prompt": "x", "start_image": "data:image/png;base64,"#.to_vec()];
    chunks.extend((0..12).map(|_| vec![b'A'; 1024 * 1024]));
    chunks.push(br#""}"#.to_vec());
    let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let response = app
        .client
        .post(app.url(GENERATE))
        .bearer_auth(&acct.key)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("an answer, not a reset");
    let error = assert_error(response, 413, "`start_image` holds a data: URI too large").await;
    assert_eq!(error["code"], "payload_too_large");
    let followed: Value = app.get(&acct.key, "/jobs").await.1;
    assert_eq!(followed["items"].as_array().unwrap().len(), 0);
}
