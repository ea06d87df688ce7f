//! The process's signals, in one place (pingora's main loop asks this watch how to stop):
//!
//! | signal | what the node does |
//! |---|---|
//! | `SIGTERM` | graceful stop: stops accepting, finishes what is in flight (at most `server.grace_period`), exits |
//! | `SIGINT` | fast stop |
//! | `SIGQUIT` | hands the listening sockets to a new process started with `run --upgrade`, then drains like `SIGTERM` (pingora's listener hand-over) |
//! | `SIGUSR2` | starts that new process itself (the binary now on disk, same configuration file), then as `SIGQUIT` |
//! | `SIGHUP` | reloads the configuration ([`super::reload`]) and keeps running |

use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::notify::notify_logged;
use super::ready::Readiness;
use super::reload::Reloader;
use super::upgrade::Upgrade;

/// The node's signal handling, handed to pingora's `Server::run`.
pub(super) struct Signals {
    pub reloader: Arc<Reloader>,
    pub upgrade: Upgrade,
    /// Announced once the handlers are in place (so a `systemctl reload` right after start
    /// finds the `SIGHUP` handler, whose default action would end the process).
    pub ready: std::sync::Mutex<Option<Readiness>>,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let mut quit = install(SignalKind::quit());
        let mut term = install(SignalKind::terminate());
        let mut int = install(SignalKind::interrupt());
        let mut hup = install(SignalKind::hangup());
        let mut usr2 = install(SignalKind::user_defined2());
        let ready = self.ready.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(ready) = ready {
            tokio::spawn(ready.announce());
        }
        loop {
            tokio::select! {
                _ = next(&mut quit) => {
                    tracing::info!("SIGQUIT: handing the listeners to the new process, then draining");
                    return ShutdownSignal::GracefulUpgrade;
                }
                _ = next(&mut term) => {
                    tracing::info!("SIGTERM: graceful stop");
                    notify_logged("STOPPING=1");
                    return ShutdownSignal::GracefulTerminate;
                }
                _ = next(&mut int) => {
                    tracing::info!("SIGINT: fast stop");
                    notify_logged("STOPPING=1");
                    return ShutdownSignal::FastShutdown;
                }
                _ = next(&mut hup) => {
                    let reloader = self.reloader.clone();
                    if let Err(e) = tokio::task::spawn_blocking(move || reloader.reload_and_log()).await {
                        tracing::error!(error = %e, "configuration reload failed");
                    }
                }
                _ = next(&mut usr2) => {
                    tracing::info!("SIGUSR2: binary upgrade");
                    match self.upgrade.start_successor().await {
                        Ok(pid) => {
                            tracing::info!(pid, "binary upgrade: handing the listeners over, then draining");
                            return ShutdownSignal::GracefulUpgrade;
                        }
                        Err(e) => tracing::error!(error = %e, "binary upgrade failed; this process keeps serving"),
                    }
                }
            }
        }
    }
}

fn install(kind: SignalKind) -> Option<Signal> {
    match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(signal = ?kind, error = %e, "cannot handle signal");
            None
        }
    }
}

/// The next delivery of `signal`; never, when it could not be handled.
async fn next(signal: &mut Option<Signal>) {
    if let Some(s) = signal {
        if s.recv().await.is_some() {
            return;
        }
        // The signal driver is gone (the runtime is stopping): never again.
        *signal = None;
    }
    std::future::pending().await
}
