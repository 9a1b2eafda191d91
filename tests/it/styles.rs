//! Styles: LoRA uploads checked against LTX-2.3 before they are kept, private until made
//! public, changed only by their owner, applied to clips (by in-process and remote workers,
//! which receive the LoRA file), and not deletable while a job uses them.
use crate::assets::{database, encode, every_page, newest_first, quadrants, upload_form, upload_ok};
use crate::helpers::*;
use crate::probe::*;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A safetensors file of zero-filled F16 tensors, `(key, shape)` in order.
pub fn safetensors(tensors: &[(&str, [u64; 2])]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0;
    for (key, shape) in tensors {
        let bytes = shape[0] * shape[1] * 2;
        header
            .insert(key.to_string(), json!({"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + bytes]}));
        offset += bytes;
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&header);
    file.resize(file.len() + offset as usize, 0);
    file
}

const Q_A: &str = "diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight";
const Q_B: &str = "diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight";

fn valid_lora() -> Vec<u8> {
    safetensors(&[
        (Q_A, [4, 4096]),
        (Q_B, [4096, 4]),
        ("diffusion_model.transformer_blocks.20.audio_attn2.to_v.lora_A.weight", [4, 2048]),
        ("diffusion_model.transformer_blocks.20.audio_attn2.to_v.lora_B.weight", [2048, 4]),
    ])
}

async fn upload_style(app: &TestApp, key: &str, lora: Vec<u8>, title: Option<&str>) -> reqwest::Response {
    let mut form = Form::new().part("file", Part::bytes(lora).file_name("style.safetensors"));
    if let Some(title) = title {
        form = form.text("title", title.to_owned()).text("prompt", "moody, high contrast");
    }
    upload_form(app, key, "/styles", form).await
}

async fn style_ok(app: &TestApp, key: &str) -> Value {
    let response = upload_style(app, key, valid_lora(), Some("noir")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A style as an account other than its owner sees it: without the owner's id and name.
fn as_seen_by_others(mut style: Value) -> Value {
    style["owner"] = Value::Null;
    style
}

async fn patch(app: &TestApp, key: &str, id: &str, body: Value) -> (u16, Value) {
    let response =
        app.client.patch(app.url(&format!("/styles/{id}"))).bearer_auth(key).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_lora_becomes_a_style_and_a_bad_one_is_refused_naming_the_problem() {
    let app = TestApp::start().await;
    let acct = app.account("1").await;
    let style = style_ok(&app, &acct.key).await;
    assert_eq!(style["title"], "noir");
    assert_eq!(style["prompt"], "moody, high contrast");
    assert_eq!(style["public"], false);
    assert_eq!(style["models"], json!(["ltx-2.3"]));
    assert_eq!(style["owner"]["id"], acct.id.to_string());
    assert_eq!(style["lora"]["rank"], 4);
    assert_eq!(app.get(&acct.key, &format!("/styles/{}", style["id"].as_str().unwrap())).await, (200, style.clone()));

    let mut truncated_header = valid_lora();
    truncated_header.truncate(40);
    let mut huge_header = (1u64 << 40).to_le_bytes().to_vec();
    huge_header.extend_from_slice(br#"{"a": 1}"#);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            safetensors(&[("lora_unet_down_blocks_0.lora_down.weight", [4, 4096])]),
            "`lora_unet_down_blocks_0.lora_down.weight` is not a LoRA weight for LTX-2.3",
        ),
        (
            safetensors(&[(Q_A, [4, 4096])]),
            "`diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight` is missing",
        ),
        (
            safetensors(&[(Q_A, [4, 4096]), (Q_B, [3072, 4])]),
            "has shape [3072, 4]; layer `transformer_blocks.0.attn1.to_q` needs [4096, rank]",
        ),
        (truncated_header, "the file is truncated"),
        (huge_header, "claims 1099511627776 bytes"),
        (b"tiny".to_vec(), "too short to be a safetensors file"),
    ];
    for (file, needle) in cases {
        let response = upload_style(&app, &acct.key, file, Some("bad")).await;
        let body = assert_error(response, 400, needle).await;
        assert!(body["error"].as_str().unwrap().starts_with("The LoRA was refused: "), "{body}");
    }
    assert_error(upload_style(&app, &acct.key, valid_lora(), None).await, 400, "`title` is required").await;
    let (_, page) = app.get(&acct.key, "/styles?filter=user").await;
    assert_eq!(page["items"], json!([style]), "only the good one was kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_style_is_private_until_made_public_and_only_its_owner_changes_it() {
    let app = TestApp::start().await;
    let (owner, other) = (app.account("5").await, app.account("5").await);
    let style = style_ok(&app, &owner.key).await;
    let id = style["id"].as_str().unwrap();
    let path = format!("/styles/{id}");
    let use_it = json!({"prompt": "x", "num_frames": 9, "styles": [{"id": id, "strength": 1}]});

    assert_eq!(app.get(&other.key, &path).await.0, 404);
    assert_eq!(app.get(&other.key, "/styles").await.1["items"], json!([]));
    assert_eq!(patch(&app, &other.key, id, json!({"public": true})).await.0, 404);
    assert_eq!(app.delete(&other.key, &path).await.0, 404);
    assert_error(app.submit(&other.key, use_it.clone()).await, 400, &format!("no style `{id}` is available")).await;

    let (status, unchanged) = patch(&app, &owner.key, id, json!({})).await;
    assert_eq!((status, &unchanged), (200, &style), "an empty PATCH answers the style unchanged");
    assert_eq!(patch(&app, &other.key, id, json!({})).await.0, 404, "also for an empty PATCH");
    let (status, body) = patch(&app, &owner.key, id, json!({"likes": 3})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Unknown field `likes`"));
    assert_eq!(patch(&app, &owner.key, id, json!({"urls": ["ftp://x/y.png"]})).await.0, 400);
    let (status, changed) = patch(
        &app,
        &owner.key,
        id,
        json!({"public": true, "title": "film noir", "urls": ["https://cdn.example/a.jpg"], "cover_url": "https://cdn.example/c.jpg"}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!((changed["public"].clone(), changed["title"].clone()), (json!(true), json!("film noir")));
    assert_eq!(
        (changed["urls"].clone(), changed["prompt"].clone()),
        (json!(["https://cdn.example/a.jpg"]), style["prompt"].clone())
    );

    // Another account sees the public style without its owner (`owner` is shown to the owner only).
    let seen = as_seen_by_others(changed.clone());
    assert_eq!(app.get(&other.key, &path).await, (200, seen.clone()));
    assert_eq!(app.get(&other.key, "/styles?filter=public").await.1["items"], json!([seen]));
    assert_eq!(app.get(&other.key, "/styles?filter=user").await.1["items"], json!([]));
    assert_eq!(app.get(&other.key, "/styles?filter=krea").await.1["items"], json!([]));
    assert_eq!(app.get(&other.key, &format!("/styles?ids={id}")).await.1["items"], json!([seen]));
    assert_eq!(app.get(&other.key, "/styles?filter=nonsense").await.0, 400);
    let job = app.submit_ok(&other.key, use_it).await;
    let plain = app.submit_ok(&other.key, json!({"prompt": "x", "num_frames": 9})).await;
    let usd = |job: &Value| job["price_usd"].as_str().unwrap().parse::<f64>().unwrap();
    assert!(usd(&job) > usd(&plain), "the LoRA column applies: {job} vs {plain}");
    assert_eq!(app.delete(&other.key, &path).await.0, 404, "public is not theirs to delete");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_style_grades_the_clip_and_stays_while_a_job_uses_it() {
    let app = TestApp::start_with(|c| c.preview_sampling_time = Duration::from_millis(1500)).await;
    let acct = app.account("5").await;
    let style = style_ok(&app, &acct.key).await;
    let id = style["id"].as_str().unwrap();
    let body = |styles: Value| json!({"prompt": "graded", "num_frames": 9, "seed": 3, "styles": styles});
    let styled = app.submit_ok(&acct.key, body(json!([{"id": id, "strength": 1.5}]))).await;
    app.wait_until(&acct.key, &job_id(&styled), |j| j["status"] == "sampling").await;
    let (status, refused) = app.delete(&acct.key, &format!("/styles/{id}")).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("style_in_use")), "{refused}");
    let styled = app.wait_terminal(&acct.key, &job_id(&styled)).await;
    let plain = app.wait_terminal(&acct.key, &job_id(&app.submit_ok(&acct.key, body(json!([]))).await)).await;
    assert_eq!(
        (styled["status"].as_str(), plain["status"].as_str()),
        (Some("completed"), Some("completed")),
        "{styled}"
    );
    let a = app.download(styled["result"]["urls"][0].as_str().unwrap(), "styled.mp4").await;
    let b = app.download(plain["result"]["urls"][0].as_str().unwrap(), "plain.mp4").await;
    assert!(mean_abs_diff(&frame(&a, 4, 64, 36), &frame(&b, 4, 64, 36)) > 3.0, "the style changed the look");
    // The worker received the LoRA file itself.
    let cached: Vec<_> = std::fs::read_dir(app.data_dir.path().join("tmp").join("loras")).unwrap().collect();
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0].as_ref().unwrap().metadata().unwrap().len(), valid_lora().len() as u64);

    let (status, deleted) = app.delete(&acct.key, &format!("/styles/{id}")).await;
    assert_eq!((status, deleted["success"].clone()), (200, json!(true)));
    assert_eq!(app.get(&acct.key, &format!("/styles/{id}")).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_worker_gets_the_asset_and_the_lora_through_the_worker_api() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    let warm = quadrants(64, 36, [[230, 30, 30], [240, 200, 40], [40, 200, 60], [30, 40, 220]]);
    let asset = upload_ok(&app, &acct.key, encode(&warm, image::ImageFormat::Png), "warm.png").await;
    let style = style_ok(&app, &acct.key).await;
    let token = crate::fleet::worker_token(&*app.store).await;
    let mut worker = crate::fleet::remote_worker(&app.base, &token, "remote-gpu", 0);
    let scratch = tempfile::tempdir().unwrap();
    worker.scratch_dir = scratch.path().to_owned();
    let stop = CancellationToken::new();
    let running = tokio::spawn(ltx_serve::worker::remote::run(worker, stop.clone()));
    let body = json!({
        "prompt": "remote", "num_frames": 9, "start_image": asset["image_url"],
        // Faint, so the first frame is still the asset; not 0, which needs no LoRA at all.
        "styles": [{"id": style["id"], "strength": 0.05}],
    });
    let done = app.wait_terminal(&acct.key, &job_id(&app.submit_ok(&acct.key, body).await)).await;
    assert_eq!(done["status"], "completed", "{done}");
    let video = app.download(done["result"]["urls"][0].as_str().unwrap(), "remote.mp4").await;
    assert!(mean_abs_diff(&frame(&video, 0, 64, 36), &warm.into_raw()) < 12.0, "the asset is the first frame");
    assert_eq!(std::fs::read_dir(scratch.path().join("loras")).unwrap().count(), 1, "the LoRA reached the worker");
    // The worker API's file route needs a worker token.
    let file_key = format!("styles/{}", "0".repeat(32));
    let anonymous =
        app.client.get(app.url(&format!("/internal/v1/files/{file_key}.safetensors"))).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn public_styles_of_many_accounts_page_each_once_newest_first() {
    let app = TestApp::start().await;
    let (viewer, owners) = (app.account("1").await, [app.account("1").await, app.account("1").await]);
    // Styles of both owners sharing one time, as an older release could store them.
    let db = database(&app);
    for i in 0..6 {
        db.execute(
            "INSERT INTO styles (id, account_id, title, public, created_at) VALUES (?1, ?2, 'old', 1, 1700000000000000)",
            [uuid::Uuid::new_v4().to_string(), owners[i % 2].id.to_string()],
        )
        .unwrap();
    }
    let (app_ref, key) = (&app, &owners[0].key);
    let made_public = move |style: Value| async move {
        let id = style["id"].as_str().unwrap().to_owned();
        let (status, style) = patch(app_ref, key, &id, json!({"public": true})).await;
        assert_eq!(status, 200, "{style}");
        style
    };
    let uploads = (0..12).map(|_| style_ok(&app, &owners[0].key));
    let uploaded =
        futures_util::future::join_all(futures_util::future::join_all(uploads).await.into_iter().map(made_public))
            .await;
    // The viewer is not their owner: it sees them without one.
    let uploaded: Vec<Value> = uploaded.into_iter().map(as_seen_by_others).collect();
    for style in &uploaded {
        let path = format!("/styles/{}", style["id"].as_str().unwrap());
        assert_eq!(app.get(&viewer.key, &path).await, (200, style.clone()), "the upload answers what is stored");
    }
    let (items, cursors) = every_page(&app, &viewer.key, "/styles?filter=public&limit=4").await;
    assert_eq!(items.len(), 18);
    assert_eq!(items[..12], newest_first(uploaded, "created_at")[..], "the uploads first, newest first");
    assert_eq!(items, newest_first(items.clone(), "created_at"), "each once; those sharing a time by id");
    let tied = |s: &Value| format!("{}~{}", s["created_at"].as_str().unwrap(), s["id"].as_str().unwrap());
    let plain = |s: &Value| s["created_at"].as_str().unwrap().to_owned();
    assert_eq!(cursors, vec![plain(&items[3]), plain(&items[7]), plain(&items[11]), tied(&items[15])]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_style_a_queued_job_uses_is_not_deleted_and_a_job_whose_style_vanished_fails_uncharged() {
    let app = TestApp::start_with(|c| c.workers = 0).await;
    let acct = app.account("5").await;
    let style = style_ok(&app, &acct.key).await;
    let id = style["id"].as_str().unwrap();
    let styled = json!({"prompt": "queued", "num_frames": 9, "styles": [{"id": id, "strength": 1}]});
    let queued = job_id(&app.submit_ok(&acct.key, styled.clone()).await);
    let (status, refused) = app.delete(&acct.key, &format!("/styles/{id}")).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("style_in_use")), "a queued job uses it: {refused}");
    assert!(refused["error"].as_str().unwrap().contains("1 unfinished job(s) use this style"), "{refused}");
    assert_eq!(app.delete(&acct.key, &format!("/jobs/{queued}")).await.0, 200);
    assert_eq!(app.delete(&acct.key, &format!("/styles/{id}")).await.0, 200, "once no unfinished job uses it");

    // A style gone from under a queued job anyway (a row removed by hand, an older release):
    // the job fails saying so, and nothing is charged.
    let style = style_ok(&app, &acct.key).await;
    let id = style["id"].as_str().unwrap();
    let before = app.account_view(&acct.key).await;
    let orphan = job_id(
        &app.submit_ok(&acct.key, json!({"prompt": "orphan", "num_frames": 9, "styles": [{"id": id, "strength": 1}]}))
            .await,
    );
    database(&app).execute("DELETE FROM styles WHERE id = ?1", [id]).unwrap();
    let token = crate::fleet::worker_token(&*app.store).await;
    let stop = CancellationToken::new();
    let worker = crate::fleet::remote_worker(&app.base, &token, "after-delete", 0);
    let running = tokio::spawn(ltx_serve::worker::remote::run(worker, stop.clone()));
    let failed = app.wait_terminal(&acct.key, &orphan).await;
    stop.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(failed["status"], "failed", "{failed}");
    let said = failed.to_string();
    assert!(said.contains(&format!("style `{id}` was deleted after the job was submitted")), "{failed}");
    let after = app.account_view(&acct.key).await;
    let money = |view: &Value| (view["balance_usd"].clone(), view["held_usd"].clone());
    assert_eq!(money(&after), money(&before), "nothing charged, nothing left held: {after}");
}
