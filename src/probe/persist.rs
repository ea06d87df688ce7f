//! `_validation-persist.<name>`: the persistent TXT record of dns-persist-01 (Baseline
//! Requirements method 3.2.2.4.22, draft-ietf-acme-dns-persist). Published once, it lets the
//! CA validate `<name>` for one ACME account without a new record per order — the method
//! multi-tenant platforms were asking for. No CA dcv-proxy orders from offers it yet, so the
//! probe only says whether the record the operator prepared would be accepted:
//!
//! - the value has the issue-value syntax of CAA (RFC 8659 §4.2):
//!   `issuer-domain-name; accounturi=<account URL>[; policy=wildcard][; persistUntil=<unix>]`;
//! - the issuer domain name is one of the CA's (`probe.ca_identities`, compared lowercase);
//! - `accounturi` is present (the draft requires it) and, when `probe.account_uri` is set,
//!   equal to it;
//! - a wildcard (and any subdomain) needs `policy=wildcard`, compared case-insensitively;
//! - `persistUntil`, when present, is a Unix time in the future: after it the CA must not use
//!   the record for a new validation.
//!
//! Records for other issuers are ignored, as the CA ignores them (the draft's "Multiple Issuer
//! Support"). A finding is a warning at most: nothing validates over this method today.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_resolver::proto::rr::{RData, RecordType};

use super::caa::parse_issue_value;
use super::causes::Cause;
use super::dns::{Answer, Dns};
use super::report::{Check, CheckKind};
use crate::config::{DnsName, ProbeConfig};

/// A `persistUntil` closer than this is reported: a renewal after it would fail.
const EXPIRES_SOON: Duration = Duration::from_secs(30 * 86_400);

