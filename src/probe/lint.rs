//! Lints before ordering: what a CA refuses or flags by looking at the name alone, without any
//! network traffic. P6 (syntax and length), P1 (public suffix list), P5 (sensitive words).

use psl::Type;

use super::causes::Cause;
use super::report::{Check, CheckKind};
use crate::config::DnsName;

/// The longest common name CAs accept (X.520 ub-common-name, RFC 5280 appendix A).
const MAX_CN_LEN: usize = 64;

/// What the network checks look at: a host name, or the name under a wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Subject {
    /// The exact name, or for `*.shop.example` the `shop.example` the CA validates.
    pub name: DnsName,
    /// `*.name`: only DNS-01 can validate it (RFC 8555 §7.1.3, Baseline Requirements
    /// 3.2.2.4.7), and CAA `issuewild` applies (RFC 8659 §4.3).
    pub wildcard: bool,
}

/// Lints `raw` (as typed by the operator) for a CA that validates with `method`. Returns the
/// checks and, when the name is a valid hostname or a wildcard `method` can validate, what the
/// network checks look at.
pub(super) fn lint(
    raw: &str,
    sensitive_words: &[String],
    method: &str,
) -> (Vec<Check>, Option<Subject>) {
    let mut checks = Vec::new();
    let (wildcard, rest) = match raw.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    if wildcard && method != "dns-01" {
        checks.push(Check::fail(
            CheckKind::LintSyntax,
            "",
            Cause::P6,
            format!(
                "{raw:?} is a wildcard: CAs validate wildcards only over DNS-01 (RFC 8555 section \
                 7.1.3), and probe.validation_method is {method:?}; set it to \"dns-01\" to probe \
                 the wildcard's TXT and CAA issuewild records"
            ),
        ));
        return (checks, None);
    }
    let name = match rest.parse::<DnsName>() {
        Ok(name) => name,
        Err(e) => {
            checks.push(Check::fail(CheckKind::LintSyntax, "", Cause::P6, e));
            return (checks, None);
        }
    };
    let len = name.as_str().len();
    checks.push(if len > MAX_CN_LEN {
        // Let's Encrypt then leaves the CN out and issues; CAs that copy the first name into
        // the CN refuse the order. Hence a warning, not a failure.
        Check::warn(
            CheckKind::LintSyntax,
            "",
            Cause::P6,
            format!("{len} characters: longer than the {MAX_CN_LEN} a common name can hold"),
        )
    } else {
        Check::pass(
            CheckKind::LintSyntax,
            "",
            format!("{len} characters of letters, digits and hyphens"),
        )
    });
    checks.push(public_suffix(&name));
    checks.push(sensitive(&name, sensitive_words));
    (checks, Some(Subject { name, wildcard }))
}

/// P1: the name must be under a suffix of the public suffix list, and not be one itself.
///
/// CAs check the ICANN section (Let's Encrypt: "Name does not end in a public suffix", "Name is
/// a public suffix"); a name equal to a private-section suffix (`github.io`) is only warned
/// about, since issuance for it depends on the CA.
fn public_suffix(name: &DnsName) -> Check {
    let bytes = name.as_str().as_bytes();
    let Some(suffix) = psl::suffix(bytes) else {
        return Check::fail(
            CheckKind::LintPublicSuffix,
            "",
            Cause::P1,
            "the name has no suffix in the public suffix list",
        );
    };
    let suffix_str = String::from_utf8_lossy(suffix.as_bytes()).into_owned();
    match suffix.typ() {
        None => Check::fail(
            CheckKind::LintPublicSuffix,
            "",
            Cause::P1,
            format!("{suffix_str:?} is not a public suffix (not in the public suffix list)"),
        ),
        Some(typ) if suffix_str == name.as_str() => {
            let detail = format!("{suffix_str:?} is itself a public suffix");
            if typ == Type::Icann {
                Check::fail(CheckKind::LintPublicSuffix, "", Cause::P1, detail)
            } else {
                Check::warn(CheckKind::LintPublicSuffix, "", Cause::P1, detail)
            }
        }
        Some(_) => {
            let domain = psl::domain_str(name.as_str()).unwrap_or(name.as_str());
            Check::pass(
                CheckKind::LintPublicSuffix,
                "",
                format!("registrable domain {domain} under public suffix {suffix_str}"),
            )
        }
    }
}

