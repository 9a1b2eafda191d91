//! `GET /jobs/{id}` straight to its handler, past axum's router; every other request through it.
//!
//! Polls are most of the API's traffic (clients poll each job every few seconds for minutes),
//! and on a poll the router cost as much as the handler's own work apart from the key check:
//! matching, percent-decoding the id into the request's extensions, the matched path, and a
//! cloned, boxed route service and two more futures per request (`bench/poll_profile`). A poll
//! is recognised by its method and path alone, and answered by the same code the routed
//! `GET /jobs/{id}` runs (jobs.rs) inside the same layer (every_request.rs), so the two cannot
//! answer differently; anything that is not plainly a poll (HEAD, a trailing slash, an
//! encoded id) takes the router.
use super::every_request::EveryRequest;
use super::{jobs, AppState};
use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;
use axum::Router;
use futures_util::future::{BoxFuture, Either};
use std::convert::Infallible;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The template the routed `GET /jobs/{id}` has, for its metrics.
const ROUTE: &str = "/jobs/{id}";

/// The id of `GET /jobs/<id>` when `id` is written as a hyphenated UUID (the form the API hands
/// out), without anything that the router would decode or match differently.
fn job_poll<'a>(method: &Method, path: &'a str) -> Option<&'a str> {
    let id = path.strip_prefix("/jobs/")?;
    let plain = id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    (method == Method::GET && plain).then_some(id)
}

/// The API as served: the router, and its polls taken aside.
#[derive(Clone)]
pub struct Api {
    state: AppState,
    routes: Router,
}

impl Api {
    pub fn new(state: AppState, routes: Router) -> Api {
        Api { state, routes }
    }
}

impl Service<Request> for Api {
    type Response = Response;
    type Error = Infallible;
    type Future =
        Either<axum::routing::future::RouteFuture<Infallible>, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // (a `Router` is always ready)
        <Router as Service<Request>>::poll_ready(&mut self.routes, cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Some(polled) = job_poll(request.method(), request.uri().path()) else {
            return Either::Left(self.routes.call(request));
        };
        // Copied out of the request, whose parts the extractors take (36 ASCII bytes).
        let mut id = [0u8; 36];
        id.copy_from_slice(polled.as_bytes());
        let mut poll = EveryRequest::for_route(ROUTE).layer(JobPoll { state: self.state.clone(), id });
        Either::Right(poll.call(request))
    }
}

/// The handler of a request `job_poll` recognised, with the id it found.
#[derive(Clone)]
struct JobPoll {
    state: AppState,
    id: [u8; 36],
}

impl Service<Request> for JobPoll {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let (state, id) = (self.state.clone(), self.id);
        Box::pin(async move {
            let (mut parts, _body) = request.into_parts();
            let id = std::str::from_utf8(&id).unwrap_or_default();
            Ok(jobs::get_from_parts(&state, &mut parts, id).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_get_of_a_job_is_taken_aside() {
        let id = "0b5f4c4e-2f0a-4c56-9d5e-0a2b3c4d5e6f";
        assert_eq!(job_poll(&Method::GET, &format!("/jobs/{id}")), Some(id));
        assert_eq!(job_poll(&Method::GET, "/jobs/0B5F4C4E-2F0A-4C56-9D5E-0A2B3C4D5E6F").map(str::len), Some(36));
        let routed = [
            (Method::HEAD, format!("/jobs/{id}")),
            (Method::DELETE, format!("/jobs/{id}")),
            (Method::GET, format!("/jobs/{id}/")),
            (Method::GET, format!("/jobs/{id}/events")),
            (Method::GET, "/jobs/0b5f4c4e%2D2f0a-4c56-9d5e-0a2b3c4d5e6f".to_owned()),
            (Method::GET, "/jobs/0b5f4c4e2f0a4c569d5e0a2b3c4d5e6f".to_owned()),
            (Method::GET, "/jobs/not-a-job-id-but-thirty-six-chars".to_owned()),
            (Method::GET, "/jobs".to_owned()),
            (Method::GET, format!("/v1/jobs/{id}")),
        ];
        for (method, path) in routed {
            assert_eq!(job_poll(&method, &path), None, "{method} {path}");
        }
    }
}
