//! Baselines for dispatch latency, measured in the same run: PostgreSQL's own LISTEN/NOTIFY
//! round trip (one connection notifies in autocommit, another receives) and a raw single-row
//! durable INSERT commit, with nothing of ours in between.
//!
//! Usage: bench_notify DATABASE_URL [ROUNDS]
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection};
use std::time::{Duration, Instant};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = &args[1];
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(300);
    let mut listener = PgListener::connect(url).await.unwrap();
    listener.listen("bench_baseline").await.unwrap();
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_baseline (id bigserial PRIMARY KEY, v text)")
        .execute(&mut conn)
        .await
        .unwrap();
    let (mut notify, mut insert) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let t0 = Instant::now();
        sqlx::query("SELECT pg_notify('bench_baseline', '')").execute(&mut conn).await.unwrap();
        listener.recv().await.unwrap();
        notify.push(t0.elapsed().as_secs_f64() * 1000.0);
        let t0 = Instant::now();
        sqlx::query("INSERT INTO bench_baseline (v) VALUES ('x')").execute(&mut conn).await.unwrap();
        insert.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    notify.sort_by(f64::total_cmp);
    insert.sort_by(f64::total_cmp);
    println!(
        "| postgres baseline: raw NOTIFY→LISTEN round trip | {:.2} | {:.2} | {:.2} | raw INSERT commit: {:.2} | {:.2} | – | – | – |",
        percentile(&notify, 0.5),
        percentile(&notify, 0.99),
        notify[notify.len() - 1],
        percentile(&insert, 0.5),
        percentile(&insert, 0.99),
    );
}
