//! Krea's assets: `POST /assets` (multipart `file`, optional `description`), `GET /assets`,
//! `GET /assets/{id}`, `DELETE /assets/{id}`, and the files themselves under `/files/assets/`.
//! Another account's asset is a 404.
use super::auth::Caller;
use super::error::ApiError;
use super::job_view::rfc3339;
use super::library_page::LibraryPage;
use super::upload::{read_form, FormSpec};
use super::AppState;
use crate::domain::asset::{check_claims, sniff, AssetKind, ACCEPTED, MAX_ASSET_BYTES};
use crate::store::{Asset, StoreError};
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Images decoded at once: each may take up to the decoder's allocation limit.
static DECODES: Semaphore = Semaphore::const_new(2);

const FORM: FormSpec = FormSpec {
    endpoint: "POST /assets",
    file_field: "file",
    max_file_bytes: MAX_ASSET_BYTES,
    text_fields: &["description"],
};

/// The public URL of a stored asset file.
pub fn file_url(state: &AppState, file_key: &str) -> String {
    format!("{}/files/{file_key}", state.public_url)
}

/// The storage key of one of our asset URLs (`<public url>/files/assets/<32 hex>.<ext>`), or
/// `None` for any other URL.
pub fn file_key_of_url(state: &AppState, url: &str) -> Option<String> {
    let key = url.strip_prefix(&*state.public_url)?.strip_prefix("/files/")?;
    let name = key.strip_prefix("assets/")?;
    is_asset_file_name(name).then(|| key.to_owned())
}

fn is_asset_file_name(name: &str) -> bool {
    let Some((token, ext)) = name.split_once('.') else { return false };
    token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()) && AssetKind::from_extension(ext).is_some()
}

fn asset_json(state: &AppState, a: &Asset) -> Value {
    json!({
        "id": a.id,
        "image_url": file_url(state, &a.file_key),
        "uploaded_at": rfc3339(a.uploaded_at),
        "width": a.width,
        "height": a.height,
        "size_bytes": a.size_bytes,
        "mime_type": a.mime_type,
        "description": a.description.clone().unwrap_or_default(),
    })
}

fn asset_not_found() -> ApiError {
    ApiError::not_found("The asset was not found or the client is not authorized to see it.")
}

fn asset_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| asset_not_found())
}

/// A store error on an upload: a full storage quota is the client's to resolve (403 naming the
/// quota, its limit and the use), anything else is ours.
pub(super) fn upload_refused(e: StoreError) -> ApiError {
    match e {
        StoreError::StorageQuotaExceeded(over) => {
            ApiError::of(super::error_code::ErrorCode::StorageQuotaExceeded, over.to_string())
        }
        other => other.into(),
    }
}

fn storage_error(e: std::io::Error) -> ApiError {
    tracing::error!(error = %e, "asset storage");
    ApiError::from(StoreError::Unavailable(format!("asset storage: {e}")))
}

pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<Value>, ApiError> {
    let mut form =
        read_form(&headers, multipart, &state.config.data_dir.join("tmp"), &FORM, state.config.body_idle_timeout)
            .await?;
    let file = form.file.take().ok_or_else(|| ApiError::bad_request("`file` is required."))?;
    let kind = sniff(&file.head).ok_or_else(|| {
        ApiError::bad_request(format!(
            "The file is not a {ACCEPTED} file (its type is told from its bytes, not its name)."
        ))
    })?;
    check_claims(kind, file.declared_type.as_deref(), file.file_name.as_deref())
        .map_err(|why| ApiError::bad_request(format!("`file`: {why}; send it with the type it is.")))?;
    let (width, height) = if kind.is_decodable_image() {
        let _permit = DECODES.acquire().await.map_err(|e| ApiError::from(StoreError::Internal(e.to_string())))?;
        let path = file.path.to_path_buf();
        let probed = tokio::task::spawn_blocking(move || crate::media::input_image::probe_file(&path))
            .await
            .map_err(|e| ApiError::from(StoreError::Internal(e.to_string())))?;
        let (w, h) = probed.map_err(|why| ApiError::bad_request(format!("The image cannot be used: {why}.")))?;
        (Some(w), Some(h))
    } else {
        (None, None)
    };
    let asset = Asset {
        id: Uuid::new_v4(),
        account_id: caller.account_id,
        file_key: crate::storage::new_file_key("assets", kind.extension()),
        mime_type: kind.mime_type().to_owned(),
        size_bytes: file.size,
        width,
        height,
        description: form.text.remove("description").filter(|d| !d.is_empty()),
        // Stamped by the store, so an account's assets never share a time.
        uploaded_at: time::OffsetDateTime::UNIX_EPOCH,
    };
    state.results.put_file(&asset.file_key, &file.path, kind.mime_type()).await.map_err(storage_error)?;
    let file_key = asset.file_key.clone();
    let asset = match state.store.create_asset_within(asset, state.config.default_storage_quota()).await {
        Ok(stored) => stored,
        Err(e) => {
            state.results.delete_file(&file_key).await;
            return Err(upload_refused(e));
        }
    };
    Ok(Json(asset_json(&state, &asset)))
}

#[derive(Deserialize)]
pub struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let page = LibraryPage::parse(params.limit.as_deref(), params.cursor.as_deref())?;
    let assets = state.store.list_assets(caller.account_id, page.before, page.fetch()).await?;
    Ok(Json(page.json(assets, |a| (a.uploaded_at, a.id), |a| asset_json(&state, a))))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let asset = state.store.asset(caller.account_id, asset_id(&id)?).await?.ok_or_else(asset_not_found)?;
    Ok(Json(asset_json(&state, &asset)))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let asset = state.store.delete_asset(caller.account_id, asset_id(&id)?).await?.ok_or_else(asset_not_found)?;
    state.results.delete_file(&asset.file_key).await;
    Ok(Json(json!({ "success": true, "message": "Asset deleted." })))
}

/// An asset file kept in S3: a short-lived presigned link (local files are served directly).
pub async fn file_redirect(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    if !is_asset_file_name(&name) {
        return Err(ApiError::not_found("No such file."));
    }
    match state.results.presigned_file_url(&format!("assets/{name}")).await.map_err(storage_error)? {
        Some(url) => Ok(Redirect::temporary(&url).into_response()),
        None => Err(ApiError::not_found("No such file.")),
    }
}
