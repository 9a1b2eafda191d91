//! The request normaliser on any JSON body: it refuses with a sentence or accepts, never panics,
//! and what it accepts is within the contract.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ltx_serve::domain::request::{normalise, NormaliseOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let options = NormaliseOptions {
        today: time::macros::date!(2026 - 06 - 01),
        aliases_accepted_until: time::macros::date!(2026 - 06 - 19),
        max_data_uri_bytes: 64 * 1024,
        max_styles: 4,
        asset_url_prefix: "https://ltx.example/files/".into(),
        external_image_urls: true,
        allow_private_urls: false,
    };
    if let Ok(normalised) = normalise(&body, &options) {
        let r = normalised.request;
        assert!(!r.prompt.is_empty());
        assert!((9..=481).contains(&r.num_frames) && r.num_frames % 8 == 1, "{}", r.num_frames);
        assert!(r.styles.len() <= 4);
        assert!(r.styles.iter().all(|s| (-2.0..=2.0).contains(&s.strength)));
    }
});
