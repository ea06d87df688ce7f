//! The binary upgrade started from inside (`SIGUSR2`, like nginx): the running process starts the
//! binary now on disk as `run --upgrade` on the same configuration file, waits until it listens
//! on the upgrade socket, then hands its listening sockets over exactly as on `SIGQUIT`
//! (pingora's listener hand-over) and drains.
//!
//! Started from inside, the new process stays in the service's cgroup and sandbox and inherits
//! its capabilities, which a process started by hand next to a systemd service would not.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// How long the new process may take to load its state and listen on the upgrade socket
/// (10 000 certificates load in well under this).
const SUCCESSOR_LIMIT: Duration = Duration::from_secs(120);

/// How to start a successor.
pub(super) struct Upgrade {
    /// The configuration file the successor reads (the one this process was started on).
    pub config: PathBuf,
    /// pingora's upgrade socket (`<state_dir>/upgrade.sock`).
    pub sock: PathBuf,
}

/// Why no successor took over; the running process keeps serving.
#[derive(Debug, thiserror::Error)]
pub(super) enum UpgradeError {
    /// The binary could not be found or started.
    #[error("cannot start {}: {source}", exe.display())]
    Spawn {
        exe: PathBuf,
        #[source]
        source: io::Error,
    },
    /// It exited before taking the listeners (a bad configuration, for one: see its log lines).
    #[error("the new process exited with {0} before taking the listeners over")]
    Exited(std::process::ExitStatus),
    /// It did not get ready in time and was stopped.
    #[error("the new process did not listen on the upgrade socket within {0:?}; it was stopped")]
    Timeout(Duration),
    /// Waiting for it failed.
    #[error("cannot watch the new process: {0}")]
    Wait(#[source] io::Error),
}

impl Upgrade {
    /// Starts the successor and waits until it waits for the listeners; returns its pid.
    pub(super) async fn start_successor(&self) -> Result<u32, UpgradeError> {
        let exe = executable().map_err(|source| UpgradeError::Spawn {
            exe: PathBuf::from("dcv-proxy"),
            source,
        })?;
        // A socket file left by an earlier upgrade would look like a ready successor.
        let _ = std::fs::remove_file(&self.sock);
        let mut child = Command::new(&exe)
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .arg("--upgrade")
            .stdin(Stdio::null())
            .spawn()
            .map_err(|source| UpgradeError::Spawn {
                exe: exe.clone(),
                source,
            })?;
        let pid = child.id();
        tracing::info!(pid, exe = %exe.display(), "binary upgrade: new process started");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().map_err(UpgradeError::Wait)? {
                return Err(UpgradeError::Exited(status));
            }
            if is_socket(&self.sock) {
                // The child is not waited for: it outlives this process, which exits once
                // drained, and is then adopted by the service manager.
                return Ok(pid);
            }
            if start.elapsed() > SUCCESSOR_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(UpgradeError::Timeout(SUCCESSOR_LIMIT));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The binary to start: this one's path, which is the new binary once a package replaced the
/// file (Linux names a replaced executable `<path> (deleted)`).
fn executable() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let text = exe.to_string_lossy();
    Ok(match text.strip_suffix(" (deleted)") {
        Some(path) => PathBuf::from(path),
        None => exe,
    })
}

fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}
