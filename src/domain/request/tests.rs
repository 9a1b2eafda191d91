use super::*;
use base64::Engine as _;
use serde_json::json;
use time::macros::date;

fn options() -> NormaliseOptions {
    NormaliseOptions {
        today: date!(2026 - 06 - 01),
        aliases_accepted_until: date!(2026 - 06 - 19),
        max_data_uri_bytes: 1024,
        max_styles: 2,
        asset_url_prefix: "https://ltx.example/files/assets/".into(),
        external_image_urls: true,
        allow_private_urls: false,
    }
}

fn ok(body: Value) -> GenerateRequest {
    normalise(&body, &options()).unwrap_or_else(|e| panic!("{body} was refused: {e}")).request
}

fn err(body: Value) -> String {
    match normalise(&body, &options()) {
        Ok(n) => panic!("{body} was accepted as {n:?}"),
        Err(e) => e.0,
    }
}

const PNG_1X1: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

#[test]
fn defaults_follow_the_endpoint_page() {
    let r = ok(json!({"prompt": "badlands"}));
    assert_eq!(r.prompt, "badlands");
    assert_eq!(r.aspect_ratio, AspectRatio::Landscape);
    assert_eq!(r.duration, 5);
    assert_eq!(r.num_frames, 121);
    assert_eq!(r.seed, None);
    assert!(r.generate_audio);
    assert!(r.styles.is_empty());
    assert_eq!((r.start_image, r.end_image), (None, None));
}

#[test]
fn prompt_is_required_non_empty_string() {
    assert!(err(json!({})).contains("`prompt` is required"));
    assert!(err(json!({"prompt": null})).contains("`prompt` is required"));
    assert!(err(json!({"prompt": ""})).contains("at least 1 character"));
    assert!(err(json!({"prompt": 5})).contains("`prompt` must be a string, not a number"));
    assert_eq!(ok(json!({"prompt": "x"})).prompt, "x");
}

#[test]
fn body_must_be_an_object() {
    for body in [json!([]), json!("prompt"), json!(1), json!(null), json!(true)] {
        assert!(err(body.clone()).contains("must be a JSON object"), "{body}");
    }
}

#[test]
fn unknown_and_dropped_fields_are_refused_by_name() {
    assert!(err(json!({"prompt": "x", "start_audio": "https://a.b/c.wav"})).contains("Unknown field `start_audio`"));
    assert!(err(json!({"prompt": "x", "Prompt": "y"})).contains("`Prompt`"));
}

#[test]
fn start_video_takes_what_start_image_takes_but_holds_a_video() {
    let r = ok(json!({"prompt": "x", "start_video": "https://a.b/c.mp4", "end_image": PNG_1X1}));
    assert_eq!((r.start_video.as_deref(), r.start_image), (Some("https://a.b/c.mp4"), None));
    let mp4 = "data:video/mp4;base64,AAAAHGZ0eXBpc29t";
    assert_eq!(ok(json!({"prompt": "x", "start_video": mp4})).start_video.as_deref(), Some(mp4));
    assert_eq!(ok(json!({"prompt": "x", "start_video": null})).start_video, None);
    assert!(
        err(json!({"prompt": "x", "start_video": PNG_1X1})).contains("`start_video` must be an MP4, MOV or WebM video")
    );
    assert!(err(json!({"prompt": "x", "start_video": 3})).contains("`start_video` must be a URI string or null"));
    assert!(err(json!({"prompt": "x", "start_video": "http://10.0.0.1/a.mp4"})).contains("private or reserved"));
    let big = format!("data:video/mp4;base64,{}", base64::engine::general_purpose::STANDARD.encode([0u8; 2000]));
    assert!(err(json!({"prompt": "x", "start_video": big})).contains("data: videos may be at most 1024 bytes"));
    let both = err(json!({"prompt": "x", "start_video": "https://a.b/c.mp4", "start_image": PNG_1X1}));
    assert!(both.contains("`start_video` and `start_image` cannot be used together"), "{both}");
    let aliased = normalise(&json!({"prompt": "x", "startVideo": "https://a.b/c.mp4"}), &options()).unwrap();
    assert_eq!(aliased.request.start_video.as_deref(), Some("https://a.b/c.mp4"));
    assert_eq!(aliased.aliases_used, vec!["startVideo"]);
}

