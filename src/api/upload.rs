//! Multipart uploads (`POST /assets`, `POST /styles`): the file part is streamed to a staging
//! file under the data dir — never whole in memory — and cut off at its size limit; the text
//! parts are small and capped. The staging file is deleted when dropped (an error, a client that
//! went away), unless the caller moved it into storage.
use super::error::ApiError;
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::http::{header, HeaderMap, StatusCode};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Longest text part (a description, a title, a prompt).
const MAX_TEXT_BYTES: usize = 10_000;

pub struct StagedFile {
    pub path: tempfile::TempPath,
    pub size: u64,
    /// The first bytes, for telling the file's type.
    pub head: Vec<u8>,
    /// What the client said the file is: the part's `Content-Type` and file name, if any
    /// (checked against the bytes, never trusted instead of them).
    pub declared_type: Option<String>,
    pub file_name: Option<String>,
}

pub struct Form {
    pub file: Option<StagedFile>,
    pub text: HashMap<String, String>,
}

/// What one endpoint accepts.
pub struct FormSpec {
    pub endpoint: &'static str,
    pub file_field: &'static str,
    pub max_file_bytes: u64,
    pub text_fields: &'static [&'static str],
}

fn too_large(spec: &FormSpec) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        crate::api::error::ErrorCode::PayloadTooLarge,
        format!("`{}` is larger than {} bytes.", spec.file_field, spec.max_file_bytes),
    )
}

fn broken(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("The multipart body could not be read: {e}."))
}

/// Room for the text parts and part headers on top of the file, when judging a declared length.
const FORM_OVERHEAD_BYTES: u64 = 1 << 20;

pub async fn read_form(
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
    staging_dir: &Path,
    spec: &FormSpec,
    idle: Duration,
) -> Result<Form, ApiError> {
    let mut multipart = multipart.map_err(|_| {
        ApiError::bad_request(format!(
            "{} takes a multipart/form-data body with a `{}` file part.",
            spec.endpoint, spec.file_field
        ))
    })?;
    // A body declared too large is refused without keeping a byte of it. One not far over the
    // limit is read and thrown away first: a client still sending when the connection closes
    // sees a broken pipe instead of the 413 that says why.
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|n| *n > spec.max_file_bytes + FORM_OVERHEAD_BYTES) {
        if length <= 2 * spec.max_file_bytes {
            while let Ok(Some(mut field)) = multipart.next_field().await {
                while let Ok(Some(_)) = field.chunk().await {}
            }
        }
        return Err(too_large(spec));
    }
    let mut form = Form { file: None, text: HashMap::new() };
    while let Some(field) = within(idle, multipart.next_field()).await? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == spec.file_field {
            if form.file.is_some() {
                return Err(ApiError::bad_request(format!("Send one `{name}` part, not several.")));
            }
            form.file = Some(stage(field, staging_dir, spec, idle).await?);
        } else if spec.text_fields.contains(&name.as_str()) {
            let text = read_text(field, &name, idle).await?;
            form.text.insert(name, text);
        } else {
            let mut known = vec![spec.file_field];
            known.extend_from_slice(spec.text_fields);
            return Err(ApiError::bad_request(format!(
                "Unknown part `{name}`: {} takes {}.",
                spec.endpoint,
                known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(form)
}

/// One step of reading the body, cut off when the client sends nothing for `idle`.
async fn within<T>(
    idle: Duration,
    step: impl std::future::Future<Output = Result<T, axum::extract::multipart::MultipartError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(idle, step).await {
        Err(_) => Err(ApiError::body_stalled(idle)),
        Ok(read) => read.map_err(broken),
    }
}

async fn read_text(mut field: Field<'_>, name: &str, idle: Duration) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = within(idle, field.chunk()).await? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_TEXT_BYTES {
            return Err(ApiError::bad_request(format!("`{name}` may be at most {MAX_TEXT_BYTES} bytes.")));
        }
    }
    String::from_utf8(bytes).map_err(|_| ApiError::bad_request(format!("`{name}` must be UTF-8 text.")))
}

async fn stage(
    mut field: Field<'_>,
    staging_dir: &Path,
    spec: &FormSpec,
    idle: Duration,
) -> Result<StagedFile, ApiError> {
    let io = |e: std::io::Error| {
        tracing::error!(error = %e, "staging an upload");
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            crate::api::error::ErrorCode::StorageUnavailable,
            "The upload could not be stored.",
        )
        .retry_after(30)
    };
    tokio::fs::create_dir_all(staging_dir).await.map_err(io)?;
    let staged = tempfile::Builder::new().prefix("upload-").tempfile_in(staging_dir).map_err(io)?;
    let (file, path) = staged.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut size: u64 = 0;
    let mut head = Vec::new();
    let declared_type = field.content_type().map(str::to_owned);
    let file_name = field.file_name().map(str::to_owned);
    while let Some(chunk) = within(idle, field.chunk()).await? {
        size += chunk.len() as u64;
        if size > spec.max_file_bytes {
            return Err(too_large(spec));
        }
        if head.len() < crate::domain::asset::SNIFF_BYTES {
            let take = (crate::domain::asset::SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        file.write_all(&chunk).await.map_err(io)?;
    }
    // tokio's File writes in the background: a failed write (ENOSPC) surfaces at flush, and
    // sync_all alone would not report it, leaving a short file that looks like a bad upload.
    file.flush().await.map_err(io)?;
    file.sync_all().await.map_err(io)?;
    Ok(StagedFile { path, size, head, declared_type, file_name })
}
