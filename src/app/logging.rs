//! Logging: `tracing` to stderr (the journal under systemd), pingora's `log` records bridged in,
//! behind a filter that a configuration reload can change (`server.log_level`) without a restart.
//!
//! pingora logs every failed downstream handshake at ERROR ("Downstream handshake error from
//! …"): one line per connection a TLS scanner opens, hundreds for one scan. The bridge takes
//! those records out of the stream: each is counted by reason
//! (`dcv_tls_handshake_failures_total`, [`HandshakeFailures`]), logged at DEBUG, and at most
//! once a minute per reason at WARN, with how many were not written and what to do.

use std::fmt::Write as _;
use std::io::IsTerminal;

use tracing_log::AsLog;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::serve::{HandshakeFailure, HandshakeFailures};

/// Changes the log filter of the running process.
#[derive(Clone)]
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` was set: it wins over the configuration, at start and on reload.
    from_env: bool,
}

/// Why a log filter was not applied.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The filter does not parse (`info`, `warn,dcv_proxy=debug`, …).
    #[error("{filter:?} is not a log filter: {reason}")]
    BadFilter { filter: String, reason: String },
    /// The subscriber is gone (cannot happen while the process runs).
    #[error("the log filter cannot be changed: {0}")]
    Gone(String),
}

/// Installs the subscriber with `default_filter` (unless `RUST_LOG` is set). Returns `None`
/// when a subscriber was installed already (tests running several commands in one process).
pub fn init(default_filter: &str) -> Option<LogControl> {
    let (filter, from_env) = match EnvFilter::try_from_default_env() {
        Ok(f) => (f, true),
        Err(_) => (
            EnvFilter::try_new(default_filter).unwrap_or_else(|_| EnvFilter::new("info")),
            false,
        ),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let subscriber = tracing_subscriber::registry().with(filter).with(fmt);
    tracing::subscriber::set_global_default(subscriber).ok()?;
    // What `try_init` does with `LogTracer`, with the handshake records taken out first.
    if log::set_boxed_logger(Box::new(Bridge {
        tracer: tracing_log::LogTracer::new(),
    }))
    .is_ok()
    {
        log::set_max_level(tracing::level_filters::LevelFilter::current().as_log());
    }
    Some(LogControl { handle, from_env })
}

/// The `log` crate's logger: pingora's records into `tracing`, except failed handshakes.
struct Bridge {
    tracer: tracing_log::LogTracer,
}

/// Where pingora logs a failed downstream handshake: its accept loop, and the HTTP/2 preface.
const HANDSHAKE_TARGETS: [&str; 2] = ["pingora_core::services::listening", "pingora_core::apps"];

/// Longest part of pingora's error text kept in a line (its error chain repeats itself).
const DETAIL_MAX: usize = 400;

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        log::Log::enabled(&self.tracer, metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.level() == log::Level::Error && HANDSHAKE_TARGETS.contains(&record.target()) {
            let mut text = Truncated::<1024>::default();
            let _ = write!(text, "{}", record.args());
            let text = text.as_str();
            if text.starts_with("Downstream handshake") || text.starts_with("H2 handshake error") {
                handshake_failed(text);
                return;
            }
        }
        log::Log::log(&self.tracer, record);
    }

    fn flush(&self) {
        log::Log::flush(&self.tracer);
    }
}

/// Counts a failed handshake and writes its line if one is due (see the module documentation).
fn handshake_failed(text: &str) {
    let reason = HandshakeFailure::classify(text);
    // "Downstream handshake error from 192.0.2.1:5000: <error>"
    let (peer, detail) = match text.strip_prefix("Downstream handshake error from ") {
        Some(rest) => rest.split_once(": ").unwrap_or(("-", rest)),
        None => ("-", text),
    };
    let detail = match detail.char_indices().nth(DETAIL_MAX) {
        Some((at, _)) => &detail[..at],
        None => detail,
    };
    tracing::debug!(target: "dcv_proxy::tls", reason = reason.as_str(), peer, detail, "TLS handshake failed");
    if let Some(suppressed) = HandshakeFailures::shared().record(reason) {
        tracing::warn!(
            target: "dcv_proxy::tls",
            reason = reason.as_str(),
            peer,
            detail,
            remedy = reason.remedy(),
            not_logged_since_last_line = suppressed,
            "TLS handshake failed ({}); at most one line a minute per reason, every one is counted in dcv_tls_handshake_failures_total",
            reason.as_str()
        );
    }
}

/// A `fmt::Write` into a fixed buffer that drops what does not fit: the record is formatted
/// without allocating.
struct Truncated<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Truncated<N> {
    fn default() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> Truncated<N> {
    fn as_str(&self) -> &str {
        // Only whole characters are ever copied in (see `write_str`).
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> std::fmt::Write for Truncated<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = N - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

impl LogControl {
    /// Checks `filter` without applying it.
    pub fn check(filter: &str) -> Result<(), LogError> {
        EnvFilter::try_new(filter)
            .map(|_| ())
            .map_err(|e| LogError::BadFilter {
                filter: filter.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Applies `filter`; returns `false` when `RUST_LOG` overrides the configuration.
    pub fn set(&self, filter: &str) -> Result<bool, LogError> {
        if self.from_env {
            return Ok(false);
        }
        let parsed = EnvFilter::try_new(filter).map_err(|e| LogError::BadFilter {
            filter: filter.to_owned(),
            reason: e.to_string(),
        })?;
        self.handle
            .reload(parsed)
            .map_err(|e| LogError::Gone(e.to_string()))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::Truncated;

    #[test]
    fn truncated_keeps_whole_characters() {
        let mut t = Truncated::<5>::default();
        let tail = "é€x";
        let _ = write!(t, "ab{tail}");
        assert_eq!(t.as_str(), "abé");
        let mut t = Truncated::<64>::default();
        let (peer, n) = ("127.0.0.1:1", 42);
        let _ = write!(t, "from {peer}: {n}");
        assert_eq!(t.as_str(), "from 127.0.0.1:1: 42");
    }
}
