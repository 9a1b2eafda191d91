//! What every request gets, as one tower layer: a request id on the response and on the log
//! span (kept when the client sent a short plain one), `{error}` bodies on bare error
//! responses, `X-Content-Type-Options: nosniff`, its count and latency in `/metrics`, the
//! rate-limit headers `Caller` decided on (rate_limit.rs), and the connection's in-flight mark
//! (server.rs) until the response body is done.
//!
//! A hand-written layer rather than `axum::middleware::from_fn`: each `from_fn` layer clones
//! the route it wraps and boxes three futures and a service on every request; this one calls
//! its route in place and boxes one future. (It runs on every poll of every job.)
use super::{error, json_body, metrics, rate_limit, request_id};
use axum::extract::Request;
use axum::response::Response;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Wraps each route of the router (`Router::layer`), where the route's template is known from
/// the request (`MatchedPath`); or a service that serves one route template only (`for_route`).
#[derive(Clone, Copy, Default)]
pub struct EveryRequest {
    route: Option<&'static str>,
}

impl EveryRequest {
    /// For a service outside the router that serves `route` (its template, as axum writes it).
    pub fn for_route(route: &'static str) -> EveryRequest {
        EveryRequest { route: Some(route) }
    }
}

impl<S> Layer<S> for EveryRequest {
    type Service = AroundEveryRequest<S>;

    fn layer(&self, inner: S) -> AroundEveryRequest<S> {
        AroundEveryRequest { inner, route: self.route }
    }
}

#[derive(Clone)]
pub struct AroundEveryRequest<S> {
    inner: S,
    route: Option<&'static str>,
}

impl<S> Service<Request> for AroundEveryRequest<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        use tracing::Instrument;
        let in_flight = crate::server::request_started(&request);
        let id = request_id::of(request.headers());
        let span = tracing::info_span!("request", request_id = id.to_str().unwrap_or("-"));
        let timer = metrics::RequestTimer::start(&request, self.route);
        // The access log (debug level: it would be most of the log at load). The path only: no
        // query string, no headers, so no key or signed link can end up in it.
        let access = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| (request.method().clone(), request.uri().path().to_owned(), std::time::Instant::now()));
        // `poll_ready` was called on `inner` for this call: it is called here, not on a clone.
        let handled = json_body::refuse_content_encoding(request).map(|request| self.inner.call(request));
        Box::pin(async move {
            let (response, rate_limit) = match handled {
                Ok(handled) => match rate_limit::HeaderSlot::around(handled.instrument(span.clone())).await {
                    (Ok(response), rate_limit) => (error::with_json_error_body(response), rate_limit),
                    (Err(never), _) => match never {},
                },
                Err(refused) => (*refused, rate_limit::HeaderSlot::default()),
            };
            if let Some((method, path, started)) = access {
                let (status, ms) = (response.status().as_u16(), started.elapsed().as_secs_f64() * 1e3);
                span.in_scope(|| tracing::debug!(%method, path, status, ms, "request"));
            }
            let mut response = timer.finish(response);
            response.headers_mut().insert(request_id::HEADER, id);
            rate_limit.stamp(&mut response);
            // Every answer is what its Content-Type says, never sniffed: an uploaded PNG that is
            // also valid HTML must not be rendered as a page from this origin.
            response
                .headers_mut()
                .insert(axum::http::header::X_CONTENT_TYPE_OPTIONS, axum::http::HeaderValue::from_static("nosniff"));
            Ok(crate::server::until_body_done(response, in_flight))
        })
    }
}
