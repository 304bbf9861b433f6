//! Connections: accepting, bounding and serving them, HTTP/1.1 and HTTP/2 alike.
//!
//! Slow or idle clients must not hold the service. Each connection is watched: the head of a
//! request must arrive within `header_read_timeout` of its first byte (of the connection's
//! opening, for the first request), a connection with no request in flight is closed after
//! `idle_timeout`, and at most `max_connections` are open at once. Beyond that the accept loop
//! waits, so new connections queue in the kernel's backlog while established ones are served.
//! A request head is bounded in bytes (HTTP/1.1 read buffer, HTTP/2 header list).
//!
//! hyper enforces a header timeout for HTTP/1.1 only, and counts idle keep-alive time into it;
//! the watch here gives both protocols the same two separate bounds.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The bounds every connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Largest request head: HTTP/1.1 read buffer and HTTP/2 header list.
    pub max_header_bytes: usize,
}

/// How long a connection closed for idling may take to finish its goodbye (HTTP/2 GOAWAY).
const GOODBYE: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, asks every
/// connection to finish (idle ones close at once, requests in flight complete) and returns when
/// all are closed. Its caller bounds that wait.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watch below times request heads; hyper's own timer would also count idle
        // keep-alive time as header time.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let places = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        // A place first, then accept: beyond the limit, new connections wait in the backlog.
        let place = tokio::select! {
            place = Arc::clone(&places).acquire_owned() => place.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (builder, router, stop) = (Arc::clone(&builder), router.clone(), stop.clone());
        connections.spawn(async move {
            let open = metrics::gauge!(crate::telemetry::CONNECTIONS_OPEN);
            open.increment(1.0);
            serve_connection(stream, &builder, router, limits, stop).await;
            open.decrement(1.0);
            drop(place);
        });
    }
    drop(listener);
    stop.cancel();
    connections.close();
    connections.wait().await;
}

/// Errors of one connection (reset before accept) are nothing; running out of descriptors is
/// waited out briefly rather than spun on.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(%error, "accept failed; pausing briefly");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn serve_connection(
    stream: TcpStream,
    builder: &auto::Builder<TokioExecutor>,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let watch = Arc::new(Watch::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        watch: Arc::clone(&watch),
    });
    let service = {
        let watch = Arc::clone(&watch);
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            // In flight from its head until its answer's body is gone (written or dropped).
            let in_flight = watch.begin(request.version());
            let router = router.clone();
            async move {
                let response = router
                    .oneshot(request.map(Body::new))
                    .await
                    .unwrap_or_else(|never| match never {});
                Ok::<_, std::convert::Infallible>(response.map(move |body| {
                    Body::new(body.map_frame(move |frame| {
                        let _ = &in_flight;
                        frame
                    }))
                }))
            }
        })
    };
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    // Shutdown began: idle connections close, requests in flight finish.
    let mut draining = false;
    // Closed for idling: the time its goodbye (HTTP/2 GOAWAY) may take.
    let mut goodbye: Option<Instant> = None;
    loop {
        let deadline = goodbye.unwrap_or_else(|| watch.next(&limits).0);
        tokio::select! {
            _ = connection.as_mut() => return,
            () = stop.cancelled(), if !draining => {
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
            () = tokio::time::sleep_until(deadline) => {
                if goodbye.is_some() {
                    return;
                }
                match watch.verdict(&limits) {
                    Verdict::Keep => {}
                    Verdict::SlowHead => {
                        metrics::counter!(crate::telemetry::CONNECTIONS_CLOSED, "reason" => "header_timeout").increment(1);
                        tracing::debug!("closing a connection whose request head did not arrive in time");
                        return;
                    }
                    Verdict::Idle if draining => return,
                    Verdict::Idle => {
                        metrics::counter!(crate::telemetry::CONNECTIONS_CLOSED, "reason" => "idle").increment(1);
                        connection.as_mut().graceful_shutdown();
                        goodbye = Some(Instant::now() + GOODBYE);
                    }
                }
            }
        }
    }
}

/// What one connection is doing, as its requests and its bytes show.
struct Watch {
    opened: Instant,
    /// Requests whose answers are not finished.
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` when the connection last became idle.
    idle_since: AtomicU64,
    /// Milliseconds after `opened` when the first byte of a request head arrived on an idle
    /// connection (`opened` itself for the first request); `NOT_AWAITING` otherwise.
    head_since: AtomicU64,
    /// HTTP/2: bytes on an idle connection are pings and settings, not request heads.
    http2: AtomicBool,
}

const NOT_AWAITING: u64 = u64::MAX;

enum Verdict {
    Keep,
    SlowHead,
    Idle,
}

impl Watch {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            http2: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn at(&self, millis: u64) -> Instant {
        self.opened + Duration::from_millis(millis)
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// A request head arrived.
    fn begin(self: &Arc<Self>, version: hyper::Version) -> InFlight {
        if version == hyper::Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NOT_AWAITING, Ordering::Release);
        InFlight(Arc::clone(self))
    }

    /// Bytes arrived.
    fn received(&self) {
        if self.in_flight() == 0
            && !self.http2.load(Ordering::Relaxed)
            && self.head_since.load(Ordering::Acquire) == NOT_AWAITING
        {
            self.head_since.store(self.now(), Ordering::Release);
        }
    }

    /// When the connection is next due, and what it is found then if nothing changed: a head
    /// too slow, idle, or (requests in flight, bounded by the request timeout) kept.
    fn next(&self, limits: &Limits) -> (Instant, Verdict) {
        let head_since = self.head_since.load(Ordering::Acquire);
        if head_since != NOT_AWAITING {
            let due = self.at(head_since) + limits.header_read_timeout;
            return (due, Verdict::SlowHead);
        }
        if self.in_flight() > 0 {
            return (Instant::now() + limits.idle_timeout, Verdict::Keep);
        }
        let idle_since = self.idle_since.load(Ordering::Acquire);
        (self.at(idle_since) + limits.idle_timeout, Verdict::Idle)
    }

    fn verdict(&self, limits: &Limits) -> Verdict {
        let (due, verdict) = self.next(limits);
        if Instant::now() >= due {
            verdict
        } else {
            Verdict::Keep
        }
    }
}

/// One request in flight; its drop marks the end of its answer.
struct InFlight(Arc<Watch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let watch = &self.0;
        watch.idle_since.store(watch.now(), Ordering::Release);
        watch.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's socket, telling the watch when bytes arrive.
struct Watched {
    inner: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.received();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