#[test]
fn a_job_stored_before_start_video_existed_still_reads() {
    let mut stored = serde_json::to_value(ok(json!({"prompt": "x"}))).unwrap();
    assert!(stored.get("start_video").is_none(), "absent stays absent, so idempotency fingerprints do not change");
    stored.as_object_mut().unwrap().remove("start_video");
    let read: GenerateRequest = serde_json::from_value(stored).unwrap();
    assert_eq!(read.start_video, None);
}

#[test]
fn aspect_ratio_is_an_enum() {
    assert_eq!(ok(json!({"prompt": "x", "aspect_ratio": "9:16"})).aspect_ratio, AspectRatio::Portrait);
    assert_eq!(ok(json!({"prompt": "x", "aspect_ratio": "16:9"})).aspect_ratio, AspectRatio::Landscape);
    for bad in [json!("1:1"), json!("16:10"), json!(1.77), json!(null)] {
        assert!(err(json!({"prompt": "x", "aspect_ratio": bad})).contains("`aspect_ratio`"), "{bad}");
    }
}

#[test]
fn duration_maps_to_24_fps_frames() {
    for (d, frames) in [(5, 121), (10, 241), (15, 361), (20, 481)] {
        let r = ok(json!({"prompt": "x", "duration": d}));
        assert_eq!((r.duration, r.num_frames), (d, frames));
    }
    assert_eq!(ok(json!({"prompt": "x", "duration": 10.0})).num_frames, 241);
    for bad in [json!(0), json!(6), json!(25), json!(5.5), json!(-5)] {
        assert!(
            err(json!({"prompt": "x", "duration": bad})).contains("`duration` must be one of 5, 10, 15 or 20"),
            "{bad}"
        );
    }
    assert!(err(json!({"prompt": "x", "duration": "5"})).contains("`duration` must be a number"));
}

#[test]
fn num_frames_bounds_and_rounding() {
    assert!(
        err(json!({"prompt": "x", "num_frames": 8})).contains("`num_frames` must be an integer from 9 to 481 (got 8)")
    );
    assert_eq!(ok(json!({"prompt": "x", "num_frames": 9})).num_frames, 9);
    assert_eq!(ok(json!({"prompt": "x", "num_frames": 10})).num_frames, 17);
    assert_eq!(ok(json!({"prompt": "x", "num_frames": 16})).num_frames, 17);
    assert_eq!(ok(json!({"prompt": "x", "num_frames": 17})).num_frames, 17);
    assert_eq!(ok(json!({"prompt": "x", "num_frames": 480})).num_frames, 481);
    assert_eq!(ok(json!({"prompt": "x", "num_frames": 481})).num_frames, 481);
    assert!(err(json!({"prompt": "x", "num_frames": 482})).contains("(got 482)"));
    assert!(err(json!({"prompt": "x", "num_frames": 20.5})).contains("`num_frames`"));
    assert!(err(json!({"prompt": "x", "num_frames": -9})).contains("`num_frames`"));
    assert!(err(json!({"prompt": "x", "num_frames": "121"})).contains("not a string"));
    assert_eq!(ok(json!({"prompt": "x", "num_frames": 33.0})).num_frames, 33);
}

#[test]
fn num_frames_wins_over_duration() {
    let r = ok(json!({"prompt": "x", "duration": 20, "num_frames": 49}));
    assert_eq!((r.duration, r.num_frames), (20, 49));
}

#[test]
fn rounding_to_8k_plus_1() {
    assert_eq!(round_up_to_8k_plus_1(9), 9);
    assert_eq!(round_up_to_8k_plus_1(121), 121);
    assert_eq!(round_up_to_8k_plus_1(122), 129);
    assert_eq!(round_up_to_8k_plus_1(473), 473);
    assert_eq!(round_up_to_8k_plus_1(474), 481);
}

