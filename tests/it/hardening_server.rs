//! Connections that hold the server without using it (issue 21): a head that never completes,
//! a kept-alive connection left idle, more connections than the cap; and the URLs and file
//! routes that answered for directories.
use crate::events::read_events;
use crate::helpers::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap()
}

/// Reads until the server closes the connection, returning how long that took (`None`: it was
/// still open after `limit`).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// Reads one response whose body has a Content-Length; `None` if none came within `limit`.
async fn response_within(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed mid-response: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.parse().unwrap()))
                    .expect("a content-length");
                if body.len() >= length {
                    return text;
                }
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_sends_no_complete_head_is_closed_after_the_header_timeout() {
    let app = TestApp::start_with(|c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let opened = Instant::now();
    // Nothing at all.
    let mut silent = connect(&app).await;
    // Half a head, then nothing: the bytes do not buy more time.
    let mut half = connect(&app).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: te").await.unwrap();
    for (what, stream) in [("silent", &mut silent), ("half a head", &mut half)] {
        closed_within(stream, Duration::from_secs(10)).await.unwrap_or_else(|| panic!("{what}: still open"));
        let closed = opened.elapsed();
        assert!(closed >= Duration::from_millis(800), "{what}: closed too early, after {closed:?}");
    }
    // A client that sends its head in time is served.
    let mut prompt = connect(&app).await;
    prompt.write_all(HEALTHZ).await.unwrap();
    let answer = response_within(&mut prompt, Duration::from_secs(5)).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout_but_not_while_in_use() {
    let app = TestApp::start_with(|c| {
        c.header_read_timeout = Duration::from_secs(30);
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = connect(&app).await;
    // Requests every 400 ms keep it open well past the idle timeout.
    for _ in 0..6 {
        stream.write_all(HEALTHZ).await.unwrap();
        let answer = response_within(&mut stream, Duration::from_secs(5)).await.expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Then idle: closed after about a second, not after the 30 s header timeout.
    let closed = closed_within(&mut stream, Duration::from_secs(10)).await.expect("closed when idle");
    assert!(closed >= Duration::from_millis(400), "closed after {closed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_max_connections_a_connection_waits_until_one_closes() {
    let app = TestApp::start_with(|c| {
        c.max_connections = 3;
        c.header_read_timeout = Duration::from_secs(60);
        c.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&app).await;
        stream.write_all(HEALTHZ).await.unwrap();
        let answer = response_within(&mut stream, Duration::from_secs(5)).await.expect("served under the cap");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(stream); // kept alive, open
    }
    let mut fourth = connect(&app).await; // the kernel completes the handshake: it waits in the backlog
    fourth.write_all(HEALTHZ).await.unwrap();
    assert_eq!(response_within(&mut fourth, Duration::from_secs(2)).await, None, "a 4th connection was served");
    drop(held.pop());
    let answer = response_within(&mut fourth, Duration::from_secs(5)).await.expect("served once a slot is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_stream_outlives_the_idle_timeout() {
    // No worker: the job stays queued, so the stream sends nothing for longer than the timeout.
    let app = TestApp::start_with(|c| {
        c.workers = 0;
        c.idle_timeout = Duration::from_secs(1);
        c.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let acct = app.account("5").await;
    let job = app.submit_ok(&acct.key, quick("waits")).await;
    let id = job_id(&job);
    let response = app.client.get(app.url(&format!("/jobs/{id}/events"))).bearer_auth(&acct.key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let events = tokio::spawn(read_events(response));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, body) = app.delete(&acct.key, &format!("/jobs/{id}")).await;
    assert_eq!(status, 200, "{body}");
    let events = tokio::time::timeout(Duration::from_secs(20), events).await.expect("the stream ends").unwrap();
    assert_eq!(events.last().expect("events")["status"], "cancelled", "{events:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn result_urls_keep_the_public_url_prefix_and_a_result_directory_is_no_redirect() {
    let app = TestApp::start_with(|c| c.public_url = Some("https://example.com/ltx/".into())).await;
    let acct = app.account("5").await;
    let job = app.submit_ok(&acct.key, quick("behind a proxy")).await;
    let done = app.wait_terminal(&acct.key, &job_id(&job)).await;
    assert_eq!(done["status"], "completed", "{done}");
    let video = done["result"]["urls"][0].as_str().unwrap();
    let path = video.strip_prefix("https://example.com/ltx/results/").unwrap_or_else(|| panic!("{video}"));
    let (dir, file) = path.split_once('/').unwrap();
    // What the proxy forwards (prefix stripped): the file is served.
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let got = plain.get(app.url(&format!("/results/{dir}/{file}"))).send().await.unwrap();
    assert_eq!(got.status(), 200);
    // The directory: no redirect (its Location dropped `/results` and the proxy's `/ltx`).
    for path in [format!("/results/{dir}"), format!("/results/{dir}/")] {
        let got = plain.get(app.url(&path)).send().await.unwrap();
        assert_eq!(got.status(), 404, "{path}: {:?}", got.headers().get("location"));
        assert!(got.headers().get("location").is_none(), "{path}");
    }
    let (_, openapi) = app.get(&acct.key, "/openapi.json").await;
    assert_eq!(openapi["servers"][0]["url"], "https://example.com/ltx");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_file_route_answers_404_for_a_directory() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let asset = crate::assets::upload_ok(&app, &acct.key, png_bytes(64, 64, [9, 9, 9]), "a.png").await;
    let token = crate::fleet::worker_token(&*app.store).await;
    for path in ["assets/", "styles/"] {
        let got =
            app.client.get(app.url(&format!("/internal/v1/files/{path}"))).bearer_auth(&token).send().await.unwrap();
        assert_eq!(got.status(), 404, "/internal/v1/files/{path}");
    }
    // A real kept file is still served.
    let url = asset["image_url"].as_str().unwrap_or_else(|| panic!("{asset}"));
    let key = url.split("/files/").nth(1).unwrap();
    let got = app.client.get(app.url(&format!("/internal/v1/files/{key}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(got.status(), 200, "{key}");
}
