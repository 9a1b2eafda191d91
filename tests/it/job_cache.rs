//! The replica-local job cache on PostgreSQL: polls are answered from memory, yet a change made
//! anywhere — another replica, a raw statement from another process — shows on the next poll
//! within one notification's trip, and a lost LISTEN connection never leaves a stale answer.
use crate::helpers::*;
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use std::time::{Duration, Instant};

async fn replica(db: &crate::pg::TestDatabase) -> TestApp {
    TestApp::start_with(|c| {
        c.database_url = Some(db.url.clone());
        c.workers = 0;
    })
    .await
}

/// Polls until `done` holds, failing after `within` (far below the cache's 5 s expiry, so only a
/// notification can have made the change show).
async fn poll_until(app: &TestApp, key: &str, id: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let job = app.job(key, id).await;
        if done(&job) {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "the change did not show within {within:?}: {job}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn cache_lookups(metrics: &str, outcome: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("ltx_job_cache_lookups_total") && l.contains(&format!("outcome=\"{outcome}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics(app: &TestApp) -> String {
    app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap()
}

async fn set_progress(db: &crate::pg::TestDatabase, id: &str, status: &str, progress: f64) {
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE jobs SET status = $1, progress = $2 WHERE id = $3::uuid")
        .bind(status)
        .bind(progress)
        .bind(id)
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn a_poll_on_one_replica_sees_a_change_made_on_another_within_a_notification() {
    let db = crate::pg::TestDatabase::create().await;
    let a = replica(&db).await;
    let b = replica(&db).await;
    let acct = a.account("5").await;
    let id = job_id(&a.submit_ok(&acct.key, quick("seen from b")).await);

    // B reads it (and keeps it); polls then come from memory. Not necessarily the very next ones:
    // B may still be connecting its LISTEN (it keeps nothing until then), or hear the submit's own
    // notification after its first read (which drops that read). Once those have passed, a whole
    // round of polls is answered from memory.
    let settle_by = Instant::now() + Duration::from_secs(10);
    loop {
        let hits_before = cache_lookups(&metrics(&b).await, "hit");
        for _ in 0..20 {
            assert_eq!(b.job(&acct.key, &id).await["status"], "queued");
        }
        let hits = cache_lookups(&metrics(&b).await, "hit") - hits_before;
        if hits >= 20.0 {
            break;
        }
        assert!(Instant::now() < settle_by, "B answered only {hits} of 20 polls from memory");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A change by another process (a raw statement: no replica's code ran) shows on B...
    set_progress(&db, &id, "processing", 0.25).await;
    poll_until(&b, &acct.key, &id, Duration::from_secs(2), |j| j["status"] == "processing" && j["progress"] == 0.25)
        .await;
    // ...and so does one that leaves the job where it is in line (progress only).
    b.job(&acct.key, &id).await;
    set_progress(&db, &id, "processing", 0.5).await;
    poll_until(&b, &acct.key, &id, Duration::from_secs(2), |j| j["progress"] == 0.5).await;

    // A cancel through replica A shows on B, and at once on A itself (its canceller polls A).
    b.job(&acct.key, &id).await;
    let (status, cancelled) = a.delete(&acct.key, &format!("/jobs/{id}")).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(a.job(&acct.key, &id).await["status"], "cancelled");
    poll_until(&b, &acct.key, &id, Duration::from_secs(2), |j| j["status"] == "cancelled").await;

    // Another account still gets 404 for it from memory.
    let other = a.account("5").await;
    let (status, _) = b.get(&other.key, &format!("/jobs/{id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn a_queued_jobs_place_in_line_moves_when_a_job_ahead_leaves_the_queue() {
    let db = crate::pg::TestDatabase::create().await;
    let a = replica(&db).await;
    let b = replica(&db).await;
    let acct = a.account("5").await;
    let first = job_id(&a.submit_ok(&acct.key, quick("first")).await);
    let second = job_id(&a.submit_ok(&acct.key, quick("second")).await);
    let place = |j: &Value| j["queue_position"].as_u64();
    assert_eq!(place(&b.job(&acct.key, &second).await), Some(2));
    assert_eq!(place(&b.job(&acct.key, &second).await), Some(2));
    let heads_read = cache_lookups(&metrics(&b).await, "placed");
    // The job ahead leaves the queue: the second job's own row did not change, its place did...
    let (status, _) = a.delete(&acct.key, &format!("/jobs/{first}")).await;
    assert_eq!(status, 200);
    poll_until(&b, &acct.key, &second, Duration::from_secs(2), |j| place(j) == Some(1)).await;
    // ...counted again against the queue's head (the metrics registry is the test process's, so
    // this shows that path ran; job_cache.rs's unit tests show what it answers).
    assert!(cache_lookups(&metrics(&b).await, "placed") > heads_read, "the queue's head was read");
}

/// A job that never ran moved to `status` by a raw statement (its progress stays 0).
async fn set_status(db: &crate::pg::TestDatabase, id: &str, status: &str) {
    set_progress(db, id, status, 0.0).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn places_follow_every_move_the_store_announces_through_a_cached_head() {
    // B's copy of the queue's head is patched from each update's notification (leases,
    // hand-backs), not read again: the places it answers must still be the store's.
    let db = crate::pg::TestDatabase::create().await;
    let a = replica(&db).await;
    let b = replica(&db).await;
    let acct = a.account_with_limits("5", 10, 100).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(job_id(&a.submit_ok(&acct.key, quick(&format!("job {n}"))).await));
    }
    let last = &ids[3];
    let place = |j: &Value| j["queue_position"].as_u64();
    let within = Duration::from_secs(2);
    poll_until(&b, &acct.key, last, within, |j| place(j) == Some(4)).await;
    // Leases (raw statements, as from another process) move it up...
    set_status(&db, &ids[0], "scheduled").await;
    poll_until(&b, &acct.key, last, within, |j| place(j) == Some(3)).await;
    set_status(&db, &ids[1], "scheduled").await;
    poll_until(&b, &acct.key, last, within, |j| place(j) == Some(2)).await;
    // ...a job queued again at its old time enters ahead of it, and one that leaves the queue
    // for good moves it up again.
    set_status(&db, &ids[0], "queued").await;
    poll_until(&b, &acct.key, last, within, |j| place(j) == Some(3)).await;
    set_status(&db, &ids[2], "cancelled").await;
    poll_until(&b, &acct.key, last, within, |j| place(j) == Some(2)).await;
    // Every place B answered from memory is the one the store counts: ask a fresh replica.
    let c = replica(&db).await;
    for id in [&ids[0], &ids[3]] {
        let (from_b, from_c) = (b.job(&acct.key, id).await, c.job(&acct.key, id).await);
        assert_eq!(place(&from_b), place(&from_c), "{id}: {from_b} / {from_c}");
    }
    assert_eq!(place(&b.job(&acct.key, &ids[0]).await), Some(1));
    // A page listed on B places its queued jobs against the same copy of the head.
    let (status, page) = b.get(&acct.key, "/jobs?limit=10").await;
    assert_eq!(status, 200, "{page}");
    let listed: Vec<(String, Option<u64>)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["job_id"].as_str().unwrap().to_owned(), place(j)))
        .collect();
    let mut expected = Vec::new();
    for id in ids.iter().rev() {
        expected.push((id.clone(), place(&c.job(&acct.key, id).await)));
    }
    assert_eq!(listed, expected);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn a_submit_announces_its_job_entering_the_queue_and_a_lease_its_leaving() {
    // What every replica hears on `ltx_jobs`: precise enough to patch a copy of the queue's
    // head, so that no replica reads the head again for a submit or a lease.
    let db = crate::pg::TestDatabase::create().await;
    let a = replica(&db).await;
    let acct = a.account("5").await;
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen("ltx_jobs").await.unwrap();
    let id = job_id(&a.submit_ok(&acct.key, quick("announced")).await);
    set_status(&db, &id, "scheduled").await;
    let mut heard = Vec::new();
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await {
        heard.push(n.payload().to_owned());
    }
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let queued_at: i64 = sqlx::query_scalar("SELECT queued_at FROM jobs WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(heard, [format!("{id}m/{queued_at}"), format!("{id}m{queued_at}/")], "and nothing vaguer (Q)");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn after_the_listen_connection_is_killed_no_poll_is_answered_stale() {
    let db = crate::pg::TestDatabase::create().await;
    let app = replica(&db).await;
    let acct = app.account("5").await;
    let id = job_id(&app.submit_ok(&acct.key, quick("listened")).await);
    set_progress(&db, &id, "processing", 0.1).await;
    poll_until(&app, &acct.key, &id, Duration::from_secs(2), |j| j["progress"] == 0.1).await;
    app.job(&acct.key, &id).await; // cached

    // Kill the replica's LISTEN connection (the one whose last statement was a LISTEN).
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(killed, vec![true], "one LISTEN connection");
    // Let the replica notice, then change the job while nothing can tell it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    sqlx::query("UPDATE jobs SET progress = 0.9 WHERE id = $1::uuid").bind(&id).execute(&mut conn).await.unwrap();

    // Every poll from now on — while it reconnects and after — shows the change.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        let job = app.job(&acct.key, &id).await;
        assert_eq!(job["progress"], 0.9, "a stale answer {:?} after the kill: {job}", start.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And it listens again: a later change shows within a notification.
    sqlx::query("UPDATE jobs SET progress = 0.95 WHERE id = $1::uuid").bind(&id).execute(&mut conn).await.unwrap();
    poll_until(&app, &acct.key, &id, Duration::from_secs(2), |j| j["progress"] == 0.95).await;
}
