//! The additive-mode normalisers (keyframes, audio-to-video, retake) on any JSON body, and the
//! probe steps that finish the last two over lengths from empty to far too long: each refuses
//! with a sentence or accepts a request within the contract; never a panic or an overflow.
//! Every input goes to all three normalisers (a field one endpoint does not list is refused at
//! once), so the seeds stay plain request bodies.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ltx_serve::domain::request::modes::{audio, keyframes, retake};
use ltx_serve::domain::request::{GenerateRequest, Mode, NormaliseOptions, MAX_FRAMES, MIN_FRAMES};

/// Probed lengths around every edge `with_length` and `with_video` draw: none, under one frame,
/// the grid's steps, the longest clip and just past it, and values no real file has.
const AUDIO_SECONDS: [f64; 10] = [0.0, -1.0, 1e-9, 0.04, 0.375, 1.0, 19.99, 20.05, 1e12, f64::NAN];
const VIDEO_FRAMES: [u32; 9] = [0, 8, 9, 10, 49, 481, 482, 100_000, u32::MAX];

fn options() -> NormaliseOptions {
    NormaliseOptions {
        today: time::macros::date!(2026 - 06 - 01),
        aliases_accepted_until: time::macros::date!(2026 - 06 - 19),
        max_data_uri_bytes: 64 * 1024,
        max_styles: 4,
        asset_url_prefix: "https://ltx.example/files/".into(),
        external_image_urls: true,
        allow_private_urls: false,
    }
}

/// What every accepted request of any mode holds to.
fn check_clip(r: &GenerateRequest) {
    assert!(!r.prompt.is_empty());
    assert!((MIN_FRAMES..=MAX_FRAMES).contains(&r.num_frames) && r.num_frames % 8 == 1, "{}", r.num_frames);
    assert!(r.styles.len() <= 4);
    assert!(r.styles.iter().all(|s| (-2.0..=2.0).contains(&s.strength)));
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let options = options();

    if let Ok(r) = keyframes::normalise(&body, &options) {
        check_clip(&r);
        let Some(Mode::Keyframes { keyframes }) = &r.mode else { panic!("keyframes without its mode: {r:?}") };
        assert!((2..=8).contains(&keyframes.len()));
        assert!(keyframes.windows(2).all(|w| w[0].frame < w[1].frame));
        assert!(keyframes.iter().all(|k| k.frame < r.num_frames && (0.0..=1.0).contains(&k.strength)));
    }

    if let Ok(awaiting) = audio::normalise(&body, &options) {
        for seconds in AUDIO_SECONDS {
            if let Ok(r) = awaiting.clone().with_length(seconds) {
                check_clip(&r);
                assert!(
                    seconds > 0.0 && seconds <= audio::MAX_AUDIO_SECONDS + 0.05,
                    "{seconds} s of audio was accepted"
                );
            }
        }
    }

    if let Ok(awaiting) = retake::normalise(&body, &options) {
        for frames in VIDEO_FRAMES {
            for (width, height) in [(1280, 720), (720, 1280), (1, 1)] {
                if let Ok(r) = awaiting.clone().with_video(frames, width, height) {
                    check_clip(&r);
                    assert!(r.num_frames <= frames);
                    let Some(Mode::Retake { start_seconds, end_seconds, .. }) = r.mode else { panic!("{r:?}") };
                    let (start, end) = retake::span_frames(start_seconds, end_seconds);
                    assert!(start < end && end <= r.num_frames && end - start >= retake::MIN_SPAN_FRAMES);
                }
            }
        }
    }
});