#[test]
fn seed_bounds() {
    assert_eq!(ok(json!({"prompt": "x", "seed": 0})).seed, Some(0));
    assert_eq!(ok(json!({"prompt": "x", "seed": 2147483647})).seed, Some(2147483647));
    assert!(
        err(json!({"prompt": "x", "seed": 2147483648u64})).contains("`seed` must be an integer from 0 to 2147483647")
    );
    assert!(err(json!({"prompt": "x", "seed": -1})).contains("`seed`"));
    assert!(err(json!({"prompt": "x", "seed": 1.5})).contains("`seed`"));
    assert!(err(json!({"prompt": "x", "seed": "7"})).contains("`seed`"));
}

#[test]
fn generate_audio_is_boolean() {
    assert!(!ok(json!({"prompt": "x", "generate_audio": false})).generate_audio);
    assert!(err(json!({"prompt": "x", "generate_audio": "false"})).contains("`generate_audio` must be true or false"));
    assert!(err(json!({"prompt": "x", "generate_audio": 0})).contains("`generate_audio`"));
}

#[test]
fn styles_items_are_checked() {
    let r = ok(json!({"prompt": "x", "styles": [{"id": "a", "strength": -2}, {"id": "b", "strength": 2.0}]}));
    assert_eq!(r.styles, vec![StyleRef { id: "a".into(), strength: -2.0 }, StyleRef { id: "b".into(), strength: 2.0 }]);
    assert!(ok(json!({"prompt": "x", "styles": []})).styles.is_empty());
    assert!(err(json!({"prompt": "x", "styles": [{"id": "a", "strength": -2.0001}]}))
        .contains("`styles[0].strength` must be a number from -2 to 2 (got -2.0001)"));
    assert!(err(json!({"prompt": "x", "styles": [{"id": "a", "strength": 2.0001}]})).contains("`styles[0].strength`"));
    assert!(err(json!({"prompt": "x", "styles": [{"id": "a", "strength": 1}, {"id": "b"}]}))
        .contains("`styles[1].strength` is required"));
    assert!(err(json!({"prompt": "x", "styles": [{"strength": 1}]})).contains("`styles[0].id` is required"));
    assert!(
        err(json!({"prompt": "x", "styles": [{"id": 3, "strength": 1}]})).contains("`styles[0].id` must be a string")
    );
    assert!(err(json!({"prompt": "x", "styles": ["a"]})).contains("`styles[0]` must be an object"));
    assert!(err(json!({"prompt": "x", "styles": {"id": "a"}})).contains("`styles` must be an array"));
}

#[test]
fn images_accept_data_uris_and_null() {
    assert_eq!(ok(json!({"prompt": "x", "start_image": PNG_1X1})).start_image.as_deref(), Some(PNG_1X1));
    assert_eq!(ok(json!({"prompt": "x", "end_image": null})).end_image, None);
    assert!(err(json!({"prompt": "x", "start_image": 3})).contains("`start_image` must be a URI string or null"));
    assert!(err(json!({"prompt": "x", "end_image": "not a uri"})).contains("`end_image` must be a URI"));
    assert!(err(json!({"prompt": "x", "start_image": "data:image/gif;base64,R0lGODlh"})).contains("JPEG, PNG or WebP"));
    assert!(err(json!({"prompt": "x", "start_image": "data:image/png;base64,@@@"})).contains("not a valid data: URI"));
    assert!(err(json!({"prompt": "x", "start_image": "ftp://example.com/a.png"})).contains("http, https or data"));
    let big = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(vec![0u8; 1025]));
    assert!(err(json!({"prompt": "x", "start_image": big})).contains("at most 1024 bytes"));
}

/// Found by fuzzing (fuzz/fuzz_targets/normalise.rs): a non-ASCII character across byte 5 of an
/// image string made the `data:` check slice inside it and panic.
#[test]
fn an_image_string_with_a_multibyte_character_early_is_refused_not_a_panic() {
    assert!(err(json!({"prompt": "x", "start_image": "ltn.Κ&&&https:/+ltn"})).contains("`start_image` must be a URI"));
    assert!(err(json!({"prompt": "x", "end_image": "dataΚ:image/png;base64,AAAA"})).contains("`end_image`"));
}

