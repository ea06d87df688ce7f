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

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, GaugeVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::state::local::unix;
use crate::state::{CertStore, ChallengeStore};

/// The registry behind `/metrics`.
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            registry: Registry::new(),
        }
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
        let mut families = self.expiry.collect();
        families.extend(self.not_before.collect());
        families.extend(self.answers.collect());
        families
    }
}
