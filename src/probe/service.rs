//! The probe in the running server: every exact site name is probed every `probe.interval`,
//! on pingora's background runtime (never on a serving thread), each probe bounded by
//! `probe.deadline`; the admin API runs one on demand through the same [`ProbeRunner`], so
//! results and metrics are recorded in one place.
//!
//! A configuration reload replaces the prober (resolvers, ports, interval…) and the names
//! ([`ProbeRunner::reconfigure`]); a probe already running finishes with the settings it started
//! with, and the next round uses the new ones.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use futures_util::future::join_all;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::metrics::ProbeMetrics;
use super::registry::TxtRegistry;
use super::report::Report;
use super::{ProbeError, ProbeResults, Prober};
use crate::config::{DnsName, ProbeConfig};

/// Names probed at once: enough to get through many sites, few enough not to look like a
/// flood to the DNS servers.
const CONCURRENCY: usize = 4;
/// Pause before the first round, so the listeners are up.
const FIRST_ROUND_AFTER: Duration = Duration::from_secs(1);

/// Runs probes and records their results and metrics.
pub struct ProbeRunner {
    prober: ArcSwap<Prober>,
    names: ArcSwap<Vec<DnsName>>,
    results: ProbeResults,
    metrics: ProbeMetrics,
    txt: Arc<TxtRegistry>,
    /// Wakes the periodic service when the settings changed.
    changed: Notify,
}

impl ProbeRunner {
    pub fn new(prober: Prober, names: Vec<DnsName>, txt: Arc<TxtRegistry>) -> Self {
        Self {
            prober: ArcSwap::from_pointee(prober),
            names: ArcSwap::from_pointee(names),
            results: ProbeResults::default(),
            metrics: ProbeMetrics::new(),
            txt,
            changed: Notify::new(),
        }
    }

    /// Builds a prober for `config` (on the same node) without applying it: a reload checks
    /// everything before it changes anything.
    pub fn prepare(&self, config: ProbeConfig) -> Result<Prober, ProbeError> {
        self.prober.load().with_config(config)
    }

    /// Probes with `prober` and these names from the next round on.
    pub fn reconfigure(&self, prober: Prober, names: Vec<DnsName>) {
        self.prober.store(Arc::new(prober));
        self.names.store(Arc::new(names));
        self.changed.notify_one();
    }

    /// Probes `name` now and records the report.
    pub async fn run(&self, name: &str) -> Report {
        let prober = self.prober.load_full();
        let report = prober.probe(name).await;
        self.metrics.record(&report);
        self.results.insert(report.clone());
        report
    }

    /// Probes every configured name.
    pub async fn run_all(&self) {
        let names = self.names.load_full();
        for chunk in names.chunks(CONCURRENCY) {
            let reports = join_all(chunk.iter().map(|n| self.run(n.as_str()))).await;
            for report in reports {
                let causes: Vec<&str> = report.causes().into_iter().map(|c| c.id()).collect();
                tracing::info!(
                    name = %report.name,
                    verdict = report.verdict().as_str(),
                    causes = %causes.join(","),
                    duration_ms = report.duration.as_millis() as u64,
                    "probe"
                );
            }
        }
    }

    /// The prober of the current configuration.
    pub fn prober(&self) -> Arc<Prober> {
        self.prober.load_full()
    }

    pub fn results(&self) -> &ProbeResults {
        &self.results
    }

    pub fn metrics(&self) -> &ProbeMetrics {
        &self.metrics
    }

    pub fn txt(&self) -> &TxtRegistry {
        &self.txt
    }

    /// The names probed every interval.
    pub fn names(&self) -> Arc<Vec<DnsName>> {
        self.names.load_full()
    }
}

/// The periodic probe, as a pingora background service. It runs on every node with a probe;
/// `probe.interval = "0s"` only pauses it, so a reload can switch it on.
pub struct ProbeService {
    runner: Arc<ProbeRunner>,
}

impl ProbeService {
    pub fn new(runner: Arc<ProbeRunner>) -> Self {
        Self { runner }
    }
}

#[async_trait]
impl BackgroundService for ProbeService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut next = Instant::now() + FIRST_ROUND_AFTER;
        loop {
            let interval = self.runner.prober().config().interval;
            let wait = async {
                match interval {
                    Some(_) => tokio::time::sleep_until(next).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = wait => {}
                _ = self.runner.changed.notified() => {
                    // New settings: the next round is one new interval from now.
                    if let Some(every) = self.runner.prober().config().interval {
                        next = Instant::now() + every;
                    }
                    continue;
                }
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                _ = self.runner.run_all() => {}
                _ = shutdown.changed() => return,
            }
            // A round longer than the interval delays the next one instead of stacking them.
            if let Some(every) = self.runner.prober().config().interval {
                let now = Instant::now();
                next = if next + every < now {
                    now + every
                } else {
                    next + every
                };
            }
        }
    }
}
