//! Counters owned by the serving path. Each label combination is resolved once, at start, so
//! counting a request is one atomic add, not a label lookup under a lock.
//!
//! Failed TLS handshakes are seen where pingora reports them: its accept loop logs each one at
//! ERROR through the `log` crate (there is no other hook before the connection is gone), and
//! the log bridge (`crate::app::logging`) hands them to [`HandshakeFailures`], which counts them
//! by reason and decides when a rate-limited WARN line is due. A successful handshake never
//! comes near this code.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

    /// The collectors, for the metrics registry (the process's handshake failures included).
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.challenge_vec.clone()),
            Box::new(self.proxied_vec.clone()),
            Box::new(self.redirects.clone()),
            Box::new(self.parked.clone()),
            Box::new(HandshakeFailures::shared().counter_vec()),
        ]
    }
}

impl Default for ServeCounters {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a handshake failed: the `reason` label of `dcv_tls_handshake_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// No complete handshake within pingora's 60 s.
    Timeout,
    /// The client closed or reset the connection during the handshake (port scanners, TCP
    /// health checks).
    Closed,
    /// The first bytes were not TLS (plain HTTP sent to the HTTPS port).
    NotTls,
    /// A malformed or out-of-order TLS message.
    BadMessage,
    /// The client offers no TLS version the node speaks (TLS 1.2 and 1.3).
    ProtocolVersion,
    /// No cipher suite, key-exchange group or signature scheme in common.
    NoSharedCipher,
    /// Another incompatibility rustls names.
    Incompatible,
    /// The client offered ALPN protocols, none of them h2 or http/1.1.
    NoAlpn,
    /// The client refused the certificate presented (an alert such as `unknown_ca`,
    /// `bad_certificate`, `certificate_expired`).
    CertificateRejected,
    /// Another fatal alert from the client.
    Alert,
    /// TLS completed, then the HTTP/2 connection preface failed.
    H2Preface,
    /// Anything else.
    Other,
}

impl HandshakeFailure {
    /// Every reason, in the order of their counters.
    pub const ALL: [HandshakeFailure; 12] = [
        HandshakeFailure::Timeout,
        HandshakeFailure::Closed,
        HandshakeFailure::NotTls,
        HandshakeFailure::BadMessage,
        HandshakeFailure::ProtocolVersion,
        HandshakeFailure::NoSharedCipher,
        HandshakeFailure::Incompatible,
        HandshakeFailure::NoAlpn,
        HandshakeFailure::CertificateRejected,
        HandshakeFailure::Alert,
        HandshakeFailure::H2Preface,
        HandshakeFailure::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Closed => "closed",
            HandshakeFailure::NotTls => "not_tls",
            HandshakeFailure::BadMessage => "bad_message",
            HandshakeFailure::ProtocolVersion => "protocol_version",
            HandshakeFailure::NoSharedCipher => "no_shared_cipher",
            HandshakeFailure::Incompatible => "incompatible",
            HandshakeFailure::NoAlpn => "no_alpn",
            HandshakeFailure::CertificateRejected => "certificate_rejected",
            HandshakeFailure::Alert => "alert",
            HandshakeFailure::H2Preface => "h2_preface",
            HandshakeFailure::Other => "other",
        }
    }

    /// What it usually means and what to do, for the log line.
    pub fn remedy(self) -> &'static str {
        match self {
            HandshakeFailure::CertificateRejected => {
                "clients refuse the certificate presented: see which certificate serves the name (dcv-proxy certs list; C6 when only the default covers it) and that its chain is complete (C2)"
            }
            HandshakeFailure::NotTls => {
                "something sends plain HTTP (or other non-TLS bytes) to the HTTPS port: point it at the HTTP port"
            }
            HandshakeFailure::ProtocolVersion
            | HandshakeFailure::NoSharedCipher
            | HandshakeFailure::Incompatible => {
                "an old or unusual client, or a TLS scanner: the node speaks TLS 1.2 and 1.3 with current cipher suites only; act only if real clients are affected"
            }
            HandshakeFailure::NoAlpn => {
                "the client offered only protocols other than h2 and http/1.1 (a TLS-ALPN-01 validation, acme-tls/1, for a name without a pending challenge lands here too)"
            }
            HandshakeFailure::Timeout | HandshakeFailure::Closed => {
                "clients that connect and do not finish the handshake (port scanners, TCP health checks, lossy networks); act only if the rate is unusual"
            }
            HandshakeFailure::BadMessage | HandshakeFailure::Alert | HandshakeFailure::Other => {
                "usually a broken client or a scanner; the detail says what the TLS library saw"
            }
            HandshakeFailure::H2Preface => {
                "the client negotiated HTTP/2 and then did not speak it: a broken client or a scanner"
            }
        }
    }

    /// Reads pingora's error text (`… TLSHandshakeFailure context: … received corrupt message
    /// of type InvalidContentType …`): rustls's and the I/O error's words, which are stable
    /// within a rustls minor version (the tests pin them with real clients).
    pub fn classify(text: &str) -> HandshakeFailure {
        let has = |needle: &str| text.contains(needle);
        if has("handshake timeout") {
            HandshakeFailure::Timeout
        } else if has("H2 handshake error") {
            HandshakeFailure::H2Preface
        } else if has("InvalidContentType") {
            HandshakeFailure::NotTls
        } else if has("peer doesn't support any known protocol") {
            HandshakeFailure::NoAlpn
        } else if has("received fatal alert: ") {
            const REFUSED: [&str; 6] = [
                "BadCertificate",
                "UnknownCA",
                "CertificateUnknown",
                "CertificateExpired",
                "UnsupportedCertificate",
                "CertificateRevoked",
            ];
            if REFUSED.iter().any(|a| has(a)) {
                HandshakeFailure::CertificateRejected
            } else {
                HandshakeFailure::Alert
            }
        } else if has("peer is incompatible") {
            if has("InCommon") {
                HandshakeFailure::NoSharedCipher
            } else if has("Tls1") || has("Version") {
                HandshakeFailure::ProtocolVersion
            } else {
                HandshakeFailure::Incompatible
            }
        } else if has("received corrupt message")
            || has("received unexpected")
            || has("peer misbehaved")
            || has("peer sent excess record size")
        {
            HandshakeFailure::BadMessage
        } else if has("eof")
            || has("end of file")
            || has("Connection reset")
            || has("Broken pipe")
            || has("connection closed")
        {
            HandshakeFailure::Closed
        } else {
            HandshakeFailure::Other
        }
    }
}