/// P5: words of the name (public suffix excluded) that anti-phishing filters look for, and the
/// `.pw` suffix some CAs treat the same way.
fn sensitive(name: &DnsName, words: &[String]) -> Check {
    let suffix = psl::suffix_str(name.as_str()).unwrap_or("");
    let owned = name
        .as_str()
        .strip_suffix(suffix)
        .unwrap_or(name.as_str())
        .trim_end_matches('.');
    let mut found: Vec<&str> = words
        .iter()
        .filter(|w| owned.contains(w.as_str()))
        .map(String::as_str)
        .collect();
    if suffix == "pw" {
        found.push(".pw");
    }
    if found.is_empty() {
        Check::pass(
            CheckKind::LintSensitiveWords,
            "",
            "no word that anti-phishing filters flag",
        )
    } else {
        Check::warn(
            CheckKind::LintSensitiveWords,
            "",
            Cause::P5,
            format!("contains {}", found.join(", ")),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::probe::Status;

    fn words() -> Vec<String> {
        crate::config::DEFAULT_SENSITIVE_WORDS
            .iter()
            .map(|w| w.to_string())
            .collect()
    }

    fn status_of(raw: &str, kind: CheckKind) -> (Status, Option<Cause>, String) {
        let (checks, _) = lint(raw, &words(), "http-01");
        let c = checks.into_iter().find(|c| c.kind == kind).unwrap();
        (c.status, c.cause, c.detail)
    }

    #[test]
    fn registrable_names_pass() {
        let (checks, subject) = lint("Shop.Dcvcheck.co.uk", &words(), "http-01");
        assert_eq!(subject.unwrap().name.as_str(), "shop.dcvcheck.co.uk");
        assert!(
            checks.iter().all(|c| c.status == Status::Pass),
            "{checks:?}"
        );
    }

    #[test]
    fn p1_unknown_suffix_and_bare_suffix_fail() {
        let (s, c, d) = status_of("intranet.corp", CheckKind::LintPublicSuffix);
        assert_eq!((s, c), (Status::Fail, Some(Cause::P1)), "{d}");
        let (s, c, _) = status_of("co.uk", CheckKind::LintPublicSuffix);
        assert_eq!((s, c), (Status::Fail, Some(Cause::P1)));
        let (s, _, _) = status_of("user.github.io", CheckKind::LintPublicSuffix);
        assert_eq!(s, Status::Pass);
    }

    #[test]
    fn p5_words_and_pw_warn() {
        let (s, c, d) = status_of("paypal-verify.com", CheckKind::LintSensitiveWords);
        assert_eq!((s, c), (Status::Warn, Some(Cause::P5)));
        assert!(d.contains("paypal") && d.contains("verify"), "{d}");
        let (s, _, d) = status_of("shop.pw", CheckKind::LintSensitiveWords);
        assert_eq!(s, Status::Warn);
        assert!(d.contains(".pw"), "{d}");
        // The public suffix itself is not searched: "live" in a TLD is not the site's word.
        let (s, _, _) = status_of("shop.live", CheckKind::LintSensitiveWords);
        assert_eq!(s, Status::Pass);
    }

    #[test]
    fn p6_bad_characters_fail_and_long_names_warn() {
        let (checks, subject) = lint("under_score.com", &words(), "http-01");
        assert!(subject.is_none());
        assert_eq!(checks[0].cause, Some(Cause::P6));
        assert_eq!(checks[0].status, Status::Fail);
        let long = format!("{}.com", "a".repeat(62));
        let (s, c, _) = status_of(&long, CheckKind::LintSyntax);
        assert_eq!((s, c), (Status::Warn, Some(Cause::P6)));
        let (checks, subject) = lint("*.dcvcheck.com", &words(), "http-01");
        assert_eq!(checks[0].cause, Some(Cause::P6));
        assert!(checks[0].detail.contains("DNS-01"), "{}", checks[0].detail);
        assert!(subject.is_none());
    }

    #[test]
    fn wildcards_are_probed_for_dns_01() {
        let (checks, subject) = lint("*.shop.dcvcheck.com", &words(), "dns-01");
        let subject = subject.unwrap();
        assert_eq!(subject.name.as_str(), "shop.dcvcheck.com");
        assert!(subject.wildcard);
        assert!(
            checks.iter().all(|c| c.status == Status::Pass),
            "{checks:?}"
        );
        let (_, subject) = lint("*.*.dcvcheck.com", &words(), "dns-01");
        assert!(subject.is_none());
    }
}
