//! Media inputs probed at submit: `start_video`, and the additive endpoints' `video` (retake) and
//! `audio` (audio-to-video). A file we hold (the caller's asset or a `data:` URI) is probed with
//! ffprobe before the job is accepted, so a file the model cannot use is a 400 that names the
//! field and says why, and nothing is charged. Another site's URL gets the same syntax and address
//! checks as `start_image`; for `start_video` its content is checked by the worker, while the
//! additive inputs, whose length sets the clip's, are fetched here through the SSRF guard.
use super::error::ApiError;
use super::AppState;
use crate::domain::asset::MAX_ASSET_BYTES;
use crate::domain::request::decode_data_uri;
use crate::fetch::{check_resolution, check_url, UrlPolicy};
use crate::media::input_video;
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Probes run at once (each reads the whole file to count its frames).
static PROBES: Semaphore = Semaphore::const_new(2);

/// How long fetching another site's input at submit may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// One probed input field.
pub struct Input {
    pub field: &'static str,
    /// "video", "audio": the MIME type family of a fetched file, and the word errors use.
    pub noun: &'static str,
    /// MIME types (prefixes) an asset must have.
    pub asset_types: &'static [&'static str],
    /// Fetch another site's URL now (through the SSRF guard), rather than leave it to the worker.
    pub fetch_remote: bool,
}

const START_VIDEO: Input = Input { field: "start_video", noun: "video", asset_types: &["video/"], fetch_remote: false };

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::from(crate::store::StoreError::Internal(format!("input probe: {e}")))
}

/// `start_video`: probed and checked when we hold it.
pub async fn check(state: &AppState, account: Uuid, uri: &str, policy: UrlPolicy) -> Result<(), ApiError> {
    let Some(staged) = stage(state, account, &START_VIDEO, uri, policy).await? else { return Ok(()) };
    probe(&START_VIDEO, staged.path(), input_video::probe_and_check).await?;
    Ok(())
}

/// The input as a local file; `None` for another site's URL that `input` leaves to the worker.
pub async fn stage(
    state: &AppState,
    account: Uuid,
    input: &Input,
    uri: &str,
    policy: UrlPolicy,
) -> Result<Option<tempfile::NamedTempFile>, ApiError> {
    let field = input.field;
    let refuse = |why: String| ApiError::bad_request(format!("`{field}` {why}."));
    let staged = tempfile::NamedTempFile::new_in(state.config.data_dir.join("tmp"))
        .or_else(|_| tempfile::NamedTempFile::new())
        .map_err(internal)?;
    if uri.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
        // `normalise` checked the type and size; the bytes are what is probed.
        let (_, bytes) = decode_data_uri(uri).ok_or_else(|| refuse("is not a valid data: URI".into()))?;
        staged.as_file().write_all(&bytes).map_err(internal)?;
    } else if uri.starts_with(&format!("{}/files/", state.public_url)) {
        let asset = match super::assets::file_key_of_url(state, uri) {
            Some(key) => state.store.asset_by_file(key).await?.filter(|a| a.account_id == account),
            None => None,
        };
        let Some(asset) = asset else {
            return Err(ApiError::bad_request(format!(
                "`{field}`: no asset at this URL is available to this account (upload it with POST /assets)."
            )));
        };
        if !input.asset_types.iter().any(|t| asset.mime_type.starts_with(t)) {
            return Err(refuse(format!("is not {}: the asset is {}", article(input.noun), asset.mime_type)));
        }
        if asset.size_bytes > MAX_ASSET_BYTES {
            return Err(refuse(format!("is {} bytes; the limit is {MAX_ASSET_BYTES}", asset.size_bytes)));
        }
        state.results.copy_file_to(&asset.file_key, staged.path()).await.map_err(internal)?;
    } else {
        let url = check_url(uri, policy).map_err(refuse)?;
        check_resolution(&url, policy).await.map_err(refuse)?;
        if !input.fetch_remote {
            return Ok(None);
        }
        let client = crate::fetch::guarded_client(policy, FETCH_TIMEOUT);
        let bytes = crate::fetch::fetch_media(&client, uri, MAX_ASSET_BYTES, input.noun)
            .await
            .map_err(|why| refuse(format!("could not be fetched: {why}")))?;
        staged.as_file().write_all(&bytes).map_err(internal)?;
    }
    Ok(Some(staged))
}

/// Runs `probe` on the staged file (a blocking ffprobe, a few at once); its error is a clause
/// that fits after the field's name.
pub async fn probe<T: Send + 'static>(
    input: &Input,
    path: &Path,
    probe: impl FnOnce(&Path) -> Result<T, String> + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = PROBES.acquire().await.map_err(internal)?;
    let path = path.to_owned();
    let field = input.field;
    tokio::task::spawn_blocking(move || probe(&path))
        .await
        .map_err(internal)?
        .map_err(|why| ApiError::bad_request(format!("`{field}` {why}.")))
}

fn article(noun: &str) -> String {
    match noun {
        "audio" => "audio".to_owned(),
        _ => format!("a {noun}"),
    }
}
