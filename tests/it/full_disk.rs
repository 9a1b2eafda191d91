//! A full disk under the data dir (a small tmpfs filled to the last byte): writes are refused
//! with a retryable 503/507 and a `Retry-After`, never a 500; reads keep working; once space is
//! freed the service recovers by itself, nothing acknowledged is lost and the SQLite store
//! passes `PRAGMA integrity_check`. Mounting needs root, as the test command runs on CI.
use crate::helpers::*;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system; returns the filler to delete.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        while file.write_all(&chunk[..512]).is_ok() {}
        let _ = file.flush();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn assert_refused_cleanly(status: u16, retry_after: Option<&str>, what: &str) {
    assert!(status == 503 || status == 507, "{what}: a full disk is a retryable 503/507, got {status}");
    assert!(retry_after.is_some(), "{what}: {status} without Retry-After");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_data_disk_refuses_writes_cleanly_and_recovers_without_losing_anything() {
    let disk = Tmpfs::mount("24m");
    let data_dir = disk.path().join("data");
    let app = TestApp::start_with(|c| {
        c.data_dir = data_dir.clone();
        c.workers = 0;
    })
    .await;
    let acct = app.account_with_limits("100000", 100_000, 100_000).await;
    let first = app.submit_ok(&acct.key, json!({"prompt": "before the disk filled up", "num_frames": 9})).await;

    let filler = disk.fill();
    let mut acknowledged = vec![first["job_id"].as_str().unwrap().to_owned()];
    let refused = loop {
        assert!(acknowledged.len() < 5000, "the full disk never refused a write");
        let prompt = format!("{} {}", acknowledged.len(), "a long prompt that takes room ".repeat(60));
        let response = app.submit(&acct.key, json!({"prompt": prompt, "num_frames": 9})).await;
        let status = response.status().as_u16();
        if status != 200 {
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            break (status, retry_after, response.text().await.unwrap());
        }
        acknowledged.push(response.json::<serde_json::Value>().await.unwrap()["job_id"].as_str().unwrap().into());
    };
    assert_refused_cleanly(refused.0, refused.1.as_deref(), "submit");
    assert!(refused.2.contains("\"code\""), "a JSON error body: {}", refused.2);

    let png = png_bytes(64, 64, [10, 200, 30]);
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(png).file_name("a.png").mime_str("image/png").unwrap());
    let upload = app.client.post(app.url("/assets")).bearer_auth(&acct.key).multipart(form).send().await.unwrap();
    let retry_after = upload.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    assert_refused_cleanly(upload.status().as_u16(), retry_after.as_deref(), "asset upload");

    let (status, job) = app.get(&acct.key, &format!("/jobs/{}", acknowledged[0])).await;
    assert_eq!(status, 200, "reads still work: {job}");

    std::fs::remove_file(filler).unwrap();
    let after = app.submit_ok(&acct.key, json!({"prompt": "after space was freed", "num_frames": 9})).await;
    acknowledged.push(after["job_id"].as_str().unwrap().to_owned());

    let mut app = app;
    app.stop().await;
    let db = rusqlite::Connection::open(data_dir.join("ltx-serve.db")).unwrap();
    let check: String = db.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
    assert_eq!(check, "ok");
    let stored: i64 = db.query_row("SELECT COUNT(*) FROM jobs", [], |row| row.get(0)).unwrap();
    assert_eq!(stored as usize, acknowledged.len(), "every acknowledged submit, and nothing else");
    for id in &acknowledged {
        let found: i64 = db.query_row("SELECT COUNT(*) FROM jobs WHERE id = ?1", [id], |row| row.get(0)).unwrap();
        assert_eq!(found, 1, "job {id}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_with_a_full_scratch_disk_hands_the_job_back_and_runs_it_once_space_is_freed() {
    // Only the workers' scratch space (`<data dir>/tmp`) is full; the store has room.
    let disk = Tmpfs::mount("4m");
    let data = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(disk.path(), data.path().join("tmp")).unwrap();
    let filler = disk.fill();
    let data_dir = data.path().to_owned();
    let app = TestApp::start_with(|c| c.data_dir = data_dir).await;
    let acct = app.account("5").await;
    let before = app.account_view(&acct.key).await;
    let id = job_id(&app.submit_ok(&acct.key, json!({"prompt": "on a full disk", "num_frames": 9})).await);

    // Leased, tried and handed back again and again (more often than the attempts a job has),
    // never failed: the job is not at fault.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let job = app.job(&acct.key, &id).await;
        assert!(job["completed_at"].is_null(), "a full disk ended the job: {job}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    std::fs::remove_file(filler).unwrap();
    let done = app.wait_terminal(&acct.key, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let after = app.account_view(&acct.key).await;
    let price: f64 = done["price_usd"].as_str().unwrap().parse().unwrap();
    let balance = |view: &serde_json::Value| view["balance_usd"].as_str().unwrap().parse::<f64>().unwrap();
    assert!((balance(&before) - balance(&after) - price).abs() < 1e-9, "charged once: {before} → {after}");
}
