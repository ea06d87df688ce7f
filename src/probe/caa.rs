//! CAA as the CA evaluates it (RFC 8659): find the relevant record set by climbing from the name
//! towards the root, each lookup following CNAMEs (so a CNAME to `user.github.io` inherits the
//! CAA records there, D8); then decide whether `issue` (or `issuewild`) authorizes the
//! configured CA identity, with the RFC 8657 `accounturi` and `validationmethods` parameters.
//! A failing CAA lookup at any level stops issuance (D3; timeouts D4).

use std::collections::BTreeSet;

use futures_util::future::join_all;
use hickory_resolver::proto::rr::{RData, RecordType};

use super::causes::Cause;
use super::dns::{chain_text, rcode_name, Answer, Dns};
use super::report::{Check, CheckKind};
use super::zone::{self, Said};
use crate::config::{DnsName, ProbeConfig};

/// Property tags a CA understands (RFC 8659 §4, RFC 9495, RFC 9115 and the BIMI tag); an
/// unknown tag with the critical flag forbids issuance (RFC 8659 §4.1).
const KNOWN_TAGS: &[&str] = &[
    "issue",
    "issuewild",
    "iodef",
    "contactemail",
    "contactphone",
    "issuemail",
    "issuevmc",
];

/// One CAA record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Property {
    pub critical: bool,
    /// Lowercase tag.
    pub tag: String,
    pub value: String,
}

/// What a CAA record set says about the configured CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    /// The CA may issue; the text says which record (or why unrestricted).
    Authorized(String),
    /// The CA may not issue (D8).
    Forbidden(String),
    /// It depends on something the probe does not know (the account URI).
    Undecided(String),
}

/// Finds and evaluates the CAA record set of `name` (for `*.name` when `wildcard`: RFC 8659
/// §4.3, `issuewild` first) through the primary resolver, then compares the relevant record set
/// across the authoritative servers of its zone (D11: the CA may be given either).
pub(super) async fn check(
    dns: &Dns,
    name: &DnsName,
    wildcard: bool,
    config: &ProbeConfig,
) -> Vec<Check> {
    let (verdict, at) = evaluate_at(dns, name, wildcard, config).await;
    let agreement = agreement(dns, at.as_deref().unwrap_or(name.as_str())).await;
    vec![verdict, agreement]
}

/// The CAA verdict, and the name whose record set decided it (`None`: no CAA anywhere).
async fn evaluate_at(
    dns: &Dns,
    name: &DnsName,
    wildcard: bool,
    config: &ProbeConfig,
) -> (Check, Option<String>) {
    let kind = CheckKind::DnsCaa;
    let upstream = dns.primary();
    let target = upstream.label.as_str();
    let mut candidate = name.as_str();
    loop {
        let answer = upstream
            .query(candidate, RecordType::CAA, |r| match r {
                RData::CAA(caa) => Some(Property {
                    critical: caa.issuer_critical,
                    tag: caa.tag.to_ascii_lowercase(),
                    value: String::from_utf8_lossy(&caa.value).into_owned(),
                }),
                _ => None,
            })
            .await;
        match answer {
            Answer::Records { records, chain, .. } => {
                let at = candidate.parse::<DnsName>().map_or_else(
                    |_| candidate.to_owned(),
                    |n| format!("{n}{}", chain_text(&n, &chain)),
                );
                let decision = evaluate(
                    &records,
                    wildcard,
                    &config.ca_identities,
                    config.account_uri.as_deref(),
                    &config.validation_method,
                );
                let check = match decision {
                    Decision::Authorized(why) => {
                        Check::pass(kind, target, format!("CAA at {at}: {why}"))
                    }
                    Decision::Forbidden(why) => {
                        Check::fail(kind, target, Cause::D8, format!("CAA at {at}: {why}"))
                    }
                    Decision::Undecided(why) => {
                        Check::warn(kind, target, Cause::D8, format!("CAA at {at}: {why}"))
                    }
                };
                return (check, Some(candidate.to_owned()));
            }
            Answer::NoData { .. } | Answer::NxDomain { .. } => {}
            Answer::Failure(code) => {
                let check = Check::fail(
                    kind,
                    target,
                    Cause::D3,
                    format!(
                        "DNS problem: {} looking up CAA for {candidate}",
                        rcode_name(code)
                    ),
                );
                return (check, Some(candidate.to_owned()));
            }
            failed @ (Answer::Timeout | Answer::Unreachable(_)) => {
                let check = Check::fail(
                    kind,
                    target,
                    Cause::D4,
                    format!(
                        "DNS problem: {} looking up CAA for {candidate}",
                        failed.describe_failure()
                    ),
                );
                return (check, Some(candidate.to_owned()));
            }
        }
        // RFC 8659 §3: up to, but not including, the root.
        match candidate.split_once('.') {
            Some((_, parent)) => candidate = parent,
            None => break,
        }
    }
    let check = Check::pass(
        kind,
        target,
        format!("no CAA record at {name} or above: every CA may issue"),
    );
    (check, None)
}

