//! The `protected_api` example, built by `cargo test` and run as a child
//! process against a real IdentSphere server.
use crate::support::Server;
use identsphere::core::tokens::JwtAlg;
use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
};

/// Kills the example when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `target/<profile>/examples/protected_api`: this test binary lives in
/// `target/<profile>/deps`, and `cargo test` builds the examples next door.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir
        .join("examples")
        .join(format!("protected_api{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with plain `cargo test -p identsphere-jwt` \
         (which builds examples), or `cargo build -p identsphere-jwt --examples` first",
        path.display()
    );
    path
}

#[tokio::test]
async fn the_protected_api_example_runs_against_a_real_server() {
    let server = Server::spawn(JwtAlg::Rs256).await;
    let login = server.login("ann@example.com").await;

    let mut child = Command::new(example_binary())
        .env("IDENTSPHERE_ISSUER", &server.base)
        .env("LISTEN", "127.0.0.1:0")
        .env_remove("IDENTSPHERE_AUDIENCE")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Running(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();

    let http = reqwest::Client::new();
    let r = http.get(format!("{base}/whoami")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    let r = http
        .get(format!("{base}/whoami"))
        .bearer_auth(&login.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["sub"], login.user_id.as_str());
    assert_eq!(body["sid"], login.session_id.as_str());
    assert!(
        body["org_id"].is_null() && body["org_role"].is_null(),
        "{body}"
    );
    drop(child);
}
