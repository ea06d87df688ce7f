//! Configuration reload (`SIGHUP`, `systemctl reload`): the file is read and checked again, and
//! what can change in a running node is swapped in, each part through the same kind of snapshot
//! the serving path already reads, so no connection notices:
//!
//! - sites, origins, origin timeouts, the HTTP→HTTPS redirect and `challenge.unknown_token`: a
//!   new [`Routing`] behind the arc-swap the decider loads per request;
//! - the `[[certificate]]` list: the renewer's list (new ones are ordered at once);
//! - `[probe]` and the probed names: a new prober for the next round;
//! - `server.log_level`: the log filter (unless `RUST_LOG` is set).
//!
//! A file that does not pass every check is refused as a whole with the reason in the log, and
//! the running configuration stays. Listeners, the state directory, the admin listener and
//! token, `server.threads`, `server.grace_period`, `[acme]` and `[fleet]` are bound at start:
//! when they differ the log says so, and a restart or a binary upgrade (`SIGUSR2`, which
//! starts the new process on the new file) applies them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use prometheus::{IntCounterVec, Opts};

use super::logging::{LogControl, LogError};
use crate::acme::CertificateChanges;
use crate::acme::RenewerHandle;
use crate::config::{Config, ConfigError};
use crate::probe::ProbeError;
use crate::probe::ProbeRunner;
use crate::serve::Routing;

/// Re-reads the configuration file and applies it.
pub(super) struct Reloader {
    path: PathBuf,
    current: Mutex<Config>,
    routing: Arc<ArcSwap<Routing>>,
    renewer: RenewerHandle,
    probe: Option<Arc<ProbeRunner>>,
    log: Option<LogControl>,
    reloads: IntCounterVec,
}

