//! `Idempotency-Key` (one job and one charge per key and body) and `Prefer: wait=N`.
use crate::helpers::*;
use serde_json::{json, Value};

async fn submit_with_key(app: &TestApp, key: &str, idem: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url(GENERATE)).bearer_auth(key).header("idempotency-key", idem).json(body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_key_returns_the_same_job_and_charges_once() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    let body = quick("once");
    let first: Value = submit_with_key(&app, &acct.key, "order-17", &body).await.json().await.unwrap();
    // The same body with other formatting is the same request.
    let again = app
        .client
        .post(app.url(GENERATE))
        .bearer_auth(&acct.key)
        .header("idempotency-key", "order-17")
        .header("content-type", "application/json")
        .body("{ \"num_frames\": 9,   \"prompt\": \"once\" }")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["job_id"], again["job_id"]);
    assert_eq!(app.account_view(&acct.key).await["held_usd"], "0.1798");

    let other = submit_with_key(&app, &acct.key, "order-17", &quick("something else")).await;
    let body = assert_error(other, 409, "different request body").await;
    assert_eq!(body["code"], "idempotency_conflict");

    // Keys belong to their account.
    let stranger = app.account("5").await;
    let theirs: Value = submit_with_key(&app, &stranger.key, "order-17", &quick("once")).await.json().await.unwrap();
    assert_ne!(theirs["job_id"], first["job_id"]);

    let bad = submit_with_key(&app, &acct.key, &"k".repeat(256), &quick("x")).await;
    assert_error(bad, 400, "Idempotency-Key").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_duplicates_make_one_job_and_one_hold() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (client, url, key) = (app.client.clone(), app.url(GENERATE), acct.key.clone());
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .bearer_auth(key)
                    .header("idempotency-key", "race")
                    .json(&quick("race"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(app.account_view(&acct.key).await["held_usd"], "0.1798");
    let (_, list) = app.get(&acct.key, "/jobs").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_submit_does_not_use_up_its_key() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("0.10").await;
    assert_error(submit_with_key(&app, &acct.key, "retry-me", &quick("x")).await, 402, "costs").await;
    ltx_serve::admin::add_credits(&*app.store, acct.id, ltx_serve::domain::money::MicroUsd(1_000_000), "top-up".into())
        .await
        .unwrap();
    assert_eq!(submit_with_key(&app, &acct.key, "retry-me", &quick("x")).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn prefer_wait_returns_the_finished_job() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let response = app
        .client
        .post(app.url(GENERATE))
        .bearer_auth(&acct.key)
        .header("prefer", "wait=60")
        .json(&json!({"prompt": "wait for me", "num_frames": 9}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["preference-applied"], "wait=60");
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["status"], "completed", "{job}");
    assert!(job["result"]["urls"][0].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn prefer_wait_on_a_job_that_stays_queued_answers_after_the_wait() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    let id = job_id(&app.submit_ok(&acct.key, quick("stuck")).await);
    let started = std::time::Instant::now();
    let response = app
        .client
        .get(app.url(&format!("/jobs/{id}")))
        .bearer_auth(&acct.key)
        .header("prefer", "wait=1")
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(response.headers()["preference-applied"], "wait=1");
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "queued");
    assert!(waited >= std::time::Duration::from_millis(900), "answered after {waited:?}");
}
