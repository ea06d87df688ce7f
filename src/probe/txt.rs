//! Expected TXT records for DNS validation (`_acme-challenge.<name>` for ACME DNS-01,
//! `_dnsauth.<name>` for DigiCert and TrustAsia): asked of every authoritative server and every
//! resolver, so that "not yet live on one server" (D9) and "a resolver still caches the old
//! value for N seconds" (D10) are told apart.

use std::collections::BTreeMap;

use hickory_resolver::proto::rr::{RData, RecordType};

use super::causes::Cause;
use super::dns::{rcode_name, Answer, Dns, Upstream};
use super::report::{Check, CheckKind};
use crate::config::{DnsName, ExpectedTxt};

/// The TXT checks of `name`: for every expected record belonging to it, one check per server.
pub async fn check(
    dns: &Dns,
    authoritative: &[Upstream],
    name: &DnsName,
    expected: &[ExpectedTxt],
) -> Vec<Check> {
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
    let servers: Vec<(&str, &Upstream)> = authoritative
        .iter()
        .map(|u| ("authoritative", u))
        .chain(dns.recursive().iter().map(|u| ("resolver", u)))
        .collect();
    let mut checks = Vec::new();
    for (record, values) in wanted {
        let answers = futures_util::future::join_all(servers.iter().map(|(_, up)| {
            up.query(record, RecordType::TXT, |r| match r {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
        }))
        .await;
        for ((role, up), answer) in servers.iter().zip(answers) {
            let target = format!("{record} at {role} {}", up.label);
            checks.push(judge(&target, record, &values, answer));
        }
    }
    checks
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
    use crate::probe::report::Status;

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
