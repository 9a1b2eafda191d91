//! Reading, listing and cancelling jobs; other accounts' jobs are invisible.
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn another_accounts_job_is_404_everywhere() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let alice = app.account("5").await;
    let mallory = app.account("5").await;
    let id = job_id(&app.submit_ok(&alice.key, quick("private")).await);
    let (status, body) = app.get(&mallory.key, &format!("/jobs/{id}")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not found"));
    assert_eq!(app.delete(&mallory.key, &format!("/jobs/{id}")).await.0, 404);
    let (_, list) = app.get(&mallory.key, "/jobs").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    // Still there, still queued for its owner.
    assert_eq!(app.job(&alice.key, &id).await["status"], "queued");
    // Unknown and malformed ids are the same 404.
    assert_eq!(app.get(&alice.key, &format!("/jobs/{}", uuid::Uuid::new_v4())).await.0, 404);
    assert_eq!(app.get(&alice.key, "/jobs/not-a-uuid").await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_pages_newest_first_with_cursor_and_filters() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account_with_limits("10", 3, 100).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(job_id(&app.submit_ok(&acct.key, quick(&format!("job {i}"))).await));
    }
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    let mut path = "/jobs?limit=3".to_owned();
    loop {
        let (status, page) = app.get(&acct.key, &path).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["next_cursor"], page["nextCursor"]);
        seen.extend(page["items"].as_array().unwrap().iter().map(job_id));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/jobs?limit=3&cursor={}", urlencode(cursor)),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let (_, backlogged) = app.get(&acct.key, "/jobs?status=backlogged").await;
    assert_eq!(backlogged["items"].as_array().unwrap().len(), 4, "3 slots, 4 over");
    assert!(backlogged["items"].as_array().unwrap().iter().all(|j| j["status"] == "backlogged"));
    let (_, typed) = app.get(&acct.key, "/jobs?types=ltx-video-2.3-22b,flux").await;
    assert_eq!(typed["items"].as_array().unwrap().len(), 7);
    let (_, other) = app.get(&acct.key, "/jobs?types=flux").await;
    assert_eq!(other["items"].as_array().unwrap().len(), 0);

    for bad in ["/jobs?limit=0", "/jobs?limit=1001", "/jobs?limit=ten", "/jobs?cursor=yesterday", "/jobs?status=done"] {
        let (status, body) = app.get(&acct.key, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn places_in_a_listed_page_follow_the_queue_at_once() {
    // SQLite keeps the queue's head a page's places are counted against until the next write:
    // a page listed right after a job leaves the queue must not count it.
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("10").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(job_id(&app.submit_ok(&acct.key, quick(&format!("in line {i}"))).await));
    }
    let places = |page: &serde_json::Value| -> Vec<(String, Option<u64>)> {
        page["items"].as_array().unwrap().iter().map(|j| (job_id(j), j["queue_position"].as_u64())).collect()
    };
    let (_, page) = app.get(&acct.key, "/jobs").await;
    fn newest_first(ids: &[String], expected: &[(usize, u64)]) -> Vec<(String, Option<u64>)> {
        expected.iter().map(|&(i, place)| (ids[i].clone(), Some(place))).collect()
    }
    assert_eq!(places(&page), newest_first(&ids, &[(2, 3), (1, 2), (0, 1)]));
    // Listed again with nothing written between: the same places.
    assert_eq!(places(&app.get(&acct.key, "/jobs").await.1), newest_first(&ids, &[(2, 3), (1, 2), (0, 1)]));
    assert_eq!(app.delete(&acct.key, &format!("/jobs/{}", ids[0])).await.0, 200);
    let (_, page) = app.get(&acct.key, "/jobs?status=queued").await;
    assert_eq!(places(&page), newest_first(&ids, &[(2, 2), (1, 1)]));
    ids.push(job_id(&app.submit_ok(&acct.key, quick("joins the line")).await));
    let (_, page) = app.get(&acct.key, "/jobs?status=queued").await;
    assert_eq!(places(&page), newest_first(&ids, &[(3, 3), (2, 2), (1, 1)]));
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_any_unfinished_job_but_not_a_finished_one() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    let id = job_id(&app.submit_ok(&acct.key, quick("to cancel")).await);
    let (status, job) = app.delete(&acct.key, &format!("/jobs/{id}")).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "cancelled");
    assert!(job["completed_at"].is_string(), "completed_at is set on every terminal state: {job}");
    let (status, body) = app.delete(&acct.key, &format!("/jobs/{id}")).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("already cancelled"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_running_job_stops_it_and_releases_the_hold() {
    let app = TestApp::start_with(|c| {
        c.preview_sampling_time = std::time::Duration::from_secs(20);
        c.lease_ttl = std::time::Duration::from_secs(2);
    })
    .await;
    let acct = app.account("1").await;
    let id = job_id(&app.submit_ok(&acct.key, quick("long")).await);
    let running =
        app.wait_until(&acct.key, &id, |j| j["status"] == "sampling" && j["progress"].as_f64().unwrap() > 0.0).await;
    assert_eq!(running["engine"], "preview");
    assert_eq!(app.account_view(&acct.key).await["held_usd"], "0.1798");
    let (status, job) = app.delete(&acct.key, &format!("/jobs/{id}")).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "cancelled");
    // The worker notices at its next heartbeat and moves on to the next job long before the
    // cancelled one (20 s of simulated sampling) would have finished.
    let cancelled_at = std::time::Instant::now();
    let next = job_id(&app.submit_ok(&acct.key, quick("next")).await);
    app.wait_until(&acct.key, &next, |j| j["status"] != "queued").await;
    assert!(cancelled_at.elapsed() < std::time::Duration::from_secs(10), "the worker kept rendering the cancelled job");
    assert_eq!(app.job(&acct.key, &id).await["status"], "cancelled");
    let account = app.account_view(&acct.key).await;
    assert_eq!(account["balance_usd"], "1.00");
    assert_eq!(account["held_usd"], "0.1798", "only the next job is held");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_over_the_maximum_run_time_fails_with_timeout_and_no_charge() {
    let app = TestApp::start_with(|c| {
        c.preview_sampling_time = std::time::Duration::from_secs(30);
        c.max_run_time = std::time::Duration::from_secs(1);
    })
    .await;
    let acct = app.account("1").await;
    let id = job_id(&app.submit_ok(&acct.key, quick("slow")).await);
    let done = app.wait_terminal(&acct.key, &id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "timeout");
    assert_eq!(done["result"]["error"]["code"], "timeout");
    let account = app.account_view(&acct.key).await;
    assert_eq!((account["balance_usd"].as_str(), account["held_usd"].as_str()), (Some("1.00"), Some("0.00")));
}

/// A plain `GET /jobs/{id}` is answered past the router (api/poll_shortcut.rs); the same poll
/// written so that only the router takes it (an escaped character in the id) must answer alike:
/// same body, same headers of every response, the same refusals.
#[tokio::test(flavor = "multi_thread")]
async fn a_poll_answers_alike_past_the_router_and_through_it() {
    let app = TestApp::start_with(|c| {
        c.workers = 0;
        c.rate_limit_per_minute = 1000;
    })
    .await;
    let acct = app.account("5").await;
    let id = job_id(&app.submit_ok(&acct.key, quick("the same either way")).await);
    let routed_id = id.replacen('-', "%2D", 1);
    let poll = |path: String, key: &str| app.client.get(app.url(&path)).bearer_auth(key).send();
    let plain = poll(format!("/jobs/{id}"), &acct.key).await.unwrap();
    let routed = poll(format!("/jobs/{routed_id}"), &acct.key).await.unwrap();
    for (what, response) in [("past the router", &plain), ("through the router", &routed)] {
        assert_eq!(response.status(), 200, "{what}");
        let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(header("content-type").as_deref(), Some("application/json"), "{what}");
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{what}");
        assert!(header("x-request-id").is_some_and(|v| !v.is_empty()), "{what}");
        assert!(header("ratelimit-policy").is_some_and(|v| v.contains("q=1000")), "{what}");
        assert!(header("ratelimit").is_some(), "{what}");
    }
    let (plain, routed): (serde_json::Value, serde_json::Value) =
        (plain.json().await.unwrap(), routed.json().await.unwrap());
    assert_eq!(plain, routed);
    assert_eq!(plain["job_id"], id.as_str());

    // The same refusals: no key, a wrong key, another account's job, an unknown job.
    let other = app.account("5").await;
    for path in [format!("/jobs/{id}"), format!("/jobs/{routed_id}")] {
        let missing = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(missing.status(), 401, "{path}");
        assert_eq!(poll(path.clone(), &format!("{}:wrong", acct.id)).await.unwrap().status(), 401, "{path}");
        let hidden = poll(path.clone(), &other.key).await.unwrap();
        assert_eq!(hidden.status(), 404, "{path}");
        assert_eq!(hidden.headers()["x-content-type-options"], "nosniff", "{path}");
        let body: serde_json::Value = hidden.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("not found"), "{path}: {body}");
    }
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(app.get(&acct.key, &format!("/jobs/{unknown}")).await.0, 404);
    // A HEAD of the job, which only the router serves, still answers.
    let head = app.client.head(app.url(&format!("/jobs/{id}"))).bearer_auth(&acct.key).send().await.unwrap();
    assert_eq!(head.status(), 200);
}
