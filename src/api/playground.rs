//! The web playground at `/`: one static page embedded in the binary (no build step) that speaks
//! only the public API with the key the visitor types in (kept in the browser's localStorage).
use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("playground.html");

/// Its script and styles are inline; results and asset images may come from an S3 host.
const CSP: &str = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     img-src 'self' data: blob: https: http:; media-src 'self' https: http:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
}
