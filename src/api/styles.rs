//! Styles are LTX-2.3 LoRAs. Krea's `GET /styles`, `GET /styles/{id}`, `PATCH /styles/{id}`;
//! additive `POST /styles` (multipart `.safetensors` + `title`, optional `prompt` and `public`)
//! and `DELETE /styles/{id}`. A style is visible to its owner, or to anyone when public; only the
//! owner changes or deletes it. A LoRA is checked against the transformer before it is kept.
use super::auth::Caller;
use super::error::ApiError;
use super::job_view::rfc3339;
use super::library_page::LibraryPage;
use super::page::page_json;
use super::upload::{read_form, FormSpec, StagedFile};
use super::AppState;
use crate::domain::lora::{self, LoraSummary};
use crate::store::{StoreError, Style, StyleDeleteRefusal, StyleFilter, StylePatch, StyleQuery};
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

/// The model name styles are listed under (Krea's `models`).
pub const MODEL: &str = "ltx-2.3";
const MAX_TITLE_CHARS: usize = 200;
const MAX_URLS: usize = 20;
const MAX_URL_CHARS: usize = 2048;

/// A style as `viewer` sees it. The owner's account id and name are shown to the owner only:
/// another account reading a public style gets `owner: null` (Krea's schema allows it, for its
/// own styles), so public styles do not reveal who made them.
fn style_json(s: &Style, viewer: Uuid) -> Value {
    let owner =
        (s.account_id == viewer).then(|| json!({ "id": s.account_id, "name": s.owner_name, "avatar_url": null }));
    json!({
        "id": s.id.to_string(),
        "title": s.title,
        "urls": s.urls,
        "public": s.public,
        "cover_url": s.cover_url,
        "prompt": s.prompt,
        "models": [MODEL],
        "owner": owner,
        "like_count": 0,
        "created_at": rfc3339(s.created_at),
        // additive
        "lora": { "rank": s.lora_rank, "size_bytes": s.size_bytes },
    })
}

fn style_not_found() -> ApiError {
    ApiError::not_found("The style was not found or the client is not authorized to see it.")
}

fn style_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| style_not_found())
}

pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<Value>, ApiError> {
    let spec = FormSpec {
        endpoint: "POST /styles",
        file_field: "file",
        max_file_bytes: state.config.max_lora_bytes,
        text_fields: &["title", "prompt", "public"],
    };
    let mut form =
        read_form(&headers, multipart, &state.config.data_dir.join("tmp"), &spec, state.config.body_idle_timeout)
            .await?;
    let title = form.text.remove("title").map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    let title = title.ok_or_else(|| ApiError::bad_request("`title` is required."))?;
    check_title(&title)?;
    let public = match form.text.remove("public").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad_request("`public` must be `true` or `false`.")),
    };
    let file = form.file.take().ok_or_else(|| ApiError::bad_request("`file` (a .safetensors LoRA) is required."))?;
    let summary =
        check_lora(&file).await.map_err(|why| ApiError::bad_request(format!("The LoRA was refused: {why}.")))?;
    let style = Style {
        id: Uuid::new_v4(),
        account_id: caller.account_id,
        owner_name: state.store.account(caller.account_id).await?.name,
        title: Some(title),
        prompt: form.text.remove("prompt").unwrap_or_default(),
        public,
        urls: Vec::new(),
        cover_url: None,
        file_key: crate::storage::new_file_key("styles", "safetensors"),
        size_bytes: file.size,
        lora_rank: summary.rank as u32,
        // Stamped by the store, so an account's styles never share a time.
        created_at: time::OffsetDateTime::UNIX_EPOCH,
    };
    let stored = state.results.put_file(&style.file_key, &file.path, "application/octet-stream").await;
    stored.map_err(|e| ApiError::from(StoreError::Unavailable(format!("style storage: {e}"))))?;
    let file_key = style.file_key.clone();
    let style = match state.store.create_style_within(style, state.config.default_storage_quota()).await {
        Ok(stored) => stored,
        Err(e) => {
            state.results.delete_file(&file_key).await;
            return Err(super::assets::upload_refused(e));
        }
    };
    Ok(Json(style_json(&style, caller.account_id)))
}

/// Reads the safetensors header (and only the header) of the staged file and checks it.
async fn check_lora(file: &StagedFile) -> Result<LoraSummary, String> {
    let limits = lora::DEFAULT_LIMITS;
    let mut f = tokio::fs::File::open(&file.path).await.map_err(|e| e.to_string())?;
    let mut prefix = [0u8; 8];
    f.read_exact(&mut prefix).await.map_err(|_| "the file is too short to be a safetensors file".to_owned())?;
    let n = lora::header_len(prefix, file.size, &limits)?;
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).await.map_err(|e| e.to_string())?;
    lora::check_header(&header, file.size - 8 - n, &lora::LTX_2_3, &limits)
}

