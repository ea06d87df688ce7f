//! Work in flight: edge connections being served and admin requests being answered.
//!
//! A graceful stop (SIGTERM, or the old process after a binary upgrade) waits for this to reach
//! zero before it exits, instead of always sleeping the whole `server.grace_period`; and it is
//! exported as `dcv_in_flight{front}` so a soak run can watch it stay flat.

use prometheus::core::Collector;
use prometheus::{IntGauge, IntGaugeVec, Opts};

/// The two fronts that carry client work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// The HTTP and HTTPS listeners (one unit per connection being served).
    Edge,
    /// The admin API (one unit per request being answered).
    Admin,
}

/// Counts work in flight per front.
#[derive(Clone)]
pub struct InFlight {
    vec: IntGaugeVec,
    edge: IntGauge,
    admin: IntGauge,
}

/// One unit of work; counted until dropped.
pub struct InFlightGuard(IntGauge);

impl InFlight {
    pub fn new() -> Self {
        let vec = IntGaugeVec::new(
            Opts::new(
                "dcv_in_flight",
                "Edge connections being served (front=edge) and admin requests being answered (front=admin)",
            ),
            &["front"],
        )
        .expect("metric name and labels are constant and valid");
        let edge = vec.with_label_values(&["edge"]);
        let admin = vec.with_label_values(&["admin"]);
        Self { vec, edge, admin }
    }

    /// Counts one unit on `front` until the guard is dropped.
    pub fn enter(&self, front: Front) -> InFlightGuard {
        let gauge = match front {
            Front::Edge => &self.edge,
            Front::Admin => &self.admin,
        };
        gauge.inc();
        InFlightGuard(gauge.clone())
    }

    /// Everything in flight on both fronts.
    pub fn total(&self) -> i64 {
        self.edge.get() + self.admin.get()
    }

    /// The gauge, for the metrics registry.
    pub fn collector(&self) -> Box<dyn Collector> {
        Box::new(self.vec.clone())
    }
}

impl Default for InFlight {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_until_dropped() {
        let inflight = InFlight::new();
        let a = inflight.enter(Front::Edge);
        let b = inflight.enter(Front::Admin);
        assert_eq!(inflight.total(), 2);
        drop(a);
        assert_eq!(inflight.total(), 1);
        drop(b);
        assert_eq!(inflight.total(), 0);
    }
}
