//! `POST /generate/video/lightricks/ltx-video-2.3-22b`: parse, normalise, price, then one store
//! transaction creates the job and its hold (or refuses with 402/429).
use super::auth::Caller;
use super::error::ApiError;
use super::prefer_wait;
use super::AppState;
use crate::domain::pricing;
use crate::domain::request::GenerateRequest;
use crate::domain::request::{normalise, NormaliseOptions};
use crate::fetch::{check_resolution, check_url, UrlPolicy};
use crate::store::{Idempotency, NewJob, SubmitRefusal};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

/// An image URL of ours must name an asset of the caller's; another site's must not resolve to
/// a private address. (`data:` URIs were checked by `normalise`.)
async fn check_image_source(
    state: &AppState,
    account: Uuid,
    field: &str,
    uri: &str,
    policy: UrlPolicy,
) -> Result<(), ApiError> {
    if uri.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
        return Ok(());
    }
    if uri.starts_with(&format!("{}/files/", state.public_url)) {
        let owned = match super::assets::file_key_of_url(state, uri) {
            Some(key) => state.store.asset_by_file(key).await?.is_some_and(|a| a.account_id == account),
            None => false,
        };
        if !owned {
            return Err(ApiError::bad_request(format!(
                "`{field}`: no asset at this URL is available to this account (upload it with POST /assets)."
            )));
        }
        return Ok(());
    }
    let url = check_url(uri, policy).map_err(|why| ApiError::bad_request(format!("`{field}` {why}.")))?;
    check_resolution(&url, policy).await.map_err(|why| ApiError::bad_request(format!("`{field}` {why}.")))
}

/// The whole body, refusing more than `max` bytes (413) or a pause longer than `idle` (408).
async fn read_body(body: Body, max: usize, idle: std::time::Duration) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return Err(ApiError::body_stalled(idle)),
            Ok(None) => return Ok(bytes),
            Ok(Some(chunk)) => {
                let chunk = chunk.map_err(|e| ApiError::bad_request(format!("The request body broke off: {e}.")))?;
                if bytes.len() + chunk.len() > max {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        format!("The request body is larger than {max} bytes."),
                    ));
                }
                bytes.extend_from_slice(&chunk);
            }
        }
    }
}

/// The job `type` of this endpoint.
pub const JOB_KIND: &str = "ltx-video-2.3-22b";

pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_content_type(&headers)?;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The request body is larger than {} bytes.", state.config.max_body_bytes),
        )
    };
    // A declared length over the limit is refused before a byte of the body is read.
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.config.max_body_bytes as u64) {
        return Err(too_large());
    }
    let bytes = read_body(body, state.config.max_body_bytes, state.config.body_idle_timeout).await?;
    let raw: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("The request body is not valid JSON: {e}.")))?;
    let options = NormaliseOptions {
        today: OffsetDateTime::now_utc().date(),
        aliases_accepted_until: state.config.aliases_accepted_until,
        max_data_uri_bytes: state.config.max_data_uri_bytes,
        max_styles: state.config.max_styles_per_request,
        asset_url_prefix: format!("{}/files/", state.public_url),
        external_image_urls: state.config.external_image_urls,
        allow_private_urls: state.config.allow_private_urls,
    };
    let normalised = normalise(&raw, &options).map_err(|e| ApiError::bad_request(e.0))?;
    let request = normalised.request;
    let policy = UrlPolicy { allow_private: state.config.allow_private_urls };
    let webhook_url = webhook_url(&headers, policy).await?;
    for (field, uri) in [("start_image", &request.start_image), ("end_image", &request.end_image)] {
        if let Some(uri) = uri {
            check_image_source(&state, caller.account_id, field, uri, policy).await?;
        }
    }
    if let Some(uri) = &request.start_video {
        super::start_video::check(&state, caller.account_id, uri, policy).await?;
    }

    if !request.styles.is_empty() {
        let ids: Vec<String> = request.styles.iter().map(|s| s.id.clone()).collect();
        let usable = state.store.usable_styles(caller.account_id, ids.clone()).await?;
        if let Some((i, missing)) = ids.iter().enumerate().find(|(_, id)| !usable.contains(id)) {
            return Err(ApiError::bad_request(format!(
                "`styles[{i}].id`: no style `{missing}` is available to this account (it must be yours or public)."
            )));
        }
    }

    let idempotency = idempotency(&headers, &request, webhook_url.as_deref())?;
    let price = pricing::price(request.num_frames, !request.styles.is_empty());
    let (width, height) = state.config.resolution.size(request.aspect_ratio);
    let seed = request.seed.unwrap_or_else(|| rand::random::<u32>() % (crate::domain::request::MAX_SEED as u32 + 1));
    let new = NewJob {
        // Time-ordered (UUIDv7): new jobs land at the end of the primary-key index instead of at
        // random pages, so a submit does not get slower as the table grows.
        id: Uuid::now_v7(),
        account_id: caller.account_id,
        kind: JOB_KIND.to_owned(),
        request,
        seed,
        width,
        height,
        price: price.amount,
        price_tier_seconds: price.tier_seconds,
        webhook_url,
        idempotency,
    };
    let job = match state.store.submit(new).await? {
        Ok(job) => job,
        Err(SubmitRefusal::InsufficientBalance { price, available }) => {
            return Err(ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_credits",
                format!("Insufficient credits: this clip costs {price} and the account has {available} available."),
            ))
        }
        Err(SubmitRefusal::IdempotencyConflict { job_id }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                format!("This Idempotency-Key was already used for job {job_id} with a different request body."),
            ))
        }
        Err(SubmitRefusal::BacklogFull { max_concurrent, max_backlog }) => {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_jobs",
                format!(
                    "Too many jobs: the account already has {max_concurrent} running or queued and {max_backlog} backlogged. \
                     Retry when one finishes."
                ),
            )
            .retry_after(state.config.retry_after.as_secs().max(1)))
        }
    };
    let wait = prefer_wait::requested(&headers);
    let job = match wait {
        Some(wait) => prefer_wait::until_terminal(&state, job, wait).await?,
        None => job,
    };
    let mut response = Json(state.view(&job).await).into_response();
    if let Some(wait) = wait {
        let (name, value) = prefer_wait::applied_header(wait);
        response.headers_mut().insert(name, value);
    }
    if !normalised.aliases_used.is_empty() {
        deprecation_headers(response.headers_mut(), state.config.aliases_accepted_until);
    }
    Ok(response)
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        return Ok(());
    }
    let got = if content_type.is_empty() { "none".to_owned() } else { format!("`{content_type}`") };
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_content_type",
        format!("The request body must be JSON with `Content-Type: application/json` (got {got})."),
    ))
}

