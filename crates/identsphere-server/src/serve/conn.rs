//! One HTTP/1.1 connection, served by hyper, with a watchdog that closes it
//! when the client is too slow to send a request head, or idle too long
//! between requests.
//!
//! Why not hyper's `header_read_timeout` alone: hyper starts that timer when
//! the connection begins waiting for a request, so on a kept-alive connection
//! it is also the idle timeout, and the two could not differ. The watchdog
//! keeps them apart the way Go's `net/http` does: a new connection has the
//! header timeout to deliver its first head; after a response it may stay
//! silent for the idle timeout, and from its next byte it has the header
//! timeout again. While a request is being answered the router's own
//! deadlines (body read, whole request) apply instead.
use axum::{
    body::Body,
    extract::ConnectInfo,
    response::{IntoResponse, Response},
    Router,
};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use identsphere::error::ApiError;
use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::{watch, OwnedSemaphorePermit},
    time::Instant,
};
use tower::ServiceExt as _;
use tracing::debug;

/// The connection-level timeouts.
#[derive(Clone, Copy, Debug)]
pub struct ConnTimeouts {
    /// From the first byte of a request head (or from accept) to its end.
    pub header_read: Duration,
    /// Between a response and the first byte of the next request.
    pub idle: Duration,
}

/// How long an over-limit connection may take to send its request head and
/// read the `503`: it gets one answer, not a seat.
const REFUSAL_TIME_LIMIT: Duration = Duration::from_secs(2);

/// What the connection is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// The rest of a request head, until the deadline.
    Head(Instant),
    /// The first byte of the next request, until the deadline.
    Idle(Instant),
    /// This many requests are being answered; no connection deadline.
    Busy(usize),
}

/// The phase, shared by the socket wrapper, the service and the watchdog.
struct Tracker {
    phase: watch::Sender<Phase>,
    timeouts: ConnTimeouts,
}

impl Tracker {
    /// A byte arrived: an idle connection starts a request head.
    fn on_read(&self) {
        self.phase.send_if_modified(|phase| match phase {
            Phase::Idle(_) => {
                *phase = Phase::Head(Instant::now() + self.timeouts.header_read);
                true
            }
            Phase::Head(_) | Phase::Busy(_) => false,
        });
    }

    fn request_started(self: &Arc<Self>) -> BusyGuard {
        self.phase.send_modify(|phase| {
            *phase = match *phase {
                Phase::Busy(n) => Phase::Busy(n + 1),
                Phase::Head(_) | Phase::Idle(_) => Phase::Busy(1),
            }
        });
        BusyGuard(self.clone())
    }
}

/// Ends a request's busy phase when its response is ready, or when hyper
/// drops it (client gone).
struct BusyGuard(Arc<Tracker>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let idle = self.0.timeouts.idle;
        self.0.phase.send_modify(|phase| {
            *phase = match *phase {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => Phase::Idle(Instant::now() + idle),
            }
        });
    }
}

/// Resolves with the phase whose deadline passed.
pub(super) async fn expiry(mut phase: watch::Receiver<Phase>) -> Phase {
    loop {
        let current = *phase.borrow_and_update();
        let deadline = match current {
            Phase::Head(at) | Phase::Idle(at) => at,
            Phase::Busy(_) => {
                if phase.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
                continue;
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return current,
            changed = phase.changed() => {
                if changed.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// The socket, reporting reads to the tracker.
struct Watched {
    stream: TcpStream,
    tracker: Arc<Tracker>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.tracker.on_read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Serves `stream` until the client leaves, a deadline passes or, after
/// `stop` turns true, the request in flight is answered. The permit is the
/// connection's seat under the connection limit, given back on return.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    timeouts: ConnTimeouts,
    mut stop: watch::Receiver<bool>,
    _seat: OwnedSemaphorePermit,
) {
    let (phase, watchdog) = watch::channel(Phase::Head(Instant::now() + timeouts.header_read));
    let tracker = Arc::new(Tracker { phase, timeouts });
    let io = TokioIo::new(Watched {
        stream,
        tracker: tracker.clone(),
    });
    let service = service_fn(move |mut req: Request<Incoming>| {
        // What `into_make_service_with_connect_info` gave the router before.
        req.extensions_mut().insert(ConnectInfo(peer));
        let busy = tracker.request_started();
        let call = app.clone().oneshot(req.map(Body::new));
        async move {
            let response = call.await;
            drop(busy);
            response
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper's own head timer starts when the connection begins waiting,
        // so at header + idle it can never fire before the watchdog: it is a
        // backstop, not the rule.
        .header_read_timeout(timeouts.header_read + timeouts.idle)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let expired = expiry(watchdog);
    tokio::pin!(expired);
    tokio::select! {
        result = conn.as_mut() => return finished(result),
        phase = &mut expired => return closed(phase),
        _ = stop.wait_for(|stop| *stop) => conn.as_mut().graceful_shutdown(),
    }
    // Shutting down: an idle connection is closed at once by hyper; one with
    // a request in flight ends after its response.
    tokio::select! {
        result = conn.as_mut() => finished(result),
        phase = &mut expired => closed(phase),
    }
}

fn finished(result: hyper::Result<()>) {
    if let Err(e) = result {
        // Clients vanish mid-request all the time: not worth more than debug.
        debug!(error = %e, "connection ended with an error");
    }
}

fn closed(phase: Phase) {
    // Dropping the connection closes the socket without an answer: a client
    // that has not sent a request head is owed none.
    match phase {
        Phase::Head(_) => debug!("closing a connection: request head too slow"),
        Phase::Idle(_) => debug!("closing an idle connection"),
        Phase::Busy(_) => {}
    }
}

/// Answers an over-limit connection's first request with `503` problem+json
/// and `Retry-After`, then closes it. Reading the request before answering
/// (rather than writing and closing at once) lets the client see the answer:
/// closing a socket with unread data sends a reset that can destroy it.
pub(super) async fn refuse(stream: TcpStream, retry_after_secs: u64, _slot: OwnedSemaphorePermit) {
    let service = service_fn(move |_: Request<Incoming>| async move {
        Ok::<Response, Infallible>(ApiError::Overloaded { retry_after_secs }.into_response())
    });
    let mut builder = http1::Builder::new();
    builder.keep_alive(false);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    if let Ok(Err(e)) = tokio::time::timeout(REFUSAL_TIME_LIMIT, conn).await {
        debug!(error = %e, "refused connection ended with an error");
    }
}
