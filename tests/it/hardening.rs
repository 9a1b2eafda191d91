//! What an adversarial probe of a release build found, each checked the way the probe did it:
//! from outside, with one valid key or none.
use crate::helpers::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn invented_http_methods_do_not_grow_the_metrics() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    for i in 0..40 {
        let method = reqwest::Method::from_bytes(format!("FOO{i}").as_bytes()).unwrap();
        let response = app.client.request(method, app.url("/jobs")).send().await.unwrap();
        assert!(response.status().is_client_error(), "an unknown method is refused");
    }
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains("FOO"), "a method the client made up became a label value");
    assert!(text.contains(r#"method="other""#), "unknown methods are counted under one label");
    // The registry is shared by every test in this process, so check the label's values: a
    // closed set (seven methods and `other`), whatever any test sent.
    let methods: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter_map(|l| l.split(r#"method=""#).nth(1)?.split('"').next())
        .collect();
    let allowed = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"];
    assert!(methods.iter().all(|m| allowed.contains(m)), "method labels outside the closed set: {methods:?}");
}

/// Addresses a probe reached or could have reached through the earlier guard.
const SPECIAL_TARGETS: [&str; 8] = [
    "http://192.0.0.170/",          // IETF protocol assignments (NAT64 discovery)
    "http://[64:ff9b::a9fe:a9fe]/", // NAT64 of the metadata address
    "http://[::127.0.0.1]/",        // IPv4-compatible loopback
    "http://[::ffff:0:a00:1]/",     // IPv4-translated 10.0.0.1
    "http://[2002:c0a8:101::1]/",   // 6to4 of 192.168.1.1
    "http://LOCALHOST./hook",       // localhost, in capitals, fully qualified
    "http://api.localhost/hook",    // a subdomain of localhost
    "http://100.100.100.200/",      // shared address space (a cloud metadata service)
];

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_to_special_purpose_addresses_are_refused_at_submit() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    for hook in SPECIAL_TARGETS {
        let response = app
            .client
            .post(app.url("/generate/video/lightricks/ltx-video-2.3-22b"))
            .bearer_auth(&acct.key)
            .header("x-webhook-url", hook)
            .json(&quick("x"))
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "private or reserved address").await;
    }
    let (_, jobs) = app.get(&acct.key, "/jobs").await;
    assert!(jobs["items"].as_array().unwrap().is_empty(), "nothing was created");
    assert_eq!(app.account_view(&acct.key).await["held_usd"], "0.00", "nothing was held");
}

#[tokio::test(flavor = "multi_thread")]
async fn images_at_special_purpose_addresses_are_refused_at_submit() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    for target in SPECIAL_TARGETS {
        let url = format!("{target}cat.png").replace("/hookcat", "/cat");
        let response = app.submit(&acct.key, json!({"prompt": "x", "start_image": url})).await;
        assert_error(response, 400, "private or reserved address").await;
    }
    let (_, jobs) = app.get(&acct.key, "/jobs").await;
    assert!(jobs["items"].as_array().unwrap().is_empty(), "nothing was created");
}
