//! The logger. It writes to stderr so stdout carries only command output
//! (`keys rotate` prints the new kid for scripts).
use crate::config::LogFormat;
use anyhow::anyhow;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Used when `RUST_LOG` is unset: sqlx logs every statement at info.
const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_http=info";

/// Installs the global subscriber, filtered by `RUST_LOG`.
///
/// # Errors
/// An invalid `RUST_LOG`, or a subscriber already installed.
pub fn init(format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .map_err(|e| anyhow!("RUST_LOG: {e}; for example RUST_LOG={DEFAULT_FILTER}"))?,
        _ => EnvFilter::new(DEFAULT_FILTER),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        // Colour codes only for a terminal, not for files and log collectors.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| anyhow!("cannot install the logger: {e}"))
}
