//! The HTTP ceiling for bench/run: a bare axum `GET /ping` on the same runtime settings as
//! ltx-serve. Usage: bench_hello 127.0.0.1:PORT
use axum::routing::get;

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8099".into());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    let app = axum::Router::new().route("/ping", get(|| async { "pong" }));
    axum::serve(listener, app).await.expect("serve");
}
