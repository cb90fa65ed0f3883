//! Runs the real `identsphere` binary with a cleared environment.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};
use tempfile::TempDir;

/// The binary in `dir`, seeing only PATH, HOME and the given variables.
fn identsphere(dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_identsphere"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .envs(vars.iter().copied())
        .current_dir(dir);
    cmd
}

fn run(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    identsphere(dir, vars).args(args).output().unwrap()
}

/// Kills the server when the test ends, passing or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn help_lists_the_subcommands() {
    let dir = TempDir::new().unwrap();
    let out = run(dir.path(), &["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for command in ["serve", "migrate", "keys"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} missing:\n{help}"
        );
    }
}

#[test]
fn short_secret_refuses_to_start() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let vars = [
        ("IDENTSPHERE_JWT_SECRET", "short"),
        ("IDENTSPHERE_DATA_DIR", data.to_str().unwrap()),
    ];
    let out = run(dir.path(), &["serve"], &vars);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("IDENTSPHERE_JWT_SECRET"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "not one line:\n{stderr}");
}

#[test]
fn keys_rotate_refuses_hs256() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let out = run(
        dir.path(),
        &["keys", "rotate"],
        &[("IDENTSPHERE_DATA_DIR", data.to_str().unwrap())],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("IDENTSPHERE_JWT_ALG") && stderr.contains("HS256"),
        "{stderr}"
    );
}

#[tokio::test]
async fn serve_answers_health_and_creates_its_data() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let log = fs::File::create(dir.path().join("server.log")).unwrap();
    let vars = [
        ("IDENTSPHERE_LISTEN", listen.as_str()),
        ("IDENTSPHERE_DATA_DIR", data.to_str().unwrap()),
    ];
    let mut server = KillOnDrop(
        identsphere(dir.path(), &vars)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    let client = reqwest::Client::new();
    let url = format!("http://{listen}/healthz");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(exit) = server.0.try_wait().unwrap() {
            let log = fs::read_to_string(dir.path().join("server.log")).unwrap();
            panic!("serve exited with {exit}:\n{log}");
        }
        match client.get(&url).send().await {
            Ok(response) => break response.status(),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => {
                let log = fs::read_to_string(dir.path().join("server.log")).unwrap();
                panic!("no answer on {url}: {e}\n{log}");
            }
        }
    };
    assert_eq!(status, 200);

    let mode = fs::metadata(data.join("jwt_secret"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(data.join("identsphere.db").exists());

    // With no SMTP configured the verification link goes to the log (the
    // README tour's step 2), and it works.
    let base = format!("http://{listen}");
    let signup = serde_json::json!({ "email": "ann@example.com", "password": "correct horse battery staple" });
    let r = client
        .post(format!("{base}/v1/auth/signup"))
        .json(&signup)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let deadline = Instant::now() + Duration::from_secs(5);
    let token = loop {
        let log = fs::read_to_string(dir.path().join("server.log")).unwrap();
        if let Some(at) = log.find("/verify-email?token=") {
            let rest = &log[at + "/verify-email?token=".len()..];
            break rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect::<String>();
        }
        assert!(
            Instant::now() < deadline,
            "no verification link in the log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let r = client
        .post(format!("{base}/v1/auth/email/verify"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.0.kill().unwrap();
}
