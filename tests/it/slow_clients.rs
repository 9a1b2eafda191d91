//! Slow clients: a body that stops arriving is cut off with 408, and while dozens of them hang,
//! everyone else is served.
use crate::helpers::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends the head of a request and the first bytes of its body, then nothing more.
async fn stalled(addr: &str, key: &str, path: &str, content_type: &str, start_of_body: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: {content_type}\r\n\
         Content-Length: 100000\r\n\r\n{start_of_body}"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

async fn answer(mut stream: TcpStream) -> String {
    let mut buffer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buffer)).await.expect("an answer").unwrap();
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_bodies_get_408_and_do_not_starve_others() {
    let app = TestApp::start_with(|c| c.body_idle_timeout = Duration::from_secs(1)).await;
    let acct = app.account("5").await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut hanging = Vec::new();
    for i in 0..40 {
        let stream = if i % 2 == 0 {
            stalled(&addr, &acct.key, GENERATE, "application/json", "{\"prompt\": \"slo").await
        } else {
            let boundary = "XyZ";
            let part = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n\u{89}PNG"
            );
            stalled(&addr, &acct.key, "/assets", &format!("multipart/form-data; boundary={boundary}"), &part).await
        };
        hanging.push(stream);
    }
    // Meanwhile the service answers everyone else.
    let quick_client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let health = quick_client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let job =
        quick_client.post(app.url(GENERATE)).bearer_auth(&acct.key).json(&quick("not starved")).send().await.unwrap();
    assert_eq!(job.status(), 200);

    for stream in hanging {
        let answer = answer(stream).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("sent nothing for 1 s"), "{answer}");
    }
    // Nothing half-uploaded was kept.
    assert_eq!(app.get(&acct.key, "/assets").await.1["items"], serde_json::json!([]));
    let staged = std::fs::read_dir(app.data_dir.path().join("tmp"))
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("upload-")).count())
        .unwrap_or(0);
    assert_eq!(staged, 0);
}
