//! The fleet: remote workers leasing over the internal worker API, and several `serve`
//! replicas on one PostgreSQL — with replicas and workers killed mid-run, nothing is lost, run
//! twice or charged twice.
use crate::helpers::*;
use ltx_serve::admin;
use ltx_serve::domain::money::MicroUsd;
use ltx_serve::store::{Accounts, Jobs, LedgerKind, NewAccount, Store};
use ltx_serve::worker::engines::preview::PreviewEngine;
use ltx_serve::worker::queue::WorkQueue;
use ltx_serve::worker::remote::{HttpQueue, RemoteWorker};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_ltx-serve");

pub async fn worker_token(store: &dyn Store) -> String {
    admin::create_worker_token(store, Some("test".into())).await.unwrap()["worker_token"].as_str().unwrap().to_owned()
}

pub fn remote_worker(server: &str, token: &str, name: &str, sampling_ms: u64) -> RemoteWorker {
    RemoteWorker {
        server: server.into(),
        token: token.into(),
        name: name.into(),
        concurrency: 1,
        prefetch_jobs: 1,
        scratch_dir: std::env::temp_dir().join("ltx-serve-test-worker"),
        engine: Arc::new(PreviewEngine::new(Duration::from_millis(sampling_ms))),
        allow_private_urls: true,
        lora_cache_bytes: ltx_serve::worker::inputs::LORA_CACHE_BYTES,
        intermediate_previews: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_worker_runs_jobs_and_shows_in_readyz() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let (status, ready) = app.get("", "/readyz").await;
    assert_eq!(status, 503, "no workers yet: {ready}");
    assert!(ready["error"].as_str().unwrap().contains("no live workers"));

    let token = worker_token(&*app.store).await;
    let bad = ltx_serve::worker::remote::run(
        remote_worker(&app.base, "00000000-0000-0000-0000-000000000000:nope", "w", 0),
        CancellationToken::new(),
    )
    .await;
    assert!(bad.unwrap_err().to_string().contains("refused the worker token"), "a wrong token is a start-up error");

    let stop = CancellationToken::new();
    let worker =
        tokio::spawn(ltx_serve::worker::remote::run(remote_worker(&app.base, &token, "gpu-host-1", 0), stop.clone()));
    let acct = app.account("5").await;
    let id = job_id(&app.submit_ok(&acct.key, quick("remote")).await);
    let job = app.wait_terminal(&acct.key, &id).await;
    assert_eq!(job["status"], "completed", "{job}");
    let video = app.client.get(job["result"]["urls"][0].as_str().unwrap()).send().await.unwrap();
    assert_eq!(video.status(), 200);
    assert_eq!(&video.bytes().await.unwrap()[4..8], b"ftyp", "an MP4 uploaded by the worker");

    let (status, ready) = app.get("", "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    // One host, one name, although its loops (running, prefetching, finishing) all polled.
    assert_eq!(ready["remote_workers"].as_array().unwrap().len(), 1, "{ready}");
    assert_eq!(ready["remote_workers"][0]["name"], "gpu-host-1");
    assert_eq!(ready["remote_workers"][0]["engine"], "preview");
    stop.cancel();
    worker.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_or_stale_lease_is_refused_over_http() {
    let app = TestApp::start_with(|c| {
        c.workers = 0;
        c.lease_ttl = Duration::from_millis(300);
    })
    .await;
    let token = worker_token(&*app.store).await;
    let queue = HttpQueue::new(
        &app.base,
        &token,
        ltx_serve::store::WorkerInfo { name: "w".into(), engine: "preview".into(), ..Default::default() },
    )
    .unwrap();
    let acct = app.account("5").await;
    let id = job_id(&app.submit_ok(&acct.key, quick("to cancel")).await);
    let item = queue.next(Vec::new(), Duration::from_secs(5), &CancellationToken::new()).await.unwrap().expect("a job");
    assert_eq!(item.lease.job_id.to_string(), id);
    let running =
        ltx_serve::store::Progress { status: ltx_serve::domain::job::JobStatus::Sampling, progress: 0.5, engine: None };
    queue.heartbeat(item.lease, running.clone()).await.unwrap();
    assert_eq!(app.job(&acct.key, &id).await["status"], "sampling");

    // Cancelled by its owner: the next heartbeat says so, with 409.
    app.delete(&acct.key, &format!("/jobs/{id}")).await;
    let url = format!("{}/internal/v1/leases/{}/{}/heartbeat", app.base, item.lease.job_id, item.lease.lease_id);
    let reply = app
        .client
        .post(&url)
        .bearer_auth(&token)
        .json(&json!({"worker": "w", "status": "sampling", "progress": 0.6}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 409);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["code"], "lease_lost");
    assert!(body["error"].as_str().unwrap().contains("cancelled"), "{body}");
    let upload =
        format!("{}/internal/v1/leases/{}/{}/files/video.mp4", app.base, item.lease.job_id, item.lease.lease_id);
    let refused = app.client.put(&upload).bearer_auth(&token).body(vec![0u8; 1024]).send().await.unwrap();
    assert_eq!(refused.status(), 409, "a cancelled lease uploads nothing");
    assert!(!app.data_dir.path().join("uploads").join(item.lease.lease_id.simple().to_string()).exists());

    // A lease that expired and was taken over: the old holder's fail is refused.
    let id2 = job_id(&app.submit_ok(&acct.key, quick("expires")).await);
    let first = queue.next(Vec::new(), Duration::from_secs(5), &CancellationToken::new()).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await; // expires; the scheduler requeues it
    let second = queue.next(Vec::new(), Duration::from_secs(5), &CancellationToken::new()).await.unwrap().unwrap();
    assert_eq!(
        (first.lease.job_id, second.lease.job_id, second.attempt),
        (second.lease.job_id, id2.parse().unwrap(), 2)
    );
    let stale = queue.fail(first.lease, ltx_serve::domain::job::FailureCode::EngineError, "late".into()).await;
    assert!(matches!(stale, Err(ltx_serve::store::StoreError::LeaseLost)));
    assert!(app.job(&acct.key, &id2).await["completed_at"].is_null(), "the stale report changed nothing");

    // No token, no work.
    let anonymous = app
        .client
        .post(format!("{}/internal/v1/lease", app.base))
        .json(&json!({"worker": {"name": "x", "engine": "preview"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// A child process killed (SIGKILL) when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `serve` on a fresh data dir and returns it with its base URL.
fn start_replica(database_url: &str, listen: &str, data_dir: &std::path::Path) -> (Proc, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--workers", "0", "--lease-ttl-secs", "2", "--listen", listen, "--database-url", database_url])
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.strip_prefix("ltx-serve listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    (Proc { child }, base)
}

fn start_worker(server: &str, token: &str, name: &str) -> Proc {
    let child = Command::new(BIN)
        .args(["worker", "--server", server, "--name", name, "--preview-sampling-ms", "150"])
        .env("LTX_SERVE_WORKER_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Proc { child }
}

/// Submits with an idempotency key to the preferred replica, falling back to the others, until
/// some replica answers 200: exactly one job per key whichever replica took it.
async fn submit_anywhere(client: &reqwest::Client, bases: &[String], first: usize, key: &str, idem: &str) -> String {
    for attempt in 0..40 {
        let base = &bases[(first + attempt) % bases.len()];
        let sent = client
            .post(format!("{base}{GENERATE}"))
            .bearer_auth(key)
            .header("Idempotency-Key", idem)
            .json(&quick("fleet"))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(response) = sent {
            if response.status() == 200 {
                return job_id(&response.json::<Value>().await.unwrap());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no replica accepted {idem}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn replicas_and_workers_killed_mid_run_lose_nothing_and_charge_once() {
    const JOBS: usize = 200;
    let db = crate::pg::TestDatabase::create().await;
    let store = ltx_serve::store::postgres::PgStore::connect(&db.url).await.unwrap();
    let credits = MicroUsd::parse_usd("1000").unwrap();
    let account = admin::create_account(
        &store,
        NewAccount { name: "fleet".into(), credits, max_concurrent: 1000, max_backlog: 0 },
    )
    .await
    .unwrap();
    let (account_id, key) =
        (account["account_id"].as_str().unwrap().parse().unwrap(), account["api_key"].as_str().unwrap().to_owned());
    let token = worker_token(&store).await;

    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_replica_a, base_a) = start_replica(&db.url, "127.0.0.1:0", dir_a.path());
    let (mut replica_b, base_b) = start_replica(&db.url, "127.0.0.1:0", dir_b.path());
    let mut workers = vec![
        start_worker(&base_a, &token, "w1"),
        start_worker(&base_a, &token, "w2"),
        start_worker(&base_b, &token, "w3"),
    ];

    let client = reqwest::Client::new();
    let bases = vec![base_a.clone(), base_b.clone()];
    let submits: Vec<_> = (0..JOBS)
        .map(|i| {
            let (client, bases, key) = (client.clone(), bases.clone(), key.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20 * i as u64)).await; // a steady stream
                submit_anywhere(&client, &bases, i % 2, &key, &format!("fleet-{i}")).await
            })
        })
        .collect();

    // Mid-run: SIGKILL replica B and worker w1, then bring B back on the same address.
    tokio::time::sleep(Duration::from_secs(2)).await;
    replica_b.kill();
    workers[0].kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let listen_b = base_b.trim_start_matches("http://").to_owned();
    let (_replica_b, _) = start_replica(&db.url, &listen_b, dir_b.path());

    let mut accepted = HashSet::new();
    for submit in submits {
        accepted.insert(submit.await.unwrap());
    }
    assert_eq!(accepted.len(), JOBS, "one job per idempotency key, whichever replica answered");

    // Every job ends, exactly once.
    let deadline = Instant::now() + Duration::from_secs(240);
    let jobs = loop {
        let jobs = store
            .list_jobs(account_id, ltx_serve::store::JobQuery { limit: 10_000, ..Default::default() })
            .await
            .unwrap();
        if jobs.iter().all(|j| j.status.is_terminal()) {
            break jobs;
        }
        let open = jobs.iter().filter(|j| !j.status.is_terminal()).count();
        assert!(Instant::now() < deadline, "{open} jobs never finished");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(jobs.len(), JOBS, "no job was created twice");
    assert_eq!(jobs.iter().map(|j| j.id.to_string()).collect::<HashSet<_>>(), accepted);
    let ledger = store.ledger(account_id, 100_000).await.unwrap();
    let mut charges: HashMap<uuid::Uuid, usize> = HashMap::new();
    let mut releases: HashMap<uuid::Uuid, usize> = HashMap::new();
    for entry in &ledger {
        match entry.kind {
            LedgerKind::Charge => *charges.entry(entry.job_id.unwrap()).or_default() += 1,
            LedgerKind::Release => *releases.entry(entry.job_id.unwrap()).or_default() += 1,
            _ => {}
        }
    }
    let mut charged = 0;
    for job in &jobs {
        match job.status {
            ltx_serve::domain::job::JobStatus::Completed => {
                assert_eq!(charges.get(&job.id), Some(&1), "a completed job is charged once");
                assert_eq!(releases.get(&job.id), None);
                charged += job.price.0;
            }
            _ => {
                assert_eq!(job.failure.as_ref().map(|f| f.code.as_str()), Some("worker_lost"), "{job:?}");
                assert_eq!(charges.get(&job.id), None, "a failed job is never charged");
            }
        }
    }
    let completed = jobs.iter().filter(|j| j.status == ltx_serve::domain::job::JobStatus::Completed).count();
    assert!(completed >= JOBS - 5, "the fleet finished the work ({completed} of {JOBS} completed)");
    let acct = store.account(account_id).await.unwrap();
    assert_eq!(acct.balance.0, credits.0 - charged, "balance = credits − charges");
    assert_eq!((acct.held.0, acct.active_jobs, acct.backlogged_jobs), (0, 0, 0), "nothing left held");
    let attempts: u32 = jobs.iter().map(|j| j.attempts).max().unwrap_or(0);
    assert!(attempts >= 2, "the kills made some job run again (max attempts {attempts})");
    drop(workers);
}
