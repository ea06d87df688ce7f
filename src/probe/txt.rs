//! Expected TXT records for DNS validation (`_acme-challenge.<name>` for ACME DNS-01,
//! `_dnsauth.<name>` for DigiCert and TrustAsia): asked of every resolver and of every
//! authoritative server of the zone the record is in (after its CNAME, if it is delegated), so
//! that "not published" (D9), "a wrong or stale value" (D10) and "published on one server but
//! not yet on another" (D11, a secondary not in sync) are told apart.

use std::collections::BTreeMap;

use hickory_resolver::proto::rr::{RData, RecordType};

use super::causes::Cause;
use super::dns::{rcode_name, Answer, Dns};
use super::report::{Check, CheckKind};
use super::zone::{self, Said};
use crate::config::{DnsName, ExpectedTxt};

/// The TXT checks of `name`: for every expected record belonging to it, one check per server.
pub(super) async fn check(dns: &Dns, name: &DnsName, expected: &[ExpectedTxt]) -> Vec<Check> {
    let mut wanted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in expected.iter().filter(|e| e.name.belongs_to(name.as_str())) {
        let values = wanted.entry(e.name.as_str()).or_default();
        if !values.contains(&e.value.as_str()) {
            values.push(e.value.as_str());
        }
    }
    if wanted.is_empty() {
        return vec![Check::skip(
            CheckKind::DnsTxt,
            "",
            format!(
                "no TXT record expected for {name} ([[probe.txt]] or PUT /v1/probe/txt/<name>)"
            ),
        )];
    }
    let mut checks = Vec::new();
    for (record, values) in wanted {
        let pick = |r: &RData| match r {
            RData::TXT(txt) => Some(txt_text(txt)),
            _ => None,
        };
        let answers = futures_util::future::join_all(
            dns.recursive()
                .iter()
                .map(|up| up.query(record, RecordType::TXT, pick)),
        )
        .await;
        // Where the record really is: after the CNAME the resolvers followed (a delegated
        // `_acme-challenge`), in the zone of that name.
        let at = answers
            .iter()
            .map(|a| a.chain())
            .find(|c| !c.is_empty())
            .and_then(|c| c.last().cloned())
            .unwrap_or_else(|| record.to_owned());
        checks.extend(authoritative(dns, &at, &values).await);
        for (up, answer) in dns.recursive().iter().zip(answers) {
            let target = format!("{record} at resolver {}", up.label);
            checks.push(judge(&target, record, &values, answer));
        }
    }
    checks
}

