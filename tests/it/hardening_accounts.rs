//! Production hardening of accounts (issue 21): per-account storage quotas on uploads, a
//! concurrency limit of 0 refused, and crediting past the maximum balance refused with a clear
//! message — each through the running server or the `ltx-serve admin` binary.
use crate::assets::{encode, quadrants, upload, upload_form, upload_ok};
use crate::helpers::*;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ltx-serve");

fn png() -> Vec<u8> {
    encode(&quadrants(64, 48, [[200, 0, 0], [0, 200, 0], [0, 0, 200], [90, 90, 90]]), image::ImageFormat::Png)
}

fn lora() -> Vec<u8> {
    crate::styles::safetensors(&[
        ("diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight", [4, 4096]),
        ("diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight", [4096, 4]),
    ])
}

async fn upload_style(app: &TestApp, key: &str) -> reqwest::Response {
    let form =
        Form::new().part("file", Part::bytes(lora()).file_name("style.safetensors")).text("title", "noir".to_owned());
    upload_form(app, key, "/styles", form).await
}

/// Files under `dir`, however deep (stored uploads, staged temp files).
fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.map(|e| e.unwrap().path()).map(|p| if p.is_dir() { files_under(&p) } else { 1 }).sum()
}

fn stored_files(app: &TestApp) -> usize {
    files_under(&app.data_dir.path().join("results"))
}

fn staged_files(app: &TestApp) -> usize {
    let tmp = app.data_dir.path().join("tmp");
    std::fs::read_dir(&tmp)
        .map(|d| d.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("upload-")).count())
        .unwrap_or(0)
}

async fn storage(app: &TestApp, key: &str) -> Value {
    app.account_view(key).await["storage"].clone()
}

fn admin(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(["admin", "--data-dir"]).arg(data_dir).args(args).output().unwrap()
}

