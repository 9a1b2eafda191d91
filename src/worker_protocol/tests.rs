//! Every message survives a round trip, and its wire JSON is pinned: renaming a field breaks
//! workers of the other version, so it must fail here first.
use super::*;
use crate::domain::request::{AspectRatio, StyleRef};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use uuid::Uuid;

/// Serialises `message`, checks the JSON is `wire`, and that reading `wire` gives `message` back.
fn pinned<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(message: &T, wire: Value) {
    assert_eq!(serde_json::to_value(message).unwrap(), wire, "the wire shape changed");
    let back: T = serde_json::from_value(wire).unwrap();
    assert_eq!(&back, message, "the round trip changed the message");
}

fn lease() -> LeaseRef {
    LeaseRef {
        job_id: Uuid::parse_str("11111111-1111-1111-1111-111111111111").unwrap(),
        lease_id: Uuid::parse_str("22222222-2222-2222-2222-222222222222").unwrap(),
    }
}

fn request() -> GenerateRequest {
    GenerateRequest {
        prompt: "a red fox".into(),
        start_image: None,
        start_video: None,
        end_image: None,
        aspect_ratio: AspectRatio::Landscape,
        duration: 5,
        num_frames: 121,
        seed: Some(7),
        generate_audio: true,
        styles: vec![StyleRef { id: "s1".into(), strength: 0.5 }],
        mode: None,
        quality: None,
        enhance_prompt: false,
    }
}

#[test]
fn hello_is_pinned_and_a_server_without_a_version_speaks_the_first() {
    let hello = Hello {
        version: "0.1.0".into(),
        protocol: PROTOCOL_VERSION,
        lease_ttl_ms: 30_000,
        heartbeat_every_ms: 1_000,
        kept_files_url: "http://h/files/".into(),
    };
    pinned(
        &hello,
        json!({"version": "0.1.0", "protocol": 1, "lease_ttl_ms": 30000, "heartbeat_every_ms": 1000,
               "kept_files_url": "http://h/files/"}),
    );
    let old: Hello =
        serde_json::from_value(json!({"version": "0.0.9", "lease_ttl_ms": 30000, "heartbeat_every_ms": 1000})).unwrap();
    assert_eq!((old.protocol, old.kept_files_url.as_str()), (1, ""));
    assert_eq!(old.check(), Ok(()));
    let newer = Hello { protocol: PROTOCOL_VERSION + 1, ..hello };
    let refused = newer.check().unwrap_err();
    assert!(refused.contains("speaks worker protocol 2 and this worker speaks 1"), "{refused}");
}

#[test]
fn lease_request_is_pinned() {
    let ask = LeaseRequest {
        worker: WorkerInfo {
            name: "gpu-1".into(),
            engine: "ltx".into(),
            model: Some("ltx-2.3".into()),
            gpu: Some("H100".into()),
            gpu_memory_bytes: Some(80),
            resident_style_sets: vec!["s1@0.5".into()],
            presets: vec![crate::domain::request::Quality::Fast, crate::domain::request::Quality::Best],
        },
        wait_ms: 5_000,
    };
    pinned(
        &ask,
        json!({"worker": {"name": "gpu-1", "engine": "ltx", "model": "ltx-2.3", "gpu": "H100",
                          "gpu_memory_bytes": 80, "resident_style_sets": ["s1@0.5"], "presets": ["fast", "best"]},
               "wait_ms": 5000}),
    );
    let minimal: LeaseRequest = serde_json::from_value(json!({"worker": {"name": "x", "engine": "preview"}})).unwrap();
    assert_eq!((minimal.wait_ms, minimal.worker.resident_style_sets.len()), (0, 0));
    assert!(minimal.worker.presets.is_empty(), "a worker that announces no presets");
}

