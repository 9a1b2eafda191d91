//! The additive endpoints beside Krea's (docs/api.md, "Beyond Krea: additive modes"):
//! `POST {GENERATE_PATH}/keyframes`, `/audio-to-video` and `/retake`. Each checks its own body
//! (domain::request::modes) and media, then hands the job to the same tail as Krea's endpoint
//! (`generate::admit`: styles, `Idempotency-Key`, price, admission, `Prefer: wait`), so its jobs
//! share the jobs list, billing, backlog, webhooks and event streams.
use super::auth::Caller;
use super::error::ApiError;
use super::generate::{admit, check_image_source, normalise_options, read_json, webhook_url};
use super::AppState;
use crate::domain::request::modes::{audio, keyframes, retake};
use crate::domain::request::{GenerateRequest, Mode};
use crate::fetch::UrlPolicy;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

mod inputs;

fn bad(e: crate::domain::request::ValidationError) -> ApiError {
    ApiError::bad_request(e.0)
}

fn policy(state: &AppState) -> UrlPolicy {
    UrlPolicy { allow_private: state.config.allow_private_urls }
}

/// `…/keyframes`: the body, the preset, the webhook URL, each keyframe's image.
pub async fn keyframes(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let raw = read_json(&state, &headers, body).await?;
    let request = keyframes::normalise(&raw, &normalise_options(&state)).map_err(bad)?;
    super::presets::check(&state, request.quality).await?;
    let webhook_url = webhook_url(&headers, policy(&state)).await?;
    if let Some(Mode::Keyframes { keyframes }) = &request.mode {
        for (i, keyframe) in keyframes.iter().enumerate() {
            let field = format!("keyframes[{i}].image");
            check_image_source(&state, caller.account_id, &field, &keyframe.image, policy(&state)).await?;
        }
    }
    admit(&state, caller.account_id, &headers, request, webhook_url, false).await
}

/// `…/audio-to-video`: the body, the preset, the webhook URL, `start_image`, then the audio is
/// probed and its length sets the clip's.
pub async fn audio_to_video(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let raw = read_json(&state, &headers, body).await?;
    let awaiting = audio::normalise(&raw, &normalise_options(&state)).map_err(bad)?;
    super::presets::check(&state, awaiting.quality()).await?;
    let webhook_url = webhook_url(&headers, policy(&state)).await?;
    if let Some(uri) = awaiting.start_image() {
        check_image_source(&state, caller.account_id, "start_image", uri, policy(&state)).await?;
    }
    let seconds = inputs::audio_seconds(&state, caller.account_id, awaiting.audio(), policy(&state)).await?;
    let request = awaiting.with_length(seconds).map_err(bad)?;
    admit(&state, caller.account_id, &headers, request, webhook_url, false).await
}

/// `…/retake`: the body, the preset, the webhook URL, then the video is probed: its frames and
/// orientation set the clip's, and the span must lie inside it.
pub async fn retake(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let raw = read_json(&state, &headers, body).await?;
    let awaiting = retake::normalise(&raw, &normalise_options(&state)).map_err(bad)?;
    super::presets::check(&state, awaiting.quality()).await?;
    let webhook_url = webhook_url(&headers, policy(&state)).await?;
    let video = inputs::video(&state, caller.account_id, awaiting.video(), policy(&state)).await?;
    let request: GenerateRequest = awaiting.with_video(video.frames as u32, video.width, video.height).map_err(bad)?;
    admit(&state, caller.account_id, &headers, request, webhook_url, false).await
}
