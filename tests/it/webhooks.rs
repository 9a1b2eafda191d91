//! Webhooks: signed with the Standard Webhooks scheme (checked by an independent verifier),
//! retried with the same id until a 2xx, never lost across a restart, and never sent to
//! private addresses unless the operator allows it.
use crate::helpers::*;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A local receiver that answers with the scripted statuses (then 200) and records every call.
#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start(answers: &[u16]) -> (Receiver, String) {
        Receiver::start_on("127.0.0.1:0", answers).await
    }

    async fn start_on(addr: &str, answers: &[u16]) -> (Receiver, String) {
        let receiver =
            Receiver { script: Arc::new(Mutex::new(answers.iter().copied().collect())), ..Default::default() };
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let state = receiver.clone();
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(|headers: HeaderMap, body: axum::body::Bytes| async move {
                    state.calls.lock().unwrap().push(Received { headers, body: body.to_vec() });
                    let status = state.script.lock().unwrap().pop_front().unwrap_or(200);
                    StatusCode::from_u16(status).unwrap()
                }),
            )
            .route("/elsewhere", axum::routing::post(|| async { "redirect target" }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    async fn wait_for_calls(&self, n: usize) -> Vec<Received> {
        for _ in 0..300 {
            let calls = self.calls.lock().unwrap().clone();
            if calls.len() >= n {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the receiver got {} calls, expected {n}", self.calls.lock().unwrap().len());
    }
}

async fn submit_with_hook(app: &TestApp, key: &str, hook: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url(GENERATE)).bearer_auth(key).header("x-webhook-url", hook).json(&body).send().await.unwrap()
}

/// Checks the signature with the `standardwebhooks` package from PyPI (installed by scripts/test).
fn verify_independently(secret: &str, call: &Received) -> Value {
    let python = std::env::var("LTX_TEST_PYTHON")
        .expect("LTX_TEST_PYTHON is not set: run the suite with scripts/test, which installs the verifier");
    let headers: serde_json::Map<String, Value> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .iter()
        .map(|h| (h.to_string(), json!(call.headers[*h].to_str().unwrap())))
        .collect();
    let body = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(body.path(), &call.body).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/verify_webhook.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(secret)
        .arg(Value::Object(headers).to_string())
        .arg(body.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "verification failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn with_private_hooks(c: &mut ltx_serve::config::ServeConfig) {
    c.allow_private_urls = true;
    c.webhook_retry_base = Duration::from_millis(100);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the test tools venv: LTX_TEST_PYTHON (scripts/test makes it)"]
async fn a_completed_job_is_posted_signed_and_retried_with_the_same_id() {
    let app = TestApp::start_with(with_private_hooks).await;
    let acct = app.account("5").await;
    let (receiver, hook) = Receiver::start(&[500, 500]).await;
    let job = submit_with_hook(&app, &acct.key, &hook, quick("hooked")).await.json::<Value>().await.unwrap();
    let calls = receiver.wait_for_calls(3).await;

    let ids: Vec<&str> = calls.iter().map(|c| c.headers["webhook-id"].to_str().unwrap()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "webhook-id is stable across retries: {ids:?}");
    let secret = app.account_view(&acct.key).await["webhook_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let payload = verify_independently(&secret, &calls[2]);
    assert_eq!(payload["job_id"], job["job_id"]);
    assert_eq!(payload["status"], "completed");
    assert!(payload["result"]["urls"][0].is_string());
    assert_eq!(calls[2].headers["content-type"], "application/json");

    // The job shows how its delivery went.
    let delivered = app.wait_until(&acct.key, &job_id(&job), |j| j["webhook"]["status"] == "delivered").await;
    assert_eq!(delivered["webhook"]["attempts"], 3);
    assert_eq!(delivered["webhook"]["last_status"], 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.calls.lock().unwrap().len(), 3, "a 2xx ends the delivery");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the test tools venv: LTX_TEST_PYTHON (scripts/test makes it)"]
async fn failed_and_cancelled_jobs_are_posted_too_and_a_rotated_secret_signs_new_deliveries() {
    use base64::Engine as _;
    let app = TestApp::start_with(|c| {
        with_private_hooks(c);
        c.workers = 0;
    })
    .await;
    let acct = app.account("5").await;
    let (receiver, hook) = Receiver::start(&[]).await;
    let job = submit_with_hook(&app, &acct.key, &hook, quick("cancel me")).await.json::<Value>().await.unwrap();
    app.delete(&acct.key, &format!("/jobs/{}", job_id(&job))).await;
    let calls = receiver.wait_for_calls(1).await;
    let secret = app.account_view(&acct.key).await["webhook_secret"].as_str().unwrap().to_owned();
    assert_eq!(verify_independently(&secret, &calls[0])["status"], "cancelled");

    let rotated = ltx_serve::admin::rotate_webhook_secret(&*app.store, acct.id).await.unwrap();
    let new_secret = rotated["webhook_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let app = app.restart_with(with_private_hooks).await;
    let broken = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(b"nope"));
    let failing = json!({"prompt": "x", "num_frames": 9, "start_image": broken});
    submit_with_hook(&app, &acct.key, &hook, failing).await;
    let calls = receiver.wait_for_calls(2).await;
    let payload = verify_independently(&new_secret, &calls[1]);
    assert_eq!(
        (payload["status"].as_str(), payload["error"]["code"].as_str()),
        (Some("failed"), Some("invalid_input"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_across_a_server_restart_still_gets_the_delivery() {
    // Reserve a port, then free it: nothing listens there while the job finishes.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let hook = format!("http://127.0.0.1:{port}/hook");
    let app = TestApp::start_with(with_private_hooks).await;
    let acct = app.account("5").await;
    let job = submit_with_hook(&app, &acct.key, &hook, quick("patience")).await.json::<Value>().await.unwrap();
    let id = job_id(&job);
    let failing = app.wait_until(&acct.key, &id, |j| j["webhook"]["attempts"].as_u64().unwrap_or(0) >= 2).await;
    assert_eq!(failing["webhook"]["status"], "pending");
    assert!(failing["webhook"]["last_error"].as_str().is_some(), "{failing}");

    let mut app = app;
    app.stop().await;
    let (receiver, _) = Receiver::start_on(&format!("127.0.0.1:{port}"), &[]).await;
    let app = app.restart_with(with_private_hooks).await;
    let calls = receiver.wait_for_calls(1).await;
    assert_eq!(serde_json::from_slice::<Value>(&calls[0].body).unwrap()["job_id"], job["job_id"]);
    app.wait_until(&acct.key, &id, |j| j["webhook"]["status"] == "delivered").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_not_followed() {
    let app = TestApp::start_with(with_private_hooks).await;
    let acct = app.account("5").await;
    // A receiver that redirects every call elsewhere: counted as a failure, never followed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let followed = Arc::new(Mutex::new(0));
    let seen = followed.clone();
    let router = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(move || async move {
                axum::response::Redirect::temporary(&format!("http://{addr}/elsewhere"))
            }),
        )
        .route(
            "/elsewhere",
            axum::routing::post(move || async move {
                *seen.lock().unwrap() += 1;
                "ok"
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let job = submit_with_hook(&app, &acct.key, &format!("http://{addr}/hook"), quick("redirect"))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let state = app.wait_until(&acct.key, &job_id(&job), |j| j["webhook"]["attempts"].as_u64().unwrap_or(0) >= 2).await;
    assert_eq!(state["webhook"]["last_status"], 307);
    assert_eq!(*followed.lock().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn private_targets_are_refused_at_submit() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    for hook in [
        "http://127.0.0.1/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://2130706433/",
        "http://localhost:8080/hook",
    ] {
        let response = submit_with_hook(&app, &acct.key, hook, quick("x")).await;
        assert_error(response, 400, "private or reserved address").await;
    }
    let (_, jobs) = app.get(&acct.key, "/jobs").await;
    assert!(jobs["items"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_never_succeeds_is_given_up_after_the_horizon() {
    let app = TestApp::start_with(|c| {
        with_private_hooks(c);
        c.webhook_retry_horizon = Duration::from_secs(1);
    })
    .await;
    let acct = app.account("5").await;
    let (receiver, hook) = Receiver::start(&[503; 100]).await;
    let job = submit_with_hook(&app, &acct.key, &hook, quick("never")).await.json::<Value>().await.unwrap();
    let failed = app.wait_until(&acct.key, &job_id(&job), |j| j["webhook"]["status"] == "failed").await;
    assert_eq!(failed["webhook"]["last_status"], 503);
    assert!(failed["webhook"]["next_attempt_at"].is_null());
    let calls = receiver.calls.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.calls.lock().unwrap().len(), calls, "no tries after giving up");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_receiver_does_not_hold_up_the_others() {
    let app = TestApp::start_with(with_private_hooks).await;
    let acct = app.account("5").await;
    // The slow receiver answers after 10 s; the fast one must be served meanwhile.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_url = format!("http://{}/hook", slow.local_addr().unwrap());
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "late"
        }),
    );
    tokio::spawn(async move { axum::serve(slow, router).await.unwrap() });
    let (fast, fast_url) = Receiver::start(&[]).await;
    for i in 0..3 {
        submit_with_hook(&app, &acct.key, &slow_url, quick(&format!("slow {i}"))).await;
    }
    let started = std::time::Instant::now();
    submit_with_hook(&app, &acct.key, &fast_url, quick("fast")).await;
    fast.wait_for_calls(1).await;
    assert!(started.elapsed() < Duration::from_secs(8), "the fast receiver waited {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flapping_receiver_gets_every_job_exactly_once_with_a_2xx() {
    // The receiver fails every other call (500, 503, 502, 429): each job is retried until one
    // call is answered 2xx, then never posted again.
    let flaps: Vec<u16> = (0..200).map(|i| [500, 200, 503, 200, 502, 200, 429, 200][i % 8]).collect();
    let (receiver, hook) = Receiver::start(&flaps).await;
    let app = TestApp::start_with(with_private_hooks).await;
    let acct = app.account("20").await;
    let mut ids = Vec::new();
    for n in 0..8 {
        let response = submit_with_hook(&app, &acct.key, &hook, quick(&format!("flap {n}"))).await;
        ids.push(job_id(&response.json::<Value>().await.unwrap()));
    }
    let mut attempts = 0;
    for id in &ids {
        let done = app.wait_until(&acct.key, id, |j| j["webhook"]["status"] == "delivered").await;
        attempts += done["webhook"]["attempts"].as_u64().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // nothing more should arrive
    let calls = receiver.calls.lock().unwrap().clone();
    assert_eq!(calls.len() as u64, attempts, "every attempt the jobs count reached the receiver");
    assert!(attempts > 8, "the flaps made the dispatcher retry ({attempts} attempts)");
    let answers: Vec<u16> = flaps.iter().take(calls.len()).copied().collect();
    for id in &ids {
        let answered: Vec<u16> = calls
            .iter()
            .zip(&answers)
            .filter(|(call, _)| serde_json::from_slice::<Value>(&call.body).unwrap()["job_id"] == id.as_str())
            .map(|(_, status)| *status)
            .collect();
        assert_eq!(answered.iter().filter(|s| **s == 200).count(), 1, "job {id}: {answered:?}");
        assert_eq!(answered.last(), Some(&200), "job {id}: nothing after the 2xx: {answered:?}");
    }
}