/// D11: the CAA records at `at` (the relevant set, or the name itself) the same at every
/// authoritative server of its zone.
async fn agreement(dns: &Dns, at: &str) -> Check {
    let kind = CheckKind::DnsAuthoritativeAgree;
    let target = format!("CAA {at}");
    let (zone, servers) = match dns.zone_of(at).await {
        Ok(found) => found,
        Err(reason) => {
            return Check::skip(
                kind,
                &target,
                format!("authoritative servers not asked: {reason}"),
            )
        }
    };
    let timeout = dns.timeout();
    let sets = join_all(servers.iter().map(|up| async move {
        let said = match up.addr() {
            Some(addr) => zone::ask(addr, at, RecordType::CAA, timeout).await,
            None => Said::Unreachable("no address".into()),
        };
        let view = match said {
            Said::Answer { records, .. } => {
                let mut set: Vec<String> = records.iter().map(|r| r.to_string()).collect();
                set.sort();
                Some(if set.is_empty() {
                    "no CAA".to_owned()
                } else {
                    set.join(" | ")
                })
            }
            _ => None,
        };
        (up.label.clone(), view)
    }))
    .await;
    let answered: Vec<(String, String)> = sets
        .into_iter()
        .filter_map(|(label, view)| view.map(|v| (label, v)))
        .collect();
    let distinct: BTreeSet<&String> = answered.iter().map(|(_, v)| v).collect();
    if answered.len() < 2 {
        Check::skip(
            kind,
            &target,
            format!("fewer than two servers of zone {zone} answered for CAA"),
        )
    } else if distinct.len() > 1 {
        let detail = answered
            .iter()
            .map(|(l, v)| format!("{l}: {v}"))
            .collect::<Vec<_>>()
            .join("; ");
        Check::fail(
            kind,
            &target,
            Cause::D11,
            format!(
                "the servers of zone {zone} answer CAA for {at} differently ({detail}): the CA may \
                 be given either"
            ),
        )
    } else {
        Check::pass(
            kind,
            &target,
            format!("{} servers of zone {zone} agree on CAA", answered.len()),
        )
    }
}

/// RFC 8659 §4 over one relevant record set, for `identities` (issuer domain names of one CA),
/// with RFC 8657 parameters checked against `account` and `method`.
pub(super) fn evaluate(
    set: &[Property],
    wildcard: bool,
    identities: &[DnsName],
    account: Option<&str>,
    method: &str,
) -> Decision {
    if let Some(p) = set
        .iter()
        .find(|p| p.critical && !KNOWN_TAGS.contains(&p.tag.as_str()))
    {
        return Decision::Forbidden(format!(
            "critical property {:?} is not understood, so no CA may issue (RFC 8659 section 4.1)",
            p.tag
        ));
    }
    // RFC 8659 §4.3: for a wildcard, issuewild properties take precedence when present.
    let tag = if wildcard && set.iter().any(|p| p.tag == "issuewild") {
        "issuewild"
    } else {
        "issue"
    };
    let relevant: Vec<&Property> = set.iter().filter(|p| p.tag == tag).collect();
    if relevant.is_empty() {
        return Decision::Authorized(format!("no {tag} property: issuance is not restricted"));
    }
    let ours = identities
        .iter()
        .map(DnsName::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let mut reasons = Vec::new();
    let mut undecided = None;
    for p in &relevant {
        let parsed = match parse_issue_value(&p.value) {
            Ok(parsed) => parsed,
            Err(e) => {
                reasons.push(format!("{tag} {:?} is malformed ({e})", p.value));
                continue;
            }
        };
        let (Some(issuer), params) = (parsed.issuer, parsed.parameters) else {
            continue;
        };
        if !identities.iter().any(|i| i.as_str() == issuer) {
            continue;
        }
        let mut refused = None;
        for (key, value) in &params {
            match key.as_str() {
                // RFC 8657 §3
                "accounturi" => match account {
                    Some(a) if a == value => {}
                    Some(a) => {
                        refused = Some(format!(
                            "{tag} {:?} binds issuance to account {value}, not to probe.account_uri {a}",
                            p.value
                        ))
                    }
                    None => {
                        undecided = Some(format!(
                            "{tag} {:?} binds issuance to account {value}; set probe.account_uri to check it is this node's account",
                            p.value
                        ));
                        refused = Some(String::new());
                    }
                },
                // RFC 8657 §4
                "validationmethods" if !value.split(',').any(|m| m.trim() == method) => {
                    refused = Some(format!(
                        "{tag} {:?} allows the methods {value}, not {method}",
                        p.value
                    ));
                }
                _ => {}
            }
        }
        match refused {
            None => {
                return Decision::Authorized(format!("{tag} {:?} authorizes {issuer}", p.value))
            }
            Some(reason) if !reason.is_empty() => reasons.push(reason),
            Some(_) => {}
        }
    }
    if let Some(why) = undecided {
        return Decision::Undecided(why);
    }
    if reasons.is_empty() {
        let allowed: Vec<String> = relevant.iter().map(|p| format!("{:?}", p.value)).collect();
        reasons.push(format!(
            "{tag} allows only {}, not {ours}",
            allowed.join(", ")
        ));
    }
    Decision::Forbidden(reasons.join("; "))
}

/// The value of an `issue` or `issuewild` property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IssueValue {
    /// Lowercase issuer domain name; `None` (written `";"`) authorizes no CA.
    pub issuer: Option<String>,
    /// `(tag, value)`, tags lowercase (RFC 8657: `accounturi`, `validationmethods`).
    pub parameters: Vec<(String, String)>,
}