/// The check of `_validation-persist.<name>` (`wildcard`: the name was `*.<name>`).
pub(super) async fn check(
    dns: &Dns,
    name: &DnsName,
    wildcard: bool,
    config: &ProbeConfig,
) -> Check {
    let record = format!("_validation-persist.{name}");
    let kind = CheckKind::DnsPersist;
    let answer = dns
        .primary()
        .query(&record, RecordType::TXT, |r| match r {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .await;
    let values = match answer {
        Answer::Records { records, .. } => records,
        Answer::NoData { .. } | Answer::NxDomain { .. } => {
            return Check::skip(
                kind,
                &record,
                "no dns-persist-01 record (optional: publish one to prepare for CAs that offer the method)",
            )
        }
        other => {
            return Check::skip(
                kind,
                &record,
                format!("not looked at: {}", other.describe_failure()),
            )
        }
    };
    judge(&record, &values, wildcard, config, SystemTime::now())
}

/// The records at `record` against the CA, the account and `now`.
fn judge(
    record: &str,
    values: &[String],
    wildcard: bool,
    config: &ProbeConfig,
    now: SystemTime,
) -> Check {
    let kind = CheckKind::DnsPersist;
    let ours: Vec<String> = config
        .ca_identities
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    let mut problems = Vec::new();
    let mut others = Vec::new();
    for value in values {
        let parsed = match parse_issue_value(value) {
            Ok(parsed) => parsed,
            Err(e) => {
                problems.push(format!(
                    "{value:?} is not an issue-value (RFC 8659 §4.2): {e}"
                ));
                continue;
            }
        };
        let Some(issuer) = parsed.issuer.as_deref() else {
            problems.push(format!("{value:?} names no issuer"));
            continue;
        };
        if !ours.iter().any(|o| o == issuer) {
            others.push(issuer.to_owned());
            continue;
        }
        let param = |key: &str| {
            parsed
                .parameters
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let Some(account) = param("accounturi") else {
            problems.push(format!(
                "{value:?} has no accounturi: the CA must refuse it (draft-ietf-acme-dns-persist §4)"
            ));
            continue;
        };
        if let Some(expected) = config.account_uri.as_deref() {
            if account != expected {
                problems.push(format!(
                    "{value:?}: accounturi {account} is not this node's account ({expected})"
                ));
                continue;
            }
        }
        if wildcard && !param("policy").is_some_and(|p| p.eq_ignore_ascii_case("wildcard")) {
            problems.push(format!(
                "{value:?} has no policy=wildcard: it validates the name itself, not *.{}",
                record.trim_start_matches("_validation-persist.")
            ));
            continue;
        }
        if let Some(until) = param("persistuntil") {
            let Ok(until) = until.parse::<u64>() else {
                problems.push(format!(
                    "{value:?}: persistUntil {until:?} is not a Unix time"
                ));
                continue;
            };
            let until = UNIX_EPOCH + Duration::from_secs(until);
            if until <= now {
                problems.push(format!(
                    "{value:?}: persistUntil has passed ({}): the CA must not use it for a new validation",
                    humantime::format_rfc3339_seconds(until)
                ));
                continue;
            }
            if until < now + EXPIRES_SOON {
                return Check::warn(
                    kind,
                    record,
                    Cause::D16,
                    format!(
                        "{value:?} is accepted until {} only: renewals after that fail unless persistUntil is moved",
                        humantime::format_rfc3339_seconds(until)
                    ),
                );
            }
        }
        let account_note = if config.account_uri.is_none() {
            " (probe.account_uri is not set: the account was not compared)"
        } else {
            ""
        };
        return Check::pass(
            kind,
            record,
            format!("{value:?} authorizes {issuer} for this account{account_note}"),
        );
    }
    if problems.is_empty() {
        return Check::warn(
            kind,
            record,
            Cause::D16,
            format!(
                "records for {} only, none for {}",
                others.join(", "),
                ours.join(", ")
            ),
        );
    }
    Check::warn(kind, record, Cause::D16, problems.join("; "))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::probe::Status;

    const ACCOUNT: &str = "https://acme.test/acct/7";

    fn config(account: Option<&str>) -> ProbeConfig {
        let mut c = crate::config::Config::parse(std::path::Path::new("t.toml"), "")
            .unwrap()
            .probe;
        c.account_uri = account.map(str::to_owned);
        c
    }

    fn verdict(values: &[&str], wildcard: bool, account: Option<&str>) -> (Status, String) {
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let c = judge(
            "_validation-persist.shop.test",
            &values,
            wildcard,
            &config(account),
            now,
        );
        (c.status, c.detail)
    }

    #[test]
    fn a_record_for_the_ca_and_the_account_passes() {
        let v = format!("letsencrypt.org; accounturi={ACCOUNT}");
        assert_eq!(verdict(&[&v], false, Some(ACCOUNT)).0, Status::Pass);
        // Another issuer's record next to it is ignored.
        assert_eq!(
            verdict(
                &["ca.other; accounturi=https://x/1", &v],
                false,
                Some(ACCOUNT)
            )
            .0,
            Status::Pass
        );
    }

    #[test]
    fn what_the_ca_would_refuse_is_named() {
        let (s, d) = verdict(&["letsencrypt.org"], false, None);
        assert_eq!(s, Status::Warn);
        assert!(d.contains("no accounturi"), "{d}");
        let (s, d) = verdict(
            &["letsencrypt.org; accounturi=https://acme.test/acct/8"],
            false,
            Some(ACCOUNT),
        );
        assert_eq!(s, Status::Warn);
        assert!(d.contains("not this node's account"), "{d}");
        let v = format!("letsencrypt.org; accounturi={ACCOUNT}");
        let (s, d) = verdict(&[&v], true, Some(ACCOUNT));
        assert_eq!(s, Status::Warn);
        assert!(d.contains("policy=wildcard"), "{d}");
        let v = format!("letsencrypt.org; accounturi={ACCOUNT}; Policy=WILDCARD");
        assert_eq!(verdict(&[&v], true, Some(ACCOUNT)).0, Status::Pass);
        let (s, d) = verdict(&["ca.other; accounturi=https://x/1"], false, None);
        assert_eq!(s, Status::Warn);
        assert!(d.contains("none for letsencrypt.org"), "{d}");
    }

    #[test]
    fn persist_until_in_the_past_or_soon_is_reported() {
        let past = format!("letsencrypt.org; accounturi={ACCOUNT}; persistUntil=1700000000");
        let (s, d) = verdict(&[&past], false, Some(ACCOUNT));
        assert_eq!(s, Status::Warn);
        assert!(d.contains("has passed"), "{d}");
        let soon = format!("letsencrypt.org; accounturi={ACCOUNT}; persistUntil=1800086400");
        let (s, d) = verdict(&[&soon], false, Some(ACCOUNT));
        assert_eq!(s, Status::Warn);
        assert!(d.contains("until"), "{d}");
        let later = format!("letsencrypt.org; accounturi={ACCOUNT}; persistUntil=1900000000");
        assert_eq!(verdict(&[&later], false, Some(ACCOUNT)).0, Status::Pass);
        let bad = format!("letsencrypt.org; accounturi={ACCOUNT}; persistUntil=soon");
        assert!(verdict(&[&bad], false, Some(ACCOUNT))
            .1
            .contains("not a Unix time"));
    }
}