#[test]
fn image_urls_to_private_addresses_are_refused() {
    for url in [
        "http://127.0.0.1/a.png",
        "http://10.0.0.1/a.png",
        "http://169.254.169.254/latest",
        "http://[::1]/a.png",
        "http://2130706433/a.png",
        "http://[::ffff:127.0.0.1]/x",
    ] {
        assert!(err(json!({"prompt": "x", "start_image": url})).contains("private or reserved address"), "{url}");
    }
}

#[test]
fn asset_and_external_urls_and_the_operator_switch() {
    let asset = "https://ltx.example/files/assets/0123456789abcdef0123456789abcdef.png";
    assert_eq!(ok(json!({"prompt": "x", "start_image": asset})).start_image.as_deref(), Some(asset));
    let external = "https://images.example.org/cat.jpg";
    assert_eq!(ok(json!({"prompt": "x", "end_image": external})).end_image.as_deref(), Some(external));

    let closed = NormaliseOptions { external_image_urls: false, ..options() };
    assert!(normalise(&json!({"prompt": "x", "start_image": asset}), &closed).is_ok());
    let refused = normalise(&json!({"prompt": "x", "start_image": external}), &closed).unwrap_err().0;
    assert!(refused.contains("does not fetch images from other sites"), "{refused}");

    let private = NormaliseOptions { allow_private_urls: true, ..options() };
    assert!(normalise(&json!({"prompt": "x", "start_image": "http://127.0.0.1:9/a.png"}), &private).is_ok());
}

#[test]
fn styles_are_capped_and_not_repeated() {
    let style = |id: &str| json!({"id": id, "strength": 1});
    assert_eq!(ok(json!({"prompt": "x", "styles": [style("a"), style("b")]})).styles.len(), 2);
    assert!(err(json!({"prompt": "x", "styles": [style("a"), style("b"), style("c")]}))
        .contains("`styles` may hold at most 2 styles (got 3)"));
    assert!(err(json!({"prompt": "x", "styles": [style("a"), style("a")]})).contains("`styles[1].id` repeats `a`"));
}

#[test]
fn public_ip_classification() {
    for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
        assert!(is_public_ip(ip.parse().unwrap()), "{ip}");
    }
    for ip in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:10.0.0.1",
        "::",
    ] {
        assert!(!is_public_ip(ip.parse().unwrap()), "{ip}");
    }
}

#[test]
fn aliases_map_to_their_fields_until_the_sunset() {
    let n = normalise(
        &json!({"prompt": "x", "aspectRatio": "9:16", "generateAudio": false, "startImage": PNG_1X1, "endImage": null, "presetStyles": [{"id": "s", "strength": 1}], "hasLora": true}),
        &options(),
    )
    .unwrap();
    assert_eq!(n.request.aspect_ratio, AspectRatio::Portrait);
    assert!(!n.request.generate_audio);
    assert_eq!(n.request.start_image.as_deref(), Some(PNG_1X1));
    assert_eq!(n.request.styles.len(), 1);
    let mut used = n.aliases_used.clone();
    used.sort();
    assert_eq!(used, ["aspectRatio", "endImage", "generateAudio", "hasLora", "presetStyles", "startImage"]);
    assert!(normalise(&json!({"prompt": "x"}), &options()).unwrap().aliases_used.is_empty());
    let e = err(json!({"prompt": "x", "hasLora": true}));
    assert!(e.contains("`has_lora` is true but `styles` is empty"), "the alias is checked as its field: {e}");

    let on_the_day = NormaliseOptions { today: date!(2026 - 06 - 19), ..options() };
    assert!(normalise(&json!({"prompt": "x", "aspectRatio": "9:16"}), &on_the_day).is_ok());
    let after = NormaliseOptions { today: date!(2026 - 06 - 20), ..options() };
    let e = normalise(&json!({"prompt": "x", "aspectRatio": "9:16"}), &after).unwrap_err().0;
    assert!(e.contains("`aspectRatio` is no longer accepted") && e.contains("use `aspect_ratio`"), "{e}");
}

