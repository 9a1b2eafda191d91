//! A job's inputs, gathered before the engine runs: its start and end frames (an asset of ours,
//! a `data:` URI, or another site's image fetched through the SSRF guard), decoded and fitted to
//! the canvas; and its styles' LoRA files, kept in the worker's LoRA cache so that a style used
//! again is not fetched again. Anything wrong with them fails the job `invalid_input` (uncharged)
//! with a sentence that says what.
use super::engine::{EngineError, LoraFile};
use super::queue::{WorkItem, WorkQueue};
use crate::domain::asset::MAX_ASSET_BYTES;
use crate::domain::job::FailureCode;
use crate::domain::request::decode_data_uri;
use crate::media::input_image;
use image::RgbImage;
use std::path::Path;

/// Largest image fetched from another site.
pub const MAX_FETCHED_IMAGE_BYTES: u64 = 25_000_000;

fn invalid(field: &str, why: impl std::fmt::Display) -> EngineError {
    EngineError::new(FailureCode::InvalidInput, format!("`{field}` could not be used: {why}."))
}

/// The image at `uri`, fitted to `width`×`height`.
pub async fn image(
    queue: &dyn WorkQueue,
    client: &reqwest::Client,
    scratch: &Path,
    field: &'static str,
    uri: &str,
    (width, height): (u32, u32),
) -> Result<RgbImage, EngineError> {
    let bytes = if uri.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
        decode_data_uri(uri).map(|(_, bytes)| bytes).ok_or_else(|| invalid(field, "it is not a base64 data: URI"))?
    } else if let Some(key) = uri.strip_prefix(&queue.kept_files_url()).filter(|_| !queue.kept_files_url().is_empty())
    {
        let staged = scratch.join(format!("{field}.input"));
        queue
            .fetch_kept_file(key, &staged, MAX_ASSET_BYTES)
            .await
            .map_err(|why| invalid(field, format!("the asset could not be read ({why}; was it deleted?)")))?;
        tokio::fs::read(&staged).await.map_err(|e| invalid(field, e))?
    } else {
        crate::fetch::fetch_image(client, uri, MAX_FETCHED_IMAGE_BYTES).await.map_err(|why| invalid(field, why))?
    };
    tokio::task::spawn_blocking(move || input_image::decode_and_fit(&bytes, width, height))
        .await
        .map_err(|e| EngineError::new(FailureCode::InternalError, e.to_string()))?
        .map_err(|why| invalid(field, why))
}

/// The LoRA files of the job's styles, in request order, fetched into `cache_dir` if not there.
pub async fn loras(queue: &dyn WorkQueue, item: &WorkItem, cache_dir: &Path) -> Result<Vec<LoraFile>, EngineError> {
    let mut files = Vec::with_capacity(item.request.styles.len());
    for style in &item.request.styles {
        let Some(input) = item.loras.iter().find(|l| l.style_id == style.id) else {
            return Err(EngineError::new(
                FailureCode::InvalidInput,
                format!("style `{}` was deleted after the job was submitted", style.id),
            ));
        };
        let name = input.file_key.rsplit('/').next().unwrap_or(&input.file_key);
        let path = cache_dir.join(name);
        if !path.is_file() {
            let io = |e: std::io::Error| EngineError::new(FailureCode::InternalError, format!("LoRA cache: {e}"));
            tokio::fs::create_dir_all(cache_dir).await.map_err(io)?;
            // Fetched under a temporary name, so a worker killed mid-way leaves no half file.
            let partial = cache_dir.join(format!("{name}.partial-{}", uuid::Uuid::new_v4()));
            queue.fetch_kept_file(&input.file_key, &partial, input.size_bytes).await.map_err(|why| {
                let _ = std::fs::remove_file(&partial);
                EngineError::new(
                    FailureCode::EngineError,
                    format!("the LoRA of style `{}` could not be fetched: {why}", style.id),
                )
            })?;
            tokio::fs::rename(&partial, &path).await.map_err(io)?;
        }
        files.push(LoraFile { style_id: style.id.clone(), strength: style.strength, path });
    }
    Ok(files)
}