/// Parses `issuer-domain-name *(";" tag "=" value)` (RFC 8659 §4.2).
pub(super) fn parse_issue_value(value: &str) -> Result<IssueValue, String> {
    let mut parts = value.split(';');
    let issuer = parts.next().unwrap_or("").trim();
    let issuer = (!issuer.is_empty()).then(|| issuer.trim_end_matches('.').to_ascii_lowercase());
    let mut params = Vec::new();
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (key, val) = part
            .split_once('=')
            .ok_or_else(|| format!("parameter {part:?} has no '='"))?;
        let (key, val) = (key.trim(), val.trim());
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("parameter tag {key:?} is not alphanumeric"));
        }
        params.push((key.to_ascii_lowercase(), val.to_owned()));
    }
    Ok(IssueValue {
        issuer,
        parameters: params,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn issue(value: &str) -> Property {
        Property {
            critical: false,
            tag: "issue".into(),
            value: value.into(),
        }
    }

    fn le() -> Vec<DnsName> {
        vec!["letsencrypt.org".parse().unwrap()]
    }

    const ACCOUNT: &str = "https://acme-v02.api.letsencrypt.org/acme/acct/1";

    fn decide(set: &[Property], account: Option<&str>) -> Decision {
        evaluate(set, false, &le(), account, "http-01")
    }

    #[test]
    fn issue_for_the_ca_authorizes_and_another_ca_forbids() {
        assert!(matches!(
            decide(&[issue("letsencrypt.org")], None),
            Decision::Authorized(_)
        ));
        let Decision::Forbidden(why) = decide(&[issue("digicert.com")], None) else {
            panic!()
        };
        assert!(
            why.contains("digicert.com") && why.contains("letsencrypt.org"),
            "{why}"
        );
        // ";" alone: no CA at all.
        assert!(matches!(
            decide(&[issue(";")], None),
            Decision::Forbidden(_)
        ));
    }

    #[test]
    fn no_issue_property_is_unrestricted_and_issuewild_only_applies_to_wildcards() {
        let wild = Property {
            tag: "issuewild".into(),
            ..issue("digicert.com")
        };
        assert!(matches!(
            decide(std::slice::from_ref(&wild), None),
            Decision::Authorized(_)
        ));
        assert!(matches!(
            evaluate(
                &[issue("letsencrypt.org"), wild],
                true,
                &le(),
                None,
                "dns-01"
            ),
            Decision::Forbidden(_)
        ));
    }

    #[test]
    fn rfc8657_accounturi_and_validationmethods() {
        let bound = issue(&format!("letsencrypt.org; accounturi={ACCOUNT}"));
        assert!(matches!(
            decide(std::slice::from_ref(&bound), Some(ACCOUNT)),
            Decision::Authorized(_)
        ));
        let Decision::Forbidden(why) =
            decide(std::slice::from_ref(&bound), Some("https://x/acct/2"))
        else {
            panic!()
        };
        assert!(why.contains("binds issuance to account"), "{why}");
        assert!(matches!(decide(&[bound], None), Decision::Undecided(_)));

        let dns_only = issue("letsencrypt.org; validationmethods=dns-01");
        let Decision::Forbidden(why) = decide(std::slice::from_ref(&dns_only), None) else {
            panic!()
        };
        assert!(why.contains("not http-01"), "{why}");
        // Another record in the set may still authorize.
        assert!(matches!(
            decide(
                &[
                    dns_only,
                    issue("letsencrypt.org; validationmethods=http-01,dns-01")
                ],
                None
            ),
            Decision::Authorized(_)
        ));
    }

    #[test]
    fn unknown_critical_tag_forbids() {
        let p = Property {
            critical: true,
            tag: "futuretag".into(),
            value: "x".into(),
        };
        assert!(matches!(
            decide(&[issue("letsencrypt.org"), p], None),
            Decision::Forbidden(_)
        ));
    }

    #[test]
    fn issue_values_parse_like_rfc8659() {
        assert_eq!(
            parse_issue_value(" LetsEncrypt.org ; accounturi = https://a/1 ;").unwrap(),
            IssueValue {
                issuer: Some("letsencrypt.org".into()),
                parameters: vec![("accounturi".into(), "https://a/1".into())]
            }
        );
        assert_eq!(parse_issue_value(";").unwrap().issuer, None);
        assert!(parse_issue_value("ca.net; novalue").is_err());
    }
}
