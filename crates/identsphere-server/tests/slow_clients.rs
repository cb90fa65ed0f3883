//! Slow and idle clients against the real `identsphere serve`, over loopback
//! TCP, with timeouts shortened through the configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
use std::{
    fs,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

const SECOND: Duration = Duration::from_secs(1);

/// Kills the server when the test ends, passing or not.
struct Server {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `serve` with `vars`, run through `wrapper` (e.g. `prlimit …`) if given;
    /// returns once `/healthz` answers.
    async fn start(vars: &[(&str, &str)], wrapper: &[&str]) -> Self {
        let dir = TempDir::new().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let bin = env!("CARGO_BIN_EXE_identsphere");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(bin);
                cmd
            }
            None => Command::new(bin),
        };
        let data = dir.path().join("data");
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("IDENTSPHERE_LISTEN", addr.to_string())
            .env("IDENTSPHERE_DATA_DIR", &data)
            .envs(vars.iter().copied())
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("server.log")).unwrap());
        let mut server = Self {
            child: cmd.spawn().unwrap(),
            addr,
            dir,
        };
        let deadline = Instant::now() + 15 * SECOND;
        loop {
            if let Some(exit) = server.child.try_wait().unwrap() {
                panic!("serve exited with {exit}:\n{}", server.log());
            }
            if let Ok(mut socket) = TcpStream::connect(addr).await {
                socket.write_all(HEALTH).await.unwrap();
                if read_response(&mut socket).await.status == 200 {
                    return server;
                }
            }
            assert!(Instant::now() < deadline, "serve did not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }
}

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n";

struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn problem_code(&self) -> String {
        let problem: serde_json::Value = serde_json::from_str(&self.body).unwrap();
        problem["code"].as_str().unwrap().to_owned()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
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
            .unwrap_or(0);
        if n == 0 {
            return Raw {
                status: 0, // closed without an answer
                head: String::from_utf8_lossy(&data).into_owned(),
                body: String::new(),
            };
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
    let mut raw = Raw {
        status: head[9..12].parse().unwrap(),
        head,
        body: String::new(),
    };
    let length: usize = raw
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    while data.len() < head_end + length {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed mid-body");
        data.extend_from_slice(&buf[..n]);
    }
    raw.body = String::from_utf8(data[head_end..].to_vec()).unwrap();
    raw
}

/// Waits for the server to close `stream`, sending nothing; how long it took.
async fn closed_after(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    match timeout(limit, stream.read(&mut buf)).await {
        Err(_) => panic!("still open after {limit:?}"),
        Ok(Ok(0) | Err(_)) => started.elapsed(),
        Ok(Ok(n)) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
    }
}

#[tokio::test]
async fn dripped_headers_are_cut_and_idle_connections_closed() {
    let server = Server::start(
        &[
            ("IDENTSPHERE_HEADER_READ_TIMEOUT_SECS", "1"),
            ("IDENTSPHERE_IDLE_TIMEOUT_SECS", "2"),
        ],
        &[],
    )
    .await;

    // Headers dripped a byte every 200 ms never complete: cut at 1 s.
    let mut drip = server.connect().await;
    let started = Instant::now();
    drip.write_all(b"GET /healthz HTTP/1.1\r\nx-drip: ")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    loop {
        if drip.write_all(b"a").await.is_err() {
            break;
        }
        match timeout(Duration::from_millis(200), drip.read(&mut buf)).await {
            Err(_) => assert!(started.elapsed() < 4 * SECOND, "dripping never cut"),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => panic!("answered: {:?}", String::from_utf8_lossy(&buf[..n])),
        }
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < 3 * SECOND,
        "{took:?}"
    );

    // A connection that never sends anything goes at the header timeout too.
    let mut silent = server.connect().await;
    let took = closed_after(&mut silent, 4 * SECOND).await;
    assert!(took >= Duration::from_millis(800), "{took:?}");

    // Kept alive after a response: still usable past the header timeout,
    // closed at the idle timeout.
    let mut idle = server.connect().await;
    idle.write_all(HEALTH).await.unwrap();
    assert_eq!(read_response(&mut idle).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    idle.write_all(HEALTH).await.unwrap();
    assert_eq!(read_response(&mut idle).await.status, 200);
    let took = closed_after(&mut idle, 5 * SECOND).await;
    assert!(took >= Duration::from_millis(1800), "{took:?}");
}

#[tokio::test]
async fn a_body_dripped_a_byte_at_a_time_is_answered_408() {
    let server = Server::start(
        &[
            ("IDENTSPHERE_BODY_READ_TIMEOUT_SECS", "1"),
            ("IDENTSPHERE_REQUEST_TIMEOUT_SECS", "3"),
        ],
        &[],
    )
    .await;
    let mut socket = server.connect().await;
    socket
        .write_all(
            b"POST /v1/auth/login HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
              content-length: 200\r\n\r\n{\"email\":\"",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1];
    // A byte every 100 ms until the server speaks: 200 bytes would take 20 s.
    loop {
        if socket.write_all(b"a").await.is_err() {
            break; // closed: the answer, if any, is already in our buffer
        }
        match timeout(Duration::from_millis(100), socket.peek(&mut buf)).await {
            Err(_) => assert!(started.elapsed() < 5 * SECOND, "never answered"),
            Ok(_) => break,
        }
    }
    let response = read_response(&mut socket).await;
    let took = started.elapsed();
    assert_eq!(response.status, 408, "{}\n{}", response.head, server.log());
    assert_eq!(response.problem_code(), "request_timeout");
    assert_eq!(response.header("connection").as_deref(), Some("close"));
    assert!(
        took >= Duration::from_millis(800) && took < 3 * SECOND,
        "{took:?}"
    );
    closed_after(&mut socket, 2 * SECOND).await;
}

#[tokio::test]
async fn a_request_stuck_on_a_locked_database_hits_the_request_timeout() {
    use sqlx::Connection;
    let server = Server::start(
        &[
            ("IDENTSPHERE_REQUEST_TIMEOUT_SECS", "2"),
            ("IDENTSPHERE_BODY_READ_TIMEOUT_SECS", "1"),
        ],
        &[],
    )
    .await;
    // Another process's write transaction (a backup, `sqlite3` at the shell):
    // the server's writes wait on it.
    let db = server.dir.path().join("data/identsphere.db");
    let mut lock = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    let signup = |email: &str| {
        let body = format!(r#"{{"email":"{email}","password":"correct horse battery staple"}}"#);
        format!(
            "POST /v1/auth/signup HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut socket = server.connect().await;
    let started = Instant::now();
    socket
        .write_all(signup("ann@example.com").as_bytes())
        .await
        .unwrap();
    let response = read_response(&mut socket).await;
    let took = started.elapsed();
    assert_eq!(response.status, 503, "{}\n{}", response.head, server.log());
    assert_eq!(response.problem_code(), "response_timeout");
    assert!(
        took >= Duration::from_millis(1800) && took < 4 * SECOND,
        "{took:?}"
    );
    // The connection and the server go on serving; writes resume with the lock gone.
    socket.write_all(HEALTH).await.unwrap();
    assert_eq!(read_response(&mut socket).await.status, 200);
    lock.close().await.unwrap();
    let deadline = Instant::now() + 12 * SECOND;
    loop {
        let mut socket = server.connect().await;
        socket
            .write_all(signup("bob@example.com").as_bytes())
            .await
            .unwrap();
        let status = read_response(&mut socket).await.status;
        if status == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "writes did not resume: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn connections_past_the_limit_get_503_and_serving_resumes() {
    let server = Server::start(
        &[
            ("IDENTSPHERE_MAX_CONNECTIONS", "3"),
            ("IDENTSPHERE_HEADER_READ_TIMEOUT_SECS", "30"),
            ("IDENTSPHERE_IDLE_TIMEOUT_SECS", "30"),
        ],
        &[],
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut socket = server.connect().await;
        socket.write_all(HEALTH).await.unwrap();
        assert_eq!(read_response(&mut socket).await.status, 200);
        held.push(socket);
    }
    for _ in 0..5 {
        let mut extra = server.connect().await;
        extra.write_all(HEALTH).await.unwrap();
        let refused = read_response(&mut extra).await;
        assert_eq!(refused.status, 503, "{}", refused.head);
        assert_eq!(refused.problem_code(), "overloaded");
        assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
        closed_after(&mut extra, 3 * SECOND).await;
    }
    drop(held);
    assert_eq!(healthy_within(&server, 3 * SECOND).await, 200);
    assert!(
        server.log().contains("connection limit reached"),
        "{}",
        server.log()
    );
}

/// The reviewer's case: a lowered open-file limit and more idle sockets than
/// it allows. The connection limit is lowered to fit at start, the extra
/// sockets are refused (not left to exhaust descriptors), and the server
/// serves again once the idle ones are cut.
#[tokio::test]
async fn a_low_file_limit_lowers_the_connection_limit_and_idle_sockets_cannot_stop_accepting() {
    let prlimit = ["prlimit", "--nofile=160:160", "--"];
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let server = Server::start(&[("IDENTSPHERE_HEADER_READ_TIMEOUT_SECS", "1")], &prlimit).await;
    // 160 - 64 reserved - 16 database connections × 3 - 32 refusal slots.
    assert!(
        server
            .log()
            .contains("IDENTSPHERE_MAX_CONNECTIONS=4096 lowered to 16"),
        "{}",
        server.log()
    );
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(server.connect().await);
    }
    // While they sit there, new requests are answered (503 or 200), not
    // left hanging; once the header timeout has cut them, 200.
    let mut socket = server.connect().await;
    socket.write_all(HEALTH).await.unwrap();
    let status = read_response(&mut socket).await.status;
    assert!(matches!(status, 200 | 503), "{status}");
    assert_eq!(healthy_within(&server, 4 * SECOND).await, 200);
    for socket in &mut idle {
        closed_after(socket, 4 * SECOND).await;
    }
}

/// Polls `/healthz` on fresh connections until 200 or the deadline.
async fn healthy_within(server: &Server, limit: Duration) -> u16 {
    let deadline = Instant::now() + limit;
    loop {
        let mut socket = server.connect().await;
        socket.write_all(HEALTH).await.unwrap();
        let status = read_response(&mut socket).await.status;
        if status == 200 || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
