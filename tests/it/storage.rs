//! Results in an S3-compatible bucket: a local S3 server (moto, from the test venv) stands in
//! for AWS. Files uploaded by a remote worker land in the bucket, the job's links are presigned
//! and download the MP4, and the same object without a signature is refused.
use crate::helpers::*;
use ltx_serve::storage::StorageConfig;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

struct S3Server {
    child: Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_s3() -> S3Server {
    let python = std::env::var("LTX_TEST_PYTHON")
        .expect("LTX_TEST_PYTHON is not set: run the suite with scripts/test, which installs moto");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(python)
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = S3Server { child, endpoint: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(&server.endpoint).await.is_err() {
        assert!(Instant::now() < deadline, "moto's S3 server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server
}

fn s3_config(endpoint: &str, bucket: &str) -> StorageConfig {
    StorageConfig::S3 {
        bucket: bucket.into(),
        prefix: "ltx/results".into(),
        endpoint: Some(endpoint.into()),
        region: Some("us-east-1".into()),
        access_key_id: Some("test-key".into()),
        secret_access_key: Some("test-secret".into()),
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the test tools venv: LTX_TEST_PYTHON (scripts/test makes it)"]
async fn results_go_to_s3_and_links_are_presigned() {
    let s3 = start_s3().await;
    let created = reqwest::Client::new().put(format!("{}/clips", s3.endpoint)).send().await.unwrap();
    assert!(created.status().is_success(), "bucket created: {}", created.status());
    let storage = s3_config(&s3.endpoint, "clips");
    let app = TestApp::start_with(|c| {
        c.workers = 0;
        c.storage = storage;
    })
    .await;
    let token = ltx_serve::admin::create_worker_token(&*app.store, None).await.unwrap()["worker_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let stop = CancellationToken::new();
    let worker = ltx_serve::worker::remote::RemoteWorker {
        server: app.base.clone(),
        token,
        name: "s3-worker".into(),
        concurrency: 1,
        prefetch_jobs: 1,
        scratch_dir: std::env::temp_dir().join("ltx-serve-test-worker"),
        engine: std::sync::Arc::new(ltx_serve::worker::engines::preview::PreviewEngine::new(Duration::ZERO)),
        allow_private_urls: true,
        lora_cache_bytes: ltx_serve::worker::inputs::LORA_CACHE_BYTES,
        intermediate_previews: false,
    };
    let running = tokio::spawn(ltx_serve::worker::remote::run(worker, stop.clone()));

    let acct = app.account("5").await;
    let id = job_id(&app.submit_ok(&acct.key, quick("to the bucket")).await);
    let job = app.wait_terminal(&acct.key, &id).await;
    assert_eq!(job["status"], "completed", "{job}");
    let video_url = job["result"]["urls"][0].as_str().unwrap();
    assert!(video_url.starts_with(&format!("{}/clips/ltx/results/", s3.endpoint)), "{video_url}");
    assert!(video_url.contains("X-Amz-Signature="), "presigned: {video_url}");
    let video = reqwest::get(video_url).await.unwrap();
    assert_eq!(video.status(), 200);
    assert_eq!(video.headers()["content-type"], "video/mp4");
    // Stored with its exact type and disposition: S3 keeps no nosniff header, so nothing is guessed.
    assert_eq!(video.headers()["content-disposition"], "inline; filename=\"video.mp4\"");
    assert_eq!(&video.bytes().await.unwrap()[4..8], b"ftyp");
    let poster = reqwest::get(job["result"]["thumbnail_url"].as_str().unwrap()).await.unwrap();
    assert_eq!(&poster.bytes().await.unwrap()[..2], &[0xFF, 0xD8], "a JPEG poster");
    let unsigned = video_url.split('?').next().unwrap();
    assert_eq!(reqwest::get(unsigned).await.unwrap().status(), 403, "the bucket is private");
    assert!(!app.data_dir.path().join("results").exists(), "nothing was kept on the server's disk");
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_bucket_stops_start_up_with_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = ltx_serve::config::ServeConfig::new(tempfile::tempdir().unwrap().path().to_owned());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.storage = s3_config(&format!("http://127.0.0.1:{port}"), "clips");
    let error = match ltx_serve::app::Application::build(config).await {
        Ok(_) => panic!("started without its bucket"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("result storage") && error.contains("s3://clips/ltx/results"), "{error}");
}