#[test]
fn alias_with_its_new_name_is_a_conflict() {
    let e = err(json!({"prompt": "x", "aspectRatio": "9:16", "aspect_ratio": "9:16"}));
    assert!(e.contains("`aspectRatio` is a deprecated alias of `aspect_ratio`; send only `aspect_ratio`"), "{e}");
}

#[test]
fn has_lora_must_agree_with_styles() {
    let style = json!([{"id": "s1", "strength": 0.5}]);
    assert_eq!(ok(json!({"prompt": "x", "has_lora": true, "styles": style})).styles.len(), 1);
    assert!(ok(json!({"prompt": "x", "has_lora": false})).styles.is_empty());
    assert!(ok(json!({"prompt": "x", "has_lora": false, "styles": []})).styles.is_empty());
    let no_styles = err(json!({"prompt": "x", "has_lora": true}));
    assert!(no_styles.contains("`has_lora` is true but `styles` is empty"), "{no_styles}");
    let with_styles = err(json!({"prompt": "x", "has_lora": false, "styles": style}));
    assert!(with_styles.contains("`has_lora` is false but `styles` holds 1"), "{with_styles}");
    assert!(err(json!({"prompt": "x", "has_lora": "yes"})).contains("`has_lora` must be true or false"));
    assert!(err(json!({"prompt": "x", "has_lora": null})).contains("`has_lora` must be true or false"));
}

#[test]
fn prompt_is_bounded_in_characters_and_must_say_something() {
    assert_eq!(ok(json!({"prompt": "é".repeat(MAX_PROMPT_CHARS)})).prompt.chars().count(), 20_000);
    assert!(err(json!({"prompt": "x".repeat(20_001)})).contains("`prompt` may be at most 20000 characters (got 20001)"));
    for blank in [" ", "\t\n", "\u{3000}"] {
        assert!(err(json!({"prompt": blank})).starts_with("`prompt` must describe the clip"));
    }
    assert!(err(json!({"prompt": "a\u{0}b"})).contains("control characters (U+0000 at character 1)"));
    assert_eq!(ok(json!({"prompt": "two\nlines\tand a tab\r\n"})).prompt, "two\nlines\tand a tab\r\n");
}

#[test]
fn a_style_item_takes_only_id_and_strength() {
    let e = err(json!({"prompt": "x", "styles": [{"id": "a", "strength": 1}, {"id": "b", "strength": 1, "x": 0}]}));
    assert!(e.starts_with("Unknown field `styles[1].x`"), "{e}");
}

#[test]
fn data_uris_share_one_budget_and_the_field_over_it_is_named() {
    let data = |n: usize| format!("data:image/png;base64,{}", "A".repeat(n / 3 * 4));
    assert!(normalise(&json!({"prompt": "x", "start_image": data(510), "end_image": data(510)}), &options()).is_ok());
    let e = err(json!({"prompt": "x", "start_image": data(510), "end_image": data(516)}));
    assert!(e.starts_with("`end_image` is a 516-byte data: URI; with `start_image`"), "{e}");
    assert!(e.contains("hold 1026 bytes, and together they may hold at most 1024 bytes"), "{e}");
    // The budget is lowered to what the body limit can carry in base64, beside the other fields.
    assert_eq!(data_uri_budget(8 * 1024 * 1024, 6_000_000), 6_000_000);
    assert_eq!(data_uri_budget(8 * 1024 * 1024, 7_000_000), (8 * 1024 * 1024 - 256 * 1024) / 4 * 3);
    assert_eq!(data_uri_budget(1000, 6_000_000), 0);
}

#[test]
fn urls_are_bounded_but_data_uris_are_not_by_that_bound() {
    let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
    assert!(err(json!({"prompt": "x", "end_image": long})).starts_with("`end_image` may be at most 8192 characters"));
    let mut wide = options();
    wide.max_data_uri_bytes = 1 << 20;
    let data = format!("data:image/png;base64,{}", "A".repeat(12_000));
    assert!(normalise(&json!({"prompt": "x", "end_image": data}), &wide).is_ok());
}
