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
use crate::media::{input_image, input_video};
use image::RgbImage;
use std::path::Path;

/// Largest image fetched from another site.
pub const MAX_FETCHED_IMAGE_BYTES: u64 = 25_000_000;

pub(super) fn invalid(field: &str, why: impl std::fmt::Display) -> EngineError {
    EngineError::new(FailureCode::InvalidInput, format!("`{field}` could not be used: {why}."))
}

/// The image at `uri`, fitted to `width`×`height`.
pub async fn image(
    queue: &dyn WorkQueue,
    client: &reqwest::Client,
    scratch: &Path,
    field: &str,
    uri: &str,
    (width, height): (u32, u32),
) -> Result<RgbImage, EngineError> {
    let bytes = input_bytes(queue, client, scratch, field, uri, "image").await?;
    tokio::task::spawn_blocking(move || input_image::decode_and_fit(&bytes, width, height))
        .await
        .map_err(|e| EngineError::new(FailureCode::InternalError, e.to_string()))?
        .map_err(|why| invalid(field, why))
}

/// The file at `uri` (a `noun`: `audio`, `video`), staged in the job's scratch dir as it was
/// sent, for an engine (or ffmpeg) to read.
pub async fn staged_file(
    queue: &dyn WorkQueue,
    client: &reqwest::Client,
    scratch: &Path,
    field: &str,
    uri: &str,
    noun: &str,
) -> Result<std::path::PathBuf, EngineError> {
    let bytes = input_bytes(queue, client, scratch, field, uri, noun).await?;
    let path = scratch.join(format!("{field}.{noun}"));
    tokio::fs::write(&path, &bytes).await.map_err(|e| invalid(field, e))?;
    Ok(path)
}

/// The bytes at `uri`: a `data:` URI, one of our kept files, or another site's `noun` fetched
/// through the SSRF guard.
async fn input_bytes(
    queue: &dyn WorkQueue,
    client: &reqwest::Client,
    scratch: &Path,
    field: &str,
    uri: &str,
    noun: &str,
) -> Result<Vec<u8>, EngineError> {
    if uri.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
        decode_data_uri(uri).map(|(_, bytes)| bytes).ok_or_else(|| invalid(field, "it is not a base64 data: URI"))
    } else if let Some(key) = uri.strip_prefix(&queue.kept_files_url()).filter(|_| !queue.kept_files_url().is_empty()) {
        let staged = scratch.join(format!("{field}.input"));
        queue
            .fetch_kept_file(key, &staged, MAX_ASSET_BYTES)
            .await
            .map_err(|why| invalid(field, format!("the asset could not be read ({why}; was it deleted?)")))?;
        tokio::fs::read(&staged).await.map_err(|e| invalid(field, e))
    } else {
        let max = if noun == "image" { MAX_FETCHED_IMAGE_BYTES } else { MAX_ASSET_BYTES };
        crate::fetch::fetch_media(client, uri, max, noun).await.map_err(|why| invalid(field, why))
    }
}

/// The last frame of the clip at `uri` (`start_video`), fitted to `width`×`height`: the frame a
/// continued clip starts on. The clip is probed again here, because another site's file was
/// not seen at submit.
pub async fn last_frame_of_video(
    queue: &dyn WorkQueue,
    client: &reqwest::Client,
    scratch: &Path,
    uri: &str,
    (width, height): (u32, u32),
) -> Result<RgbImage, EngineError> {
    const FIELD: &str = "start_video";
    let bytes = input_bytes(queue, client, scratch, FIELD, uri, "video").await?;
    let path = scratch.join("start_video.clip");
    tokio::fs::write(&path, &bytes).await.map_err(|e| invalid(FIELD, e))?;
    let dir = scratch.to_owned();
    tokio::task::spawn_blocking(move || {
        input_video::probe_and_check(&path).map_err(|why| format!("it {why}"))?;
        input_video::last_frame(&path, &dir, width, height).map_err(|why| format!("it {why}"))
    })
    .await
    .map_err(|e| EngineError::new(FailureCode::InternalError, e.to_string()))?
    .map_err(|why| invalid(FIELD, why))
}

