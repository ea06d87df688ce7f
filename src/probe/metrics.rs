//! The probe's own metrics (the producer owns them; `crate::metrics` registers them):
//!
//! - `dcv_probe_ok{name,check}`: 1 when no check of that kind fails for the name, else 0;
//! - `dcv_probe_cause{name,cause}`: 1 while a failing or warning check names the cause, 0 once
//!   it no longer does (so alerts can use `== 1` without series appearing and vanishing);
//! - `dcv_probe_last_run_timestamp_seconds{name}`: when the last probe of the name ended;
//! - `dcv_probe_duration_seconds`: how long probes take.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use prometheus::core::Collector;
use prometheus::{GaugeVec, Histogram, HistogramOpts, IntGaugeVec, Opts};

use super::causes::Cause;
use super::report::{CheckKind, Report, Status};

/// Check kinds and causes a name's series were last set for.
type Seen = (BTreeSet<CheckKind>, BTreeSet<Cause>);

/// The probe's gauges and histogram.
pub struct ProbeMetrics {
    ok: IntGaugeVec,
    cause: IntGaugeVec,
    last_run: GaugeVec,
    duration: Histogram,
    /// Label values set per name, to clear those a later report no longer has.
    seen: Mutex<HashMap<String, Seen>>,
}

impl ProbeMetrics {
    pub fn new() -> Self {
        let ok = IntGaugeVec::new(
            Opts::new(
                "dcv_probe_ok",
                "1 when no check of this kind fails for the name in the last probe, else 0",
            ),
            &["name", "check"],
        )
        .expect("metric name and labels are constant and valid");
        let cause = IntGaugeVec::new(
            Opts::new(
                "dcv_probe_cause",
                "1 while the last probe of the name finds this catalogue cause, 0 after",
            ),
            &["name", "cause"],
        )
        .expect("metric name and labels are constant and valid");
        let last_run = GaugeVec::new(
            Opts::new(
                "dcv_probe_last_run_timestamp_seconds",
                "When the last probe of the name ended, as a Unix timestamp",
            ),
            &["name"],
        )
        .expect("metric name and labels are constant and valid");
        let duration = Histogram::with_opts(
            HistogramOpts::new("dcv_probe_duration_seconds", "Duration of one name's probe")
                .buckets(vec![
                    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                ]),
        )
        .expect("metric name and buckets are constant and valid");
        Self {
            ok,
            cause,
            last_run,
            duration,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The collectors to register with `crate::metrics::Metrics::register`.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.ok.clone()),
            Box::new(self.cause.clone()),
            Box::new(self.last_run.clone()),
            Box::new(self.duration.clone()),
        ]
    }

    /// Publishes `report`.
    pub fn record(&self, report: &Report) {
        let name = report.name.as_str();
        let mut kinds: HashMap<CheckKind, bool> = HashMap::new();
        for check in report.checks.iter().filter(|c| c.status != Status::Skip) {
            let ok = kinds.entry(check.kind).or_insert(true);
            *ok &= !matches!(check.status, Status::Fail | Status::Error);
        }
        let causes = report.causes();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (old_kinds, old_causes) = seen.entry(name.to_owned()).or_default();
        for kind in old_kinds.iter().filter(|k| !kinds.contains_key(k)) {
            let _ = self.ok.remove_label_values(&[name, kind.as_str()]);
        }
        for (kind, ok) in &kinds {
            self.ok
                .with_label_values(&[name, kind.as_str()])
                .set(i64::from(*ok));
        }
        for cause in old_causes.iter().filter(|c| !causes.contains(c)) {
            self.cause.with_label_values(&[name, cause.id()]).set(0);
        }
        for cause in &causes {
            self.cause.with_label_values(&[name, cause.id()]).set(1);
        }
        *old_kinds = kinds.keys().copied().collect();
        old_causes.extend(causes);
        let ended = (report.started + report.duration)
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_run.with_label_values(&[name]).set(ended);
        self.duration.observe(report.duration.as_secs_f64());
    }
}

impl Default for ProbeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::probe::Check;

    fn render(m: &ProbeMetrics) -> String {
        let registry = prometheus::Registry::new();
        for c in m.collectors() {
            registry.register(c).unwrap();
        }
        let mut out = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn causes_go_to_zero_and_checks_follow_the_last_report() {
        let m = ProbeMetrics::new();
        let mut report = Report {
            name: "shop.dcvcheck.com".into(),
            started: SystemTime::now(),
            duration: Duration::from_millis(20),
            checks: vec![
                Check::fail(CheckKind::DnsCaa, "", Cause::D8, "issue digicert.com"),
                Check::pass(CheckKind::DnsResolve, "r", "ok"),
            ],
        };
        m.record(&report);
        let text = render(&m);
        assert!(
            text.contains(r#"dcv_probe_cause{cause="D8",name="shop.dcvcheck.com"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dcv_probe_ok{check="dns.caa",name="shop.dcvcheck.com"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dcv_probe_ok{check="dns.resolve",name="shop.dcvcheck.com"} 1"#),
            "{text}"
        );
        assert!(text.contains("dcv_probe_last_run_timestamp_seconds{name=\"shop.dcvcheck.com\"}"));
        assert!(
            text.contains("dcv_probe_duration_seconds_count 1"),
            "{text}"
        );

        report.checks = vec![Check::pass(CheckKind::DnsCaa, "", "ok")];
        m.record(&report);
        let text = render(&m);
        assert!(
            text.contains(r#"dcv_probe_cause{cause="D8",name="shop.dcvcheck.com"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dcv_probe_ok{check="dns.caa",name="shop.dcvcheck.com"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"check="dns.resolve""#), "{text}");
    }
}
