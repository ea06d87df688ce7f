//! What a probe found: one [`Check`] per thing looked at (a resolver, an address and port, a
//! CAA set…), each passing or naming its catalogue cause, and the verdict over them. Rendered as
//! text (one line per check, then the verdict) or as the stable JSON document of `--json`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::causes::Cause;

/// Version of the JSON document; bumped when a field changes meaning or disappears.
pub(super) const JSON_VERSION: u32 = 1;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing that would make validation fail.
    Pass,
    /// Not looked at: nothing to look at, or an earlier failure makes it moot.
    Skip,
    /// Validation may still succeed, but something is off (a redirect, a lint).
    Warn,
    /// The CA would fail validation (or refuse the order) for this cause.
    Fail,
    /// The probe itself could not run this check (e.g. the admin API is unreachable).
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Skip => "skip",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }
}

/// What was checked; the `check` label of `dcv_probe_ok`, so a small fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckKind {
    /// P6: the name can be a certificate name.
    LintSyntax,
    /// P1: the name is registrable under a public suffix.
    LintPublicSuffix,
    /// P5: no word that anti-phishing filters flag.
    LintSensitiveWords,
    /// D1, D2, D4, D5: A/AAAA through one recursive resolver.
    DnsResolve,
    /// D1, D2, D4, D5: A/AAAA at one authoritative server, without recursion.
    DnsAuthoritative,
    /// D7: the resolvers (and the authoritative servers) give the same addresses.
    DnsAgree,
    /// D11: the authoritative servers give the same addresses.
    DnsAuthoritativeAgree,
    /// D6: the addresses or the CNAME chain are this node's / the CDN's.
    DnsPointsHere,
    /// D3, D8: CAA allows the CA (RFC 8659, RFC 8657).
    DnsCaa,
    /// D9, D10, D11: an expected TXT record, at one server.
    DnsTxt,
    /// D12: the answer validates from the root's trust anchor (DNSSEC).
    DnsDnssec,
    /// D13: `_acme-challenge.<name>` is a CNAME into a validation zone the fleet answers.
    DnsDelegationCname,
    /// D14, D15: the validation zone's NS at its parent, and each name server answering it.
    DnsValidationZone,
    /// D16: the dns-persist-01 record `_validation-persist.<name>` would be accepted.
    DnsPersist,
    /// H1: TCP connect to an address and port.
    TcpConnect,
    /// H2, H3, H4, H7: the probe token over `http://`.
    HttpToken,
    /// H5: the probe token over `https://`.
    HttpsToken,
    /// H10, C6, C4: the certificate presented for the name.
    HttpsCertificate,
    /// H2, H7, H8: a registered pki-validation file, on the apex and on www.
    PkiFile,
    /// H9: a registered pki-validation file's age.
    PkiAge,
    /// H6 (and H1 at the member): the probe token at every live fleet member's public
    /// addresses.
    FleetToken,
    /// H6: a registered pki-validation file at every live fleet member's public addresses.
    FleetPkiFile,
    /// D15, D11: every live member's DNS listener answers the validation zone (and the value).
    FleetDns,
    /// The probe as a whole (deadline, token planting).
    Probe,
}