fn admin_ok(data_dir: &Path, args: &[&str]) -> Value {
    let out = admin(data_dir, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn admin_refused(data_dir: &Path, args: &[&str]) -> String {
    let out = admin(data_dir, args);
    assert!(!out.status.success(), "{args:?} was accepted: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn uploads_past_the_file_quota_get_a_403_naming_it_and_a_delete_frees_room() {
    let app = TestApp::start_with(|c| c.account_storage_files = 2).await;
    let (acct, other) = (app.account("0").await, app.account("0").await);
    let first = upload_ok(&app, &acct.key, png(), "a.png").await;
    let style = upload_style(&app, &acct.key).await;
    assert_eq!(style.status(), 200, "a style counts as a file like an asset");
    let stored = stored_files(&app);

    let refused = assert_error(upload(&app, &acct.key, png(), "c.png").await, 403, "quota of 2 files").await;
    assert_eq!(refused["code"], "storage_quota_exceeded", "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("2 files stored"), "{refused}");
    let refused = assert_error(upload_style(&app, &acct.key).await, 403, "quota of 2 files").await;
    assert_eq!(refused["code"], "storage_quota_exceeded");
    assert_eq!(stored_files(&app), stored, "a refused upload leaves no file in storage");
    assert_eq!(staged_files(&app), 0, "nor a staged temp file");

    let shown = storage(&app, &acct.key).await;
    let size = png().len() as u64 + lora().len() as u64;
    assert_eq!(shown["files_used"], 2, "{shown}");
    assert_eq!(shown["bytes_used"], size, "{shown}");
    assert_eq!((shown["files_quota"].as_u64(), shown["bytes_quota"].as_u64()), (Some(2), Some(10 << 30)));
    upload_ok(&app, &other.key, png(), "mine.png").await; // another account's quota is its own

    let (status, _) = app.delete(&acct.key, &format!("/assets/{}", first["id"].as_str().unwrap())).await;
    assert_eq!(status, 200);
    assert_eq!(storage(&app, &acct.key).await["files_used"], 1, "the delete gave its file back");
    upload_ok(&app, &acct.key, png(), "again.png").await;
}

#[tokio::test]
async fn uploads_past_the_byte_quota_are_refused_saying_the_limit_and_the_use() {
    let lora_bytes = lora().len() as u64;
    let app = TestApp::start_with(|c| c.account_storage_bytes = lora_bytes + 10).await;
    let acct = app.account("0").await;
    let style = upload_style(&app, &acct.key).await;
    assert_eq!(style.status(), 200);
    let style: Value = style.json().await.unwrap();
    let needle = format!("quota of {} bytes ({lora_bytes} bytes in use)", lora_bytes + 10);
    let refused = assert_error(upload_style(&app, &acct.key).await, 403, &needle).await;
    assert_eq!(refused["code"], "storage_quota_exceeded");
    assert_error(upload(&app, &acct.key, png(), "a.png").await, 403, &needle).await;
    assert_eq!(storage(&app, &acct.key).await["bytes_used"], lora_bytes);

    let (status, _) = app.delete(&acct.key, &format!("/styles/{}", style["id"].as_str().unwrap())).await;
    assert_eq!(status, 200);
    assert_eq!(storage(&app, &acct.key).await["bytes_used"], 0, "the delete gave its bytes back");
    upload_ok(&app, &acct.key, png(), "a.png").await;
}

#[tokio::test]
async fn concurrent_uploads_cannot_all_pass_on_the_last_room() {
    let app = TestApp::start_with(|c| c.account_storage_files = 3).await;
    let acct = app.account("0").await;
    let uploads = (0..8).map(|i| upload(&app, &acct.key, png(), if i % 2 == 0 { "a.png" } else { "b.png" }));
    let statuses: Vec<u16> =
        futures_util::future::join_all(uploads).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 5, "{statuses:?}");
    assert_eq!(storage(&app, &acct.key).await["files_used"], 3);
    let (_, page) = app.get(&acct.key, "/assets").await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(3), "{page}");
}

#[tokio::test]
async fn an_accounts_own_quota_is_set_with_the_admin_cli_and_shown_in_its_report() {
    let app = TestApp::start().await; // the defaults: 10 GiB, 10,000 files
    let acct = app.account("0").await;
    let dir = app.data_dir.path();
    let id = acct.id.to_string();
    upload_ok(&app, &acct.key, png(), "a.png").await;

    let set = admin_ok(dir, &["quota", "set", "--account", &id, "--files", "1"]);
    assert_eq!((set["storage"]["files_quota"].as_u64(), set["storage"]["bytes_quota"].as_u64()), (Some(1), None));
    assert_error(upload(&app, &acct.key, png(), "b.png").await, 403, "quota of 1 files").await;
    let shown = admin_ok(dir, &["account", "show", "--account", &id]);
    assert_eq!(shown["storage"]["files_used"], 1, "{shown}");
    assert_eq!(shown["storage"]["bytes_used"], png().len() as u64, "{shown}");
    assert_eq!(storage(&app, &acct.key).await["files_quota"], 1, "GET /account shows the quota that applies");

    admin_ok(dir, &["quota", "set", "--account", &id, "--files", "0"]);
    assert_eq!(storage(&app, &acct.key).await["files_quota"], 0, "0 is no limit");
    upload_ok(&app, &acct.key, png(), "b.png").await;
    let back = admin_ok(dir, &["quota", "set", "--account", &id, "--files", "default"]);
    assert!(back["storage"]["files_quota"].is_null(), "{back}");
    assert_eq!(storage(&app, &acct.key).await["files_quota"], 10_000, "the server's default again");
    assert!(admin_refused(dir, &["quota", "set", "--account", &id, "--files", "lots"]).contains("neither a number"));
}

#[tokio::test]
async fn a_concurrency_limit_of_zero_is_refused_by_the_admin_cli() {
    let dir = tempfile::tempdir().unwrap();
    let created = admin_ok(dir.path(), &["account", "create", "--name", "z", "--max-concurrent", "2"]);
    let id = created["account_id"].as_str().unwrap().to_owned();
    let why = admin_refused(dir.path(), &["account", "create", "--name", "y", "--max-concurrent", "0"]);
    assert!(why.contains("at least 1"), "{why}");
    let why = admin_refused(dir.path(), &["limits", "set", "--account", &id, "--max-concurrent", "0"]);
    assert!(why.contains("at least 1"), "{why}");
    let shown = admin_ok(dir.path(), &["account", "show", "--account", &id]);
    assert_eq!(shown["max_concurrent"], 2, "the refused change changed nothing");
}

#[tokio::test]
async fn crediting_past_the_maximum_balance_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let created = admin_ok(dir.path(), &["account", "create", "--name", "rich", "--credits-usd", "5000000000000"]);
    let id = created["account_id"].as_str().unwrap().to_owned();
    let why = admin_refused(dir.path(), &["credits", "add", "--account", &id, "--usd", "5000000000000"]);
    assert!(why.contains("would pass the maximum of $9223372036854.775807"), "{why}");
    assert!(!why.to_lowercase().contains("sql") && !why.contains("integer overflow"), "no raw store error: {why}");
    let shown = admin_ok(dir.path(), &["account", "show", "--account", &id]);
    assert_eq!(shown["balance_usd"], "5000000000000.00", "the refused credit changed nothing");
    admin_ok(dir.path(), &["credits", "add", "--account", &id, "--usd", "1"]);
}
