//! The accept loop: HTTP/1.1 connections under a connection limit, each
//! watched for slow or idle clients ([`conn`]), with graceful shutdown.
//!
//! Past the limit a new connection is answered `503` problem+json with
//! `Retry-After` and closed, from a small pool of refusal slots; when those
//! are taken too, accepting pauses and new connections wait in the listen
//! backlog. So the server never holds more than `max_connections +
//! REFUSAL_SLOTS` client sockets, never accepts a connection only to drop it
//! silently, and goes back to serving as soon as a seat is free.
//!
//! Accept errors such as `EMFILE` (out of file descriptors) leave the
//! pending connection in the backlog, so retrying at once would spin: they
//! are logged and retried after a growing pause, and never end the loop.
mod conn;
mod fds;
#[cfg(test)]
mod tests;

pub use conn::ConnTimeouts;
pub use fds::fit_to_fd_limit;

use axum::Router;
use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{watch, OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tracing::{info, warn};

/// Over-limit connections answered at once; past them accepting pauses.
pub const REFUSAL_SLOTS: usize = 32;

/// What `Retry-After` tells a refused client: seats free up quickly.
const REFUSAL_RETRY_AFTER_SECS: u64 = 1;

/// The first and the longest pause after an accept error.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The serving limits from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// Header-read and idle timeouts.
    pub timeouts: ConnTimeouts,
    /// Most connections served at once.
    pub max_connections: usize,
}

/// Where connections come from: a [`TcpListener`], or a stand-in in tests.
pub trait Accept: Send {
    /// The next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        TcpListener::accept(self).await
    }
}

enum Seat {
    Serve(OwnedSemaphorePermit),
    Refuse(OwnedSemaphorePermit),
}

/// Serves `app` until `shutdown` resolves, then lets the requests in flight
/// finish (each bounded by the router's request timeout).
pub async fn run<A: Accept>(
    mut listener: A,
    app: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) {
    let seats = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSAL_SLOTS));
    let (stop, stopped) = watch::channel(false);
    let mut backoff = BACKOFF_FIRST;
    let mut refusal_log = RefusalLog::default();
    tokio::pin!(shutdown);
    loop {
        // Room first, then accept: with no room the backlog holds the
        // connection instead of an open file we cannot serve.
        let seat = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Ok(seat) = seats.clone().acquire_owned() => Seat::Serve(seat),
            Ok(slot) = refusals.clone().acquire_owned() => Seat::Refuse(slot),
        };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = BACKOFF_FIRST;
                accepted
            }
            // This one connection failed before we saw it: take the next.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                warn!(
                    error = %e,
                    retry_in_ms = backoff.as_millis(),
                    "cannot accept connections; retrying after a pause"
                );
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        // A seat may have freed while we waited in accept.
        let seat = match seat {
            Seat::Refuse(slot) => match seats.clone().try_acquire_owned() {
                Ok(seat) => Seat::Serve(seat),
                Err(_) => Seat::Refuse(slot),
            },
            serve => serve,
        };
        match seat {
            Seat::Serve(seat) => {
                let (app, stopped) = (app.clone(), stopped.clone());
                tokio::spawn(conn::serve(
                    stream,
                    peer,
                    app,
                    limits.timeouts,
                    stopped,
                    seat,
                ));
            }
            Seat::Refuse(slot) => {
                refusal_log.note(limits.max_connections);
                tokio::spawn(conn::refuse(stream, REFUSAL_RETRY_AFTER_SECS, slot));
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    info!("waiting for requests in flight");
    // Every seat back means every connection has ended.
    let all = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let _ = seats.acquire_many(all(limits.max_connections)).await;
    let _ = refusals.acquire_many(all(REFUSAL_SLOTS)).await;
}

/// Refusals are logged at most every [`RefusalLog::EVERY`], with a count, so
/// a flood of connections cannot flood the log too.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    const EVERY: Duration = Duration::from_secs(10);

    fn note(&mut self, max_connections: usize) {
        self.unlogged += 1;
        if self.last.is_some_and(|at| at.elapsed() < Self::EVERY) {
            return;
        }
        warn!(
            max_connections,
            refused = self.unlogged,
            "connection limit reached; answering 503 to new connections"
        );
        self.last = Some(Instant::now());
        self.unlogged = 0;
    }
}

/// Errors of one connection (the client gave up before we accepted it), as
/// opposed to errors of the listener or the process.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}
