//! `ltx-serve generate keyframes|audio-to-video|retake …`: the additive endpoints from the
//! command line. Local files are uploaded as assets and sent by URL (like `--start-image`); the
//! job is then followed and downloaded exactly as a plain `generate`.
use super::{image_reference, Client};
use anyhow::Context;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum ModeCommand {
    /// Images placed at given frames (POST …/keyframes).
    Keyframes(KeyframesArgs),
    /// A clip that follows an audio track, as long as it (POST …/audio-to-video).
    AudioToVideo(AudioToVideoArgs),
    /// Regenerate a span of a clip and keep the rest (POST …/retake).
    Retake(RetakeArgs),
}

/// What every additive endpoint takes, and what to do with the finished job.
#[derive(clap::Args)]
pub struct Common {
    #[arg(long)]
    pub prompt: String,
    #[arg(long)]
    pub seed: Option<u32>,
    /// fast, balanced or best (the server's default: fast).
    #[arg(long)]
    pub quality: Option<String>,
    /// Rewrite the prompt with the model's prompt enhancer first.
    #[arg(long)]
    pub enhance_prompt: bool,
    /// Where to save the MP4.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the final job as JSON instead of a progress bar.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct KeyframesArgs {
    #[command(flatten)]
    pub common: Common,
    /// FRAME=IMAGE, `SECONDSs=IMAGE` (e.g. `2.5s=b.png`) or with a strength `FRAME,0.8=IMAGE`;
    /// IMAGE is a local file (uploaded as an asset) or an URL. 2 to 8, in ascending order.
    #[arg(long = "keyframe", required = true)]
    pub keyframes: Vec<String>,
    /// 5, 10, 15 or 20 seconds.
    #[arg(long)]
    pub duration: Option<u32>,
    /// 9..481 (rounded up to 8k+1); wins over --duration.
    #[arg(long)]
    pub num_frames: Option<u32>,
    /// 16:9 or 9:16.
    #[arg(long)]
    pub aspect_ratio: Option<String>,
    /// Generate a silent clip.
    #[arg(long)]
    pub no_audio: bool,
    /// A style as ID:STRENGTH (repeatable).
    #[arg(long = "style")]
    pub styles: Vec<String>,
}

#[derive(clap::Args)]
pub struct AudioToVideoArgs {
    #[command(flatten)]
    pub common: Common,
    /// The audio track: a local file (uploaded as an asset) or an URL; at most 20 s.
    #[arg(long)]
    pub audio: String,
    /// First frame: a local file (uploaded as an asset) or an URL.
    #[arg(long)]
    pub start_image: Option<String>,
    /// 16:9 or 9:16.
    #[arg(long)]
    pub aspect_ratio: Option<String>,
    /// A style as ID:STRENGTH (repeatable).
    #[arg(long = "style")]
    pub styles: Vec<String>,
}

#[derive(clap::Args)]
pub struct RetakeArgs {
    #[command(flatten)]
    pub common: Common,
    /// The clip: a local file (uploaded as an asset) or an URL.
    #[arg(long)]
    pub video: String,
    #[arg(long)]
    pub start_seconds: f64,
    #[arg(long)]
    pub end_seconds: f64,
    /// Keep the span's frames and regenerate only its audio.
    #[arg(long)]
    pub keep_video: bool,
    /// Keep the clip's audio and regenerate only the span's frames.
    #[arg(long)]
    pub keep_audio: bool,
}

impl ModeCommand {
    fn common(&self) -> &Common {
        match self {
            ModeCommand::Keyframes(a) => &a.common,
            ModeCommand::AudioToVideo(a) => &a.common,
            ModeCommand::Retake(a) => &a.common,
        }
    }

    /// The endpoint under `GENERATE_PATH`.
    fn segment(&self) -> &'static str {
        match self {
            ModeCommand::Keyframes(_) => "keyframes",
            ModeCommand::AudioToVideo(_) => "audio-to-video",
            ModeCommand::Retake(_) => "retake",
        }
    }
}