fn txt_text(txt: &hickory_resolver::proto::rr::rdata::TXT) -> String {
    txt.txt_data
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// The record `at` at every authoritative server of its zone: judged on its own (D9, D10), and
/// where one server has the expected values and another does not, the other is a secondary
/// not in sync (D11).
async fn authoritative(dns: &Dns, at: &str, values: &[&str]) -> Vec<Check> {
    let (zone, servers) = match dns.zone_of(at).await {
        Ok(found) => found,
        Err(reason) => {
            return vec![Check::skip(
                CheckKind::DnsTxt,
                at,
                format!("authoritative servers not asked: {reason}"),
            )]
        }
    };
    let timeout = dns.timeout();
    let said = futures_util::future::join_all(servers.iter().map(|up| async move {
        match up.addr() {
            Some(addr) => zone::ask(addr, at, RecordType::TXT, timeout).await,
            None => Said::Unreachable("no address".into()),
        }
    }))
    .await;
    let answers: Vec<Answer<String>> = said.into_iter().map(|s| as_answer(s, at)).collect();
    let complete = |a: &Answer<String>| match a {
        Answer::Records { records, .. } => values.iter().all(|v| records.iter().any(|r| r == v)),
        _ => false,
    };
    let synced: Vec<&str> = servers
        .iter()
        .zip(&answers)
        .filter(|(_, a)| complete(a))
        .map(|(up, _)| up.label.as_str())
        .collect();
    servers
        .iter()
        .zip(answers)
        .map(|(up, answer)| {
            let target = format!("{at} at authoritative {} (zone {zone})", up.label);
            if !synced.is_empty() && !complete(&answer) {
                let has = match &answer {
                    Answer::Records { records, .. } => quoted(records),
                    other => other.describe_failure(),
                };
                return Check::fail(
                    CheckKind::DnsTxt,
                    &target,
                    Cause::D11,
                    format!(
                        "{} serves {has}, while {} already serve {}: this secondary is not in sync, and the CA may ask it",
                        up.label,
                        synced.join(", "),
                        quoted(values)
                    ),
                );
            }
            judge(&target, at, values, answer)
        })
        .collect()
}

/// A raw authoritative answer as a resolver-style [`Answer`] for [`judge`].
fn as_answer(said: Said, at: &str) -> Answer<String> {
    match said {
        Said::Answer {
            records,
            ttl,
            nxdomain,
        } => {
            let txt: Vec<String> = records
                .iter()
                .filter_map(|r| match r {
                    RData::TXT(t) => Some(txt_text(t)),
                    _ => None,
                })
                .collect();
            if !txt.is_empty() {
                Answer::Records {
                    records: txt,
                    ttl,
                    chain: Vec::new(),
                }
            } else if nxdomain {
                Answer::NxDomain {
                    at: at.to_owned(),
                    chain: Vec::new(),
                }
            } else {
                Answer::NoData { chain: Vec::new() }
            }
        }
        Said::NotAuthoritative => {
            Answer::Unreachable("not authoritative for the zone (lame delegation)".into())
        }
        Said::Failure(code) => Answer::Failure(code),
        Said::Timeout => Answer::Timeout,
        Said::Unreachable(e) => Answer::Unreachable(e),
    }
}

/// One server's answer against the expected values.
fn judge(target: &str, record: &str, expected: &[&str], answer: Answer<String>) -> Check {
    let kind = CheckKind::DnsTxt;
    match answer {
        Answer::Records { records, ttl, .. } => {
            let missing: Vec<&&str> = expected
                .iter()
                .filter(|v| !records.iter().any(|r| r == **v))
                .collect();
            let extra: Vec<&String> = records
                .iter()
                .filter(|r| !expected.contains(&r.as_str()))
                .collect();
            if missing.is_empty() && extra.is_empty() {
                Check::pass(
                    kind,
                    target,
                    format!("TXT {} (TTL {ttl}s)", quoted(expected)),
                )
            } else if missing.is_empty() {
                // CAs accept the record among others, but an old value left behind is what
                // operators mistake for the current one (and what caches keep serving).
                Check::warn(
                    kind,
                    target,
                    Cause::D10,
                    format!(
                        "the expected value is published, and also the stale {} (TTL {ttl}s)",
                        quoted(&extra)
                    ),
                )
            } else {
                Check::fail(
                    kind,
                    target,
                    Cause::D10,
                    format!(
                        "TXT is {} (TTL {ttl}s: a resolver may keep it that long), expected {}",
                        quoted(&records),
                        quoted(&missing)
                    ),
                )
            }
        }
        Answer::NoData { .. } | Answer::NxDomain { .. } => Check::fail(
            kind,
            target,
            Cause::D9,
            format!("no TXT record at {record}, expected {}", quoted(expected)),
        ),
        Answer::Failure(code) => Check::fail(
            kind,
            target,
            Cause::D2,
            format!(
                "DNS problem: {} looking up TXT for {record}",
                rcode_name(code)
            ),
        ),
        failed @ (Answer::Timeout | Answer::Unreachable(_)) => Check::fail(
            kind,
            target,
            Cause::D4,
            format!(
                "DNS problem: {} looking up TXT for {record}",
                failed.describe_failure()
            ),
        ),
    }
}

fn quoted<T: AsRef<str>>(values: &[T]) -> String {
    values
        .iter()
        .map(|v| format!("{:?}", v.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Status;

    fn records(values: &[&str], ttl: u32) -> Answer<String> {
        Answer::Records {
            records: values.iter().map(|v| v.to_string()).collect(),
            ttl,
            chain: vec![],
        }
    }

    #[test]
    fn missing_wrong_stale_and_right_values() {
        let r = "_acme-challenge.shop.dcvcheck.com";
        let c = judge("t", r, &["new"], Answer::NoData { chain: vec![] });
        assert_eq!((c.status, c.cause), (Status::Fail, Some(Cause::D9)));
        let c = judge("t", r, &["new"], records(&["old"], 300));
        assert_eq!((c.status, c.cause), (Status::Fail, Some(Cause::D10)));
        assert!(c.detail.contains("\"old\" (TTL 300s"), "{}", c.detail);
        let c = judge("t", r, &["new"], records(&["new", "old"], 60));
        assert_eq!((c.status, c.cause), (Status::Warn, Some(Cause::D10)));
        let c = judge("t", r, &["new"], records(&["new"], 60));
        assert_eq!(c.status, Status::Pass);
    }
}