impl CheckKind {
    pub const ALL: [CheckKind; 24] = [
        CheckKind::LintSyntax,
        CheckKind::LintPublicSuffix,
        CheckKind::LintSensitiveWords,
        CheckKind::DnsResolve,
        CheckKind::DnsAuthoritative,
        CheckKind::DnsAgree,
        CheckKind::DnsAuthoritativeAgree,
        CheckKind::DnsPointsHere,
        CheckKind::DnsCaa,
        CheckKind::DnsTxt,
        CheckKind::DnsDnssec,
        CheckKind::DnsDelegationCname,
        CheckKind::DnsValidationZone,
        CheckKind::DnsPersist,
        CheckKind::TcpConnect,
        CheckKind::HttpToken,
        CheckKind::HttpsToken,
        CheckKind::HttpsCertificate,
        CheckKind::PkiFile,
        CheckKind::PkiAge,
        CheckKind::FleetToken,
        CheckKind::FleetPkiFile,
        CheckKind::FleetDns,
        CheckKind::Probe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::LintSyntax => "lint.syntax",
            CheckKind::LintPublicSuffix => "lint.public_suffix",
            CheckKind::LintSensitiveWords => "lint.sensitive_words",
            CheckKind::DnsResolve => "dns.resolve",
            CheckKind::DnsAuthoritative => "dns.authoritative",
            CheckKind::DnsAgree => "dns.agree",
            CheckKind::DnsAuthoritativeAgree => "dns.authoritative_agree",
            CheckKind::DnsPointsHere => "dns.points_here",
            CheckKind::DnsDnssec => "dns.dnssec",
            CheckKind::DnsCaa => "dns.caa",
            CheckKind::DnsTxt => "dns.txt",
            CheckKind::DnsDelegationCname => "dns.delegation_cname",
            CheckKind::DnsValidationZone => "dns.validation_zone",
            CheckKind::DnsPersist => "dns.persist",
            CheckKind::FleetDns => "fleet.dns",
            CheckKind::TcpConnect => "tcp.connect",
            CheckKind::HttpToken => "http.token",
            CheckKind::HttpsToken => "https.token",
            CheckKind::HttpsCertificate => "https.certificate",
            CheckKind::PkiFile => "pki.file",
            CheckKind::PkiAge => "pki.age",
            CheckKind::FleetToken => "fleet.token",
            CheckKind::FleetPkiFile => "fleet.pki_file",
            CheckKind::Probe => "probe",
        }
    }
}

impl Serialize for CheckKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One thing looked at.
#[derive(Debug, Clone)]
pub struct Check {
    pub kind: CheckKind,
    /// What exactly: a resolver, `address:port`, a URL, a record name; empty for the name itself.
    pub target: String,
    pub status: Status,
    /// Set for `warn` and `fail` (and sometimes `error`).
    pub cause: Option<Cause>,
    /// What was seen, in words an operator can compare with `dig` or `curl`.
    pub detail: String,
}

impl Check {
    pub fn pass(kind: CheckKind, target: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(kind, target, Status::Pass, None, detail)
    }

    pub fn skip(kind: CheckKind, target: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(kind, target, Status::Skip, None, detail)
    }

    pub fn fail(
        kind: CheckKind,
        target: impl Into<String>,
        cause: Cause,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(kind, target, Status::Fail, Some(cause), detail)
    }

    pub fn warn(
        kind: CheckKind,
        target: impl Into<String>,
        cause: Cause,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(kind, target, Status::Warn, Some(cause), detail)
    }

    pub fn error(kind: CheckKind, target: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(kind, target, Status::Error, None, detail)
    }

    pub fn new(
        kind: CheckKind,
        target: impl Into<String>,
        status: Status,
        cause: Option<Cause>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            target: target.into(),
            status,
            cause,
            detail: detail.into(),
        }
    }
}

/// Everything found about one name.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub started: SystemTime,
    pub duration: Duration,
    pub checks: Vec<Check>,
}

impl Report {
    /// The worst status over every check (`pass` when there is none).
    pub fn verdict(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .filter(|s| *s != Status::Skip)
            .max()
            .unwrap_or(Status::Pass)
    }

    /// The causes of every failing or warning check.
    pub fn causes(&self) -> BTreeSet<Cause> {
        self.checks
            .iter()
            .filter(|c| matches!(c.status, Status::Fail | Status::Warn | Status::Error))
            .filter_map(|c| c.cause)
            .collect()
    }

