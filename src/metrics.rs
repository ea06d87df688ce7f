//! The Prometheus registry. Producers own their counters; this module only registers them, and
//! computes the gauges that are a view of state (certificate expiry, stored answers) at scrape
//! time, so they can never drift from what is served.
//!
//! Label names mean one thing everywhere: `certificate` is a certificate id (the
//! `[[certificate]]` id or an upload's id) in every metric that has one —
//! `dcv_certificate_expiry_timestamp_seconds`, `dcv_certificate_not_before_timestamp_seconds`,
//! `dcv_certificate_renewal_timestamp_seconds`, `dcv_acme_order_failures_total` — so series
//! of one certificate join on it; `name` is a DNS name (the self-probe's `dcv_probe_*`); `cause`
//! is a catalogue id (`crate::catalogue`), or `none` where a failure has no cause there.
//!
//! Besides the producers' series, the registry always has `dcv_build_info`, the `process_*`
//! series of the prometheus crate's process collector, and `dcv_catalogue_cause_info`, which
//! carries each cause's summary and remedy as labels so that an alert can join them onto a
//! series by `cause` and say what to do (`deploy/prometheus/dcv-proxy.rules.yml`).

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, GaugeVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::acme::RenewerHandle;
use crate::catalogue::Cause;
use crate::probe::ProbeRunner;
use crate::state::unix;
use crate::state::{CertStore, ChallengeStore};

/// The remedy of `cause="none"` in `dcv_catalogue_cause_info`: a failure the catalogue does not
/// describe (`badNonce`, `serverInternal`, the CA unreachable) is told by its ACME type.
pub const NO_CAUSE_REMEDY: &str = "the catalogue does not describe this failure: read the CA's type and detail in `dcv-proxy certs list` or on the status page, and the node's log";

/// The registry behind `/metrics`.
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// A registry with `dcv_build_info`, the process collector and the catalogue.
    pub fn new() -> Self {
        let metrics = Self {
            registry: Registry::new(),
        };
        metrics.register(Box::new(build_info()));
        metrics.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        metrics.register(Box::new(catalogue_info()));
        metrics
    }

    /// Adds the renewer's scrape-time view: failed orders in a row per certificate, with the
    /// last failure's cause.
    pub fn register_acme(&self, renewer: RenewerHandle) {
        self.register(Box::new(OrderStreaks::new(renewer)));
    }

    /// Adds `dcv_probe_interval_seconds` (what "stale" means for `dcv_probe_last_run_*`),
    /// read at scrape time so that a reload's new interval shows at once.
    pub fn register_probe(&self, runner: Arc<ProbeRunner>) {
        self.register(Box::new(ProbeInterval::new(runner)));
    }

    /// Registers a producer's collector. A duplicate name is a programming error, reported once
    /// in the log rather than failing the node.
    pub fn register(&self, collector: Box<dyn Collector>) {
        if let Err(e) = self.registry.register(collector) {
            tracing::error!(error = %e, "metric registration failed");
        }
    }

    /// Adds the scrape-time views of the stores.
    pub fn register_state(&self, certs: Arc<CertStore>, challenges: Arc<ChallengeStore>) {
        self.register(Box::new(certs.load_counter().clone()));
        self.register(Box::new(StateGauges::new(certs, challenges)));
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `dcv_build_info{version, profile} 1`: which build answers (a fleet mid-rollout shows two).
fn build_info() -> IntGaugeVec {
    let info = IntGaugeVec::new(
        Opts::new(
            "dcv_build_info",
            "Always 1; the labels say which build of dcv-proxy runs (version, debug or release profile)",
        ),
        &["version", "profile"],
    )
    .expect("metric name and labels are constant and valid");
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    info.with_label_values(&[env!("CARGO_PKG_VERSION"), profile])
        .set(1);
    info
}

/// `dcv_catalogue_cause_info{cause, summary, remedy} 1` for every catalogue cause (and `none`),
/// so that `… * on(cause) group_left(summary, remedy) dcv_catalogue_cause_info` puts the remedy
/// into an alert.
fn catalogue_info() -> IntGaugeVec {
    let info = IntGaugeVec::new(
        Opts::new(
            "dcv_catalogue_cause_info",
            "Always 1; each catalogue cause (docs/validation-failures.md) with its summary and remedy",
        ),
        &["cause", "summary", "remedy"],
    )
    .expect("metric name and labels are constant and valid");
    for cause in Cause::ALL {
        info.with_label_values(&[cause.id(), cause.summary(), cause.remedy()])
            .set(1);
    }
    info.with_label_values(&[
        "none",
        "a failure the catalogue does not describe",
        NO_CAUSE_REMEDY,
    ])
    .set(1);
    info
}

/// `dcv_acme_consecutive_failures{certificate, cause, type}`: failed orders in a row (0 once one
/// succeeds), labelled with the last failure's catalogue id and ACME type (or kind) — the
/// per-certificate series an alert on "failing repeatedly" needs: a counter's `increase()` over
/// a window misses the first failure (a new series has no earlier sample) and the retries that
/// back off for hours.
struct OrderStreaks {
    renewer: RenewerHandle,
    gauge: IntGaugeVec,
}

impl OrderStreaks {
    fn new(renewer: RenewerHandle) -> Self {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "dcv_acme_consecutive_failures",
                "Failed orders in a row of each ACME certificate (0 after a success), with the catalogue cause and the ACME type (or failure kind) of the last failure (or none)",
            ),
            &["certificate", "cause", "type"],
        )
        .expect("metric name and labels are constant and valid");
        Self { renewer, gauge }
    }
}

