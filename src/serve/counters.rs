//! Counters owned by the serving path. Each label combination is resolved once, at start, so
//! counting a request is one atomic add, not a label lookup under a lock.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};

/// Which scheme a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Which store answered (or would have answered) a validation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Acme,
    Pki,
    Webroot,
}

const ANSWERS: [(Answer, &str); 3] = [
    (Answer::Acme, "acme"),
    (Answer::Pki, "pki"),
    (Answer::Webroot, "webroot"),
];
const SCHEMES: [Scheme; 2] = [Scheme::Http, Scheme::Https];
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// The serving path's counters.
#[derive(Clone)]
pub struct ServeCounters {
    challenge_vec: IntCounterVec,
    /// `[answer][scheme][hit]`
    challenge: [[[IntCounter; 2]; 2]; 3],
    proxied_vec: IntCounterVec,
    /// By status class, `other` for no response (e.g. the client went away).
    proxied: [IntCounter; 6],
    redirects: IntCounter,
    /// Idle keep-alive connections parked off their tasks ([`super::park`]).
    parked: IntGauge,
}

impl ServeCounters {
    pub fn new() -> Self {
        let challenge_vec = IntCounterVec::new(
            Opts::new(
                "dcv_challenge_requests_total",
                "Validation requests by kind (acme, pki, webroot), scheme and result (hit, miss)",
            ),
            &["kind", "scheme", "result"],
        )
        .expect("metric name and labels are constant and valid");
        let challenge = ANSWERS.map(|(_, kind)| {
            SCHEMES.map(|scheme| {
                ["miss", "hit"]
                    .map(|result| challenge_vec.with_label_values(&[kind, scheme.as_str(), result]))
            })
        });
        let proxied_vec = IntCounterVec::new(
            Opts::new(
                "dcv_proxied_requests_total",
                "Requests proxied to an origin, by response status class",
            ),
            &["class"],
        )
        .expect("metric name and labels are constant and valid");
        let proxied = CLASSES.map(|c| proxied_vec.with_label_values(&[c]));
        let redirects = IntCounter::new(
            "dcv_https_redirects_total",
            "Requests answered with the HTTP to HTTPS redirect",
        )
        .expect("metric name is constant and valid");
        let parked = IntGauge::new(
            "dcv_parked_connections",
            "Idle keep-alive HTTP connections parked off their tasks, waiting for a next request",
        )
        .expect("metric name is constant and valid");
        Self {
            challenge_vec,
            challenge,
            proxied_vec,
            proxied,
            redirects,
            parked,
        }
    }

    pub fn challenge(&self, answer: Answer, scheme: Scheme, hit: bool) {
        let a = ANSWERS.iter().position(|(x, _)| *x == answer).unwrap_or(0);
        let s = usize::from(scheme == Scheme::Https);
        self.challenge[a][s][usize::from(hit)].inc();
    }

    pub fn proxied(&self, status: u16) {
        let class = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => 5,
        };
        self.proxied[class].inc();
    }

    pub fn redirect(&self) {
        self.redirects.inc();
    }

    /// The gauge of parked connections, for the parking lot to keep.
    pub fn parked(&self) -> IntGauge {
        self.parked.clone()
    }

    /// The collectors, for the metrics registry.
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.challenge_vec.clone()),
            Box::new(self.proxied_vec.clone()),
            Box::new(self.redirects.clone()),
            Box::new(self.parked.clone()),
        ]
    }
}

impl Default for ServeCounters {
    fn default() -> Self {
        Self::new()
    }
}
