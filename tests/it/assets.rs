//! Assets: uploads told by their bytes, images decoded within limits, per-account isolation,
//! and asset images (and other sites' images) as the first and last frames of a clip.
use crate::helpers::*;
use crate::probe::*;
use image::{Rgb, RgbImage};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use std::io::Cursor;

pub async fn upload_form(app: &TestApp, key: &str, path: &str, form: Form) -> reqwest::Response {
    app.client.post(app.url(path)).bearer_auth(key).multipart(form).send().await.unwrap()
}

pub async fn upload(app: &TestApp, key: &str, bytes: Vec<u8>, name: &str) -> reqwest::Response {
    upload_form(app, key, "/assets", Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()))).await
}

pub async fn upload_ok(app: &TestApp, key: &str, bytes: Vec<u8>, name: &str) -> Value {
    let response = upload(app, key, bytes, name).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

pub fn encode(img: &RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

/// Four coloured quadrants: easy to recognise after scaling and compression.
pub fn quadrants(width: u32, height: u32, colours: [[u8; 3]; 4]) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let i = usize::from(x >= width / 2) + 2 * usize::from(y >= height / 2);
        Rgb(colours[i])
    })
}

const WARM: [[u8; 3]; 4] = [[230, 30, 30], [240, 200, 40], [40, 200, 60], [30, 40, 220]];
const COOL: [[u8; 3]; 4] = [[30, 40, 220], [40, 200, 60], [240, 200, 40], [230, 30, 30]];

