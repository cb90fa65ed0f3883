//! Mail transports: SMTP through lettre, or the log in development.
use crate::ConfigError;
use async_trait::async_trait;
use identsphere_core::mail::{Mail, Mailer};
use lettre::{
    message::{header::ContentType, Mailbox},
    transport::smtp::authentication::Credentials,
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use secrecy::ExposeSecret;
use std::sync::Arc;

/// The mailer the settings name: SMTP at `smtp_url`, or the log without one.
/// Takes the two settings rather than the whole configuration, which itself
/// checks `smtp_url` with [`SmtpMailer::parse_url`].
pub(crate) fn from_settings(
    mail_from: &str,
    smtp_url: Option<&secrecy::SecretString>,
) -> Result<Arc<dyn Mailer>, ConfigError> {
    let from: Mailbox = mail_from.parse().map_err(|_| ConfigError {
        field: "mail_from",
        message: "must be an address like `Name <a@b.c>`".into(),
    })?;
    match smtp_url {
        Some(url) => {
            let mailer =
                SmtpMailer::new(url.expose_secret(), from).map_err(|message| ConfigError {
                    field: "smtp_url",
                    message,
                })?;
            Ok(Arc::new(mailer))
        }
        None => {
            tracing::warn!("no SMTP configured: emails (with their one-time links) go to the log; development only");
            Ok(Arc::new(LogMailer))
        }
    }
}

/// Sends through an SMTP server.
pub(crate) struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmtpMailer")
    }
}

/// A parsed SMTP URL: host, port, implicit TLS, credentials.
pub(crate) struct SmtpTarget {
    host: String,
    port: u16,
    tls: bool,
    credentials: Option<Credentials>,
}

impl SmtpMailer {
    /// Parses `smtp://host:port` (plain, for a local relay) or
    /// `smtps://user:pass@host:port` (implicit TLS with authentication).
    pub(crate) fn parse_url(raw: &str) -> Result<SmtpTarget, String> {
        let url = url::Url::parse(raw)
            .map_err(|_| "must be smtp://host:port or smtps://user:pass@host:port".to_owned())?;
        let tls = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            _ => return Err("the scheme must be smtp or smtps".into()),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("a host is required")?
            .to_owned();
        let port = url.port().unwrap_or(if tls { 465 } else { 25 });
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let credentials = (!url.username().is_empty()).then(|| {
            Credentials::new(decode(url.username()), decode(url.password().unwrap_or("")))
        });
        Ok(SmtpTarget {
            host,
            port,
            tls,
            credentials,
        })
    }

    fn new(raw: &str, from: Mailbox) -> Result<Self, String> {
        let target = Self::parse_url(raw)?;
        let mut builder = if target.tls {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&target.host)
                .map_err(|e| format!("TLS setup: {e}"))?
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&target.host)
        }
        .port(target.port)
        .timeout(Some(std::time::Duration::from_secs(15)));
        if let Some(c) = target.credentials {
            builder = builder.credentials(c);
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: Mail) -> Result<(), String> {
        let to: Mailbox = mail
            .to
            .as_str()
            .parse()
            .map_err(|_| "invalid recipient".to_owned())?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text)
            .map_err(|e| format!("building message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {e}"))
    }
}

/// Development only: writes each message to the log so a newcomer can click
/// the verification link without a mail server. Its lines carry the one-time
/// links by design, so it warns at start.
#[derive(Debug)]
pub(crate) struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: Mail) -> Result<(), String> {
        tracing::info!(target: "identsphere::dev_mail", subject = %mail.subject, "\n{}", mail.text);
        Ok(())
    }
}
