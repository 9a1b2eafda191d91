//! Load for bench/resources: many submits, many held SSE streams, and a webhook receiver.
//!
//!   bench_load submit BASE KEY N [WEBHOOK_URL]   N submits, 64 in flight; prints the job ids
//!                                                (BENCH_PROMPT, BENCH_FRAMES: the request)
//!   bench_load cancel BASE KEY IDS_FILE          cancels each job, 64 in flight
//!   bench_load sse BASE KEY JOB N SECS           opens N event streams of one job, waits until
//!                                                each has its first event, holds them SECS
//!                                                seconds, prints "open N" and "still_open N"
//!   bench_load receiver ADDR                     POST /hook counts deliveries; GET /count
//!                                                answers "count first_unix_s last_unix_s"
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

const IN_FLIGHT: usize = 64;
const GENERATE: &str = "/generate/video/lightricks/ltx-video-2.3-22b";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg =
        |i: usize| args.get(i).cloned().ok_or_else(|| anyhow::anyhow!("missing argument {i}; see the file's comment"));
    match arg(0)?.as_str() {
        "submit" => submit(&arg(1)?, &arg(2)?, arg(3)?.parse()?, args.get(4).cloned()).await,
        "cancel" => cancel(&arg(1)?, &arg(2)?, &std::fs::read_to_string(arg(3)?)?).await,
        "sse" => sse(&arg(1)?, &arg(2)?, &arg(3)?, arg(4)?.parse()?, arg(5)?.parse()?).await,
        "receiver" => receiver(&arg(1)?).await,
        other => anyhow::bail!("unknown command {other}"),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(IN_FLIGHT).build().expect("client")
}

/// Runs `each` for every item with at most IN_FLIGHT at once.
async fn in_parallel<T, F, Fut>(items: Vec<T>, each: F) -> Vec<Fut::Output>
where
    T: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = Vec::new();
    for item in items {
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let work = each(item);
        tasks.push(tokio::spawn(async move {
            let out = work.await;
            drop(permit);
            out
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

async fn submit(base: &str, key: &str, n: usize, webhook: Option<String>) -> anyhow::Result<()> {
    let client = client();
    let url = format!("{base}{GENERATE}");
    let prompt = std::env::var("BENCH_PROMPT").unwrap_or_else(|_| "benchmark: a lighthouse at dusk".into());
    let frames: u32 = std::env::var("BENCH_FRAMES").ok().and_then(|f| f.parse().ok()).unwrap_or(9);
    let body = serde_json::json!({"prompt": prompt, "num_frames": frames});
    let ids = in_parallel((0..n).collect(), |_| {
        let mut request = client.post(&url).bearer_auth(key).json(&body);
        if let Some(hook) = &webhook {
            request = request.header("X-Webhook-URL", hook);
        }
        let request = request.send();
        async move {
            let answer: serde_json::Value = request.await.ok()?.error_for_status().ok()?.json().await.ok()?;
            answer["job_id"].as_str().map(str::to_owned)
        }
    })
    .await;
    let ok: Vec<String> = ids.into_iter().flatten().collect();
    anyhow::ensure!(ok.len() == n, "only {} of {n} submits were accepted", ok.len());
    println!("{}", ok.join("\n"));
    Ok(())
}

async fn cancel(base: &str, key: &str, ids: &str) -> anyhow::Result<()> {
    let client = client();
    let ids: Vec<String> = ids.lines().map(str::to_owned).collect();
    let n = ids.len();
    let done = in_parallel(ids, |id| {
        let request = client.delete(format!("{base}/jobs/{id}")).bearer_auth(key).send();
        async move { request.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    let ok = done.into_iter().filter(|ok| *ok).count();
    anyhow::ensure!(ok == n, "only {ok} of {n} cancels were accepted");
    Ok(())
}

async fn sse(base: &str, key: &str, job: &str, n: usize, secs: u64) -> anyhow::Result<()> {
    // One client per stream: each holds its own connection, as separate browsers would.
    let (opened, open_now) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (first, hold) = (Arc::new(tokio::sync::Barrier::new(n + 1)), Duration::from_secs(secs));
    for _ in 0..n {
        let (url, key) = (format!("{base}/jobs/{job}/events"), key.to_owned());
        let (opened, open_now, first) = (opened.clone(), open_now.clone(), first.clone());
        tokio::spawn(async move {
            let response = reqwest::Client::new().get(url).bearer_auth(key).send().await;
            let mut stream = match response {
                Ok(r) if r.status().is_success() => r.bytes_stream(),
                _ => {
                    first.wait().await;
                    return;
                }
            };
            let got_event = stream.next().await.is_some_and(|chunk| chunk.is_ok());
            if got_event {
                opened.fetch_add(1, Ordering::SeqCst);
                open_now.fetch_add(1, Ordering::SeqCst);
            }
            first.wait().await;
            if got_event {
                // Keep reading (keep-alives) until the server ends the stream or we stop.
                while let Some(Ok(_)) = stream.next().await {}
                open_now.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }
    first.wait().await;
    println!("open {}", opened.load(Ordering::SeqCst));
    tokio::time::sleep(hold).await;
    println!("still_open {}", open_now.load(Ordering::SeqCst));
    Ok(())
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs_f64()
}

async fn receiver(addr: &str) -> anyhow::Result<()> {
    use axum::routing::{get, post};
    // (count, first, last) delivery times.
    let seen = Arc::new(Mutex::new((0u64, 0f64, 0f64)));
    let record = seen.clone();
    let app = axum::Router::new()
        .route(
            "/hook",
            post(move |_body: axum::body::Bytes| {
                let seen = record.clone();
                async move {
                    let now = unix_now();
                    let mut s = seen.lock().expect("lock");
                    if s.0 == 0 {
                        s.1 = now;
                    }
                    s.0 += 1;
                    s.2 = now;
                    "ok"
                }
            }),
        )
        .route(
            "/count",
            get(move || {
                let seen = seen.clone();
                async move {
                    let s = *seen.lock().expect("lock");
                    format!("{} {:.6} {:.6}", s.0, s.1, s.2)
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