/// A JPEG whose pixels are stored sideways, with EXIF orientation 6 ("rotate 90° clockwise to
/// display"), the way phones write portrait photos.
fn sideways_jpeg(stored: &RgbImage) -> Vec<u8> {
    let jpeg = encode(stored, image::ImageFormat::Jpeg);
    // APP1 "Exif\0\0", little-endian TIFF header, one IFD entry: 0x0112 Orientation, SHORT, 1, 6.
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&[0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A PNG whose header claims 20000×20000 pixels (a decompression bomb's shape).
fn bomb_png() -> Vec<u8> {
    let mut out = encode(&RgbImage::new(1, 1), image::ImageFormat::Png);
    out[16..20].copy_from_slice(&20000u32.to_be_bytes());
    out[20..24].copy_from_slice(&20000u32.to_be_bytes());
    let crc = crc32(&out[12..29]);
    out[29..33].copy_from_slice(&crc.to_be_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uploaded_image_is_an_asset_only_its_account_sees() {
    let app = TestApp::start().await;
    let (owner, other) = (app.account("5").await, app.account("5").await);
    let png = encode(&quadrants(40, 30, WARM), image::ImageFormat::Png);
    let form = Form::new()
        .part("file", Part::bytes(png.clone()).file_name("holiday").mime_str("application/octet-stream").unwrap())
        .text("description", "a test card");
    let response = upload_form(&app, &owner.key, "/assets", form).await;
    assert_eq!(response.status(), 200);
    let asset: Value = response.json().await.unwrap();
    // The type comes from the bytes (a name or declared type that disagrees is refused:
    // hardening_library.rs), not from a generic name and type.
    assert_eq!(asset["mime_type"], "image/png", "{asset}");
    assert_eq!((asset["width"].as_u64(), asset["height"].as_u64()), (Some(40), Some(30)));
    assert_eq!(asset["size_bytes"].as_u64(), Some(png.len() as u64));
    assert_eq!(asset["description"], "a test card");
    let id = asset["id"].as_str().unwrap();
    let url = asset["image_url"].as_str().unwrap();
    assert!(url.starts_with(&app.url("/files/assets/")) && url.ends_with(".png"), "{url}");
    let served = app.client.get(url).send().await.unwrap();
    assert_eq!(served.status(), 200, "the file needs no key, like a result");
    assert_eq!(served.bytes().await.unwrap().to_vec(), png);

    assert_eq!(app.get(&owner.key, &format!("/assets/{id}")).await, (200, asset.clone()));
    let (status, page) = app.get(&owner.key, "/assets").await;
    assert_eq!((status, page["items"].clone(), page["next_cursor"].clone()), (200, json!([asset]), Value::Null));

    // Another account sees nothing, deletes nothing, and cannot use it.
    assert_eq!(app.get(&other.key, &format!("/assets/{id}")).await.0, 404);
    assert_eq!(app.delete(&other.key, &format!("/assets/{id}")).await.0, 404);
    assert_eq!(app.get(&other.key, "/assets").await.1["items"], json!([]));
    let used = app.submit(&other.key, json!({"prompt": "x", "start_image": url})).await;
    assert_error(used, 400, "`start_image`: no asset at this URL is available to this account").await;
    let made_up = format!("{}/files/assets/{}.png", app.base, "0".repeat(32));
    assert_error(app.submit(&owner.key, json!({"prompt": "x", "end_image": made_up})).await, 400, "no asset").await;

    let (status, deleted) = app.delete(&owner.key, &format!("/assets/{id}")).await;
    assert_eq!((status, deleted["success"].clone()), (200, json!(true)), "{deleted}");
    assert_eq!(app.get(&owner.key, &format!("/assets/{id}")).await.0, 404);
    assert_eq!(app.client.get(url).send().await.unwrap().status(), 404, "the file went with it");
    assert_eq!(app.get(&owner.key, "/assets/not-a-uuid").await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn files_are_told_by_their_bytes_and_bad_images_are_refused() {
    let app = TestApp::start().await;
    let acct = app.account("1").await;
    let text = upload(&app, &acct.key, b"just some text, honest".to_vec(), "cat.png").await;
    assert_error(text, 400, "not a JPEG, PNG, WebP, HEIC, MP4, MOV, WebM, GLB, WAV or MP3 file").await;

    let mut glb = b"glTF\x02\0\0\0".to_vec();
    glb.resize(1000, 7);
    let model = upload_ok(&app, &acct.key, glb, "thing.bin").await;
    assert_eq!((model["mime_type"].as_str(), model["width"].clone()), (Some("model/gltf-binary"), Value::Null));
    assert!(model["image_url"].as_str().unwrap().ends_with(".glb"));

    let bomb = upload(&app, &acct.key, bomb_png(), "huge.png").await;
    assert_error(bomb, 400, "larger than 8192×8192 pixels").await;

    let mut truncated = encode(&quadrants(64, 64, WARM), image::ImageFormat::Jpeg);
    truncated.truncate(truncated.len() / 2);
    assert_error(upload(&app, &acct.key, truncated, "half.jpg").await, 400, "could not be decoded").await;

    let no_file = upload_form(&app, &acct.key, "/assets", Form::new().text("description", "nothing")).await;
    assert_error(no_file, 400, "`file` is required").await;
    let stray = Form::new().part("file", Part::bytes(vec![1, 2, 3])).text("title", "x");
    assert_error(upload_form(&app, &acct.key, "/assets", stray).await, 400, "Unknown part `title`").await;
    let json_body = app.client.post(app.url("/assets")).bearer_auth(&acct.key).json(&json!({})).send().await.unwrap();
    assert_error(json_body, 400, "multipart/form-data").await;
    let anonymous = app.client.post(app.url("/assets")).multipart(Form::new().text("description", "x"));
    assert_eq!(anonymous.send().await.unwrap().status(), 401);
    // Nothing refused was kept.
    assert_eq!(app.get(&acct.key, "/assets").await.1["items"].as_array().unwrap().len(), 1);
    let staged = std::fs::read_dir(app.data_dir.path().join("tmp")).unwrap().count();
    assert_eq!(staged, 0, "no staging file is left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn asset_images_are_the_first_and_last_frames() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    let (warm, cool) = (quadrants(64, 36, WARM), quadrants(64, 36, COOL));
    let start = upload_ok(&app, &acct.key, encode(&warm, image::ImageFormat::Png), "a.png").await;
    let end = upload_ok(&app, &acct.key, encode(&cool, image::ImageFormat::Jpeg), "b.jpg").await;
    let body = json!({
        "prompt": "warm to cool",
        "num_frames": 17,
        "start_image": start["image_url"],
        "end_image": end["image_url"],
    });
    let done = app.wait_terminal(&acct.key, &job_id(&app.submit_ok(&acct.key, body).await)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request"]["start_image"], start["image_url"], "the job shows the URL it was given");
    let video = app.download(done["result"]["urls"][0].as_str().unwrap(), "clip.mp4").await;
    let (first, last) = (frame(&video, 0, 64, 36), frame(&video, 16, 64, 36));
    let (warm, cool) = (warm.into_raw(), cool.into_raw());
    assert!(mean_abs_diff(&first, &warm) < 12.0, "first frame is the start image: {}", mean_abs_diff(&first, &warm));
    assert!(mean_abs_diff(&last, &cool) < 12.0, "last frame is the end image: {}", mean_abs_diff(&last, &cool));
    assert!(mean_abs_diff(&first, &cool) > 60.0, "and they are told apart");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exif_rotated_photo_comes_out_upright() {
    let app = TestApp::start().await;
    let acct = app.account("5").await;
    // Stored 64 wide × 32 high, red left and blue right; shown upright it is 32 × 64, red on top.
    let stored = RgbImage::from_fn(64, 32, |x, _| if x < 32 { Rgb([220, 30, 30]) } else { Rgb([30, 30, 220]) });
    let asset = upload_ok(&app, &acct.key, sideways_jpeg(&stored), "portrait.jpg").await;
    assert_eq!((asset["width"].as_u64(), asset["height"].as_u64()), (Some(32), Some(64)), "{asset}");
    let body = json!({"prompt": "upright", "num_frames": 9, "aspect_ratio": "9:16", "start_image": asset["image_url"]});
    let done = app.wait_terminal(&acct.key, &job_id(&app.submit_ok(&acct.key, body).await)).await;
    assert_eq!(done["status"], "completed", "{done}");
    let video = app.download(done["result"]["urls"][0].as_str().unwrap(), "upright.mp4").await;
    let (top, bottom) = (pixel(&video, 0, 360, 200), pixel(&video, 0, 360, 1080));
    assert!(top[0] > 150 && top[2] < 90, "the top is red: {top:?}");
    assert!(bottom[2] > 150 && bottom[0] < 90, "the bottom is blue: {bottom:?}");
}

/// A stand-in for another site: an image, a web page, a redirect and a missing file.
async fn image_site(png: Vec<u8>) -> String {
    use axum::http::{header, StatusCode};
    use axum::routing::get;
    let png = std::sync::Arc::new(png);
    let router = axum::Router::new()
        .route("/cat.png", get(move || async move { ([(header::CONTENT_TYPE, "image/png")], png.to_vec()) }))
        .route("/page", get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html>hi</html>") }))
        .route("/moved", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/cat.png")]) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

#[tokio::test(flavor = "multi_thread")]
async fn other_sites_images_are_fetched_through_the_guard() {
    let warm = quadrants(64, 36, WARM);
    let site = image_site(encode(&warm, image::ImageFormat::Png)).await;
    let app = TestApp::start_with(|c| c.allow_private_urls = true).await;
    let acct = app.account("5").await;
    let run = |image: String| {
        let (app, key) = (&app, acct.key.clone());
        async move {
            let job = app.submit_ok(&key, json!({"prompt": "x", "num_frames": 9, "start_image": image})).await;
            app.wait_terminal(&key, &job_id(&job)).await
        }
    };
    let done = run(format!("{site}/cat.png")).await;
    assert_eq!(done["status"], "completed", "{done}");
    let video = app.download(done["result"]["urls"][0].as_str().unwrap(), "fetched.mp4").await;
    assert!(mean_abs_diff(&frame(&video, 0, 64, 36), &warm.into_raw()) < 12.0);
    for (path, why) in [("/page", "returned text/html, not an image"), ("/moved", "redirect"), ("/gone", "404")] {
        let failed = run(format!("{site}{path}")).await;
        assert_eq!(
            (failed["status"].as_str(), failed["error"]["code"].as_str()),
            (Some("failed"), Some("invalid_input"))
        );
        let message = failed["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("`start_image` could not be used") && message.contains(why), "{message}");
    }
    let account = app.account_view(&acct.key).await;
    assert_eq!(account["held_usd"], "0.00", "failed jobs hold nothing");

    // With the guard on, a private address is refused at submit; with the switch off, any other site.
    let guarded = TestApp::start().await;
    let acct = guarded.account("5").await;
    let private = guarded.submit(&acct.key, json!({"prompt": "x", "start_image": format!("{site}/cat.png")})).await;
    assert_error(private, 400, "private or reserved address").await;
    let closed = TestApp::start_with(|c| c.external_image_urls = false).await;
    let acct = closed.account("5").await;
    let outside = closed.submit(&acct.key, json!({"prompt": "x", "start_image": "https://example.com/cat.png"})).await;
    assert_error(outside, 400, "does not fetch images from other sites").await;
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_70_mb_upload_streams_to_disk_and_a_76_mb_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = crate::cli::start_server(dir.path(), &[]);
    let key = server.printed_key();
    let pid = server.child.id();
    let client = reqwest::Client::new();
    let video = |mb: usize| {
        let mut bytes = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2mp41".to_vec();
        bytes.resize(mb * 1024 * 1024, 0x5a);
        bytes
    };
    let send = |bytes: Vec<u8>| {
        let form = Form::new().part("file", Part::bytes(bytes).file_name("clip.mp4"));
        client.post(format!("{}/assets", server.base)).bearer_auth(&key).multipart(form).send()
    };
    let before = rss_kib(pid, "VmRSS:");
    let response = send(video(70)).await.unwrap();
    assert_eq!(response.status(), 200);
    let asset: Value = response.json().await.unwrap();
    let peak = rss_kib(pid, "VmHWM:");
    assert_eq!((asset["size_bytes"].as_u64(), asset["mime_type"].as_str()), (Some(70 << 20), Some("video/mp4")));
    let grew_mib = peak.saturating_sub(before) / 1024;
    println!("serve RSS before the 70 MiB upload: {} MiB; peak after: {} MiB", before / 1024, peak / 1024);
    assert!(grew_mib < 40, "a 70 MiB upload raised the server's peak memory by {grew_mib} MiB");
    let served = client.get(asset["image_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(served.content_length(), Some(70 << 20));

    let refused = send(video(76)).await.unwrap();
    assert_eq!(refused.status(), 413);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("larger than 75000000 bytes"), "{body}");
    let (status, page) = {
        let r = client.get(format!("{}/assets", server.base)).bearer_auth(&key).send().await.unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!((status.as_u16(), page["items"].as_array().unwrap().len()), (200, 1));
    assert!(crate::cli::sigterm(&mut server).success(), "it stops cleanly after a refused upload");
}

/// Every item of a list, read page by page through `next_cursor` (which `nextCursor` repeats);
/// `path` ends with its query (`…?limit=4`). Returns the items and the cursors handed out.
pub async fn every_page(app: &TestApp, key: &str, path: &str) -> (Vec<Value>, Vec<String>) {
    let (mut items, mut cursors, mut next) = (Vec::new(), Vec::new(), path.to_owned());
    loop {
        let (status, page) = app.get(key, &next).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["next_cursor"], page["nextCursor"]);
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        let Some(cursor) = page["next_cursor"].as_str() else { return (items, cursors) };
        next = format!("{path}&cursor={}", cursor.replace(':', "%3A").replace('+', "%2B"));
        cursors.push(cursor.to_owned());
        assert!(cursors.len() <= items.len(), "every page but the last is full");
    }
}

/// The items newest first by their `field` time, ties by id (descending): every list's order.
pub fn newest_first(mut items: Vec<Value>, field: &str) -> Vec<Value> {
    let key = |item: &Value| {
        let time = item[field].as_str().unwrap();
        let time = time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).unwrap();
        (time, uuid::Uuid::parse_str(item["id"].as_str().unwrap()).unwrap())
    };
    items.sort_by_key(|item| std::cmp::Reverse(key(item)));
    items
}

/// The app's SQLite database, opened beside the app (to write rows as an older release did).
pub fn database(app: &TestApp) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(app.data_dir.path().join("ltx-serve.db")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread")]
async fn assets_uploaded_at_once_page_each_once_newest_first() {
    let app = TestApp::start().await;
    let acct = app.account("1").await;
    let png = encode(&quadrants(8, 8, WARM), image::ImageFormat::Png);
    let uploaded =
        futures_util::future::join_all((0..30).map(|_| upload_ok(&app, &acct.key, png.clone(), "a.png"))).await;
    for asset in &uploaded {
        let path = format!("/assets/{}", asset["id"].as_str().unwrap());
        assert_eq!(app.get(&acct.key, &path).await, (200, asset.clone()), "the upload answers what is stored");
    }
    let (items, cursors) = every_page(&app, &acct.key, "/assets?limit=4").await;
    assert_eq!(items, newest_first(uploaded, "uploaded_at"), "each asset once, newest first");
    let times: Vec<&str> = items.iter().map(|a| a["uploaded_at"].as_str().unwrap()).collect();
    let distinct: std::collections::HashSet<&&str> = times.iter().collect();
    assert_eq!(distinct.len(), 30, "one account's assets never share a time");
    // Krea's cursor: the time of each full page's last asset.
    let last_of_pages: Vec<String> = times.chunks(4).filter(|page| page.len() == 4).map(|p| p[3].to_owned()).collect();
    assert_eq!(cursors, last_of_pages);
}

#[tokio::test(flavor = "multi_thread")]
async fn assets_sharing_a_time_from_an_older_release_page_each_once() {
    let app = TestApp::start().await;
    let acct = app.account("1").await;
    let db = database(&app);
    for _ in 0..9 {
        let id = uuid::Uuid::new_v4();
        db.execute(
            "INSERT INTO assets (id, account_id, file_key, mime_type, size_bytes, uploaded_at) \
             VALUES (?1, ?2, ?3, 'image/png', 1, 1700000000000000)",
            [id.to_string(), acct.id.to_string(), format!("assets/{}.png", id.simple())],
        )
        .unwrap();
    }
    let newer = upload_ok(&app, &acct.key, encode(&quadrants(8, 8, COOL), image::ImageFormat::Png), "b.png").await;
    let (items, cursors) = every_page(&app, &acct.key, "/assets?limit=4").await;
    assert_eq!(items.len(), 10);
    assert_eq!((&items[0], newest_first(items.clone(), "uploaded_at")), (&newer, items.clone()), "each once, in order");
    // Where the next asset shares the page's last time, the cursor carries that asset's id too.
    let tied = |a: &Value| format!("{}~{}", a["uploaded_at"].as_str().unwrap(), a["id"].as_str().unwrap());
    assert_eq!(cursors, vec![tied(&items[3]), tied(&items[7])]);
    // A cursor of the time alone (what clients held before) still means "older than this".
    let path = format!("/assets?limit=100&cursor={}", newer["uploaded_at"].as_str().unwrap().replace(':', "%3A"));
    assert_eq!(app.get(&acct.key, &path).await.1["items"], json!(items[1..]));
    assert_eq!(app.get(&acct.key, "/assets?cursor=2026-01-01T00%3A00%3A00Z~nonsense").await.0, 400);
}