/// The request body of a mode, uploading local files on the way.
async fn request_body(client: &Client, mode: &ModeCommand) -> anyhow::Result<Value> {
    let common = mode.common();
    let mut body = json!({ "prompt": common.prompt });
    if let Some(seed) = common.seed {
        body["seed"] = json!(seed);
    }
    if let Some(quality) = &common.quality {
        body["quality"] = json!(quality);
    }
    if common.enhance_prompt {
        body["enhance_prompt"] = json!(true);
    }
    match mode {
        ModeCommand::Keyframes(args) => {
            let mut keyframes = Vec::with_capacity(args.keyframes.len());
            for spec in &args.keyframes {
                let (at, image) = parse_keyframe(spec)?;
                let mut keyframe = at;
                keyframe["image"] = json!(image_reference(client, image).await?);
                keyframes.push(keyframe);
            }
            body["keyframes"] = json!(keyframes);
            set(&mut body, "duration", args.duration.map(|d| json!(d)));
            set(&mut body, "num_frames", args.num_frames.map(|n| json!(n)));
            set(&mut body, "aspect_ratio", args.aspect_ratio.as_ref().map(|a| json!(a)));
            set(&mut body, "generate_audio", args.no_audio.then_some(json!(false)));
            set(&mut body, "styles", super::styles(&args.styles)?);
        }
        ModeCommand::AudioToVideo(args) => {
            body["audio"] = json!(image_reference(client, &args.audio).await?);
            if let Some(image) = &args.start_image {
                body["start_image"] = json!(image_reference(client, image).await?);
            }
            set(&mut body, "aspect_ratio", args.aspect_ratio.as_ref().map(|a| json!(a)));
            set(&mut body, "styles", super::styles(&args.styles)?);
        }
        ModeCommand::Retake(args) => {
            body["video"] = json!(image_reference(client, &args.video).await?);
            body["start_seconds"] = json!(args.start_seconds);
            body["end_seconds"] = json!(args.end_seconds);
            set(&mut body, "regenerate_video", args.keep_video.then_some(json!(false)));
            set(&mut body, "regenerate_audio", args.keep_audio.then_some(json!(false)));
        }
    }
    Ok(body)
}

fn set(body: &mut Value, field: &str, value: Option<Value>) {
    if let Some(value) = value {
        body[field] = value;
    }
}

/// `FRAME=IMAGE`, `SECONDSs=IMAGE`, optionally `…,STRENGTH=IMAGE`: the keyframe's placement
/// (`{frame|seconds, strength?}`) and its image.
pub fn parse_keyframe(spec: &str) -> anyhow::Result<(Value, &str)> {
    let usage = || format!("--keyframe `{spec}`: use FRAME=IMAGE, SECONDSs=IMAGE or FRAME,STRENGTH=IMAGE");
    let (at, image) = spec.split_once('=').with_context(usage)?;
    let (place, strength) = match at.split_once(',') {
        Some((place, strength)) => (place, Some(strength.parse::<f64>().ok().with_context(usage)?)),
        None => (at, None),
    };
    let mut keyframe = match place.strip_suffix('s') {
        Some(seconds) => json!({ "seconds": seconds.parse::<f64>().ok().with_context(usage)? }),
        None => json!({ "frame": place.parse::<u32>().ok().with_context(usage)? }),
    };
    if let Some(strength) = strength {
        keyframe["strength"] = json!(strength);
    }
    if image.is_empty() {
        anyhow::bail!(usage());
    }
    Ok((keyframe, image))
}

/// Submits the mode's job, then follows and saves it like `generate`.
pub async fn generate(client: Client, mode: ModeCommand) -> anyhow::Result<()> {
    let body = request_body(&client, &mode).await?;
    let job = client.submit_to(&format!("{}/{}", super::GENERATE_PATH, mode.segment()), &body).await?;
    let common = mode.common();
    super::follow_and_save(&client, job, common.out.as_deref(), common.json).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframes_are_placed_by_frame_or_seconds_with_an_optional_strength() {
        assert_eq!(parse_keyframe("0=a.png").unwrap(), (json!({"frame": 0}), "a.png"));
        assert_eq!(parse_keyframe("2.5s=b.png").unwrap(), (json!({"seconds": 2.5}), "b.png"));
        assert_eq!(
            parse_keyframe("48,0.5=https://x.example/c.png?a=b").unwrap(),
            (json!({"frame": 48, "strength": 0.5}), "https://x.example/c.png?a=b")
        );
        assert!(parse_keyframe("a.png").is_err());
        assert!(parse_keyframe("x=a.png").is_err());
        assert!(parse_keyframe("3=").is_err());
    }
}
