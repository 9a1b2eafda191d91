//! The admin HTTP API (`/admin/v1`): opened only by admin tokens (never by API keys, and an admin
//! token never opens the public API), and doing what the `admin` CLI does: accounts, limits,
//! quotas, suspension, credits and the ledger, keys, usage per period, any account's jobs.
use crate::helpers::{quick, TestApp, GENERATE};
use ltx_serve::admin;
use reqwest::{Method, Response};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ltx-serve");

async fn admin_token(app: &TestApp) -> String {
    let out = admin::create_admin_token(&*app.store, Some("tests".into())).await.unwrap();
    out["admin_token"].as_str().unwrap().to_owned()
}

/// Calls the admin API with `token` (none: no `Authorization`), answering (status, body).
async fn call(app: &TestApp, token: Option<&str>, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app.client.request(method, app.url(&format!("/admin/v1{path}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(request.send().await.unwrap()).await
}

async fn answer(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_tokens_open_only_the_admin_api_and_api_keys_only_the_public_one() {
    let app = TestApp::start().await;
    let user = app.account("1").await;
    let token = admin_token(&app).await;
    let (status, _) = call(&app, Some(&token), Method::GET, "/accounts", None).await;
    assert_eq!(status, 200);

    for (who, presented) in [("an API key", Some(user.key.as_str())), ("nothing", None), ("garbage", Some("x:y"))] {
        let (status, body) = call(&app, presented, Method::GET, "/accounts", None).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")), "{who} on /admin: {body}");
    }
    let (status, _) = call(&app, Some(&user.key), Method::POST, "/accounts", Some(json!({"name": "x"}))).await;
    assert_eq!(status, 401, "a user cannot create accounts");

    for path in ["/jobs", "/account"] {
        let (status, body) = app.get(&token, path).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")), "admin token on {path}: {body}");
    }
    let submitted = app.submit(&token, quick("as admin")).await;
    assert_eq!(submitted.status(), 401, "an admin token submits nothing");

    let token_id = token.split(':').next().unwrap().parse().unwrap();
    admin::revoke_admin_token(&*app.store, token_id).await.unwrap();
    let (status, _) = call(&app, Some(&token), Method::GET, "/accounts", None).await;
    assert_eq!(status, 401, "a revoked admin token is refused at once");
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_are_created_listed_shown_and_their_limits_and_quotas_changed() {
    let app = TestApp::start().await;
    let token = admin_token(&app).await;
    let body = json!({"name": "acme", "credits_usd": "5", "max_concurrent": 2, "max_backlog": 7});
    let (status, created) = call(&app, Some(&token), Method::POST, "/accounts", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["name"].as_str(), created["balance_usd"].as_str()), (Some("acme"), Some("5.00")));
    assert_eq!((created["max_concurrent"].as_u64(), created["suspended"].as_bool()), (Some(2), Some(false)));
    let key = created["api_key"].as_str().unwrap();
    assert_eq!(app.account_view(key).await["balance_usd"], "5.00", "the first key works on the public API");
    let id = created["account_id"].as_str().unwrap().to_owned();

    let (status, shown) = call(&app, Some(&token), Method::GET, &format!("/accounts/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(shown.get("api_key").is_none(), "a key is shown once, at creation: {shown}");
    assert_eq!(shown["recent_ledger"][0]["note"], "initial credits");

    // Newest first, one per page, following `next_cursor`.
    let newer = app.account("0").await;
    let (_, first) = call(&app, Some(&token), Method::GET, "/accounts?limit=1", None).await;
    assert_eq!(first["items"][0]["account_id"], newer.id.to_string(), "{first}");
    let cursor = first["next_cursor"].as_str().expect("a full page has a cursor").to_owned();
    let path = format!("/accounts?limit=1&cursor={}", urlencoding(&cursor));
    let (_, second) = call(&app, Some(&token), Method::GET, &path, None).await;
    assert_eq!(second["items"][0]["account_id"], id.as_str(), "{second}");
    let (status, _) = call(&app, Some(&token), Method::GET, "/accounts?limit=0", None).await;
    assert_eq!(status, 400);

    let patch = json!({"max_concurrent": 3, "storage_bytes_quota": 1000, "storage_files_quota": "default"});
    let (status, patched) = call(&app, Some(&token), Method::PATCH, &format!("/accounts/{id}"), Some(patch)).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!((patched["max_concurrent"].as_u64(), patched["max_backlog"].as_u64()), (Some(3), Some(7)));
    assert_eq!(patched["storage"]["bytes_quota"], 1000);
    let refused = [
        (json!({"max_concurrent": 0}), "an account always has room for one job"),
        (json!({"max_concurency": 2}), "a misspelt field"),
        (json!({}), "nothing to change"),
        (json!({"storage_bytes_quota": "lots"}), "a quota that is no number"),
    ];
    for (patch, what) in refused {
        let (status, body) = call(&app, Some(&token), Method::PATCH, &format!("/accounts/{id}"), Some(patch)).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_request")), "{what}: {body}");
    }
    let unknown = uuid::Uuid::new_v4();
    for path in [format!("/accounts/{unknown}"), "/accounts/not-a-uuid".into()] {
        let (status, body) = call(&app, Some(&token), Method::GET, &path, None).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{path}: {body}");
    }
    let (status, _) = call(&app, Some(&token), Method::POST, "/accounts", Some(json!({"name": ""}))).await;
    assert_eq!(status, 400, "an account needs a name");
}

fn urlencoding(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_account_is_refused_until_it_is_unsuspended() {
    let app = TestApp::start().await;
    let token = admin_token(&app).await;
    let user = app.account("5").await;
    let other = app.account("5").await;
    app.submit_ok(&user.key, quick("before")).await; // its key is now in the key cache

    let (status, account) =
        call(&app, Some(&token), Method::POST, &format!("/accounts/{}/suspend", user.id), None).await;
    assert_eq!((status, account["suspended"].as_bool()), (200, Some(true)), "{account}");
    let refused = app.submit(&user.key, quick("while suspended")).await;
    assert_eq!(refused.status(), 403, "suspension takes effect at once in the process that made it");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "account_suspended", "{body}");
    let (status, body) = app.get(&user.key, "/jobs").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("account_suspended")));
    app.submit_ok(&other.key, quick("others are untouched")).await;
    let wrong_secret = format!("{}:wrong", user.key.split(':').next().unwrap());
    let (status, _) = app.get(&wrong_secret, "/jobs").await;
    assert_eq!(status, 401, "only the key's holder learns the account is suspended");

    let path = format!("/accounts/{}/unsuspend", user.id);
    let (status, account) = call(&app, Some(&token), Method::POST, &path, None).await;
    assert_eq!((status, account["suspended"].as_bool()), (200, Some(false)));
    app.submit_ok(&user.key, quick("after")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn credits_change_the_balance_and_are_in_the_ledger_with_their_reason() {
    let app = TestApp::start().await;
    let token = admin_token(&app).await;
    let user = app.account("1").await;
    let credits = format!("/accounts/{}/credits", user.id);
    let body = json!({"amount_usd": "2.50", "reason": "refund for job 42"});
    let (status, account) = call(&app, Some(&token), Method::POST, &credits, Some(body)).await;
    assert_eq!((status, account["balance_usd"].as_str()), (200, Some("3.50")), "{account}");
    assert_eq!(app.account_view(&user.key).await["balance_usd"], "3.50", "the owner sees it");
    let (status, _) =
        call(&app, Some(&token), Method::POST, &credits, Some(json!({"amount_usd": -0.5, "reason": "fix"}))).await;
    assert_eq!(status, 200, "a number works too, and a negative amount takes credits back");

    let (status, ledger) =
        call(&app, Some(&token), Method::GET, &format!("/accounts/{}/ledger?limit=2", user.id), None).await;
    assert_eq!(status, 200);
    let items = ledger["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{ledger}");
    assert_eq!((items[0]["kind"].as_str(), items[0]["note"].as_str()), (Some("credit"), Some("fix")));
    assert_eq!(items[1]["note"], "refund for job 42");

    let refused = [
        (json!({"amount_usd": "2"}), "no reason"),
        (json!({"amount_usd": "2", "reason": " "}), "a blank reason"),
        (json!({"amount_usd": "two", "reason": "r"}), "no amount"),
        (json!({"amount_usd": "-100", "reason": "r"}), "below zero"),
    ];
    for (body, what) in refused {
        let (status, answer) = call(&app, Some(&token), Method::POST, &credits, Some(body)).await;
        assert_eq!((status, answer["code"].as_str()), (400, Some("invalid_request")), "{what}: {answer}");
    }
    assert_eq!(app.account_view(&user.key).await["balance_usd"], "3.00", "refused credits changed nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_created_and_revoked_for_their_account_only() {
    let app = TestApp::start().await;
    let token = admin_token(&app).await;
    let (user, other) = (app.account("1").await, app.account("1").await);
    let keys = format!("/accounts/{}/keys", user.id);
    let (status, created) = call(&app, Some(&token), Method::POST, &keys, Some(json!({"label": "ci"}))).await;
    assert_eq!(status, 201, "{created}");
    let key = created["api_key"].as_str().unwrap();
    assert_eq!(app.get(key, "/jobs").await.0, 200);
    let (status, _) = call(&app, Some(&token), Method::POST, &keys, None).await;
    assert_eq!(status, 201, "the body is optional");

    let key_id = created["key_id"].as_str().unwrap();
    let (status, _) =
        call(&app, Some(&token), Method::DELETE, &format!("/accounts/{}/keys/{key_id}", other.id), None).await;
    assert_eq!(status, 404, "another account's key is not revoked through this one");
    assert_eq!(app.get(key, "/jobs").await.0, 200);
    let (status, revoked) = call(&app, Some(&token), Method::DELETE, &format!("{keys}/{key_id}"), None).await;
    assert_eq!((status, revoked["revoked"].as_bool()), (200, Some(true)));
    assert_eq!(app.get(key, "/jobs").await.0, 401, "revoked at once");
    assert_eq!(app.get(&user.key, "/jobs").await.0, 200, "the account's other keys still work");
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_counts_the_jobs_and_money_of_a_period() {
    let app = TestApp::start().await;
    let token = admin_token(&app).await;
    let user = app.account("5").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let start = time::OffsetDateTime::now_utc();
    let job = app.submit_ok(&user.key, quick("counted")).await;
    let done = app.wait_terminal(&user.key, job["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    let rfc = |t: time::OffsetDateTime| urlencoding(&t.format(&time::format_description::well_known::Rfc3339).unwrap());
    let usage = |from, to: Option<time::OffsetDateTime>| {
        let mut path = format!("/accounts/{}/usage?from={}", user.id, rfc(from));
        if let Some(to) = to {
            path.push_str(&format!("&to={}", rfc(to)));
        }
        path
    };
    let (status, now) = call(&app, Some(&token), Method::GET, &usage(start, None), None).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!((now["jobs_submitted"].as_u64(), now["jobs_completed"].as_u64()), (Some(1), Some(1)), "{now}");
    let (_, shown) =
        call(&app, Some(&token), Method::GET, &format!("/jobs/{}", job["job_id"].as_str().unwrap()), None).await;
    assert_eq!(now["charged"], shown["price_usd"], "what the job cost: {now}");
    assert_ne!(now["charged"], "0.00", "{now}");
    assert_eq!(now["credited"], "0.00", "the initial credits came before the period");

    let before = start - time::Duration::days(1);
    let (_, earlier) = call(&app, Some(&token), Method::GET, &usage(before, Some(start)), None).await;
    assert_eq!((earlier["jobs_submitted"].as_u64(), earlier["charged"].as_str()), (Some(0), Some("0.00")), "{earlier}");

    for (path, what) in [
        (usage(start, Some(before)), "an empty period"),
        (format!("/accounts/{}/usage", user.id), "no `from`"),
        (format!("/accounts/{}/usage?from=yesterday", user.id), "no RFC 3339 time"),
    ] {
        let (status, body) = call(&app, Some(&token), Method::GET, &path, None).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_request")), "{what}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_sees_and_cancels_another_accounts_job() {
    let app = TestApp::start_with(|c| c.preview_sampling_time = Duration::from_secs(20)).await;
    let token = admin_token(&app).await;
    let owner = app.account_with_limits("5", 1, 5).await;
    let running = app.submit_ok(&owner.key, quick("first")).await;
    let waiting = app.submit_ok(&owner.key, quick("second")).await;
    let id = waiting["job_id"].as_str().unwrap();

    let (status, shown) = call(&app, Some(&token), Method::GET, &format!("/jobs/{id}"), None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        (shown["job_id"].as_str(), shown["account_id"].as_str()),
        (Some(id), Some(owner.id.to_string().as_str()))
    );
    assert!(shown["price_usd"].is_string(), "{shown}");

    let (status, cancelled) = call(&app, Some(&token), Method::DELETE, &format!("/jobs/{id}"), None).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    assert_eq!(app.job(&owner.key, id).await["status"], "cancelled", "the owner sees the cancel");
    let (status, body) = call(&app, Some(&token), Method::DELETE, &format!("/jobs/{id}"), None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("job_finished")), "{body}");
    let first = running["job_id"].as_str().unwrap();
    let (status, _) = call(&app, Some(&token), Method::DELETE, &format!("/jobs/{first}"), None).await;
    assert_eq!(status, 200, "a running job is cancelled too");
    assert_eq!(app.account_view(&owner.key).await["held_usd"], "0.00", "both holds were released");

    let (status, body) = call(&app, Some(&token), Method::GET, &format!("/jobs/{}", uuid::Uuid::new_v4()), None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, _) = call(&app, Some(&owner.key), Method::GET, &format!("/jobs/{id}"), None).await;
    assert_eq!(status, 401, "an account's key does not open the admin view of its own job");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_routes_are_not_in_the_public_openapi_document() {
    let app = TestApp::start().await;
    let document = app.client.get(app.url("/openapi.json")).send().await.unwrap().text().await.unwrap();
    assert!(!document.contains("/admin"), "the admin API is not advertised");
}

fn cli(data_dir: &std::path::Path, args: &[&str]) -> Value {
    let out = std::process::Command::new(BIN).args(["admin", "--data-dir"]).arg(data_dir).args(args).output().unwrap();
    assert!(out.status.success(), "admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The CLI and the HTTP API act on the same store: a token made on the command line opens the
/// API, a suspension made there reaches the server within the key cache's TTL, and a token
/// revoked there is refused at once.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_makes_tokens_and_suspends_accounts_for_a_running_server() {
    let app = TestApp::start().await;
    let user = app.account("5").await;
    let dir = app.data_dir.path();
    let created = cli(dir, &["token", "create", "--label", "ops"]);
    let token = created["admin_token"].as_str().unwrap();
    assert_eq!(created["label"], "ops");
    let (status, listed) = call(&app, Some(token), Method::GET, "/accounts", None).await;
    assert_eq!((status, listed["items"][0]["account_id"].as_str()), (200, Some(user.id.to_string().as_str())));

    app.submit_ok(&user.key, quick("cached")).await;
    let account = user.id.to_string();
    assert_eq!(cli(dir, &["account", "suspend", "--account", &account])["suspended"], true);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response =
            app.client.post(app.url(GENERATE)).bearer_auth(&user.key).json(&quick("x")).send().await.unwrap();
        if response.status() == 403 {
            break;
        }
        assert!(Instant::now() < deadline, "the suspension never reached the server");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = cli(dir, &["account", "list", "--limit", "5"]);
    assert_eq!(listed["items"][0]["suspended"], true, "{listed}");
    cli(dir, &["account", "unsuspend", "--account", &account]);
    let ledger = cli(dir, &["credits", "ledger", "--account", &account, "--limit", "1"]);
    assert!(ledger["items"][0]["kind"].is_string(), "{ledger}");
    let usage = cli(dir, &["usage", "--account", &account, "--from", "2020-01-01T00:00:00Z"]);
    assert!(usage["jobs_submitted"].as_u64().unwrap() >= 1, "{usage}");

    cli(dir, &["token", "revoke", created["token_id"].as_str().unwrap()]);
    let (status, _) = call(&app, Some(token), Method::GET, "/accounts", None).await;
    assert_eq!(status, 401, "revoked on the command line: refused at once");
}
