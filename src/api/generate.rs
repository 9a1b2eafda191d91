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
use crate::store::{Idempotency, Job, NewJob, SubmitRefusal};
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
pub(super) async fn check_image_source(
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
                    bytes.extend_from_slice(&chunk[..max - bytes.len()]);
                    let field = super::json_body::data_uri_cut_off(&bytes);
                    super::json_body::drain(stream, idle);
                    return Err(payload_too_large(max, field));
                }
                bytes.extend_from_slice(&chunk);
            }
        }
    }
}

/// The job `type` of this endpoint; an additive endpoint's jobs add `/<mode>` (`job_kind`).
pub const JOB_KIND: &str = "ltx-video-2.3-22b";

/// The job `type` of a request: Krea's, or `ltx-video-2.3-22b/keyframes` and the like.
pub fn job_kind(request: &GenerateRequest) -> String {
    match &request.mode {
        None => JOB_KIND.to_owned(),
        Some(mode) => format!("{JOB_KIND}/{}", mode.path_segment()),
    }
}

/// Each step refuses with its own error, in this order: the body (type, size, JSON), the fields
/// (`normalise`), the webhook URL, the media the request points at, its styles, the
/// `Idempotency-Key`; then the store admits the job or refuses it.
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let raw = read_json(&state, &headers, body).await?;
    let normalised = normalise(&raw, &normalise_options(&state)).map_err(|e| ApiError::bad_request(e.0))?;
    let request = normalised.request;
    let policy = UrlPolicy { allow_private: state.config.allow_private_urls };
    let webhook_url = webhook_url(&headers, policy).await?;
    check_media_sources(&state, caller.account_id, &request, policy).await?;
    admit(&state, caller.account_id, &headers, request, webhook_url, !normalised.aliases_used.is_empty()).await
}

/// What every generate endpoint does once its own fields and media are checked: the styles, the
/// `Idempotency-Key`, then the store admits the job (or refuses it) and the answer is sent.
pub(super) async fn admit(
    state: &AppState,
    account: Uuid,
    headers: &HeaderMap,
    request: GenerateRequest,
    webhook_url: Option<String>,
    used_aliases: bool,
) -> Result<Response, ApiError> {
    check_styles(state, account, &request).await?;
    let idempotency = idempotency(headers, &request, webhook_url.as_deref())?;
    let new = new_job(state, account, request, webhook_url, idempotency);
    let job = state.store.submit(new).await?.map_err(|refusal| refused(state, refusal))?;
    respond(state, headers, job, used_aliases).await
}

/// The body as JSON, after its `Content-Type` and size are checked.
pub(super) async fn read_json(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<serde_json::Value, ApiError> {
    super::json_body::check_content_type(headers)?;
    let (max, idle) = (state.config.max_body_bytes, state.config.body_idle_timeout);
    // A declared length over the limit is refused before a byte of the body is read; what the
    // client sends anyway is read and dropped, so that it gets the answer instead of a reset.
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        super::json_body::drain(body.into_data_stream(), idle);
        return Err(payload_too_large(max, None));
    }
    let bytes = read_body(body, max, idle).await?;
    super::json_body::parse(&bytes)
}

/// 413, naming the field whose `data:` URI the limit cut through when that is known.
fn payload_too_large(max: usize, field: Option<String>) -> ApiError {
    let message = match field {
        Some(field) => format!(
            "The request body is larger than {max} bytes: `{field}` holds a data: URI too large for it. Upload the \
             file with POST /assets and send its URL instead."
        ),
        None => format!("The request body is larger than {max} bytes."),
    };
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, crate::api::error::ErrorCode::PayloadTooLarge, message)
}

/// What `normalise` needs to know of this server: today's date and the operator's limits.
pub(super) fn normalise_options(state: &AppState) -> NormaliseOptions {
    NormaliseOptions {
        today: OffsetDateTime::now_utc().date(),
        aliases_accepted_until: state.config.aliases_accepted_until,
        max_data_uri_bytes: crate::domain::request::data_uri_budget(
            state.config.max_body_bytes,
            state.config.max_data_uri_bytes,
        ),
        max_styles: state.config.max_styles_per_request,
        asset_url_prefix: format!("{}/files/", state.public_url),
        external_image_urls: state.config.external_image_urls,
        allow_private_urls: state.config.allow_private_urls,
    }
}