impl Collector for OrderStreaks {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge.reset();
        let status = self.renewer.status();
        for (id, cert) in &status.certificates {
            let error = cert.last_error.as_ref();
            let cause = error.and_then(|e| e.cause).map_or("none", |c| c.id());
            let kind = error.map_or("none", |e| {
                e.ca_type.as_deref().unwrap_or_else(|| e.kind.as_str())
            });
            self.gauge
                .with_label_values(&[id.as_str(), cause, kind])
                .set(i64::from(cert.consecutive_failures));
        }
        self.gauge.collect()
    }
}

/// `dcv_probe_interval_seconds`: the configured `probe.interval` (0: off).
struct ProbeInterval {
    runner: Arc<ProbeRunner>,
    gauge: IntGauge,
}

impl ProbeInterval {
    fn new(runner: Arc<ProbeRunner>) -> Self {
        let gauge = IntGauge::new(
            "dcv_probe_interval_seconds",
            "How often every site name is probed (probe.interval; 0: the periodic probe is off)",
        )
        .expect("metric name is constant and valid");
        Self { runner, gauge }
    }
}

impl Collector for ProbeInterval {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let every = self.runner.prober().config().interval;
        self.gauge
            .set(every.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
        self.gauge.collect()
    }
}

/// Gauges read from the stores at scrape time.
struct StateGauges {
    certs: Arc<CertStore>,
    challenges: Arc<ChallengeStore>,
    expiry: GaugeVec,
    not_before: GaugeVec,
    answers: IntGaugeVec,
    descs: Vec<Desc>,
}

impl StateGauges {
    fn new(certs: Arc<CertStore>, challenges: Arc<ChallengeStore>) -> Self {
        let expiry = GaugeVec::new(
            Opts::new(
                "dcv_certificate_expiry_timestamp_seconds",
                "notAfter of each served certificate, as a Unix timestamp",
            ),
            &["certificate", "source"],
        )
        .expect("metric name and labels are constant and valid");
        let not_before = GaugeVec::new(
            Opts::new(
                "dcv_certificate_not_before_timestamp_seconds",
                "notBefore of each served certificate, as a Unix timestamp",
            ),
            &["certificate"],
        )
        .expect("metric name and labels are constant and valid");
        let answers = IntGaugeVec::new(
            Opts::new(
                "dcv_challenge_answers",
                "Validation answers held in the challenge store, by kind",
            ),
            &["kind"],
        )
        .expect("metric name and labels are constant and valid");
        let descs = [&expiry.desc(), &not_before.desc(), &answers.desc()]
            .into_iter()
            .flat_map(|d| d.iter().map(|d| (*d).clone()))
            .collect();
        Self {
            certs,
            challenges,
            expiry,
            not_before,
            answers,
            descs,
        }
    }
}

impl Collector for StateGauges {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.expiry.reset();
        self.not_before.reset();
        for entry in self.certs.snapshot().entries() {
            let id = entry.id.as_str();
            self.expiry
                .with_label_values(&[id, entry.source.as_str()])
                .set(unix(entry.cert.not_after) as f64);
            self.not_before
                .with_label_values(&[id])
                .set(unix(entry.cert.not_before) as f64);
        }
        let snapshot = self.challenges.snapshot();
        self.answers
            .with_label_values(&["acme"])
            .set(snapshot.acme_count() as i64);
        self.answers
            .with_label_values(&["pki"])
            .set(snapshot.pki_count() as i64);
        self.answers
            .with_label_values(&["tls-alpn"])
            .set(snapshot.alpn_names().count() as i64);
        self.answers
            .with_label_values(&["dns-01"])
            .set(snapshot.dns01_count() as i64);
        let mut families = self.expiry.collect();
        families.extend(self.not_before.collect());
        families.extend(self.answers.collect());
        families
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn build_process_and_catalogue_series_are_always_there() {
        let text = String::from_utf8(Metrics::new().render()).unwrap();
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            text.contains(&format!(
                "dcv_build_info{{profile=\"debug\",version=\"{version}\"}} 1"
            )),
            "{text}"
        );
        for family in [
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
        ] {
            assert!(
                text.contains(&format!("\n{family} ")),
                "{family} missing:\n{text}"
            );
        }
        let h1 = Cause::H1;
        assert!(text.contains(&format!(
            "dcv_catalogue_cause_info{{cause=\"H1\",remedy=\"{}\",summary=\"{}\"}} 1",
            h1.remedy(),
            h1.summary()
        )));
        assert_eq!(
            text.matches("dcv_catalogue_cause_info{").count(),
            Cause::ALL.len() + 1
        );
    }
}
