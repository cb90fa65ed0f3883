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
    for command in ["serve", "migrate", "keys", "import"] {
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
    // The database holds password and token hashes: private too, with the
    // -wal and -shm files SQLite makes beside it.
    for file in ["identsphere.db", "identsphere.db-wal", "identsphere.db-shm"] {
        let mode = fs::metadata(data.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

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
    // The browser that signed up keeps its proof cookie and verifies with it.
    let proof = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("identsphere_signup="))
        .and_then(|c| c.split(';').next())
        .expect("sign-up proof cookie")
        .to_owned();
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
        .header(reqwest::header::COOKIE, proof)
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.0.kill().unwrap();
}

/// Starts `serve` in `dir` and waits for `/healthz`; returns the server and its base URL.
async fn start_server(dir: &Path, vars: &[(&str, &str)]) -> (KillOnDrop, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let log = fs::File::create(dir.join("server.log")).unwrap();
    let mut all = vec![("IDENTSPHERE_LISTEN", listen.as_str())];
    all.extend_from_slice(vars);
    let mut server = KillOnDrop(
        identsphere(dir, &all)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let base = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(exit) = server.0.try_wait().unwrap() {
            let log = fs::read_to_string(dir.join("server.log")).unwrap();
            panic!("serve exited with {exit}:\n{log}");
        }
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            return (server, base);
        }
        assert!(Instant::now() < deadline, "serve did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Made by python bcrypt 5.0.0 and passlib 1.7.4 (django_pbkdf2_sha256) for
/// the password below.
const LEGACY_PASSWORD: &str = "Tr0ub4dor&3 legacy";
const BCRYPT: &str = "$2b$04$ayYakpr31rlJxT7O3OkvsOLnfVyKP/gNd8xEeqLRCAwD38NPIULvK";
const DJANGO: &str = "pbkdf2_sha256$1000$q7QmVOm3C7lH$IiVN/qy6mFVRlwKlKObaBwz7c3aM5ENXA6r6+g30WPI=";

#[tokio::test]
async fn import_users_reports_bad_lines_is_idempotent_and_the_users_log_in() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let vars = [("IDENTSPHERE_DATA_DIR", data.to_str().unwrap())];
    let lines = [
        serde_json::json!({ "email": "ann@example.com", "name": "Ann", "email_verified": true,
            "password_hash": BCRYPT, "created_at": "2019-05-01T10:00:00Z" })
        .to_string(),
        serde_json::json!({ "email": "bob@example.com", "email_verified": true,
            "password_hash": DJANGO, "id": "0190a4c2-7c1e-7000-8000-000000000001" })
        .to_string(),
        "{ not json".into(),
        r#"{"email":"eve@example.com","password_hash":"md5$topsecretdigest"}"#.into(),
        // Already imported by line 1: the address is compared normalised.
        serde_json::json!({ "email": "ANN@example.com", "password_hash": DJANGO }).to_string(),
        String::new(),
        r#"{"email":"carl@example.com","password_hash":"$2b$31$ayYakpr31rlJxT7O3OkvsOLnfVyKP/gNd8xEeqLRCAwD38NPIULvK"}"#.into(),
    ];
    let file = dir.path().join("users.jsonl");
    fs::write(&file, lines.join("\n") + "\n").unwrap();

    let report = |out: &Output| {
        let stdout = String::from_utf8(out.stdout.clone()).unwrap();
        let stderr = String::from_utf8(out.stderr.clone()).unwrap();
        for secret in ["ayYakpr31", "q7QmVOm3C7lH", "topsecretdigest"] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "a hash reached the output:\n{stdout}\n{stderr}"
            );
        }
        (stdout, stderr)
    };
    let first = run(dir.path(), &["import", "users", "users.jsonl"], &vars);
    let (stdout, stderr) = report(&first);
    assert_eq!(first.status.code(), Some(2), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.trim(),
        "imported: 2, skipped existing: 1, invalid: 3",
        "{stderr}"
    );
    assert!(stderr.contains("line 3: not a JSON object"), "{stderr}");
    assert!(
        stderr.contains("line 4: password_hash: unrecognised hash format"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 7: password_hash: bcrypt cost 31"),
        "{stderr}"
    );
    // No secret file: importing signs nothing.
    assert!(!data.join("jwt_secret").exists());

    // Again: nothing changes, everything already there is counted as such.
    let second = run(dir.path(), &["import", "users", "users.jsonl"], &vars);
    let (stdout, _) = report(&second);
    assert_eq!(second.status.code(), Some(2));
    assert_eq!(
        stdout.trim(),
        "imported: 0, skipped existing: 3, invalid: 3"
    );

    let missing = run(dir.path(), &["import", "users", "nope.jsonl"], &vars);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8(missing.stderr)
        .unwrap()
        .contains("cannot open nope.jsonl"));

    // The server on that data: the imported users sign in with their old passwords.
    let (mut server, base) = start_server(dir.path(), &vars).await;
    let client = reqwest::Client::new();
    for email in ["ann@example.com", "bob@example.com"] {
        let login = |password: &'static str| {
            client
                .post(format!("{base}/v1/auth/login"))
                .json(&serde_json::json!({ "email": email, "password": password }))
                .send()
        };
        assert_eq!(login("not the password").await.unwrap().status(), 401);
        let r = login(LEGACY_PASSWORD).await.unwrap();
        assert_eq!(r.status(), 200, "{email}");
        let body: serde_json::Value = r.json().await.unwrap();
        let me = client
            .get(format!("{base}/v1/users/me"))
            .bearer_auth(body["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        let me: serde_json::Value = me.json().await.unwrap();
        assert_eq!(me["email"], email);
        if email == "bob@example.com" {
            assert_eq!(me["id"], "0190a4c2-7c1e-7000-8000-000000000001");
        }
        // The hash was upgraded to Argon2id on the way (the HTTP tests look at
        // it in the store); the old password keeps working against the new one.
        assert_eq!(login(LEGACY_PASSWORD).await.unwrap().status(), 200);
    }
    server.0.kill().unwrap();
}