/// How often a WARN line is written for one reason; between two, failures are only counted
/// (every one is still logged at DEBUG).
pub(super) const HANDSHAKE_LOG_EVERY: Duration = Duration::from_secs(60);

const NEVER: u64 = u64::MAX;

/// The handshake failures of this process: one counter per reason, and per reason the time of
/// the last WARN line and the failures since it.
pub struct HandshakeFailures {
    vec: IntCounterVec,
    counters: [IntCounter; HandshakeFailure::ALL.len()],
    /// Milliseconds since `epoch` of the last WARN line per reason ([`NEVER`]: none yet).
    last_line: [AtomicU64; HandshakeFailure::ALL.len()],
    suppressed: [AtomicU64; HandshakeFailure::ALL.len()],
    epoch: Instant,
    every: Duration,
}

impl HandshakeFailures {
    /// A WARN line at most once per `every` per reason.
    pub fn new(every: Duration) -> Self {
        let vec = IntCounterVec::new(
            Opts::new(
                "dcv_tls_handshake_failures_total",
                "TLS handshakes on the HTTPS listeners that failed, by reason",
            ),
            &["reason"],
        )
        .expect("metric name and labels are constant and valid");
        let counters = HandshakeFailure::ALL.map(|r| vec.with_label_values(&[r.as_str()]));
        Self {
            vec,
            counters,
            last_line: std::array::from_fn(|_| AtomicU64::new(NEVER)),
            suppressed: std::array::from_fn(|_| AtomicU64::new(0)),
            epoch: Instant::now(),
            every,
        }
    }

