//! The HTTP listener's guard against clients that hold connections without using them: a
//! header-read timeout, an idle keep-alive timeout and a cap on open connections.
//!
//! - A connection must send a complete request head within `header_read_timeout` of being
//!   accepted, or of its first byte after an idle spell; otherwise it is closed.
//! - A connection with no request in flight is closed after `idle_timeout`. A request is in
//!   flight from its head until its response body is finished or dropped, so an event stream
//!   or a slow download is never "idle". (A body that stalls is cut off by the handlers' own
//!   body timeout, `--body-idle-timeout-secs`.)
//! - Beyond `max_connections` open connections the listener stops accepting: new connections
//!   wait in the kernel's accept backlog (the client sees a slow connect, not a reset) until
//!   one closes.
//!
//! The deadlines are enforced by the socket wrapper: a read that is waiting past the deadline
//! fails with `TimedOut`, which makes hyper drop the connection.
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::serve::IncomingStream;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// What a connection is doing, and so when it must be closed (pure: times are passed in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    in_flight: usize,
    /// Reading a request head (since accept, or since the first byte after an idle spell).
    reading_head: bool,
    deadline: Option<Instant>,
}

impl Activity {
    pub fn opened(now: Instant, limits: &ConnectionLimits) -> Activity {
        Activity { in_flight: 0, reading_head: true, deadline: Some(now + limits.header_read_timeout) }
    }

    /// Bytes arrived. After an idle spell they start a request head, which must complete in
    /// time; during a request (a body, a pipelined head) they change nothing.
    pub fn bytes_read(&mut self, now: Instant, limits: &ConnectionLimits) {
        if self.in_flight == 0 && !self.reading_head {
            self.reading_head = true;
            self.deadline = Some(now + limits.header_read_timeout);
        }
    }

    pub fn request_started(&mut self) {
        self.in_flight += 1;
        self.reading_head = false;
        self.deadline = None;
    }

    pub fn request_finished(&mut self, now: Instant, limits: &ConnectionLimits) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            self.deadline = Some(now + limits.idle_timeout);
        }
    }

    /// When the connection is to be closed if nothing changes; `None` while a request is in flight.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

struct Shared {
    activity: Activity,
    /// The task reading the socket, woken when a request ends so that it arms the idle timer.
    reader: Option<Waker>,
}

/// One accepted connection's state, shared by its socket and its requests (as `ConnectInfo`).
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Mutex<Shared>>,
    limits: ConnectionLimits,
}

impl Connection {
    fn new(limits: ConnectionLimits) -> Connection {
        let shared = Shared { activity: Activity::opened(Instant::now(), &limits), reader: None };
        Connection { shared: Arc::new(Mutex::new(shared)), limits }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn request_started(&self) -> InFlight {
        self.lock().activity.request_started();
        InFlight(self.clone())
    }
}

/// A request in flight; its drop (the response body finished or abandoned) ends it.
pub struct InFlight(Connection);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut shared = self.0.lock();
        shared.activity.request_finished(Instant::now(), &self.0.limits);
        // The reader's timer already runs at or before the idle deadline unless a header
        // timeout can outlast an idle one (`timer_may_be_late`); only then must it re-arm now.
        // (Waking it on every request would cost a poll of the connection per request.)
        if timer_may_be_late(&self.0.limits) {
            if let Some(reader) = shared.reader.take() {
                reader.wake();
            }
        }
    }
}

/// Whether the socket's timer may be set later than a connection's idle deadline when a
/// request ends. The timer is only ever set to a deadline that was current, or (while a
/// request is in flight) to `idle_timeout` from then: both are at or before the idle deadline
/// of any later end of a request, unless a header deadline (`header_read_timeout` from a time
/// before the request) is later than it.
fn timer_may_be_late(limits: &ConnectionLimits) -> bool {
    limits.header_read_timeout > limits.idle_timeout
}

impl Connected<IncomingStream<'_, GuardedListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, GuardedListener>) -> Connection {
        stream.io().connection.clone()
    }
}

/// Marks the request in flight on its connection (until `until_body_done`'s body is done).
/// Requests that did not come through a `GuardedListener` get `None` and pass untouched.
pub fn request_started(request: &axum::extract::Request) -> Option<InFlight> {
    let ConnectInfo(connection) = request.extensions().get::<ConnectInfo<Connection>>()?;
    Some(connection.request_started())
}

