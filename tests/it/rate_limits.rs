//! Request rate limits per API key: 429 `rate_limited` with `Retry-After` over the limit, the
//! IETF draft `RateLimit-Policy` / `RateLimit` headers on every answer to a limited key, an
//! account's own limit from the operator, and 0 as no limit.
use crate::helpers::*;
use reqwest::Response;
use serde_json::Value;

async fn call(app: &TestApp, key: &str, path: &str) -> Response {
    app.client.get(app.url(path)).bearer_auth(key).send().await.unwrap()
}

fn header(response: &Response, name: &str) -> Option<String> {
    response.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
}

/// Requests until the first 429, which is returned with the count of those admitted before it.
async fn until_limited(app: &TestApp, key: &str, most: usize) -> (usize, Response) {
    for admitted in 0..most {
        let response = call(app, key, "/jobs").await;
        if response.status() == 429 {
            return (admitted, response);
        }
        assert_eq!(response.status(), 200);
    }
    panic!("{most} requests and no 429");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_over_its_limit_gets_429_with_retry_after_and_the_ratelimit_headers() {
    let app = TestApp::start_with(|c| {
        c.workers = 0;
        c.rate_limit_per_minute = 3;
    })
    .await;
    let acct = app.account("5").await;
    for left in [2, 1, 0] {
        let response = call(&app, &acct.key, "/account").await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "ratelimit-policy").as_deref(), Some("\"default\";q=3;w=60"));
        let state = header(&response, "ratelimit").unwrap();
        assert!(state.starts_with(&format!("\"default\";r={left};t=")), "{state}");
        assert_eq!(header(&response, "retry-after"), None, "only a refusal says when to retry");
    }
    // Every route behind a key counts, the submit included; the refusal comes before the body.
    let refused = app.submit(&acct.key, quick("over the limit")).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = header(&refused, "retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=20).contains(&retry_after), "a token every 20 s: {retry_after}");
    assert_eq!(header(&refused, "ratelimit-policy").as_deref(), Some("\"default\";q=3;w=60"));
    let state = header(&refused, "ratelimit").unwrap();
    let reset: u64 = state.strip_prefix("\"default\";r=0;t=").expect(&state).parse().unwrap();
    assert!((55..=60).contains(&reset), "the bucket is full again in a minute: {state}");
    assert!(header(&refused, "x-request-id").is_some(), "the usual headers too");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert!(body["error"].as_str().unwrap().contains("retry after"), "{body}");
    assert_eq!(app.get(&acct.key, "/jobs").await.0, 429, "and it stays refused");
    let query = ltx_serve::store::JobQuery { limit: 10, ..Default::default() };
    assert!(app.store.list_jobs(acct.id, query).await.unwrap().is_empty(), "nothing was submitted");

    // Another account's key has its own bucket; so has another key of the same account.
    let other = app.account("5").await;
    let response = call(&app, &other.key, "/jobs").await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "ratelimit").unwrap().starts_with("\"default\";r=2;"));
    let second = ltx_serve::admin::create_key(&*app.store, acct.id, None).await.unwrap();
    let (status, _) = app.get(second["api_key"].as_str().unwrap(), "/jobs").await;
    assert_eq!(status, 200, "the limit is per key");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_accounts_own_limit_applies_and_its_zero_lifts_the_limit() {
    let app = TestApp::start_with(|c| {
        c.workers = 0;
        c.rate_limit_per_minute = 2;
    })
    .await;
    let (higher, unlimited, default) = (app.account("5").await, app.account("5").await, app.account("5").await);
    ltx_serve::admin::set_rate_limit(&*app.store, higher.id, Some(5)).await.unwrap();
    let shown = ltx_serve::admin::set_rate_limit(&*app.store, unlimited.id, Some(0)).await.unwrap();
    assert_eq!(shown["rate_limit_per_minute"], 0, "{shown}");

    let (admitted, refused) = until_limited(&app, &higher.key, 20).await;
    assert_eq!(admitted, 5, "the account's own limit, not the operator's");
    assert_eq!(header(&refused, "ratelimit-policy").as_deref(), Some("\"default\";q=5;w=60"));
    let (admitted, _) = until_limited(&app, &default.key, 20).await;
    assert_eq!(admitted, 2, "the operator's default");
    for _ in 0..50 {
        let response = call(&app, &unlimited.key, "/jobs").await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "ratelimit"), None, "a key with no limit gets no headers");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_limit_of_zero_is_no_limit() {
    let app = TestApp::start_with(|c| {
        c.workers = 0;
        c.rate_limit_per_minute = 0;
    })
    .await;
    let acct = app.account("5").await;
    for _ in 0..200 {
        let response = call(&app, &acct.key, "/jobs").await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "ratelimit-policy"), None);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_verified_keys_take_from_a_bucket_and_open_routes_are_not_limited() {
    let app = TestApp::start_with(|c| {
        c.workers = 0;
        c.rate_limit_per_minute = 1;
    })
    .await;
    let acct = app.account("5").await;
    let (key_id, _) = acct.key.split_once(':').unwrap();
    // Someone guessing at the key's secret neither spends nor learns its owner's limit.
    for _ in 0..5 {
        let refused = call(&app, &format!("{key_id}:wrong-secret"), "/jobs").await;
        assert_eq!(refused.status(), 401);
        assert_eq!(header(&refused, "ratelimit"), None);
    }
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/"] {
        for _ in 0..3 {
            let response = app.client.get(app.url(path)).send().await.unwrap();
            assert!(response.status() != 429, "{path}");
            assert_eq!(header(&response, "ratelimit-policy"), None, "{path}");
        }
    }
    assert_eq!(app.get(&acct.key, "/jobs").await.0, 200, "the key's one request a minute is still there");
    assert_eq!(app.get(&acct.key, "/jobs").await.0, 429);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn replicas_on_one_database_each_enforce_their_share() {
    let db = crate::pg::TestDatabase::create().await;
    let replica = || {
        TestApp::start_with(|c| {
            c.workers = 0;
            c.rate_limit_per_minute = 4;
            c.database_url = Some(db.url.clone());
        })
    };
    let first = replica().await;
    let second = replica().await;
    // The second counts both at its first heartbeat (at start) if the first has had its own by
    // then, else at its next (10 s later); a fresh key per look.
    let deadline = std::time::Instant::now() + 2 * ltx_serve::api::rate_limit::HEARTBEAT;
    loop {
        let response = call(&second, &second.account("5").await.key, "/jobs").await;
        if header(&response, "ratelimit-policy").as_deref() == Some("\"default\";q=2;w=60") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second replica never counted the first: {:?}",
            header(&response, "ratelimit-policy")
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let acct = second.account("5").await;
    let (admitted, refused) = until_limited(&second, &acct.key, 10).await;
    assert_eq!(admitted, 2, "half of 4 on each of 2 replicas");
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "rate_limited");
    drop(first);
}
