//! The worker protocol's version over HTTP: a worker that names another version is refused
//! with a sentence saying what to do; one that names none (from before versioning) is served.
use crate::fleet::worker_token;
use crate::helpers::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_of_another_protocol_version_is_refused_and_one_naming_none_is_served() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let token = worker_token(&*app.store).await;
    let hello = format!("{}/internal/v1/hello", app.base);

    let unversioned = app.client.get(&hello).bearer_auth(&token).send().await.unwrap();
    assert_eq!(unversioned.status(), 200);
    let body: Value = unversioned.json().await.unwrap();
    assert_eq!(body["protocol"], 1, "{body}");
    assert!(body["heartbeat_every_ms"].as_u64().unwrap() > 0, "{body}");

    let current = app.client.get(&hello).bearer_auth(&token).header("ltx-worker-protocol", "1").send().await;
    assert_eq!(current.unwrap().status(), 200);

    let newer = app.client.get(&hello).bearer_auth(&token).header("ltx-worker-protocol", "2").send().await.unwrap();
    assert_eq!(newer.status(), 400);
    let body: Value = newer.json().await.unwrap();
    let why = body["error"].as_str().unwrap();
    assert!(why.contains("speaks worker protocol 1") && why.contains("same ltx-serve version"), "{body}");

    // Every call is checked, not only hello: a newer worker leases nothing.
    let acct = app.account("5").await;
    app.submit_ok(&acct.key, quick("waits for a worker of our version")).await;
    let lease = app
        .client
        .post(format!("{}/internal/v1/lease", app.base))
        .bearer_auth(&token)
        .header("ltx-worker-protocol", "2")
        .json(&json!({"worker": {"name": "w", "engine": "preview"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(lease.status(), 400);
    let unversioned = app
        .client
        .post(format!("{}/internal/v1/lease", app.base))
        .bearer_auth(&token)
        .json(&json!({"worker": {"name": "w", "engine": "preview"}, "wait_ms": 5000}))
        .send()
        .await
        .unwrap();
    assert_eq!(unversioned.status(), 200, "a worker from before versioning still gets work");

    // The token is checked first: an anonymous caller learns nothing about versions.
    let anonymous = app.client.get(&hello).header("ltx-worker-protocol", "2").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}
