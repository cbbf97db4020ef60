//! Logs go to stderr, never stdout: plain text by default, JSON lines when
//! `SINGER_LOG_FORMAT=json`. The level comes from `RUST_LOG` (default `info`).

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

use super::SdkError;
use crate::error::chain_to_string;

/// Environment variable selecting the log format (`json` or `text`).
pub const LOG_FORMAT_ENV: &str = "SINGER_LOG_FORMAT";

/// Installs the global subscriber; safe to call more than once.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var(LOG_FORMAT_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Reports a fatal error: one `CRITICAL` line on stderr with the whole cause chain (callers
/// grep for it, as singer-python's tools do), and the debug form at debug level.
pub fn report_fatal(name: &str, err: &SdkError) {
    tracing::debug!(error = ?err, "{name} failed");
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "CRITICAL {name}: error: {}", chain_to_string(err));
}
