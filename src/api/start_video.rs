//! `start_video` at submit: a clip we hold (the caller's asset or a `data:` URI) is probed with
//! ffprobe before the job is accepted, so a file the model cannot continue is a 400 that names
//! the field and says why, and nothing is charged. Another site's URL gets the same syntax and
//! address checks as `start_image`; its content is checked by the worker.
use super::error::ApiError;
use super::AppState;
use crate::domain::asset::MAX_ASSET_BYTES;
use crate::domain::request::decode_data_uri;
use crate::fetch::{check_resolution, check_url, UrlPolicy};
use crate::media::input_video;
use std::io::Write;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Probes run at once (each reads the whole file to count its frames).
static PROBES: Semaphore = Semaphore::const_new(2);

const FIELD: &str = "start_video";

fn refuse(why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("`{FIELD}` {why}."))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::from(crate::store::StoreError::Internal(format!("start_video probe: {e}")))
}

pub async fn check(state: &AppState, account: Uuid, uri: &str, policy: UrlPolicy) -> Result<(), ApiError> {
    let staged = tempfile::NamedTempFile::new_in(state.config.data_dir.join("tmp"))
        .or_else(|_| tempfile::NamedTempFile::new())
        .map_err(internal)?;
    if uri.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
        // `normalise` checked the type and size; the bytes are what is probed.
        let (_, bytes) = decode_data_uri(uri).ok_or_else(|| refuse("is not a valid data: URI"))?;
        staged.as_file().write_all(&bytes).map_err(internal)?;
    } else if uri.starts_with(&format!("{}/files/", state.public_url)) {
        let asset = match super::assets::file_key_of_url(state, uri) {
            Some(key) => state.store.asset_by_file(key).await?.filter(|a| a.account_id == account),
            None => None,
        };
        let Some(asset) = asset else {
            return Err(ApiError::bad_request(format!(
                "`{FIELD}`: no asset at this URL is available to this account (upload it with POST /assets)."
            )));
        };
        if !asset.mime_type.starts_with("video/") {
            return Err(refuse(format!("is not a video: the asset is {}", asset.mime_type)));
        }
        if asset.size_bytes > MAX_ASSET_BYTES {
            return Err(refuse(format!("is {} bytes; the limit is {MAX_ASSET_BYTES}", asset.size_bytes)));
        }
        state.results.copy_file_to(&asset.file_key, staged.path()).await.map_err(internal)?;
    } else {
        let url = check_url(uri, policy).map_err(refuse)?;
        return check_resolution(&url, policy).await.map_err(refuse);
    }
    let _permit = PROBES.acquire().await.map_err(internal)?;
    let path = staged.path().to_owned();
    tokio::task::spawn_blocking(move || input_video::probe_and_check(&path))
        .await
        .map_err(internal)?
        .map_err(refuse)?;
    Ok(())
}