/// The response, whose body keeps the request in flight until it is finished or dropped.
pub fn until_body_done(response: axum::response::Response, in_flight: Option<InFlight>) -> axum::response::Response {
    match in_flight {
        Some(in_flight) => response.map(|body| Body::new(TrackedBody { body, _in_flight: in_flight })),
        None => response,
    }
}

struct TrackedBody {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A TCP listener that accepts at most `max_connections` connections at once.
pub struct GuardedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    limits: ConnectionLimits,
}

impl GuardedListener {
    pub fn new(inner: TcpListener, limits: ConnectionLimits) -> GuardedListener {
        let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        GuardedListener { inner, permits, limits }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (GuardedStream, SocketAddr) {
        // Taken before `accept`: at the cap, new connections stay in the kernel's backlog.
        let permit = self.permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((stream, address)) => {
                    let connection = Connection::new(self.limits);
                    let timer = Box::pin(tokio::time::sleep_until(Instant::now() + self.limits.header_read_timeout));
                    return (GuardedStream { stream, connection, timer, _permit: permit }, address);
                }
                // A connection that failed before we took it: nothing to wait for.
                Err(e) if is_connection_error(&e) => {}
                // Out of file descriptors or memory: give the server a moment rather than spin.
                Err(e) => {
                    tracing::error!("accept error: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// An accepted socket that fails its reads once its connection's deadline has passed, and
/// gives its connection slot back when dropped.
pub struct GuardedStream {
    stream: TcpStream,
    connection: Connection,
    timer: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for GuardedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        let mut shared = this.connection.lock();
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                shared.activity.bytes_read(Instant::now(), &this.connection.limits);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if !shared.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    shared.reader = Some(cx.waker().clone());
                }
                let deadline = shared.activity.deadline();
                drop(shared);
                this.poll_deadline(deadline, cx)
            }
            other => other,
        }
    }
}

impl GuardedStream {
    /// The timer runs at or before the connection's deadline, never after it: it is moved
    /// earlier when the deadline is, and when it fires early (the deadline moved later, or a
    /// request is in flight) it is set again. So a request costs no timer update (moving a
    /// timer locks the runtime's timer wheel), only one every `idle_timeout` per connection.
    fn poll_deadline(&mut self, deadline: Option<Instant>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(deadline) = deadline.filter(|d| *d < self.timer.deadline()) {
            self.timer.as_mut().reset(deadline);
        }
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            match deadline {
                Some(deadline) if deadline <= now => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no complete request head in time, or idle too long",
                    )))
                }
                Some(deadline) => self.timer.as_mut().reset(deadline),
                // In flight: no deadline; look again within an idle timeout.
                None => self.timer.as_mut().reset(now + self.connection.limits.idle_timeout),
            }
        }
        Poll::Pending
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(75),
        max_connections: 8,
    };

    #[test]
    fn a_new_connection_has_the_header_timeout_and_a_request_clears_it() {
        let t0 = Instant::now();
        let mut a = Activity::opened(t0, &LIMITS);
        assert_eq!(a.deadline(), Some(t0 + LIMITS.header_read_timeout));
        // Bytes of the head do not extend it: the whole head must come in time.
        a.bytes_read(t0 + Duration::from_secs(5), &LIMITS);
        assert_eq!(a.deadline(), Some(t0 + LIMITS.header_read_timeout));
        a.request_started();
        assert_eq!(a.deadline(), None);
        // Body bytes change nothing while the request is in flight.
        a.bytes_read(t0 + Duration::from_secs(500), &LIMITS);
        assert_eq!(a.deadline(), None);
    }

    #[test]
    fn idle_after_the_last_request_then_the_header_timeout_from_the_next_byte() {
        let t0 = Instant::now();
        let mut a = Activity::opened(t0, &LIMITS);
        a.request_started();
        a.request_started(); // HTTP/2: two streams
        let t1 = t0 + Duration::from_secs(100);
        a.request_finished(t1, &LIMITS);
        assert_eq!(a.deadline(), None, "one request is still in flight");
        a.request_finished(t1, &LIMITS);
        assert_eq!(a.deadline(), Some(t1 + LIMITS.idle_timeout));
        let t2 = t1 + Duration::from_secs(3);
        a.bytes_read(t2, &LIMITS);
        assert_eq!(a.deadline(), Some(t2 + LIMITS.header_read_timeout));
    }
}
