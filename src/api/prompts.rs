//! `POST /prompts/enhance` (additive): `{prompt, image?}` → `{prompt}`, the prompt rewritten by
//! the engine's own enhancer (the Gemma text encoder already resident in the `ltx` engine; a
//! marked, deterministic rewrite on `preview`). Answered by this process's engine, so a replica
//! that runs no in-process workers (`--workers 0`) answers 503 `enhance_unavailable`. Billed at
//! `--prompt-enhance-price-usd` (default free): the balance is checked first (402 naming the
//! price), and only a rewrite that was answered is charged.
use super::auth::Caller;
use super::error::{ApiError, ErrorCode};
use super::json_body::StrictJson;
use super::AppState;
use crate::domain::money::MicroUsd;
use crate::fetch::{check_resolution, check_url, UrlPolicy};
use axum::extract::State;
use axum::Json;
use image::RgbImage;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// The size an `image` is fitted to before the enhancer sees it (it only needs the gist).
const IMAGE_SIDE: u32 = 512;
/// Longest an enhancement may take (the engine may be busy with a job first).
const ENHANCE_TIMEOUT: Duration = Duration::from_secs(120);
/// What the ledger entry of a charged enhancement says.
pub const LEDGER_NOTE: &str = "prompt enhancement";

pub async fn enhance(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<StrictJson, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let StrictJson(body) = body?;
    let fields = body.as_object().ok_or_else(|| ApiError::bad_request("The request body must be a JSON object."))?;
    let (prompt, image_uri) = read_fields(fields)?;
    let engine = state.in_process_engine.clone().ok_or_else(|| {
        unavailable(
            "This server runs no in-process engine (--workers 0), so it cannot enhance prompts; send the request to \
             a server that runs workers.",
        )
    })?;
    let price = state.config.prompt_enhance_price;
    if price.0 > 0 {
        let account = state.store.account(caller.account_id).await?;
        if account.available() < price {
            return Err(short_of(price, account.available()));
        }
    }
    let image = match image_uri {
        Some(uri) => Some(image(&state, caller.account_id, &uri).await?),
        None => None,
    };
    let enhanced = tokio::time::timeout(ENHANCE_TIMEOUT, engine.enhance_prompt(&prompt, image))
        .await
        .map_err(|_| unavailable("The engine did not enhance the prompt in time; retry shortly."))?
        .map_err(|e| unavailable(format!("The engine could not enhance the prompt: {}.", e.message)))?;
    if price.0 > 0 {
        charge(&state, caller.account_id, price).await?;
    }
    Ok(Json(json!({ "prompt": enhanced })))
}

/// `prompt` (the same rules as a job's) and `image`; any other field is a 400 naming it.
fn read_fields(fields: &Map<String, Value>) -> Result<(String, Option<String>), ApiError> {
    if let Some(unknown) = fields.keys().find(|k| !["prompt", "image"].contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Unknown field `{unknown}`: POST /prompts/enhance takes `prompt` and `image`."
        )));
    }
    let prompt = crate::domain::request::prompt(fields).map_err(|e| ApiError::bad_request(e.0))?;
    let image = match fields.get("image") {
        None | Some(Value::Null) => None,
        Some(Value::String(uri)) if !uri.trim().is_empty() => Some(uri.clone()),
        Some(_) => {
            return Err(ApiError::bad_request(
                "`image` must be an image URL (an asset of yours or another site's) or a data: URI.",
            ))
        }
    };
    Ok((prompt, image))
}

/// The image at `uri`: a `data:` URI, one of the caller's assets, or another site's image
/// fetched through the SSRF guard; decoded with the job inputs' limits and fitted to
/// `IMAGE_SIDE`. Anything wrong with it is a 400 naming `image`.
async fn image(state: &AppState, account: uuid::Uuid, uri: &str) -> Result<RgbImage, ApiError> {
    use crate::domain::asset::MAX_ASSET_BYTES;
    let bad = |why: String| ApiError::bad_request(format!("`image` could not be used: {why}."));
    let bytes = if uri.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
        let (mime, bytes) =
            crate::domain::request::decode_data_uri(uri).ok_or_else(|| bad("it is not a base64 data: URI".into()))?;
        if !crate::domain::request::IMAGE_MIME_TYPES.contains(&mime.as_str()) {
            return Err(bad(format!("{mime} is not a supported image type")));
        }
        bytes
    } else if uri.starts_with(&format!("{}/files/", state.public_url)) {
        let key = super::assets::file_key_of_url(state, uri);
        let owned = match &key {
            Some(key) => state.store.asset_by_file(key.clone()).await?.is_some_and(|a| a.account_id == account),
            None => false,
        };
        match key.filter(|_| owned) {
            Some(key) => state.results.read_file(&key, MAX_ASSET_BYTES).await.map_err(|e| bad(e.to_string()))?,
            None => {
                return Err(ApiError::bad_request(
                    "`image`: no asset at this URL is available to this account (upload it with POST /assets).",
                ))
            }
        }
    } else {
        let policy = UrlPolicy { allow_private: state.config.allow_private_urls };
        let url = check_url(uri, policy).map_err(|why| ApiError::bad_request(format!("`image` {why}.")))?;
        check_resolution(&url, policy).await.map_err(|why| ApiError::bad_request(format!("`image` {why}.")))?;
        let client = crate::fetch::guarded_client(policy, Duration::from_secs(20));
        crate::fetch::fetch_image(&client, url.as_str(), crate::worker::inputs::MAX_FETCHED_IMAGE_BYTES)
            .await
            .map_err(bad)?
    };
    tokio::task::spawn_blocking(move || crate::media::input_image::decode_and_fit(&bytes, IMAGE_SIDE, IMAGE_SIDE))
        .await
        .map_err(|e| ApiError::of(ErrorCode::InternalError, format!("Internal error: {e}.")))?
        .map_err(bad)
}

/// Takes `price` from the balance (a ledger entry noted `LEDGER_NOTE`). The store refuses it
/// when the balance can no longer pay (spent meanwhile): a 402 like the check before.
async fn charge(state: &AppState, account: uuid::Uuid, price: MicroUsd) -> Result<(), ApiError> {
    match state.store.add_credits(account, MicroUsd(-price.0), LEDGER_NOTE.to_owned()).await {
        Ok(_) => Ok(()),
        Err(crate::store::StoreError::Refused(_)) => {
            let available = state.store.account(account).await?.available();
            Err(short_of(price, available))
        }
        Err(other) => Err(other.into()),
    }
}

fn short_of(price: MicroUsd, available: MicroUsd) -> ApiError {
    ApiError::of(
        ErrorCode::InsufficientCredits,
        format!("Insufficient credits: a prompt enhancement costs {price} and the account has {available} available."),
    )
}

fn unavailable(message: impl Into<String>) -> ApiError {
    ApiError::of(ErrorCode::EnhanceUnavailable, message)
}
