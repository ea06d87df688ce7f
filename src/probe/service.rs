//! The probe in the running server: every exact site name is probed every `probe.interval`,
//! on pingora's background runtime (never on a serving thread), each probe bounded by
//! `probe.deadline`; the admin API runs one on demand through the same [`ProbeRunner`], so
//! results and metrics are recorded in one place.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use tokio::time::{Instant, MissedTickBehavior};

use super::metrics::ProbeMetrics;
use super::registry::TxtRegistry;
use super::report::Report;
use super::{ProbeResults, Prober};
use crate::config::DnsName;

/// Names probed at once: enough to get through many sites, few enough not to look like a
/// flood to the DNS servers.
const CONCURRENCY: usize = 4;
/// Pause before the first round, so the listeners are up.
const FIRST_ROUND_AFTER: Duration = Duration::from_secs(1);

/// Runs probes and records their results and metrics.
pub struct ProbeRunner {
    prober: Prober,
    names: Vec<DnsName>,
    results: ProbeResults,
    metrics: ProbeMetrics,
    txt: Arc<TxtRegistry>,
}

impl ProbeRunner {
    pub fn new(prober: Prober, names: Vec<DnsName>, txt: Arc<TxtRegistry>) -> Self {
        Self {
            prober,
            names,
            results: ProbeResults::default(),
            metrics: ProbeMetrics::new(),
            txt,
        }
    }

    /// Probes `name` now and records the report.
    pub async fn run(&self, name: &str) -> Report {
        let report = self.prober.probe(name).await;
        self.metrics.record(&report);
        self.results.insert(report.clone());
        report
    }

    /// Probes every configured name.
    pub async fn run_all(&self) {
        for chunk in self.names.chunks(CONCURRENCY) {
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

    pub fn prober(&self) -> &Prober {
        &self.prober
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

    pub fn names(&self) -> &[DnsName] {
        &self.names
    }
}

/// The periodic probe, as a pingora background service.
pub struct ProbeService {
    runner: Arc<ProbeRunner>,
    interval: Duration,
}

impl ProbeService {
    pub fn new(runner: Arc<ProbeRunner>, interval: Duration) -> Self {
        Self { runner, interval }
    }
}

#[async_trait]
impl BackgroundService for ProbeService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval_at(Instant::now() + FIRST_ROUND_AFTER, self.interval);
        // A round longer than the interval delays the next one instead of stacking them.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                _ = self.runner.run_all() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
