//! The fleet's own metrics. They are owned here (the producer) and registered by
//! [`crate::metrics`].

use prometheus::core::Collector;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};

/// Counters and gauges of the fleet follower and backend.
#[derive(Clone)]
pub(crate) struct FleetCounters {
    pub(crate) connected: IntGauge,
    pub(crate) revision: IntGauge,
    pub(crate) members: IntGauge,
    pub(crate) events: IntCounterVec,
    pub(crate) errors: IntCounterVec,
    pub(crate) reloads: IntCounter,
}

/// `dcv_fleet_errors_total{stage}` values.
pub(crate) const STAGES: [&str; 6] = ["connect", "watch", "write", "apply", "refused", "unseal"];

impl FleetCounters {
    pub(crate) fn new() -> Self {
        let gauge = |name: &str, help: &str| {
            IntGauge::new(name, help).expect("metric name is constant and valid")
        };
        let connected = gauge(
            "dcv_fleet_connected",
            "1 while the node follows the fleet store (etcd), 0 while it serves its local snapshot",
        );
        let revision = gauge(
            "dcv_fleet_revision",
            "Last etcd revision applied by this node",
        );
        let members = gauge(
            "dcv_fleet_members",
            "Live members of the fleet, this node included",
        );
        let events = IntCounterVec::new(
            Opts::new(
                "dcv_fleet_events_total",
                "Changes applied from the fleet store, by kind (token, pki, certificate, tls-alpn, account, member) and op (put, delete)",
            ),
            &["kind", "op"],
        )
        .expect("metric name and labels are constant and valid");
        let errors = IntCounterVec::new(
            Opts::new(
                "dcv_fleet_errors_total",
                "Fleet failures by stage (connect, watch, write, apply, refused certificate, unseal)",
            ),
            &["stage"],
        )
        .expect("metric name and labels are constant and valid");
        for stage in STAGES {
            errors.with_label_values(&[stage]);
        }
        let reloads = IntCounter::new(
            "dcv_fleet_reloads_total",
            "Full loads of the fleet store (start, reconnect after compaction)",
        )
        .expect("metric name is constant and valid");
        Self {
            connected,
            revision,
            members,
            events,
            errors,
            reloads,
        }
    }

    pub(crate) fn error(&self, stage: &str) {
        self.errors.with_label_values(&[stage]).inc();
    }

    pub(crate) fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.connected.clone()),
            Box::new(self.revision.clone()),
            Box::new(self.members.clone()),
            Box::new(self.events.clone()),
            Box::new(self.errors.clone()),
            Box::new(self.reloads.clone()),
        ]
    }
}
