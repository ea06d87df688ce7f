//! The DNS listener's counters. Label values come from closed sets (the configured zones,
//! a list of record types, the response codes), so a flood of random names or types cannot
//! grow the number of series.

use prometheus::core::Collector;
use prometheus::{IntCounterVec, IntGauge, Opts};

/// Record types counted by name; every other type is `other`.
const TYPES: [&str; 20] = [
    "A", "AAAA", "ANY", "AXFR", "CAA", "CNAME", "DNSKEY", "DS", "HINFO", "HTTPS", "IXFR", "MX",
    "NS", "NSEC", "PTR", "SOA", "SRV", "SVCB", "TLSA", "TXT",
];

/// Why no response was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Shorter than a header, or no header at all.
    Malformed,
    /// A response (QR set): answering responses is how reflection loops start.
    Response,
    /// Larger than any query needs to be.
    Oversize,
    /// Over the per-source rate limit.
    RateLimited,
}

impl Dropped {
    fn as_str(self) -> &'static str {
        match self {
            Dropped::Malformed => "malformed",
            Dropped::Response => "response",
            Dropped::Oversize => "oversize",
            Dropped::RateLimited => "rate_limited",
        }
    }
}

/// Counters of the DNS listener, registered by `metrics` (through `app`).
#[derive(Clone)]
pub struct DnsCounters {
    queries: IntCounterVec,
    txt_served: IntCounterVec,
    dropped: IntCounterVec,
    truncated: IntCounterVec,
    tcp_open: IntGauge,
    tcp_refused: prometheus::IntCounter,
}

impl DnsCounters {
    pub fn new() -> Self {
        let queries = IntCounterVec::new(
            Opts::new(
                "dcv_dns_queries_total",
                "DNS queries answered by the validation-zone listener, by zone (`none`: outside every zone), query type and response code",
            ),
            &["zone", "type", "rcode"],
        )
        .expect("metric name and labels are constant and valid");
        let txt_served = IntCounterVec::new(
            Opts::new(
                "dcv_dns_challenge_txt_served_total",
                "DNS-01 challenge TXT records served from the challenge store, by zone",
            ),
            &["zone"],
        )
        .expect("metric name and labels are constant and valid");
        let dropped = IntCounterVec::new(
            Opts::new(
                "dcv_dns_dropped_total",
                "DNS messages left unanswered, by reason (malformed, response, oversize, rate_limited)",
            ),
            &["reason"],
        )
        .expect("metric name and labels are constant and valid");
        let truncated = IntCounterVec::new(
            Opts::new(
                "dcv_dns_truncated_total",
                "UDP responses sent empty with TC set, by reason (size: retry over TCP; rate_limited: the slip of the rate limit)",
            ),
            &["reason"],
        )
        .expect("metric name and labels are constant and valid");
        let tcp_open = IntGauge::new(
            "dcv_dns_tcp_connections",
            "TCP connections open on the DNS listener",
        )
        .expect("metric name is constant and valid");
        let tcp_refused = prometheus::IntCounter::new(
            "dcv_dns_tcp_refused_total",
            "TCP connections closed at once because dns.tcp_connections were open",
        )
        .expect("metric name is constant and valid");
        Self {
            queries,
            txt_served,
            dropped,
            truncated,
            tcp_open,
            tcp_refused,
        }
    }

    /// One response sent.
    pub fn answered(&self, zone: &str, rtype: &str, rcode: &str) {
        self.queries.with_label_values(&[zone, rtype, rcode]).inc();
    }

    pub fn txt_served(&self, zone: &str, records: usize) {
        self.txt_served
            .with_label_values(&[zone])
            .inc_by(records as u64);
    }

    pub fn dropped(&self, why: Dropped) {
        self.dropped.with_label_values(&[why.as_str()]).inc();
    }

    pub fn truncated(&self, rate_limited: bool) {
        let reason = if rate_limited { "rate_limited" } else { "size" };
        self.truncated.with_label_values(&[reason]).inc();
    }

    pub(super) fn tcp_open(&self) -> &IntGauge {
        &self.tcp_open
    }

    pub(super) fn tcp_refused(&self) {
        self.tcp_refused.inc();
    }

    /// Every collector, for the registry.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.queries.clone()),
            Box::new(self.txt_served.clone()),
            Box::new(self.dropped.clone()),
            Box::new(self.truncated.clone()),
            Box::new(self.tcp_open.clone()),
            Box::new(self.tcp_refused.clone()),
        ]
    }
}

impl Default for DnsCounters {
    fn default() -> Self {
        Self::new()
    }
}

/// The label of a query type: its mnemonic when it is one of [`TYPES`], else `other`.
pub(super) fn type_label(rtype: hickory_server::proto::rr::RecordType) -> &'static str {
    let name: &'static str = rtype.into();
    TYPES
        .iter()
        .find(|t| **t == name)
        .copied()
        .unwrap_or("other")
}

/// The label of a response code, as `dig` writes it.
pub(super) fn rcode_label(code: hickory_server::proto::op::ResponseCode) -> &'static str {
    use hickory_server::proto::op::ResponseCode;
    match code {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::BADVERS => "BADVERS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_server::proto::rr::RecordType;

    #[test]
    fn labels_come_from_closed_sets() {
        assert_eq!(type_label(RecordType::TXT), "TXT");
        assert_eq!(type_label(RecordType::ANY), "ANY");
        assert_eq!(type_label(RecordType::Unknown(65_000)), "other");
        assert_eq!(
            rcode_label(hickory_server::proto::op::ResponseCode::Refused),
            "REFUSED"
        );
    }
}
