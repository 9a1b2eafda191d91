//! Over the concurrency limit a job is backlogged; over the backlog too it is 429. Backlogged
//! jobs are promoted in the order they came.
use crate::helpers::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn over_the_limit_jobs_wait_in_the_backlog_then_429() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account_with_limits("5", 1, 2).await;
    let first = app.submit_ok(&acct.key, quick("1")).await;
    let second = app.submit_ok(&acct.key, quick("2")).await;
    let third = app.submit_ok(&acct.key, quick("3")).await;
    assert_eq!(first["status"], "queued");
    assert_eq!((second["status"].as_str(), second["queue_position"].as_u64()), (Some("backlogged"), Some(1)));
    assert_eq!((third["status"].as_str(), third["queue_position"].as_u64()), (Some("backlogged"), Some(2)));
    let response = app.submit(&acct.key, quick("4")).await;
    assert!(response.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_error(response, 429, "Too many jobs").await;
    // 429 holds nothing: three jobs are held.
    assert_eq!(app.account_view(&acct.key).await["held_usd"], json!(ltx_serve::domain::money::MicroUsd(3 * 179_800)));

    let account = app.account_view(&acct.key).await;
    assert_eq!((account["active_jobs"].as_u64(), account["backlogged_jobs"].as_u64()), (Some(1), Some(2)));

    // A freed slot promotes the oldest backlogged job.
    app.delete(&acct.key, &format!("/jobs/{}", job_id(&first))).await;
    assert_eq!(app.job(&acct.key, &job_id(&second)).await["status"], "queued");
    let third = app.job(&acct.key, &job_id(&third)).await;
    assert_eq!((third["status"].as_str(), third["queue_position"].as_u64()), (Some("backlogged"), Some(1)));
}

#[tokio::test(flavor = "multi_thread")]
async fn backlogged_jobs_run_in_order() {
    let app = TestApp::start().await;
    let acct = app.account_with_limits("5", 1, 10).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(job_id(&app.submit_ok(&acct.key, quick(&format!("in order {i}"))).await));
    }
    let mut finished = Vec::new();
    for id in &ids {
        let job = app.wait_terminal(&acct.key, id).await;
        assert_eq!(job["status"], "completed", "{job}");
        finished.push((time_of(&job["started_at"]), time_of(&job["completed_at"])));
    }
    for pair in finished.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "a job started before the one ahead of it finished: {pair:?}");
    }
}

fn time_of(value: &serde_json::Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(value.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
}