    /// The process's: the log bridge, which is process-wide like the `log` crate's logger,
    /// counts into it, and the metrics registry registers it.
    pub fn shared() -> &'static HandshakeFailures {
        static SHARED: OnceLock<HandshakeFailures> = OnceLock::new();
        SHARED.get_or_init(|| HandshakeFailures::new(HANDSHAKE_LOG_EVERY))
    }

    /// Counts one failure; `Some(n)` when a WARN line is due now, `n` being the failures of
    /// this reason not written since the last line.
    pub fn record(&self, reason: HandshakeFailure) -> Option<u64> {
        let i = HandshakeFailure::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(HandshakeFailure::ALL.len() - 1);
        self.counters[i].inc();
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NEVER - 1);
        let every = u64::try_from(self.every.as_millis()).unwrap_or(u64::MAX);
        let last = self.last_line[i].load(Ordering::Relaxed);
        let due = last == NEVER || now.saturating_sub(last) >= every;
        // One thread wins the line; the others count themselves as suppressed.
        if due
            && self.last_line[i]
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed[i].swap(0, Ordering::Relaxed));
        }
        self.suppressed[i].fetch_add(1, Ordering::Relaxed);
        None
    }

    /// How many failures of `reason` were counted.
    pub fn count(&self, reason: HandshakeFailure) -> u64 {
        HandshakeFailure::ALL
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.counters[i].get())
    }

    /// The counter, for the metrics registry.
    pub fn counter_vec(&self) -> IntCounterVec {
        self.vec.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pingora_handshake_errors_are_classified() {
        let pingora = |cause: &str| {
            format!("Downstream handshake error from 127.0.0.1:40000: Downstream TLSHandshakeFailure context: TLS accept() failed: Downstream TLSHandshakeFailure context: tls connect error: {cause} cause: {cause}")
        };
        for (text, reason) in [
            (
                "Downstream handshake timeout".to_owned(),
                HandshakeFailure::Timeout,
            ),
            (
                pingora("received corrupt message of type InvalidContentType"),
                HandshakeFailure::NotTls,
            ),
            (
                pingora("peer is incompatible: NoCipherSuitesInCommon"),
                HandshakeFailure::NoSharedCipher,
            ),
            (
                pingora("peer is incompatible: Tls12NotOfferedOrEnabled"),
                HandshakeFailure::ProtocolVersion,
            ),
            (
                pingora("peer doesn't support any known protocol"),
                HandshakeFailure::NoAlpn,
            ),
            (
                pingora("received fatal alert: UnknownCA"),
                HandshakeFailure::CertificateRejected,
            ),
            (
                pingora("received fatal alert: BadCertificate"),
                HandshakeFailure::CertificateRejected,
            ),
            (
                pingora("received fatal alert: DecodeError"),
                HandshakeFailure::Alert,
            ),
            (pingora("tls handshake eof"), HandshakeFailure::Closed),
            (
                pingora("Connection reset by peer (os error 104)"),
                HandshakeFailure::Closed,
            ),
            (
                pingora("received unexpected message: got ChangeCipherSpec"),
                HandshakeFailure::BadMessage,
            ),
            (
                "H2 handshake error invalid preface".to_owned(),
                HandshakeFailure::H2Preface,
            ),
            (pingora("something new"), HandshakeFailure::Other),
        ] {
            assert_eq!(HandshakeFailure::classify(&text), reason, "{text}");
        }
    }

    #[test]
    fn one_line_per_reason_per_period_with_the_count_in_between() {
        let failures = HandshakeFailures::new(Duration::from_millis(200));
        assert_eq!(failures.record(HandshakeFailure::NotTls), Some(0));
        for _ in 0..5 {
            assert_eq!(failures.record(HandshakeFailure::NotTls), None);
        }
        // Another reason has its own line.
        assert_eq!(failures.record(HandshakeFailure::Closed), Some(0));
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(failures.record(HandshakeFailure::NotTls), Some(5));
        assert_eq!(failures.count(HandshakeFailure::NotTls), 7);
        assert_eq!(failures.count(HandshakeFailure::Closed), 1);
        assert_eq!(failures.count(HandshakeFailure::Timeout), 0);
    }
}
