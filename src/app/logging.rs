//! Logging: `tracing` to stderr (the journal under systemd), pingora's `log` records bridged in,
//! behind a filter that a configuration reload can change (`server.log_level`) without a restart.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

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
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .ok()
        .map(|()| LogControl { handle, from_env })
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
