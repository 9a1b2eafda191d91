//! `…/keyframes`: `{prompt, keyframes: [{image, frame | seconds, strength?}], duration |
//! num_frames, aspect_ratio, seed, generate_audio, styles, quality, enhance_prompt}`.
use super::super::media::{check_data_total, media_value, IMAGE_MEDIA};
use super::super::{clip, integer_in_range, invalid, json_kind, prompt, styles, GenerateRequest, NormaliseOptions};
use super::super::{ValidationError, MAX_FRAMES};
use super::common::{flag, quality, seconds, strict_fields};
use super::{Keyframe, Mode, MAX_KEYFRAMES, MIN_KEYFRAMES};
use crate::domain::pricing::FPS;
use serde_json::{Map, Value};

pub const FIELDS: [&str; 10] = [
    "prompt",
    "keyframes",
    "duration",
    "num_frames",
    "aspect_ratio",
    "seed",
    "generate_audio",
    "styles",
    "quality",
    "enhance_prompt",
];

/// The fields are checked in this order; the first fault is named.
pub fn normalise(body: &Value, options: &NormaliseOptions) -> Result<GenerateRequest, ValidationError> {
    let fields = strict_fields(body, &FIELDS)?;
    let prompt = prompt(fields)?;
    let aspect_ratio = clip::aspect_ratio(fields)?;
    let duration = clip::duration(fields)?;
    let num_frames = clip::num_frames(fields, duration)?;
    let seed = clip::seed(fields)?;
    let generate_audio = clip::generate_audio(fields)?;
    let keyframes = keyframes(fields, num_frames, options)?;
    check_data_total(
        keyframes.iter().enumerate().map(|(i, k)| (format!("keyframes[{i}].image"), Some(k.image.as_str()))),
        options.max_data_uri_bytes,
    )?;
    let styles = styles::styles(fields, options.max_styles)?;
    Ok(GenerateRequest {
        prompt,
        start_image: None,
        start_video: None,
        end_image: None,
        aspect_ratio,
        duration,
        num_frames,
        seed,
        generate_audio,
        styles,
        mode: Some(Mode::Keyframes { keyframes }),
        quality: quality(fields)?,
        enhance_prompt: flag(fields, "enhance_prompt", false)?,
    })
}

/// 2 to 8 keyframes at frames of the clip (`< num_frames`), strictly ascending.
fn keyframes(
    fields: &Map<String, Value>,
    num_frames: u32,
    options: &NormaliseOptions,
) -> Result<Vec<Keyframe>, ValidationError> {
    let items = match fields.get("keyframes") {
        None | Some(Value::Null) => return invalid("`keyframes` is required."),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return invalid(format!(
                "`keyframes` must be an array of {{image, frame | seconds, strength}} objects, not {}.",
                json_kind(other)
            ))
        }
    };
    if !(MIN_KEYFRAMES..=MAX_KEYFRAMES).contains(&items.len()) {
        return invalid(format!(
            "`keyframes` must hold {MIN_KEYFRAMES} to {MAX_KEYFRAMES} keyframes (got {}).",
            items.len()
        ));
    }
    let mut out: Vec<Keyframe> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let (keyframe, from_seconds) = keyframe(i, item, options)?;
        let at = format!("keyframes[{i}].frame");
        let given = match from_seconds {
            Some(s) => format!("{} (from `keyframes[{i}].seconds` {s} at {FPS} fps)", keyframe.frame),
            None => keyframe.frame.to_string(),
        };
        if keyframe.frame >= num_frames {
            return invalid(format!(
                "`{at}` is {given}, outside the clip: it has {num_frames} frames (0 to {}).",
                num_frames - 1
            ));
        }
        if let Some(previous) = out.last() {
            if keyframe.frame == previous.frame {
                return invalid(format!(
                    "`{at}` is {given}, the frame of `keyframes[{}]` too: each frame takes one keyframe.",
                    i - 1
                ));
            }
            if keyframe.frame < previous.frame {
                return invalid(format!(
                    "`{at}` is {given}, before `keyframes[{}]`'s frame {}: list keyframes in ascending order.",
                    i - 1,
                    previous.frame
                ));
            }
        }
        out.push(keyframe);
    }
    Ok(out)
}

