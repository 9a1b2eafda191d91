//! Dispatch latency (submit → a waiting worker holds the lease) and lease throughput (many
//! concurrent leasing loops draining a deep queue) on the SQLite or the PostgreSQL store.
//! On PostgreSQL the submitter and the workers use separate stores (two pools and two LISTEN
//! connections), as two replicas would. Prints markdown table rows; `bench/dispatch` runs it.
//!
//! Usage: bench_dispatch sqlite|postgres [DATABASE_URL] [ROUNDS] [QUEUE_DEPTH] [LEASERS]
use ltx_serve::domain::money::MicroUsd;
use ltx_serve::domain::request::{AspectRatio, GenerateRequest};
use ltx_serve::leasing::lease_within;
use ltx_serve::store::*;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn job(account: Uuid) -> NewJob {
    NewJob {
        id: Uuid::new_v4(),
        account_id: account,
        kind: "ltx-video-2.3-22b".into(),
        request: GenerateRequest {
            prompt: "bench".into(),
            start_image: None,
            start_video: None,
            end_image: None,
            aspect_ratio: AspectRatio::Landscape,
            duration: 5,
            num_frames: 9,
            seed: Some(1),
            generate_audio: true,
            styles: vec![],
            mode: None,
            quality: None,
            enhance_prompt: false,
        },
        seed: 1,
        width: 1280,
        height: 720,
        price: MicroUsd(1),
        price_tier_seconds: 5,
        webhook_url: None,
        idempotency: None,
    }
}

async fn account(store: &dyn Store) -> Uuid {
    let new = NewAccount { name: "bench".into(), credits: MicroUsd(1 << 40), max_concurrent: 1 << 30, max_backlog: 0 };
    store.create_account(new).await.unwrap().id
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn result() -> JobResult {
    JobResult {
        video_key: "k".into(),
        poster_key: "p".into(),
        width: 1280,
        height: 720,
        num_frames: 9,
        fps: 24,
        has_audio: true,
        engine: "bench".into(),
        enhanced_prompt: None,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map(String::as_str).unwrap_or("sqlite");
    let url = args.get(2).cloned().unwrap_or_default();
    let rounds: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(300);
    let depth: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let leasers: usize = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(64);
    let dir = tempfile::tempdir().unwrap();
    let (front, back): (Arc<dyn Store>, Arc<dyn Store>) = match kind {
        "sqlite" => {
            let store: Arc<dyn Store> = Arc::new(sqlite::SqliteStore::open(dir.path()).unwrap());
            (store.clone(), store)
        }
        _ => (
            Arc::new(postgres::PgStore::connect(&url).await.unwrap()),
            Arc::new(postgres::PgStore::connect(&url).await.unwrap()),
        ),
    };
    let acct = account(&*front).await;

    // Dispatch: the worker waits the way workers do (the store's wake-up, else a 1 s poll).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let worker_store = back.clone();
    let dispatcher = tokio::spawn(async move {
        let me = WorkerLease::named("bench");
        loop {
            if let Some(lease) = lease_within(
                &*worker_store,
                &me,
                Duration::from_secs(60),
                Duration::from_secs(10),
                &CancellationToken::new(),
            )
            .await
            .unwrap()
            {
                let at = Instant::now();
                worker_store.complete(lease.lease, result()).await.unwrap();
                if tx.send(at).is_err() {
                    return;
                }
            }
        }
    });
    let (mut dispatch, mut submit) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(15)).await; // the worker is idle and waiting
        let t0 = Instant::now();
        front.submit(job(acct)).await.unwrap().unwrap();
        submit.push(t0.elapsed().as_secs_f64() * 1000.0);
        let leased_at = rx.recv().await.unwrap();
        dispatch.push((leased_at - t0).as_secs_f64() * 1000.0);
    }
    dispatcher.abort();
    drop(rx);
    dispatch.sort_by(f64::total_cmp);
    submit.sort_by(f64::total_cmp);

    // Lease throughput: a deep queue drained by many concurrent leasing loops.
    let fillers: Vec<_> = (0..16)
        .map(|_| {
            let store = front.clone();
            tokio::spawn(async move {
                let acct = account(&*store).await;
                for _ in 0..depth / 16 {
                    store.submit(job(acct)).await.unwrap().unwrap();
                }
            })
        })
        .collect();
    for f in fillers {
        f.await.unwrap();
    }
    let queued = (depth / 16) * 16;
    let t0 = Instant::now();
    let loops: Vec<_> = (0..leasers)
        .map(|i| {
            let store = if i % 2 == 0 { front.clone() } else { back.clone() };
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let me = WorkerLease::named(format!("leaser-{i}"));
                while let Some(lease) = store.lease(me.clone(), Duration::from_secs(600)).await.unwrap() {
                    mine.push(lease.lease.job_id);
                }
                mine
            })
        })
        .collect();
    let mut leased = Vec::new();
    for l in loops {
        leased.extend(l.await.unwrap());
    }
    let secs = t0.elapsed().as_secs_f64();
    let unique = leased.iter().collect::<HashSet<_>>().len();
    assert_eq!(unique, leased.len(), "a job was leased twice");
    assert!(leased.len() >= queued, "{} of {queued} jobs leased", leased.len());
    println!(
        "| {kind} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} × {} | {:.0} | {} |",
        percentile(&dispatch, 0.5),
        percentile(&dispatch, 0.99),
        dispatch[dispatch.len() - 1],
        percentile(&submit, 0.5),
        percentile(&submit, 0.99),
        leasers,
        leased.len(),
        leased.len() as f64 / secs,
        if unique == leased.len() { "none" } else { "SOME" },
    );
}
