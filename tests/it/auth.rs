//! Keys: both schemes, and the same 401 for every kind of bad key.
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn bearer_and_key_schemes_work_and_bad_keys_are_401() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    for header in [format!("Bearer {}", acct.key), format!("Key {}", acct.key)] {
        let response = app.client.get(app.url("/jobs")).header("authorization", header).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let (key_id, _) = acct.key.split_once(':').unwrap();
    let cases = [
        None,
        Some("Bearer".to_owned()),
        Some("Basic dXNlcjpwYXNz".to_owned()),
        Some("Bearer not-a-key".to_owned()),
        Some(format!("Bearer {key_id}:wrong-secret")),
        Some(format!("Bearer {}:secret", uuid::Uuid::new_v4())),
    ];
    for header in cases {
        let mut request = app.client.post(app.url(GENERATE)).json(&quick("x"));
        if let Some(h) = &header {
            request = request.header("authorization", h);
        }
        let body = assert_error(request.send().await.unwrap(), 401, "").await;
        assert_eq!(body["code"], "unauthorized", "{header:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_key_stops_working() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    let (key_id, _) = acct.key.split_once(':').unwrap();
    assert_eq!(app.get(&acct.key, "/account").await.0, 200);
    ltx_serve::admin::revoke_key(&*app.store, key_id.parse().unwrap()).await.unwrap();
    // A verified key is trusted for the key-cache TTL (2 s by default), then checked again.
    let revoked_at = std::time::Instant::now();
    let body = loop {
        let (status, body) = app.get(&acct.key, "/account").await;
        if status == 401 {
            break body;
        }
        assert!(revoked_at.elapsed() < std::time::Duration::from_secs(3), "still accepted after the TTL: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(body["error"].as_str().unwrap().contains("revoked"));
}

#[tokio::test(flavor = "multi_thread")]
async fn health_needs_no_key_and_unknown_routes_are_json_404() {
    // With an in-process worker: ready (without one, /readyz waits for a remote worker: fleet.rs).
    let app = TestApp::start().await;
    for path in ["/healthz", "/readyz"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let response = app.client.get(app.url("/no/such/route")).send().await.unwrap();
    assert_error(response, 404, "No such resource").await;
    let response = app.client.put(app.url("/jobs")).send().await.unwrap();
    assert_error(response, 405, "not allowed").await;
}
