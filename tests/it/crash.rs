//! Crash safety of the real binary: `serve` is SIGKILLed 20 times while clients submit. Clients
//! retry a submit that got no answer (or a 429) with the same `Idempotency-Key`, as they should.
//! Afterwards every submit has exactly one job — none lost, none twice — and the account's
//! balance and holds agree with its jobs.
use crate::cli::start_server;
use crate::helpers::GENERATE;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn usd(text: &Value) -> i64 {
    let text = text.as_str().unwrap();
    let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
    whole.parse::<i64>().unwrap() * 1_000_000 + format!("{frac:0<6}")[..6].parse::<i64>().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_sigkills_during_submits_lose_nothing_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The clients submit as fast as the server answers: no per-key rate limit in their way.
    let mut server = start_server(dir.path(), &["--demo-credits-usd", "1000", "--rate-limit-per-minute", "0"]);
    let key = server.printed_key();
    let base = Arc::new(Mutex::new(server.base.clone()));
    let stop = tokio_util::sync::CancellationToken::new();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();

    // Eight clients, each submitting one request after another until told to stop.
    let acknowledged: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..8 {
        let (base, stop, client, key, acknowledged) =
            (base.clone(), stop.clone(), client.clone(), key.clone(), acknowledged.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.is_cancelled() {
                n += 1;
                let idempotency_key = format!("client-{c}-submit-{n}");
                let body = json!({"prompt": format!("crash test {c}/{n}"), "num_frames": 9});
                // The same key until a 200, across restarts.
                loop {
                    let url = format!("{}{GENERATE}", base.lock().unwrap());
                    let sent = client
                        .post(url)
                        .bearer_auth(&key)
                        .header("Idempotency-Key", &idempotency_key)
                        .json(&body)
                        .send()
                        .await;
                    if let Ok(response) = sent {
                        if response.status() == 200 {
                            let job: Value = response.json().await.unwrap();
                            let id = job["job_id"].as_str().unwrap().to_owned();
                            acknowledged.lock().unwrap().insert(idempotency_key.clone(), id);
                            break;
                        }
                        // 429 (backlog full) and 5xx are answers to retry, with the same key.
                        let status = response.status();
                        assert!(status == 429 || status.is_server_error(), "unexpected {status}");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }

    for kill in 0..20 {
        tokio::time::sleep(Duration::from_millis(150 + (kill * 37) % 200)).await;
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        server = start_server(dir.path(), &["--rate-limit-per-minute", "0"]);
        *base.lock().unwrap() = server.base.clone();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    for c in clients {
        c.await.unwrap();
    }

    let base = server.base.clone();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 20, "the clients got work done between kills: {}", acknowledged.len());
    let mut jobs = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/jobs?limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = client.get(url).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
        jobs.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let ids: HashSet<&str> = jobs.iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), jobs.len(), "each job listed once");
    for (idempotency_key, id) in &acknowledged {
        assert!(ids.contains(id.as_str()), "acknowledged job {id} ({idempotency_key}) was lost");
    }
    assert_eq!(jobs.len(), acknowledged.len(), "one job per submit: none twice, none unaccounted for");

    let account: Value =
        client.get(format!("{base}/account")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    let charged: i64 = jobs.iter().filter(|j| j["status"] == "completed").map(|j| usd(&j["price_usd"])).sum();
    let held: i64 = jobs.iter().filter(|j| j["completed_at"].is_null()).map(|j| usd(&j["price_usd"])).sum();
    assert_eq!(usd(&account["balance_usd"]), 1_000_000_000 - charged, "balance = credit − completed prices: {account}");
    assert_eq!(usd(&account["held_usd"]), held, "holds = prices of unfinished jobs: {account}");
    println!(
        "{} submits acknowledged across 20 SIGKILLs; {} completed",
        acknowledged.len(),
        jobs.iter().filter(|j| j["status"] == "completed").count()
    );
    assert!(crate::cli::sigterm(&mut server).success());
}