/// `X-Webhook-URL`: http(s), at most 2048 characters, and (unless the operator allows private
/// networks) neither naming nor resolving to a private or reserved address.
async fn webhook_url(headers: &HeaderMap, policy: UrlPolicy) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("x-webhook-url") else { return Ok(None) };
    let text = value.to_str().map_err(|_| ApiError::bad_request("`X-Webhook-URL` must be a URL."))?;
    if text.len() > 2048 {
        return Err(ApiError::bad_request("`X-Webhook-URL` may be at most 2048 characters."));
    }
    let refuse = |why: String| ApiError::bad_request(format!("`X-Webhook-URL` {why}."));
    let url = check_url(text, policy).map_err(refuse)?;
    check_resolution(&url, policy).await.map_err(refuse)?;
    Ok(Some(text.to_owned()))
}

/// `Deprecation`, `Sunset` and `Link` as Krea sends them for deprecated request fields.
fn deprecation_headers(headers: &mut HeaderMap, accepted_until: time::Date) {
    let sunset = accepted_until.next_day().unwrap_or(accepted_until).midnight().assume_utc();
    let http_date = sunset
        .format(time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ))
        .unwrap_or_default();
    headers.insert("deprecation", HeaderValue::from_static("true"));
    if let Ok(value) = HeaderValue::from_str(&http_date) {
        headers.insert("sunset", value);
    }
    headers.insert(
        header::LINK,
        HeaderValue::from_static(
            "<https://docs.krea.ai/developers/deprecations#public-api-snake-case-fields>; rel=\"deprecation\"; type=\"text/html\"",
        ),
    );
}

/// How long an `Idempotency-Key` keeps pointing at its job.
pub const IDEMPOTENCY_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// `Idempotency-Key` (additive): up to 255 visible ASCII characters. The fingerprint is of the
/// normalised request, so formatting differences in the JSON are the same body.
fn idempotency(
    headers: &HeaderMap,
    request: &GenerateRequest,
    webhook: Option<&str>,
) -> Result<Option<Idempotency>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
        .ok_or_else(|| ApiError::bad_request("`Idempotency-Key` must be 1 to 255 visible ASCII characters."))?;
    let body = serde_json::to_vec(&(request, webhook)).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Some(Idempotency {
        key: key.to_owned(),
        fingerprint: hex::encode(Sha256::digest(&body)),
        window: IDEMPOTENCY_WINDOW,
    }))
}