#[test]
fn work_item_is_pinned() {
    let item = WorkItem {
        lease: lease(),
        request: request(),
        seed: 7,
        width: 1280,
        height: 704,
        attempt: 2,
        created_at: time::macros::datetime!(2026-01-02 03:04:05 UTC),
        loras: vec![LoraInput { style_id: "s1".into(), file_key: "styles/ab.safetensors".into(), size_bytes: 9 }],
    };
    let wire = json!({
        "lease": {"job_id": "11111111-1111-1111-1111-111111111111", "lease_id": "22222222-2222-2222-2222-222222222222"},
        "request": {"prompt": "a red fox", "start_image": null, "end_image": null, "aspect_ratio": "16:9",
                    "duration": 5, "num_frames": 121, "seed": 7, "generate_audio": true,
                    "styles": [{"id": "s1", "strength": 0.5}]},
        "seed": 7, "width": 1280, "height": 704, "attempt": 2,
        "created_at": "2026-01-02T03:04:05Z",
        "loras": [{"style_id": "s1", "file_key": "styles/ab.safetensors", "size_bytes": 9}],
    });
    pinned(&item, wire);
}

#[test]
fn heartbeat_is_pinned_and_only_running_statuses_pass() {
    let update = Progress { status: JobStatus::IntermediateComplete, progress: 0.5, engine: Some("ltx".into()) };
    let beat = Heartbeat::new("gpu-1", &update);
    pinned(&beat, json!({"worker": "gpu-1", "status": "intermediate-complete", "progress": 0.5, "engine": "ltx"}));
    let read = beat.progress().unwrap();
    assert_eq!((read.status, read.progress, read.engine.as_deref()), (update.status, 0.5, Some("ltx")));
    let old: Heartbeat = serde_json::from_value(json!({"worker": "w", "status": "sampling", "progress": 0.6})).unwrap();
    assert_eq!(old.engine, None);
    for refused in ["completed", "queued", "nonsense"] {
        let beat = Heartbeat { status: refused.into(), ..old.clone() };
        assert!(beat.progress().unwrap_err().contains("running status"), "{refused}");
    }
}

#[test]
fn results_fail_and_hand_back_are_pinned() {
    let result = JobResult {
        video_key: String::new(),
        poster_key: String::new(),
        width: 640,
        height: 352,
        num_frames: 61,
        fps: 24,
        has_audio: false,
        engine: "preview".into(),
        enhanced_prompt: None,
    };
    pinned(
        &result,
        json!({"video_key": "", "poster_key": "", "width": 640, "height": 352, "num_frames": 61, "fps": 24,
               "has_audio": false, "engine": "preview"}),
    );
    let fail = Fail::new(FailureCode::EngineError, "out of memory".into());
    pinned(&fail, json!({"code": "engine_error", "message": "out of memory"}));
    assert_eq!(fail.parse(), Ok((FailureCode::EngineError, "out of memory".to_owned())));
    let long = Fail { message: "x".repeat(5000), ..fail };
    assert_eq!(long.parse().unwrap().1.len(), Fail::MAX_MESSAGE_CHARS);
    assert_eq!(Fail { code: "bogus".into(), message: String::new() }.parse().unwrap_err(), "Unknown failure `code`.");
    pinned(&HandBack {}, json!({}));
}

#[test]
fn upload_names_and_paths_are_pinned() {
    assert_eq!(UploadFile::ALL.map(UploadFile::name), ["video.mp4", "poster.jpg", "preview.mp4", "preview.jpg"]);
    for file in UploadFile::ALL {
        assert_eq!(UploadFile::parse(file.name()), Some(file));
    }
    assert_eq!(UploadFile::parse("../video.mp4"), None);
    assert_eq!(
        paths::for_lease(paths::HAND_BACK, lease()),
        "/internal/v1/leases/11111111-1111-1111-1111-111111111111/22222222-2222-2222-2222-222222222222/hand-back"
    );
    assert!(paths::upload(lease(), UploadFile::PreviewPoster).ends_with("-222222222222/files/preview.jpg"));
}

#[test]
fn a_missing_version_is_the_current_one_and_another_is_refused() {
    assert_eq!(check_version(None), Ok(PROTOCOL_VERSION));
    assert_eq!(check_version(Some("1")), Ok(1));
    for other in ["2", "0", "one", ""] {
        let why = check_version(Some(other)).unwrap_err();
        assert!(why.contains("speaks worker protocol 1") && why.contains("same ltx-serve version"), "{why}");
    }
}

#[test]
fn heartbeats_come_often_but_not_too_often() {
    assert_eq!(heartbeat_interval(Duration::from_secs(30)), Duration::from_secs(1));
    assert_eq!(heartbeat_interval(Duration::from_millis(300)), Duration::from_millis(100));
    assert_eq!(heartbeat_interval(Duration::from_secs(3)), Duration::from_millis(500));
}