    /// The causes of failing checks only: what makes validation fail.
    pub fn failing_causes(&self) -> BTreeSet<Cause> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .filter_map(|c| c.cause)
            .collect()
    }

    /// One line per check, then the verdict.
    pub fn render_text(&self) -> String {
        let mut out = format!("{}\n", self.name);
        for check in &self.checks {
            let _ = write!(
                out,
                "  {:<5} {:<24}",
                check.status.as_str().to_ascii_uppercase(),
                check.kind.as_str()
            );
            if !check.target.is_empty() {
                let _ = write!(out, " [{}]", check.target);
            }
            match check.cause {
                Some(cause) if check.status != Status::Pass => {
                    let _ = write!(
                        out,
                        " {}: {}. Cause: {}. Remedy: {}.",
                        cause.id(),
                        check.detail,
                        cause.summary(),
                        cause.remedy()
                    );
                }
                _ => {
                    let _ = write!(out, " {}", check.detail);
                }
            }
            out.push('\n');
        }
        let counted = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        let causes: Vec<&str> = self.causes().into_iter().map(Cause::id).collect();
        let _ = writeln!(
            out,
            "verdict {}: {} ({} checks: {} passed, {} failed, {} warned, {} skipped, {} errors{}) in {:.1}s",
            self.name,
            self.verdict().as_str().to_ascii_uppercase(),
            self.checks.len(),
            counted(Status::Pass),
            counted(Status::Fail),
            counted(Status::Warn),
            counted(Status::Skip),
            counted(Status::Error),
            if causes.is_empty() {
                String::new()
            } else {
                format!("; causes {}", causes.join(", "))
            },
            self.duration.as_secs_f64()
        );
        out
    }

    /// The report as its JSON document (see README, "dcv-proxy check").
    pub fn to_json(&self) -> serde_json::Value {
        let checks: Vec<serde_json::Value> = self
            .checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "check": c.kind,
                    "target": c.target,
                    "status": c.status,
                    "cause": c.cause.map(|cause| serde_json::json!({
                        "id": cause.id(),
                        "summary": cause.summary(),
                        "remedy": cause.remedy(),
                    })),
                    "detail": c.detail,
                })
            })
            .collect();
        serde_json::json!({
            "name": self.name,
            "verdict": self.verdict(),
            "causes": self.causes(),
            "started": humantime::format_rfc3339_millis(self.started).to_string(),
            "duration_ms": self.duration.as_millis() as u64,
            "checks": checks,
        })
    }
}

/// The `--json` document for several reports.
pub fn json_document(reports: &[Report]) -> serde_json::Value {
    let verdict = reports
        .iter()
        .map(Report::verdict)
        .max()
        .unwrap_or(Status::Pass);
    serde_json::json!({
        "version": JSON_VERSION,
        "verdict": verdict,
        "reports": reports.iter().map(Report::to_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn report(checks: Vec<Check>) -> Report {
        Report {
            name: "shop.example.com".into(),
            started: SystemTime::UNIX_EPOCH,
            duration: Duration::from_millis(1500),
            checks,
        }
    }

    #[test]
    fn verdict_is_the_worst_status_and_skips_do_not_count() {
        assert_eq!(report(vec![]).verdict(), Status::Pass);
        let r = report(vec![
            Check::pass(CheckKind::DnsResolve, "", "ok"),
            Check::skip(CheckKind::DnsAgree, "", "one resolver"),
        ]);
        assert_eq!(r.verdict(), Status::Pass);
        let r = report(vec![
            Check::warn(CheckKind::HttpToken, "", Cause::H4, "redirected"),
            Check::fail(CheckKind::DnsCaa, "", Cause::D8, "issue digicert.com"),
        ]);
        assert_eq!(r.verdict(), Status::Fail);
        assert_eq!(
            r.causes().into_iter().collect::<Vec<_>>(),
            [Cause::D8, Cause::H4]
        );
        assert_eq!(r.failing_causes().len(), 1);
    }

    #[test]
    fn text_has_one_line_per_check_then_the_verdict() {
        let r = report(vec![
            Check::pass(CheckKind::DnsResolve, "127.0.0.1:53", "-> 192.0.2.1"),
            Check::fail(CheckKind::DnsCaa, "", Cause::D8, "issue \"digicert.com\""),
        ]);
        let text = r.render_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[1].starts_with("  PASS  dns.resolve"), "{text}");
        assert!(
            lines[2].contains(" D8: issue \"digicert.com\". Cause: a CAA record"),
            "{text}"
        );
        assert!(lines[2].contains("Remedy: add `0 issue"), "{text}");
        assert!(
            lines[3].starts_with("verdict shop.example.com: FAIL (2 checks"),
            "{text}"
        );
        assert!(lines[3].contains("causes D8"), "{text}");
    }

    #[test]
    fn json_document_is_stable() {
        let r = report(vec![Check::fail(
            CheckKind::TcpConnect,
            "192.0.2.1:80",
            Cause::H1,
            "connection refused",
        )]);
        let doc = json_document(&[r]);
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["verdict"], "fail");
        let check = &doc["reports"][0]["checks"][0];
        assert_eq!(check["check"], "tcp.connect");
        assert_eq!(check["status"], "fail");
        assert_eq!(check["cause"]["id"], "H1");
        assert_eq!(doc["reports"][0]["causes"][0], "H1");
        assert_eq!(doc["reports"][0]["duration_ms"], 1500);
    }
}