/// The images and the clip to continue: the caller's own assets, or addresses the server may fetch.
async fn check_media_sources(
    state: &AppState,
    account: Uuid,
    request: &GenerateRequest,
    policy: UrlPolicy,
) -> Result<(), ApiError> {
    for (field, uri) in [("start_image", &request.start_image), ("end_image", &request.end_image)] {
        if let Some(uri) = uri {
            check_image_source(state, account, field, uri, policy).await?;
        }
    }
    if let Some(uri) = &request.start_video {
        super::start_video::check(state, account, uri, policy).await?;
    }
    Ok(())
}

/// Every style must be the caller's or public; the first that is not is named.
async fn check_styles(state: &AppState, account: Uuid, request: &GenerateRequest) -> Result<(), ApiError> {
    if request.styles.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = request.styles.iter().map(|s| s.id.clone()).collect();
    let usable = state.store.usable_styles(account, ids.clone()).await?;
    if let Some((i, missing)) = ids.iter().enumerate().find(|(_, id)| !usable.contains(id)) {
        return Err(ApiError::bad_request(format!(
            "`styles[{i}].id`: no style `{missing}` is available to this account (it must be yours or public)."
        )));
    }
    Ok(())
}

/// The job to admit: its price, size in pixels and seed are fixed here, at submit.
fn new_job(
    state: &AppState,
    account: Uuid,
    request: GenerateRequest,
    webhook_url: Option<String>,
    idempotency: Option<Idempotency>,
) -> NewJob {
    // Krea's endpoint keeps Krea's table; the additive ones bill per second (pricing::additive).
    let price = match request.mode {
        None => pricing::price(request.num_frames, !request.styles.is_empty()),
        Some(_) => state.config.additive_prices.price(request.num_frames, request.quality, !request.styles.is_empty()),
    };
    let (width, height) = state.config.resolution.size(request.aspect_ratio);
    let seed = request.seed.unwrap_or_else(|| rand::random::<u32>() % (crate::domain::request::MAX_SEED as u32 + 1));
    NewJob {
        // Time-ordered (UUIDv7): new jobs land at the end of the primary-key index instead of at
        // random pages, so a submit does not get slower as the table grows.
        id: Uuid::now_v7(),
        account_id: account,
        kind: job_kind(&request),
        request,
        seed,
        width,
        height,
        price: price.amount,
        price_tier_seconds: price.tier_seconds,
        webhook_url,
        idempotency,
    }
}

/// The store's refusal as the caller sees it: 402, 409 or 429 (with `Retry-After`).
fn refused(state: &AppState, refusal: SubmitRefusal) -> ApiError {
    match refusal {
        SubmitRefusal::InsufficientBalance { price, available } => ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            crate::api::error::ErrorCode::InsufficientCredits,
            format!("Insufficient credits: this clip costs {price} and the account has {available} available."),
        ),
        SubmitRefusal::IdempotencyConflict { job_id } => ApiError::new(
            StatusCode::CONFLICT,
            crate::api::error::ErrorCode::IdempotencyConflict,
            format!("This Idempotency-Key was already used for job {job_id} with a different request body."),
        ),
        SubmitRefusal::BacklogFull { max_concurrent, max_backlog } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            crate::api::error::ErrorCode::TooManyJobs,
            format!(
                "Too many jobs: the account already has {max_concurrent} running or queued and {max_backlog} backlogged. \
                 Retry when one finishes."
            ),
        )
        .retry_after(state.config.retry_after.as_secs().max(1)),
    }
}

/// The job as admitted, or as it stands when `Prefer: wait` runs out; with `Deprecation` headers
/// when the request used a deprecated alias.
async fn respond(state: &AppState, headers: &HeaderMap, job: Job, used_aliases: bool) -> Result<Response, ApiError> {
    let wait = prefer_wait::requested(headers);
    let job = match wait {
        Some(wait) => prefer_wait::until_terminal(state, job, wait).await?,
        None => job,
    };
    let mut response = Json(state.view(&job).await).into_response();
    if let Some(wait) = wait {
        let (name, value) = prefer_wait::applied_header(wait);
        response.headers_mut().insert(name, value);
    }
    if used_aliases {
        deprecation_headers(response.headers_mut(), state.config.aliases_accepted_until);
    }
    Ok(response)
}

/// `X-Webhook-URL`: http(s), at most 2048 characters, and (unless the operator allows private
/// networks) neither naming nor resolving to a private or reserved address.
pub(super) async fn webhook_url(headers: &HeaderMap, policy: UrlPolicy) -> Result<Option<String>, ApiError> {
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