fn check_title(title: &str) -> Result<(), ApiError> {
    // A blank title would list as an unnamed style that cannot be told apart from the others.
    if title.trim().is_empty() {
        return Err(ApiError::bad_request("`title` must not be empty or only whitespace."));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::bad_request(format!("`title` may be at most {MAX_TITLE_CHARS} characters.")));
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
    filter: Option<String>,
    user: Option<String>,
    ids: Option<String>,
    model: Option<String>,
    liked: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let page = LibraryPage::parse(params.limit.as_deref(), params.cursor.as_deref())?;
    let filter = match params.filter.as_deref().unwrap_or("all") {
        "all" => Some(StyleFilter::All),
        "user" => Some(StyleFilter::Own),
        "public" | "community" | "gallery" => Some(StyleFilter::Public),
        // Krea's curated and workspace lists: this server has none.
        "krea" | "shared" | "unapproved" | "editor" => None,
        other => {
            return Err(ApiError::bad_request(format!(
                "`filter` must be one of all, user, public, community, gallery, krea, shared, unapproved, editor \
                 (not `{other}`)."
            )))
        }
    };
    let owner = match params.user.as_deref() {
        None => None,
        Some(text) => Some(Uuid::parse_str(text).map_err(|_| ApiError::bad_request("`user` must be a user id."))?),
    };
    let other_model = params.model.as_deref().is_some_and(|m| !m.is_empty() && m != MODEL);
    let liked_only = match params.liked.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad_request("`liked` must be true or false.")),
    };
    let (Some(filter), false, false) = (filter, other_model, liked_only) else {
        return Ok(Json(page_json(Vec::<Value>::new(), None)));
    };
    if let Some(ids) = params.ids.as_deref().filter(|ids| !ids.is_empty()) {
        // Named styles, each as `GET /styles/{id}` would show it (unknown ones left out): one
        // list, not paged, whose cursor is still the last one's time once they fill `limit`.
        let mut found = Vec::new();
        for id in ids.split(',').map(str::trim).filter_map(|id| Uuid::parse_str(id).ok()).take(100) {
            if let Some(style) = state.store.style(caller.account_id, id).await? {
                found.push(style);
            }
        }
        let next_cursor = found.last().filter(|_| found.len() == page.limit() as usize).map(|s| rfc3339(s.created_at));
        return Ok(Json(page_json(found.iter().map(|s| style_json(s, caller.account_id)).collect(), next_cursor)));
    }
    let query = StyleQuery { filter, owner, before: page.before, limit: page.fetch() };
    let styles = state.store.list_styles(caller.account_id, query).await?;
    Ok(Json(page.json(styles, |s| (s.created_at, s.id), |s| style_json(s, caller.account_id))))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let style = state.store.style(caller.account_id, style_id(&id)?).await?.ok_or_else(style_not_found)?;
    Ok(Json(style_json(&style, caller.account_id)))
}

fn url_list(value: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    let rule = || ApiError::bad_request(format!("`{field}` must be an array of at most {MAX_URLS} http(s) URLs."));
    let items = value.as_array().ok_or_else(rule)?;
    if items.len() > MAX_URLS {
        return Err(rule());
    }
    items.iter().map(|item| url_value(item, field)).collect()
}

fn url_value(value: &Value, field: &str) -> Result<String, ApiError> {
    let text = value.as_str().ok_or_else(|| ApiError::bad_request(format!("`{field}` must hold URL strings.")))?;
    let ok = text.len() <= MAX_URL_CHARS
        && url::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !ok {
        return Err(ApiError::bad_request(format!(
            "`{field}`: `{text}` is not an http(s) URL of at most {MAX_URL_CHARS} characters."
        )));
    }
    Ok(text.to_owned())
}

/// The fields of a `PATCH` body; anything else is refused, naming the key.
fn patch_of(body: &Map<String, Value>) -> Result<StylePatch, ApiError> {
    let mut patch = StylePatch::default();
    for (key, value) in body {
        match (key.as_str(), value) {
            // Only `public` is nullable in Krea's schema (and ours): a null title, list or
            // cover would be a type error silently taken as "unchanged".
            ("public", Value::Null) => {}
            ("title", Value::String(t)) => {
                check_title(t)?;
                patch.title = Some(t.clone());
            }
            ("title", _) => return Err(ApiError::bad_request("`title` must be a string.")),
            ("public", Value::Bool(b)) => patch.public = Some(*b),
            ("public", _) => return Err(ApiError::bad_request("`public` must be true or false.")),
            ("urls", v) => patch.urls = Some(url_list(v, "urls")?),
            ("cover_url", v) => patch.cover_url = Some(url_value(v, "cover_url")?),
            (other, _) => {
                return Err(ApiError::bad_request(format!(
                    "Unknown field `{other}`: a style's `title`, `public`, `urls` and `cover_url` can be changed."
                )))
            }
        }
    }
    // An empty patch (`{}`, or only `public: null`) is valid in Krea's schema: the style comes back unchanged.
    Ok(patch)
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<super::json_body::StrictJson, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let id = style_id(&id)?;
    let super::json_body::StrictJson(body) = body?;
    let object = body.as_object().ok_or_else(|| ApiError::bad_request("The request body must be a JSON object."))?;
    let patch = patch_of(object)?;
    let not_owner = || ApiError::not_found("The style was not found or you are not its owner.");
    let style = state.store.update_style(caller.account_id, id, patch).await?.ok_or_else(not_owner)?;
    Ok(Json(style_json(&style, caller.account_id)))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.store.delete_style(caller.account_id, style_id(&id)?).await? {
        Ok(style) => {
            state.results.delete_file(&style.file_key).await;
            Ok(Json(json!({ "success": true, "message": "Style deleted." })))
        }
        Err(StyleDeleteRefusal::NotFound) => {
            Err(ApiError::not_found("The style was not found or you are not its owner."))
        }
        Err(StyleDeleteRefusal::InUse { jobs }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            crate::api::error::ErrorCode::StyleInUse,
            format!("{jobs} unfinished job(s) use this style; delete it when they have finished or been cancelled."),
        )),
    }
}