/// Why a new configuration was refused (nothing of it was applied).
#[derive(Debug, thiserror::Error)]
pub(super) enum ReloadError {
    /// The file does not read or does not pass the checks of `config check`.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The new `[probe]` settings cannot be set up (e.g. no resolver).
    #[error("probe: {0}")]
    Probe(#[from] ProbeError),
    /// `server.log_level` is not a log filter.
    #[error("server.log_level: {0}")]
    LogLevel(#[from] LogError),
}

/// What a reload applied.
#[derive(Debug)]
pub(super) struct Applied {
    /// Keys that differ from the running configuration but only take effect at a restart.
    pub restart_needed: Vec<&'static str>,
    /// Certificates added, removed or changed in the renewer's list.
    pub certificates: CertificateChanges,
    /// Sites now configured.
    pub sites: usize,
}

impl Reloader {
    pub(super) fn new(
        config: Config,
        routing: Arc<ArcSwap<Routing>>,
        renewer: RenewerHandle,
        probe: Option<Arc<ProbeRunner>>,
        log: Option<LogControl>,
    ) -> Self {
        let reloads = IntCounterVec::new(
            Opts::new(
                "dcv_config_reloads_total",
                "Configuration reloads (SIGHUP) by result (applied, refused)",
            ),
            &["result"],
        )
        .expect("metric name and labels are constant and valid");
        reloads.with_label_values(&["applied"]);
        reloads.with_label_values(&["refused"]);
        Self {
            path: config.source.clone(),
            current: Mutex::new(config),
            routing,
            renewer,
            probe,
            log,
            reloads,
        }
    }

    /// The reload counter, for the metrics registry.
    pub(super) fn counter(&self) -> IntCounterVec {
        self.reloads.clone()
    }

    /// Reads the file and applies it, or refuses it whole. Blocking (file read, origin names
    /// resolved): run it off the serving threads.
    pub(super) fn reload(&self) -> Result<Applied, ReloadError> {
        let result = self.try_reload();
        let label = if result.is_ok() { "applied" } else { "refused" };
        self.reloads.with_label_values(&[label]).inc();
        result
    }

    /// [`Self::reload`] with its outcome in the log.
    pub(super) fn reload_and_log(&self) {
        tracing::info!(file = %self.path.display(), "reloading the configuration");
        match self.reload() {
            Ok(applied) => {
                for key in &applied.restart_needed {
                    tracing::warn!(
                        key,
                        "changed in the configuration file, but only a restart or a binary upgrade applies it; the running value stays"
                    );
                }
                let c = &applied.certificates;
                tracing::info!(
                    sites = applied.sites,
                    certificates_added = ?c.added,
                    certificates_removed = ?c.removed,
                    certificates_changed = ?c.changed,
                    "configuration reloaded"
                );
            }
            Err(e) => tracing::error!(
                error = %e,
                "configuration reload refused; the running configuration stays"
            ),
        }
    }

    fn try_reload(&self) -> Result<Applied, ReloadError> {
        let new = Config::load(&self.path)?;
        // Everything that can fail is checked before anything is applied.
        LogControl::check(&new.server.log_level)?;
        let probe = match &self.probe {
            Some(runner) => Some((runner, runner.prepare(new.probe.clone())?)),
            None => None,
        };

        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let restart_needed = restart_only_changes(&current, &new);
        self.routing.store(Arc::new(Routing::from_config(&new)));
        let certificates = self.renewer.set_certificates(new.certificates.clone());
        if let Some((runner, prober)) = probe {
            runner.reconfigure(prober, new.sites.exact_names().cloned().collect());
        }
        if let Some(log) = &self.log {
            if new.server.log_level != current.server.log_level {
                match log.set(&new.server.log_level) {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!("server.log_level changed, but RUST_LOG is set and wins")
                    }
                    Err(e) => tracing::warn!(error = %e, "log level not changed"),
                }
            }
        }
        let sites = new.sites.sites.len();
        *current = new;
        Ok(Applied {
            restart_needed,
            certificates,
            sites,
        })
    }
}

/// The keys of `new` that differ from `old` and are bound at start.
pub(super) fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |differs: bool, key: &'static str| {
        if differs {
            keys.push(key);
        }
    };
    check(old.state_dir != new.state_dir, "state_dir");
    check(old.http.listen != new.http.listen, "http.listen");
    check(old.https.listen != new.https.listen, "https.listen");
    check(
        old.https.tls13_tickets != new.https.tls13_tickets,
        "https.tls13_tickets",
    );
    check(old.admin.listen != new.admin.listen, "admin.listen");
    check(
        old.admin.token_file != new.admin.token_file,
        "admin.token_file",
    );
    check(
        old.admin.max_body_bytes != new.admin.max_body_bytes,
        "admin.max_body_bytes",
    );
    check(old.server.threads != new.server.threads, "server.threads");
    check(
        old.server.grace_period != new.server.grace_period,
        "server.grace_period",
    );
    check(old.acme != new.acme, "acme");
    check(old.fleet != new.fleet, "fleet");
    // The DNS listener binds its sockets and builds its zones at start.
    check(old.dns != new.dns, "dns");
    keys
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(Path::new("/etc/dcv-proxy/dcv-proxy.toml"), text).unwrap()
    }

    #[test]
    fn live_keys_need_no_restart() {
        let old = parse("[http]\nlisten = [\"127.0.0.1:8080\"]\n");
        let new = parse(
            "[http]\nlisten = [\"127.0.0.1:8080\"]\nredirect_to_https = true\n\
             [challenge]\nunknown_token = \"origin\"\n\
             [server]\nlog_level = \"debug\"\n\
             [proxy]\ndefault_origin = \"127.0.0.1:9\"\n\
             [probe]\ninterval = \"0s\"\n\
             [[site]]\nnames = [\"a.test\"]\norigin = \"127.0.0.1:1\"\n",
        );
        assert_eq!(restart_only_changes(&old, &new), Vec::<&str>::new());
    }

    #[test]
    fn bound_keys_are_named() {
        let old = parse("[http]\nlisten = [\"127.0.0.1:8080\"]\n");
        let new = parse(
            "state_dir = \"/srv/dcv\"\n\
             [http]\nlisten = [\"127.0.0.1:8081\"]\n\
             [https]\nlisten = [\"127.0.0.1:8443\"]\ntls13_tickets = 2\n\
             [admin]\nlisten = \"127.0.0.1:9999\"\n\
             [server]\nthreads = 2\ngrace_period = \"5s\"\n\
             [acme]\ndirectory = \"letsencrypt-staging\"\n",
        );
        assert_eq!(
            restart_only_changes(&old, &new),
            [
                "state_dir",
                "http.listen",
                "https.listen",
                "https.tls13_tickets",
                "admin.listen",
                "admin.token_file",
                "server.threads",
                "server.grace_period",
                "acme"
            ]
        );
    }
}
