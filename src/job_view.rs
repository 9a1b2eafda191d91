//! A job as clients see it: Krea's fields first (`job_id`, `status`, `created_at`,
//! `completed_at`, `result`), then our additive ones. Serialised straight from borrowed fields
//! (no intermediate JSON tree): this runs on every poll. The API and the webhook dispatcher both
//! send it, so it sits below both.
use crate::domain::job::JobStatus;
use crate::domain::money::MicroUsd;
use crate::domain::request::{AspectRatio, StyleRef};
use crate::storage::{ResultStorage, ResultUrls};
use crate::store::{Job, WebhookState};
use serde::Serialize;
use std::borrow::Cow;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

mod mode_view;

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

#[derive(Serialize)]
pub struct JobView<'a> {
    job_id: Uuid,
    status: JobStatus,
    created_at: String,
    completed_at: Option<String>,
    result: Option<ResultView<'a>>,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorView<'a>>,
    progress: f64,
    queue_position: Option<u64>,
    attempts: u32,
    engine: Option<&'a str>,
    started_at: Option<String>,
    request: RequestView<'a>,
    width: u32,
    height: u32,
    price_usd: MicroUsd,
    billed_duration_s: u32,
    webhook: Option<&'a WebhookState>,
}

#[derive(Serialize, Clone, Copy)]
struct ErrorView<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ResultView<'a> {
    Completed {
        urls: [String; 1],
        thumbnail_url: String,
        width: u32,
        height: u32,
        num_frames: u32,
        fps: u32,
        duration_s: f64,
        has_audio: bool,
        seed: u32,
        engine: &'a str,
        /// True when the clip came from the `preview` sandbox engine, not the model.
        sandbox: bool,
        /// The prompt the model was given, when the job asked for `enhance_prompt` (the
        /// request keeps the original).
        #[serde(skip_serializing_if = "Option::is_none")]
        enhanced_prompt: Option<&'a str>,
        /// When the retention sweeper deleted the files (their URLs then answer 410); absent
        /// while they are kept.
        #[serde(skip_serializing_if = "Option::is_none")]
        expired_at: Option<String>,
    },
    Failed {
        error: ErrorView<'a>,
    },
}

/// The normalised request, with the seed that was used.
#[derive(Serialize)]
struct RequestView<'a> {
    prompt: &'a str,
    start_image: Option<Cow<'a, str>>,
    /// Shown only when sent, so jobs without it look as they did before the field existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    start_video: Option<Cow<'a, str>>,
    end_image: Option<Cow<'a, str>>,
    aspect_ratio: AspectRatio,
    duration: u32,
    num_frames: u32,
    seed: u32,
    generate_audio: bool,
    styles: &'a [StyleRef],
    /// The additive endpoints' fields; absent on Krea's jobs, which look exactly as before.
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<mode_view::ModeView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<crate::domain::request::Quality>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    enhance_prompt: bool,
}

/// Links to a job's result files, if it has any (presigned for S3, valid for the configured time).
pub async fn result_urls(results: &ResultStorage, job: &Job) -> Option<ResultUrls> {
    let result = job.result.as_ref()?;
    match results.urls(&result.video_key, &result.poster_key).await {
        Ok(urls) => Some(urls),
        Err(e) => {
            tracing::error!(job_id = %job.id, error = %e, "could not sign result URLs");
            None
        }
    }
}

/// Links to a job's result files once retention deleted them: this server's own `/results/…`
/// paths (whatever the storage), which answer 410 `result_expired`.
pub fn expired_result_urls(public_url: &str, job: &Job) -> Option<ResultUrls> {
    let result = job.result.as_ref()?;
    let url = |key: &str| format!("{}/results/{key}", public_url.trim_end_matches('/'));
    Some(ResultUrls { video: url(&result.video_key), poster: url(&result.poster_key) })
}

/// The job as the API shows it; `urls` are its result links (`result_urls`).
pub fn job_json<'a>(job: &'a Job, urls: Option<ResultUrls>) -> JobView<'a> {
    let error = job.failure.as_ref().map(|f| ErrorView { code: f.code.as_str(), message: &f.message });
    let result = match (job.status, &job.result, error) {
        // While `intermediate-complete` the result is the first-stage preview (smaller, same
        // shape); `completed` replaces it with the final clip.
        (JobStatus::Completed | JobStatus::IntermediateComplete, Some(r), _) => Some({
            let urls = urls.unwrap_or_else(|| ResultUrls { video: String::new(), poster: String::new() });
            ResultView::Completed {
                urls: [urls.video],
                thumbnail_url: urls.poster,
                width: r.width,
                height: r.height,
                num_frames: r.num_frames,
                fps: r.fps,
                duration_s: f64::from(r.num_frames) / f64::from(r.fps),
                has_audio: r.has_audio,
                seed: job.seed,
                engine: &r.engine,
                sandbox: r.engine == "preview",
                enhanced_prompt: r.enhanced_prompt.as_deref(),
                expired_at: job.results_expired_at.map(rfc3339),
            }
        }),
        (JobStatus::Failed, _, Some(error)) => Some(ResultView::Failed { error }),
        _ => None,
    };
    let request = &job.request;
    JobView {
        job_id: job.id,
        status: job.status,
        created_at: rfc3339(job.created_at),
        completed_at: job.completed_at.map(rfc3339),
        result,
        kind: &job.kind,
        error,
        progress: job.progress,
        queue_position: job.queue_position,
        attempts: job.attempts,
        engine: job.engine.as_deref(),
        started_at: job.started_at.map(rfc3339),
        request: RequestView {
            prompt: &request.prompt,
            start_image: request.start_image.as_deref().map(echo_image),
            start_video: request.start_video.as_deref().map(echo_image),
            end_image: request.end_image.as_deref().map(echo_image),
            aspect_ratio: request.aspect_ratio,
            duration: request.duration,
            num_frames: request.num_frames,
            seed: job.seed,
            generate_audio: request.generate_audio,
            styles: &request.styles,
            mode: request.mode.as_ref().map(mode_view::ModeView::of),
            quality: request.quality,
            enhance_prompt: request.enhance_prompt,
        },
        width: job.width,
        height: job.height,
        price_usd: job.price,
        billed_duration_s: job.price_tier_seconds,
        webhook: job.webhook.as_ref(),
    }
}

/// A `data:` image is echoed as its type and size, not its megabytes of base64 (on every poll
/// and webhook); a URL as itself.
fn echo_image(uri: &str) -> Cow<'_, str> {
    match uri.strip_prefix("data:").and_then(|_| uri.split_once(',')) {
        Some((meta, payload)) => Cow::Owned(format!("{meta},<{} bytes>", payload.len() / 4 * 3)),
        None => Cow::Borrowed(uri),
    }
}
