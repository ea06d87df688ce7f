//! The end of a graceful stop: pingora stops accepting and then always sleeps the whole
//! `server.grace_period`; this service ends the process as soon as nothing is in flight any
//! more, so a restart or an upgrade on an idle node takes milliseconds, not the grace period.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use tokio::time::Instant;

use super::ready::remove_pid_file;
use crate::inflight::InFlight;

/// Nothing in flight for this long counts as drained (a connection accepted just before the
/// stop may not be counted yet).
const QUIET: Duration = Duration::from_millis(150);

/// Exits once drained after a graceful stop began.
pub(super) struct Drain {
    pub inflight: InFlight,
    pub grace: Duration,
    pub pid_file: PathBuf,
}

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.changed().await.is_err() {
            return;
        }
        let start = Instant::now();
        let mut quiet_since: Option<Instant> = None;
        while start.elapsed() < self.grace {
            if self.inflight.total() == 0 {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= QUIET {
                    tracing::info!(after = ?start.elapsed(), "drained: nothing in flight; exiting");
                    remove_pid_file(&self.pid_file);
                    std::process::exit(0);
                }
            } else {
                quiet_since = None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!(
            in_flight = self.inflight.total(),
            "grace period over with work still in flight"
        );
    }
}
