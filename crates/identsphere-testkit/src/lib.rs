//! Test support shared by the HTTP and binary tests.
//!
//! [`SmtpSink`] is a real SMTP server on a loopback port, speaking enough of
//! RFC 5321 (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) for lettre and
//! other clients, and keeping every message it accepts. [`totp`] computes
//! RFC 6238 codes independently of the server. [`passkey`] is a software
//! WebAuthn authenticator.
#![allow(clippy::unwrap_used, clippy::expect_used)]
pub mod passkey;
pub mod totp;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
    sync::Notify,
};

/// One received message.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// Envelope recipients.
    pub to: Vec<String>,
    /// The raw message (headers and body), with SMTP dot-stuffing undone.
    pub data: String,
}

impl ReceivedMail {
    /// The body with quoted-printable soft line breaks joined and `=3D` decoded,
    /// so links can be searched for.
    pub fn text(&self) -> String {
        self.data.replace("=\r\n", "").replace("=3D", "=")
    }

    /// The value of the first `token=` query parameter in the message.
    pub fn token(&self) -> Option<String> {
        let text = self.text();
        let start = text.find("token=")? + "token=".len();
        Some(
            text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect(),
        )
    }
}

/// A recording SMTP server.
#[derive(Clone)]
pub struct SmtpSink {
    port: u16,
    mails: Arc<Mutex<Vec<ReceivedMail>>>,
    arrived: Arc<Notify>,
}

impl SmtpSink {
    /// Starts listening on `127.0.0.1` on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind smtp sink");
        let sink = Self {
            port: listener.local_addr().unwrap().port(),
            mails: Arc::default(),
            arrived: Arc::new(Notify::new()),
        };
        let s = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = s.session(stream).await;
                });
            }
        });
        sink
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<ReceivedMail> {
        self.mails.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) for the `nth` (0-based) message sent to `to`.
    pub async fn nth_to(&self, to: &str, nth: usize) -> ReceivedMail {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.arrived.notified();
            let found: Vec<ReceivedMail> = self
                .all()
                .into_iter()
                .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
                .collect();
            if let Some(m) = found.get(nth) {
                return m.clone();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "no mail #{nth} to {to} within 10 s; received: {:?}",
                    self.all()
                );
            }
        }
    }

    /// Waits for the first message to `to`.
    pub async fn first_to(&self, to: &str) -> ReceivedMail {
        self.nth_to(to, 0).await
    }

    /// How many messages went to `to`.
    pub fn count_to(&self, to: &str) -> usize {
        self.all()
            .iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
            .count()
    }

    async fn session(&self, stream: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 sink ESMTP ready\r\n").await?;
        let mut to = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" => {
                    write
                        .write_all(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                        .await?
                }
                "HELO" | "NOOP" => write.write_all(b"250 ok\r\n").await?,
                "MAIL" => {
                    to.clear();
                    write.write_all(b"250 ok\r\n").await?
                }
                "RCPT" => {
                    let addr = line.split(['<', '>']).nth(1).unwrap_or("").to_owned();
                    to.push(addr);
                    write.write_all(b"250 ok\r\n").await?
                }
                "RSET" => {
                    to.clear();
                    write.write_all(b"250 ok\r\n").await?
                }
                "DATA" => {
                    write.write_all(b"354 go ahead\r\n").await?;
                    let mut data = String::new();
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).await? == 0 {
                            return Ok(());
                        }
                        if line == ".\r\n" || line == ".\n" {
                            break;
                        }
                        data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    }
                    self.mails.lock().unwrap().push(ReceivedMail {
                        to: std::mem::take(&mut to),
                        data,
                    });
                    self.arrived.notify_waiters();
                    write.write_all(b"250 queued\r\n").await?
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await?;
                    return Ok(());
                }
                _ => write.write_all(b"502 not implemented\r\n").await?,
            }
        }
    }
}
