//! The preview engine's prompt enhancement: a deterministic stand-in for the model's enhancer
//! (Gemma rewriting the prompt), so the sandbox shows the feature end to end. The prompt is
//! kept word for word and followed by one clearly marked sentence of camera, light and mood,
//! picked by a hash of the prompt (and the image, when one is given): same input, same output.
use crate::worker::engine::RenderSpec;
use image::RgbImage;
use sha2::{Digest, Sha256};

/// What the added sentence starts with, so nobody takes it for the model's work.
pub const MARK: &str = "[preview enhancement]";

const CAMERA: [&str; 6] = [
    "A slow dolly-in",
    "A steady handheld shot",
    "A wide establishing shot",
    "A smooth orbit around the subject",
    "A low-angle tracking shot",
    "A locked-off close-up",
];
const LIGHT: [&str; 6] = [
    "soft golden-hour light",
    "cool overcast daylight",
    "warm practical lamps",
    "high-contrast side light",
    "diffuse studio light",
    "flickering neon reflections",
];
const MOOD: [&str; 6] = [
    "a calm, unhurried mood",
    "a tense, expectant mood",
    "a playful mood",
    "a dreamlike mood",
    "a documentary feel",
    "a cinematic, shallow depth of field",
];

/// The enhanced prompt: `prompt` (trimmed), a blank line, and the marked sentence.
pub fn enhance(prompt: &str, image: Option<&RgbImage>) -> String {
    let prompt = prompt.trim();
    let mut hash = Sha256::new().chain_update(prompt.as_bytes());
    if let Some(image) = image {
        hash.update(image.width().to_le_bytes());
        hash.update(image.height().to_le_bytes());
        hash.update(image.as_raw());
    }
    let digest = hash.finalize();
    let pick = |list: &[&'static str; 6], i: usize| list[usize::from(digest[i]) % list.len()];
    let subject = if image.is_some() { " from the given first frame" } else { "" };
    format!("{prompt}\n\n{MARK} {}{subject}, in {}, with {}.", pick(&CAMERA, 0), pick(&LIGHT, 1), pick(&MOOD, 2))
}

/// The spec the clip is rendered from (its prompt enhanced when the job asked for it, so the
/// look and the caption follow the prompt actually used) and that prompt, for
/// `RenderedClip::enhanced_prompt`.
pub fn apply(spec: RenderSpec) -> (RenderSpec, Option<String>) {
    if !spec.enhance_prompt {
        return (spec, None);
    }
    let prompt = enhance(&spec.prompt, spec.start_image.as_ref());
    (RenderSpec { prompt: prompt.clone(), ..spec }, Some(prompt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_is_kept_and_a_marked_sentence_is_added_deterministically() {
        let once = enhance("  a red fox in the snow ", None);
        assert!(once.starts_with("a red fox in the snow\n\n[preview enhancement] "), "{once}");
        assert!(once.ends_with('.'));
        assert_eq!(once, enhance("a red fox in the snow", None), "same prompt, same enhancement");
        let image = RgbImage::from_pixel(4, 4, image::Rgb([200, 10, 10]));
        let with_image = enhance("a red fox in the snow", Some(&image));
        assert!(with_image.contains("from the given first frame"), "{with_image}");
        assert_eq!(with_image, enhance("a red fox in the snow", Some(&image)));
    }

    #[test]
    fn different_prompts_get_different_sentences() {
        let sentences: std::collections::BTreeSet<String> =
            (0..20).map(|i| enhance(&format!("prompt {i}"), None).split_once(MARK).unwrap().1.to_owned()).collect();
        assert!(sentences.len() > 5, "{sentences:?}");
    }
}