/// How many bytes of LoRA files a worker keeps cached before it removes the least recently used.
pub const LORA_CACHE_BYTES: u64 = 20 << 30;

/// The LoRA files of the job's styles, in request order, fetched into `cache_dir` if not there;
/// then the cache is trimmed to `budget` bytes, least recently used first (never this job's).
pub async fn loras(
    queue: &dyn WorkQueue,
    item: &WorkItem,
    cache_dir: &Path,
    budget: u64,
) -> Result<Vec<LoraFile>, EngineError> {
    let mut files = Vec::with_capacity(item.request.styles.len());
    // A style at strength 0 changes nothing, so it is not in the job's LoRA set (`style_set_key`),
    // which is also what keeps a style from being deleted while jobs need it: such a style may be
    // deleted meanwhile, and is not needed.
    for style in item.request.styles.iter().filter(|s| s.strength != 0.0) {
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
        } else if let Ok(file) = std::fs::File::options().append(true).open(&path) {
            // Used again: the newest in the cache's order of use.
            let _ = file.set_modified(std::time::SystemTime::now());
        }
        files.push(LoraFile { style_id: style.id.clone(), strength: style.strength, path });
    }
    if !files.is_empty() {
        let (dir, keep) = (cache_dir.to_owned(), files.iter().map(|f| f.path.clone()).collect::<Vec<_>>());
        match tokio::task::spawn_blocking(move || trim_cache(&dir, budget, &keep)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => tracing::info!(removed, "LoRA cache trimmed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not trim the LoRA cache"),
            Err(e) => tracing::warn!(error = %e, "could not trim the LoRA cache"),
        }
    }
    Ok(files)
}

/// Removes the least recently used `.safetensors` files of `dir` until the rest fit in `budget`
/// bytes, never one of `keep`. Returns how many it removed.
pub fn trim_cache(dir: &Path, budget: u64, keep: &[std::path::PathBuf]) -> std::io::Result<usize> {
    let mut cached = Vec::new();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            let meta = entry.metadata()?;
            cached.push((meta.modified()?, meta.len(), path));
        }
    }
    let mut total: u64 = cached.iter().map(|(_, len, _)| len).sum();
    cached.sort(); // oldest use first
    let mut removed = 0;
    for (_, len, path) in cached {
        if total <= budget {
            break;
        }
        if keep.contains(&path) {
            continue;
        }
        std::fs::remove_file(&path)?;
        total -= len;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn cached(dir: &Path, name: &str, bytes: usize, age_secs: u64) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, vec![0u8; bytes]).unwrap();
        let file = std::fs::File::options().append(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(age_secs)).unwrap();
        path
    }

    #[test]
    fn the_least_recently_used_loras_go_first_and_the_jobs_own_stay() {
        let dir = tempfile::tempdir().unwrap();
        let oldest = cached(dir.path(), "a.safetensors", 100, 300);
        let old = cached(dir.path(), "b.safetensors", 100, 200);
        let recent = cached(dir.path(), "c.safetensors", 100, 100);
        let partial = cached(dir.path(), "d.safetensors.partial-1", 1000, 400);
        // 300 bytes cached, 250 allowed: the oldest goes.
        assert_eq!(trim_cache(dir.path(), 250, &[]).unwrap(), 1);
        assert!(!oldest.exists() && old.exists() && recent.exists() && partial.exists());
        // 100 allowed, but the job uses `old`: only `recent` can go, and it does.
        assert_eq!(trim_cache(dir.path(), 100, std::slice::from_ref(&old)).unwrap(), 1);
        assert!(old.exists() && !recent.exists());
        assert_eq!(
            trim_cache(dir.path(), 0, std::slice::from_ref(&old)).unwrap(),
            0,
            "what a job uses is never removed"
        );
    }
}
