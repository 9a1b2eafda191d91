//! PostgreSQL going away under load, as in a restart or a failover: the app reaches the database
//! through a TCP proxy that this test cuts (every connection dropped, new ones refused) for
//! longer than the pool's 5 s acquire timeout, then restores. Meanwhile clients keep submitting,
//! retrying with the same `Idempotency-Key` as they should. They must get 503 with
//! `Retry-After` (never a 500), the service must recover by itself, and afterwards every
//! acknowledged submit has exactly one job.
use crate::helpers::*;
use crate::pg::{admin_url, TestDatabase};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards `listen` to `target` until cut.
struct Proxy {
    listen: SocketAddr,
    target: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy { listen: listener.local_addr().unwrap(), target, tasks: Arc::default() };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (target, tasks) = (self.target, self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(pipe);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Drops every connection and refuses new ones (the port is closed).
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    async fn restore(&self) {
        let listener = TcpListener::bind(self.listen).await.expect("the proxy's port is free again");
        self.serve(listener);
    }
}

fn database_target(url: &str) -> (SocketAddr, String) {
    let after_at = url.split_once('@').map(|(_, rest)| rest).unwrap_or(url);
    let host_port = after_at.split('/').next().unwrap();
    let host_port = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:5432") };
    let host_port = host_port.replace("localhost", "127.0.0.1");
    (host_port.parse().expect("a host:port database URL"), host_port)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: LTX_TEST_DATABASE_URL (scripts/test starts it)"]
async fn a_database_outage_answers_503_with_retry_after_and_loses_nothing() {
    let db = TestDatabase::create().await;
    let (target, host_port) = database_target(&admin_url());
    let proxy = Proxy::start(target).await;
    let proxied = db.url.replace(&host_port, &proxy.listen.to_string());
    let app = TestApp::start_with(|c| {
        c.database_url = Some(proxied.clone());
        c.workers = 0;
    })
    .await;
    let acct = app.account_with_limits("1000", 10_000, 10_000).await;

    let stop = tokio_util::sync::CancellationToken::new();
    let acknowledged: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    // (when, status, Retry-After) of every answer.
    type Answers = Vec<(Instant, u16, Option<String>)>;
    let answers: Arc<Mutex<Answers>> = Arc::default();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let mut clients = Vec::new();
    for c in 0..6 {
        let (stop, http, url, key) = (stop.clone(), http.clone(), app.url(GENERATE), acct.key.clone());
        let (acknowledged, answers) = (acknowledged.clone(), answers.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.is_cancelled() {
                n += 1;
                let idempotency_key = format!("outage-{c}-{n}");
                loop {
                    let sent = http
                        .post(&url)
                        .bearer_auth(&key)
                        .header("Idempotency-Key", &idempotency_key)
                        .json(&json!({"prompt": format!("outage {c}/{n}"), "num_frames": 9}))
                        .send()
                        .await
                        .expect("the app itself stays up");
                    let status = sent.status().as_u16();
                    let retry_after = sent.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                    answers.lock().unwrap().push((Instant::now(), status, retry_after));
                    if status == 200 {
                        let job: Value = sent.json().await.unwrap();
                        acknowledged
                            .lock()
                            .unwrap()
                            .insert(idempotency_key.clone(), job["job_id"].as_str().unwrap().into());
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cut_at = Instant::now();
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(8)).await;
    proxy.restore().await;
    let restored_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.cancel();
    for c in clients {
        c.await.unwrap();
    }

    let answers = answers.lock().unwrap().clone();
    let during: Vec<_> = answers.iter().filter(|(at, ..)| *at > cut_at && *at < restored_at).collect();
    assert!(answers.iter().all(|(_, status, _)| *status == 200 || *status == 503), "only 200 or 503");
    let refused: Vec<_> = during.iter().filter(|(_, status, _)| *status == 503).collect();
    assert!(!refused.is_empty(), "the outage was answered with 503s");
    assert!(refused.iter().all(|(_, _, retry)| retry.as_deref() == Some("2")), "every 503 says Retry-After");
    let recovered = answers.iter().filter(|(at, status, _)| *at > restored_at && *status == 200).count();
    eprintln!(
        "{} answers during the 8 s outage, {} of them 503; {recovered} acknowledged after it",
        during.len(),
        refused.len()
    );
    assert!(recovered > 10, "submits succeed again after the outage without a restart ({recovered})");

    // Every acknowledged submit has exactly one job, and there are no others.
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 20, "the clients got through before and after ({})", acknowledged.len());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    let mut stored: Vec<String> = sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM jobs WHERE account_id = $1")
        .bind(acct.id)
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|id| id.to_string())
        .collect();
    stored.sort();
    let mut expected: Vec<String> = acknowledged.into_values().collect();
    expected.sort();
    assert_eq!(stored, expected, "one job per acknowledged submit: none lost, none twice");
}
