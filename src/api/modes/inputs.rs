//! The additive endpoints' media, probed at submit (api::start_video stages them): the audio of
//! audio-to-video and the video of a retake set the clip's length, so another site's file is
//! fetched now (through the SSRF guard), not left to the worker.
use super::super::error::ApiError;
use super::super::start_video::{probe, stage, Input};
use super::super::AppState;
use crate::fetch::UrlPolicy;
use crate::media::input_audio;
use crate::media::input_video::{self, VideoProbe};
use uuid::Uuid;

/// Assets of these types may be `audio` (`audio/webm` uploads are kept as `video/webm`); the
/// probe decides whether the file holds an audio track.
const AUDIO: Input =
    Input { field: "audio", noun: "audio", asset_types: &["audio/", "video/webm"], fetch_remote: true };
const VIDEO: Input = Input { field: "video", noun: "video", asset_types: &["video/"], fetch_remote: true };

/// The audio's length in seconds. Not audio, unreadable: a 400 naming `audio` (the length
/// itself is judged by `AwaitingAudioLength::with_length`).
pub async fn audio_seconds(state: &AppState, account: Uuid, uri: &str, policy: UrlPolicy) -> Result<f64, ApiError> {
    let staged = stage(state, account, &AUDIO, uri, policy).await?.ok_or_else(not_staged)?;
    probe(&AUDIO, staged.path(), |path| match input_audio::probe(path)? {
        Some(audio) => Ok(audio.seconds),
        None => Err("holds no audio stream: it is not an audio file".to_owned()),
    })
    .await
}

/// The video's frames and size (within the limits of a clip we take: input_video::check).
pub async fn video(state: &AppState, account: Uuid, uri: &str, policy: UrlPolicy) -> Result<VideoProbe, ApiError> {
    let staged = stage(state, account, &VIDEO, uri, policy).await?.ok_or_else(not_staged)?;
    // At most 481 frames once checked.
    probe(&VIDEO, staged.path(), input_video::probe_and_check).await
}

/// `stage` leaves no file only for inputs it does not fetch, which these are not.
fn not_staged() -> ApiError {
    ApiError::from(crate::store::StoreError::Internal("an additive input was not staged".into()))
}
