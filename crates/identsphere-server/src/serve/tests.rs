//! The accept loop and the connection watchdog against real sockets on
//! loopback, with short timeouts; the binary's own tests (tests/slow_clients.rs)
//! repeat the main cases through the whole server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
use super::*;
use axum::routing::get;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::oneshot,
    time::{timeout, Instant},
};

const SECOND: Duration = Duration::from_secs(1);

fn limits(header_read: u64, idle: u64, max_connections: usize) -> ServeLimits {
    ServeLimits {
        timeouts: ConnTimeouts {
            header_read: Duration::from_secs(header_read),
            idle: Duration::from_secs(idle),
        },
        max_connections,
    }
}

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            "slow"
        }),
    )
}

/// A running server: its address, and the way to stop it.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(limits: ServeLimits) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener.local_addr().unwrap(), listener, limits)
    }

    fn start_on<A: Accept + 'static>(addr: SocketAddr, listener: A, limits: ServeLimits) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(run(listener, app(), limits, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            done,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }
}

/// One response read off a raw socket: status line, headers, body.
struct Raw {
    status: u16,
    head: String,
    body: String,
}

async fn read_response(stream: &mut TcpStream) -> Raw {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = timeout(5 * SECOND, stream.read(&mut buf))
            .await
            .expect("no response within 5 s")
            .unwrap();
        assert!(n > 0, "closed before a response: {data:?}");
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed mid-body");
        data.extend_from_slice(&buf[..n]);
    }
    Raw {
        status: head[9..12].parse().unwrap(),
        body: String::from_utf8(data[head_end..].to_vec()).unwrap(),
        head,
    }
}

/// Waits for the server to close `stream`; returns how long that took.
async fn closed_after(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    match timeout(limit, stream.read(&mut buf)).await {
        Err(_) => panic!("still open after {limit:?}"),
        Ok(Ok(0) | Err(_)) => started.elapsed(),
        Ok(Ok(n)) => panic!("unexpected bytes: {:?}", &buf[..n]),
    }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n";

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let server = Server::start(limits(1, 5, 8)).await;
    let mut socket = server.connect().await;
    let took = closed_after(&mut socket, 3 * SECOND).await;
    assert!(took >= Duration::from_millis(900), "{took:?}");
}

#[tokio::test]
async fn headers_dripped_slowly_are_cut_after_the_header_timeout() {
    let server = Server::start(limits(1, 5, 8)).await;
    let mut socket = server.connect().await;
    let started = Instant::now();
    socket.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    // One byte every 200 ms: each one arrives well within any per-read
    // timeout, and the head still never completes.
    let mut buf = [0u8; 64];
    for byte in b"x-drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        .iter()
        .cycle()
    {
        if socket.write_all(&[*byte]).await.is_err() {
            break; // closed under us
        }
        match timeout(Duration::from_millis(200), socket.read(&mut buf)).await {
            Err(_) => assert!(started.elapsed() < 3 * SECOND, "never cut"),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => panic!("answered: {:?}", String::from_utf8_lossy(&buf[..n])),
        }
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < 2 * SECOND,
        "{took:?}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_stays_for_the_idle_timeout_then_goes() {
    // Idle (2 s) longer than the header timeout (1 s): the two are distinct.
    let server = Server::start(limits(1, 2, 8)).await;
    let mut socket = server.connect().await;
    socket.write_all(GET).await.unwrap();
    assert_eq!(read_response(&mut socket).await.status, 200);
    // Past the header timeout, still open and usable.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    socket.write_all(GET).await.unwrap();
    assert_eq!(read_response(&mut socket).await.status, 200);
    let took = closed_after(&mut socket, 4 * SECOND).await;
    assert!(took >= Duration::from_millis(1800), "{took:?}");
}

#[tokio::test]
async fn connections_past_the_limit_get_a_503_and_serving_resumes() {
    let server = Server::start(limits(5, 5, 2)).await;
    let mut held = vec![server.connect().await, server.connect().await];
    // Both seats are taken once the server has accepted them; a request on
    // each proves it.
    for socket in &mut held {
        socket.write_all(GET).await.unwrap();
        assert_eq!(read_response(socket).await.status, 200);
    }
    for _ in 0..3 {
        let mut extra = server.connect().await;
        extra.write_all(GET).await.unwrap();
        let refused = read_response(&mut extra).await;
        assert_eq!(refused.status, 503, "{}", refused.head);
        let head = refused.head.to_ascii_lowercase();
        assert!(head.contains("retry-after: 1\r\n"), "{head}");
        assert!(head.contains("connection: close\r\n"), "{head}");
        assert!(
            head.contains("content-type: application/problem+json"),
            "{head}"
        );
        let problem: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
        assert_eq!(problem["code"], "overloaded");
        closed_after(&mut extra, SECOND).await;
    }
    drop(held);
    // The seats come back as the server notices the closes.
    let deadline = Instant::now() + 2 * SECOND;
    loop {
        let mut socket = server.connect().await;
        socket.write_all(GET).await.unwrap();
        match read_response(&mut socket).await.status {
            200 => break,
            503 if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("got {other}"),
        }
    }
}

/// A listener that fails like one out of file descriptors while `failing`.
struct Exhausted {
    inner: TcpListener,
    failing: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Accept for Exhausted {
    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(24)); // EMFILE
        }
        self.inner.accept().await
    }
}

#[tokio::test]
async fn accept_errors_back_off_and_serving_resumes() {
    let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = inner.local_addr().unwrap();
    let failing = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = Exhausted {
        inner,
        failing: failing.clone(),
        calls: calls.clone(),
    };
    let server = Server::start_on(addr, listener, limits(5, 5, 8));
    // The client connects into the backlog while accept keeps failing.
    let mut socket = server.connect().await;
    socket.write_all(GET).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // 10 + 20 + 40 + 80 + 160 ms of pauses fit in 500 ms: about six tries,
    // where a loop without pauses makes thousands.
    let tries = calls.load(Ordering::SeqCst);
    assert!((3..=10).contains(&tries), "{tries} accept calls in 500 ms");
    failing.store(false, Ordering::SeqCst);
    assert_eq!(read_response(&mut socket).await.status, 200);
    assert!(!server.done.is_finished());
}

#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish() {
    let mut server = Server::start(limits(5, 5, 8)).await;
    let mut busy = server.connect().await;
    busy.write_all(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut idle = server.connect().await;
    idle.write_all(GET).await.unwrap();
    assert_eq!(read_response(&mut idle).await.status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = server.stop.take().unwrap().send(());
    // The idle connection is closed at once; the busy one gets its answer.
    closed_after(&mut idle, SECOND).await;
    let slow = read_response(&mut busy).await;
    assert_eq!((slow.status, slow.body.as_str()), (200, "slow"));
    timeout(2 * SECOND, server.done).await.unwrap().unwrap();
    // No longer accepting.
    assert!(TcpStream::connect(server.addr).await.is_err());
}
