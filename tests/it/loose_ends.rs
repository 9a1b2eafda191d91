//! Loose ends of the hardening (issue 21): a job leased ahead is not held hostage behind a slow
//! one, and replicas starting at once on one database create one demo account between them.
use crate::helpers::*;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread")]
async fn a_job_leased_ahead_behind_a_slow_one_goes_back_to_an_idle_worker() {
    let app = TestApp::start_with(|c| {
        c.preview_sampling_time = Duration::from_secs(30);
        c.prefetch_jobs = 1;
        c.prefetch_max_wait = Duration::from_secs(1);
    })
    .await;
    let acct = app.account("5").await;
    let slow = job_id(&app.submit_ok(&acct.key, quick("slow")).await);
    app.wait_until(&acct.key, &slow, |j| j["status"] == "sampling").await;
    // The busy in-process worker leases the next job ahead.
    let next = job_id(&app.submit_ok(&acct.key, quick("next")).await);
    app.wait_until(&acct.key, &next, |j| j["status"] != "queued").await;

    // An idle worker elsewhere gets it, long before the slow job (30 s) has finished.
    let started = Instant::now();
    let token = crate::fleet::worker_token(&*app.store).await;
    let stop = CancellationToken::new();
    let idle = tokio::spawn(ltx_serve::worker::remote::run(
        crate::fleet::remote_worker(&app.base, &token, "idle-gpu", 0),
        stop.clone(),
    ));
    let done = app.wait_terminal(&acct.key, &next).await;
    let took = started.elapsed();
    stop.cancel();
    idle.await.unwrap().unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert!(took < Duration::from_secs(12), "the job waited {took:?} behind the slow one");
    let slow_now = app.job(&acct.key, &slow).await;
    assert_eq!(slow_now["status"], "sampling", "the slow job is still running: {slow_now}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn replicas_starting_at_once_on_one_database_create_one_demo_account() {
    for round in 0..3 {
        let db = crate::pg::TestDatabase::create().await;
        // Three `serve` processes started at the same moment, as an orchestrator starts replicas.
        let starts: Vec<_> = (0..3)
            .map(|_| {
                let url = db.url.clone();
                std::thread::spawn(move || {
                    let dir = tempfile::tempdir().unwrap();
                    let server = crate::cli::start_server(dir.path(), &["--database-url", &url, "--workers", "0"]);
                    (server, dir)
                })
            })
            .collect();
        let mut servers: Vec<_> = starts.into_iter().map(|s| s.join().unwrap()).collect();
        let printed_keys = servers.iter().filter(|(s, _)| s.printed.contains("API key")).count();
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
        let accounts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts").fetch_one(&mut conn).await.unwrap();
        let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys").fetch_one(&mut conn).await.unwrap();
        drop(conn);
        // The key shown works on every replica (they share the database).
        let key = servers.iter().find(|(s, _)| s.printed.contains("API key")).map(|(s, _)| s.printed_key());
        let client = reqwest::Client::new();
        let mut answers = Vec::new();
        for (server, _) in &servers {
            let key = key.clone().unwrap_or_default();
            answers
                .push(client.get(format!("{}/account", server.base)).bearer_auth(key).send().await.unwrap().status());
        }
        for (server, _) in &mut servers {
            assert!(crate::cli::sigterm(server).success());
        }
        assert_eq!((accounts, keys, printed_keys), (1, 1, 1), "round {round}: one demo account, one key, shown once");
        assert!(answers.iter().all(|s| *s == 200), "the key works on every replica: {answers:?}");
    }
}