/// One `{image, frame | seconds, strength?}`; also the `seconds` it was placed by, if any.
fn keyframe(i: usize, item: &Value, options: &NormaliseOptions) -> Result<(Keyframe, Option<f64>), ValidationError> {
    let at = format!("keyframes[{i}]");
    let Some(obj) = item.as_object() else {
        return invalid(format!(
            "`{at}` must be an object with `image` and `frame` (or `seconds`), not {}.",
            json_kind(item)
        ));
    };
    if let Some(key) = obj.keys().find(|k| !matches!(k.as_str(), "image" | "frame" | "seconds" | "strength")) {
        return invalid(format!(
            "Unknown field `{at}.{key}`: a keyframe accepts only `image`, `frame`, `seconds` and `strength`."
        ));
    }
    let image = match media_value(obj.get("image"), &format!("{at}.image"), &IMAGE_MEDIA, options)? {
        Some(uri) => uri,
        None => return invalid(format!("`{at}.image` is required.")),
    };
    let (frame, from_seconds) = match (obj.get("frame"), obj.get("seconds")) {
        (Some(_), Some(_)) => return invalid(format!("`{at}` gives both `frame` and `seconds`; send one of them.")),
        (None, None) => return invalid(format!("`{at}.frame` is required (or `{at}.seconds`).")),
        (Some(frame), None) => {
            (integer_in_range(frame, &format!("{at}.frame"), 0, u64::from(MAX_FRAMES) - 1)? as u32, None)
        }
        (None, Some(value)) => {
            let s = seconds(value, &format!("{at}.seconds"))?;
            // Far past any clip: still refused below, as outside the clip, without overflowing.
            ((s * f64::from(FPS)).round().min(f64::from(u32::MAX)) as u32, Some(s))
        }
    };
    let strength = match obj.get("strength") {
        None => 1.0,
        Some(Value::Number(n)) => match n.as_f64().filter(|s| (0.0..=1.0).contains(s)) {
            Some(s) => s,
            None => return invalid(format!("`{at}.strength` must be a number from 0 to 1 (got {n}).")),
        },
        Some(other) => {
            return invalid(format!("`{at}.strength` must be a number from 0 to 1, not {}.", json_kind(other)))
        }
    };
    Ok((Keyframe { image, frame, strength }, from_seconds))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{options, PNG};
    use super::*;
    use serde_json::json;

    fn body(keyframes: Value) -> Value {
        json!({"prompt": "a boat", "num_frames": 49, "keyframes": keyframes})
    }

    fn err(body: Value) -> String {
        match normalise(&body, &options()) {
            Ok(r) => panic!("{body} was accepted as {r:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn keyframes_land_on_frames_given_or_from_seconds() {
        let r = normalise(
            &body(json!([{"image": PNG, "frame": 0}, {"image": PNG, "seconds": 1.0, "strength": 0.5}])),
            &options(),
        )
        .unwrap();
        assert_eq!(r.num_frames, 49);
        let Some(Mode::Keyframes { keyframes }) = r.mode else { panic!("{r:?}") };
        assert_eq!((keyframes[0].frame, keyframes[0].strength), (0, 1.0));
        assert_eq!((keyframes[1].frame, keyframes[1].strength), (24, 0.5));
        assert_eq!((r.quality, r.enhance_prompt), (None, false));
    }

    #[test]
    fn out_of_range_duplicate_and_unordered_frames_name_the_keyframe() {
        let e = err(body(json!([{"image": PNG, "frame": 0}, {"image": PNG, "frame": 49}])));
        assert!(e.starts_with("`keyframes[1].frame` is 49, outside the clip: it has 49 frames (0 to 48)"), "{e}");
        let e = err(body(json!([{"image": PNG, "frame": 10}, {"image": PNG, "seconds": 0.42}])));
        assert!(e.starts_with("`keyframes[1].frame` is 10 (from `keyframes[1].seconds` 0.42"), "{e}");
        assert!(e.contains("the frame of `keyframes[0]` too"), "{e}");
        let e =
            err(body(json!([{"image": PNG, "frame": 10}, {"image": PNG, "frame": 20}, {"image": PNG, "frame": 5}])));
        assert!(e.starts_with("`keyframes[2].frame` is 5, before `keyframes[1]`'s frame 20"), "{e}");
        let e = err(body(json!([{"image": PNG, "seconds": 0}, {"image": PNG, "seconds": 100000000000.0}])));
        assert!(e.starts_with("`keyframes[1].frame`") && e.contains("outside the clip"), "{e}");
    }

    #[test]
    fn counts_fields_and_values_are_checked() {
        let e = err(body(json!([{"image": PNG, "frame": 0}])));
        assert_eq!(e, "`keyframes` must hold 2 to 8 keyframes (got 1).");
        let nine: Vec<Value> = (0..9).map(|i| json!({"image": PNG, "frame": i})).collect();
        assert!(err(body(json!(nine))).contains("(got 9)"));
        assert_eq!(err(json!({"prompt": "x"})), "`keyframes` is required.");
        let e = err(body(json!([{"image": PNG, "frame": 0, "seconds": 0}, {"image": PNG, "frame": 9}])));
        assert!(e.contains("both `frame` and `seconds`"), "{e}");
        let e = err(body(json!([{"image": PNG, "frame": 0}, {"image": PNG}])));
        assert_eq!(e, "`keyframes[1].frame` is required (or `keyframes[1].seconds`).");
        let e = err(body(json!([{"image": PNG, "frame": 0, "weight": 1}, {"image": PNG, "frame": 9}])));
        assert!(e.starts_with("Unknown field `keyframes[0].weight`"), "{e}");
        let e = err(body(json!([{"image": PNG, "frame": 0, "strength": 1.5}, {"image": PNG, "frame": 9}])));
        assert!(e.starts_with("`keyframes[0].strength` must be a number from 0 to 1"), "{e}");
        let e = err(body(json!([{"image": "data:image/gif;base64,R0lG", "frame": 0}, {"image": PNG, "frame": 9}])));
        assert!(e.starts_with("`keyframes[0].image`"), "{e}");
        let e = err(body(json!([{"frame": 0}, {"image": PNG, "frame": 9}])));
        assert_eq!(e, "`keyframes[0].image` is required.");
        let e = err(json!({"prompt": "x", "start_image": PNG, "keyframes": []}));
        assert!(e.starts_with("Unknown field `start_image`"), "{e}");
    }

    #[test]
    fn the_images_data_uris_share_one_budget() {
        let big = format!("data:image/png;base64,{}", "A".repeat(1000));
        let e = err(body(json!([{"image": big, "frame": 0}, {"image": big, "frame": 9}])));
        assert!(e.starts_with("`keyframes[1].image` is a 750-byte data: URI"), "{e}");
    }

    #[test]
    fn the_additive_options_are_read() {
        let mut b = body(json!([{"image": PNG, "frame": 0}, {"image": PNG, "frame": 48}]));
        b["quality"] = json!("balanced");
        b["enhance_prompt"] = json!(true);
        b["duration"] = json!(10);
        b.as_object_mut().unwrap().remove("num_frames");
        let r = normalise(&b, &options()).unwrap();
        assert_eq!((r.quality, r.enhance_prompt, r.num_frames), (Some(super::super::Quality::Balanced), true, 241));
    }
}
