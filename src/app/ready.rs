//! Telling the world the node serves: once its listeners accept, the process id goes into
//! `<state_dir>/dcv-proxy.pid` and systemd gets `READY=1` (with `MAINPID=`, which after a binary
//! upgrade moves the service to the new process).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::notify::notify_logged;
use crate::config::reachable;
use crate::state::{remove_durable, write_atomic};

/// How long the listeners may take to accept before the node is announced anyway (the
/// listeners' own errors are in the log by then).
const READY_LIMIT: Duration = Duration::from_secs(30);

/// What to announce once which addresses accept.
pub(super) struct Readiness {
    /// Plain-TCP listeners to wait for (the admin API and the HTTP listeners; a TLS listener
    /// would log a bare connect as a failed handshake).
    pub wait_for: Vec<SocketAddr>,
    pub pid_file: PathBuf,
}

impl Readiness {
    /// Waits for the listeners, writes the pid file and notifies systemd.
    pub(super) async fn announce(self) {
        let start = Instant::now();
        for addr in self.wait_for.iter().map(reachable) {
            while TcpStream::connect(addr).await.is_err() {
                if start.elapsed() > READY_LIMIT {
                    tracing::warn!(%addr, "listener does not accept yet; announcing the node anyway");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let pid = std::process::id();
        if let Err(e) = write_atomic(&self.pid_file, format!("{pid}\n").as_bytes(), 0o644) {
            tracing::warn!(file = %self.pid_file.display(), error = %e, "cannot write the pid file");
        }
        notify_logged(&format!("READY=1\nMAINPID={pid}\nSTATUS=serving"));
        tracing::info!(pid, "ready");
    }
}

/// Removes the pid file when it still names this process (after an upgrade it names the new
/// one, which must keep it).
pub(super) fn remove_pid_file(path: &Path) {
    let ours = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        == Some(std::process::id());
    if ours {
        let _ = remove_durable(path);
    }
}
