//! The gate before the ACME flow tells the CA a challenge is ready (RFC 8555 §7.5.1): probe the
//! name with the very token published, the way the CA will fetch it, and wait with backoff
//! until it passes or the limit runs out. Answering the CA only when the node itself can fetch
//! its token turns an invalid authorization (and a fresh order, and a rate limit, P4) into a
//! local retry with a named cause.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::causes::Cause;
use super::report::{Check, CheckKind, Report, Status};
use super::Prober;
use crate::config::DnsName;

/// First pause between attempts; doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// The gate did not open within its limit.
#[derive(Debug, Clone)]
pub struct GateFailure {
    pub name: String,
    /// The causes of the failing checks of the last attempt (may be empty when the probe
    /// itself could not finish, see the report).
    pub causes: Vec<Cause>,
    /// The last attempt's report.
    pub report: Report,
    pub attempts: u32,
    pub elapsed: Duration,
}

impl fmt::Display for GateFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Where each cause was seen, so an H6 names the member (`node-4 at 192.0.2.4:80`).
        let causes: Vec<String> = self
            .causes
            .iter()
            .map(|c| {
                let mut targets: Vec<&str> = self
                    .report
                    .checks
                    .iter()
                    .filter(|k| k.status == Status::Fail && k.cause == Some(*c))
                    .map(|k| k.target.as_str())
                    .filter(|t| !t.is_empty())
                    .collect();
                targets.dedup();
                if targets.is_empty() {
                    format!("{} ({})", c.id(), c.summary())
                } else {
                    format!("{} ({}) at {}", c.id(), c.summary(), targets.join(", "))
                }
            })
            .collect();
        write!(
            f,
            "self-check of {} failed {} time(s) in {:.1}s: {}",
            self.name,
            self.attempts,
            self.elapsed.as_secs_f64(),
            if causes.is_empty() {
                format!(
                    "the probe did not complete ({})",
                    self.report.verdict().as_str()
                )
            } else {
                causes.join("; ")
            }
        )
    }
}

impl std::error::Error for GateFailure {}

/// Probes `name` with `token` (already published with `key_authorization`) until the CA's
/// view of it passes, retrying with backoff for at most `limit`. Returns the passing report,
/// or the last failing one with its causes.
pub async fn gate(
    prober: &Prober,
    name: &DnsName,
    token: &str,
    key_authorization: &str,
    limit: Duration,
) -> Result<Report, GateFailure> {
    retry(name, limit, || {
        prober.probe_token(name, token, key_authorization)
    })
    .await
}

/// The gate of a TLS-ALPN-01 challenge whose certificate for `key_authorization` the node
/// already serves: [`Prober::probe_tls_alpn`] (port 443 of every address with Boulder's
/// TLS-ALPN-01 rules, RFC 8737) until it passes or `limit` runs out.
pub async fn gate_tls_alpn(
    prober: &Prober,
    name: &DnsName,
    key_authorization: &str,
    limit: Duration,
) -> Result<Report, GateFailure> {
    retry(name, limit, || {
        prober.probe_tls_alpn(name, key_authorization)
    })
    .await
}

/// The gate of a DNS-01 challenge whose TXT value for `key_authorization` the node has
/// published in its validation zones: [`Prober::probe_dns01`] (the customer's CNAME, the
/// zone's delegation, every member's listener, the value at every resolver and name server)
/// until it passes or `limit` runs out. `name` is `*.base` for a wildcard.
pub async fn gate_dns01(
    prober: &Prober,
    name: &DnsName,
    key_authorization: &str,
    limit: Duration,
) -> Result<Report, GateFailure> {
    retry(name, limit, || prober.probe_dns01(name, key_authorization)).await
}

/// Runs `attempt` until its report's verdict is `pass` or `warn` (the CA would validate),
/// with backoff, for at most `limit`.
async fn retry<F, Fut>(
    name: &DnsName,
    limit: Duration,
    mut attempt: F,
) -> Result<Report, GateFailure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Report>,
{
    let start = Instant::now();
    let end = start + limit;
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let report = match tokio::time::timeout_at(end, attempt()).await {
            Ok(report) => report,
            Err(_) => Report {
                name: name.to_string(),
                started: std::time::SystemTime::now(),
                duration: start.elapsed(),
                checks: vec![Check::error(
                    CheckKind::Probe,
                    "",
                    format!("the gate's limit ({limit:?}) ran out during a probe"),
                )],
            },
        };
        if matches!(report.verdict(), Status::Pass | Status::Warn) {
            return Ok(report);
        }
        let now = Instant::now();
        if now + backoff >= end {
            return Err(GateFailure {
                name: name.to_string(),
                causes: report.failing_causes().into_iter().collect(),
                report,
                attempts,
                elapsed: start.elapsed(),
            });
        }
        tracing::debug!(%name, attempts, causes = ?report.failing_causes(), "gate closed, retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_failure_names_where_each_cause_was_seen() {
        let failure = GateFailure {
            name: "o.example.test".into(),
            causes: vec![Cause::H6],
            report: Report {
                name: "o.example.test".into(),
                started: std::time::SystemTime::UNIX_EPOCH,
                duration: Duration::from_secs(1),
                checks: vec![
                    Check::pass(CheckKind::FleetToken, "node-2 at 192.0.2.2:80", "ok"),
                    Check::fail(
                        CheckKind::FleetToken,
                        "node-4 at 192.0.2.4:80",
                        Cause::H6,
                        "404",
                    ),
                ],
            },
            attempts: 3,
            elapsed: Duration::from_secs(2),
        };
        let text = failure.to_string();
        assert!(
            text.starts_with("self-check of o.example.test failed 3 time(s) in 2.0s: H6 ("),
            "{text}"
        );
        assert!(text.ends_with(") at node-4 at 192.0.2.4:80"), "{text}");
    }
}
