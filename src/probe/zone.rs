//! The authoritative side of a name, as the CA's recursive resolver meets it: every name of a
//! CNAME chain lives in a zone of its own, found by following the zone cuts (RFC 1034 §4.2), and
//! is answered by that zone's servers — `shop.customer.test` by the customer's DNS provider,
//! the `edge.cdn.test` it points to by the CDN's. Each server is asked one question, without
//! recursion and without following the CNAME (hickory's client, one message each), so that a
//! failure names the server and the name it failed for.
//!
//! Verdicts (README "Verdicts"): a server that fails (REFUSED, SERVFAIL, not authoritative,
//! silent) while another server of its zone answers is a WARN — a resolver retries the next
//! server, as unbound, the CA's resolver, does — and a FAIL when no server of the zone answers;
//! servers of one zone that answer differently are D11: a FAIL when their answers differ (the CA
//! may be given either), a WARN when only the SOA serial lags.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::StreamExt;
use hickory_net::client::Client;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::DnsHandle;
use hickory_resolver::proto::op::{DnsRequestOptions, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};

use super::causes::Cause;
use super::dns::{name_text, rcode_name, Dns, Upstream};
use super::report::{Check, CheckKind};
use crate::config::DnsName;

/// What one authoritative server said to one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Said {
    /// An authoritative answer (AA set): the records at the name (a CNAME, or records of the
    /// type asked) and their lowest TTL, NXDOMAIN or none.
    Answer {
        records: Vec<RData>,
        ttl: u32,
        nxdomain: bool,
    },
    /// NOERROR without the AA bit: a referral elsewhere, or a lame server.
    NotAuthoritative,
    /// An error response code (REFUSED, SERVFAIL, NOTAUTH…).
    Failure(ResponseCode),
    /// No answer within the timeout.
    Timeout,
    /// The server could not be asked.
    Unreachable(String),
}

impl Said {
    /// Short words for reports.
    pub(super) fn describe(&self) -> String {
        match self {
            Said::Answer { .. } => "an answer".into(),
            Said::NotAuthoritative => "a non-authoritative answer (lame delegation)".into(),
            Said::Failure(code) => rcode_name(*code).into(),
            Said::Timeout => "no answer (timeout)".into(),
            Said::Unreachable(e) => format!("unreachable ({e})"),
        }
    }

    /// The catalogue cause of a failure to answer.
    fn cause(&self) -> Cause {
        match self {
            Said::Timeout | Said::Unreachable(_) => Cause::D4,
            _ => Cause::D2,
        }
    }
}

/// Asks `server` one question (`name`, `rtype`) with recursion not desired: over UDP, and
/// over TCP when the answer was truncated (RFC 7766 §5).
pub(super) async fn ask(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Said {
    let Ok(fqdn) = Name::from_ascii(format!("{}.", name.trim_end_matches('.'))) else {
        return Said::Unreachable(format!("{name:?} is not a DNS name"));
    };
    let mut options = DnsRequestOptions::default();
    options.recursion_desired = false;
    options.use_edns = true;
    let query = Query::query(fqdn, rtype);
    let udp = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(timeout))
        .build();
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(udp);
    let task = tokio::spawn(background);
    let first = tokio::time::timeout(timeout, client.lookup(query.clone(), options).next()).await;
    task.abort();
    let response = match first {
        Err(_) => return Said::Timeout,
        Ok(None) => return Said::Unreachable("no response".into()),
        Ok(Some(Err(e))) => return classify(e.to_string()),
        Ok(Some(Ok(response))) => response,
    };
    let message = if response.metadata.truncation {
        let (connect, handle) =
            TcpClientStream::new(server, None, Some(timeout), TokioRuntimeProvider::default());
        let tcp = match tokio::time::timeout(timeout, connect).await {
            Err(_) => return Said::Timeout,
            Ok(Err(e)) => return classify(e.to_string()),
            Ok(Ok(tcp)) => tcp,
        };
        let (client, background) = Client::<TokioRuntimeProvider>::new(tcp, handle);
        let task = tokio::spawn(background);
        let answer = tokio::time::timeout(timeout, client.lookup(query, options).next()).await;
        task.abort();
        match answer {
            Err(_) => return Said::Timeout,
            Ok(None) => return Said::Unreachable("no response over TCP".into()),
            Ok(Some(Err(e))) => return classify(e.to_string()),
            Ok(Some(Ok(response))) => response.into_message(),
        }
    } else {
        response.into_message()
    };
    let code = message.metadata.response_code;
    if code != ResponseCode::NoError && code != ResponseCode::NXDomain {
        return Said::Failure(code);
    }
    if !message.metadata.authoritative {
        return Said::NotAuthoritative;
    }
    // Only the records at the name itself: a server that adds the CNAME target's records
    // (from another zone it also serves) is not asked about them here.
    let asked = name.trim_end_matches('.').to_ascii_lowercase();
    let at_name: Vec<_> = message
        .answers
        .iter()
        .filter(|r| name_text(&r.name) == asked)
        .filter(|r| r.record_type() == rtype || r.record_type() == RecordType::CNAME)
        .collect();
    Said::Answer {
        ttl: at_name.iter().map(|r| r.ttl).min().unwrap_or(0),
        records: at_name.into_iter().map(|r| r.data.clone()).collect(),
        nxdomain: code == ResponseCode::NXDomain,
    }
}

/// hickory's errors for a question that got no usable answer.
fn classify(error: String) -> Said {
    if error.to_ascii_lowercase().contains("timed out") || error.contains("timeout") {
        Said::Timeout
    } else {
        Said::Unreachable(error)
    }
}

/// One server's view of one name, as compared with the other servers of its zone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum View {
    Cname(String),
    Addresses(Vec<IpAddr>),
    NxDomain,
    Nothing,
}

impl std::fmt::Display for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            View::Cname(target) => write!(f, "CNAME {target}"),
            View::Addresses(a) => write!(
                f,
                "{}",
                a.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            View::NxDomain => write!(f, "NXDOMAIN"),
            View::Nothing => write!(f, "no address"),
        }
    }
}

/// The view of A and AAAA together; `Err` with the failure to show when either failed.
fn view(v4: &Said, v6: &Said) -> Result<View, Said> {
    let (
        Said::Answer {
            records: r4,
            nxdomain: nx4,
            ..
        },
        Said::Answer { records: r6, .. },
    ) = (v4, v6)
    else {
        let failed = if matches!(v4, Said::Answer { .. }) {
            v6
        } else {
            v4
        };
        return Err(failed.clone());
    };
    for r in r4.iter().chain(r6) {
        if let RData::CNAME(target) = r {
            return Ok(View::Cname(name_text(&target.0)));
        }
    }
    let mut addresses: Vec<IpAddr> = r4
        .iter()
        .chain(r6)
        .filter_map(|r| match r {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    addresses.sort();
    addresses.dedup();
    Ok(if !addresses.is_empty() {
        View::Addresses(addresses)
    } else if *nx4 {
        View::NxDomain
    } else {
        View::Nothing
    })
}

/// The zone of one name of the chain, and what its servers said.
struct ZoneAnswers {
    name: String,
    zone: String,
    /// `(server label, view or failure)`, in the order of the zone's NS records.
    answers: Vec<(String, Result<View, Said>)>,
    /// `(server label, SOA serial)` of the servers that gave one.
    serials: Vec<(String, u32)>,
}

/// The authoritative checks of `name` and of every name its CNAME `chain` (as the resolvers
/// followed it) passes through: per name, its zone's servers, each asked for A and AAAA and
/// for the zone's SOA. Returns the checks and the addresses the last name's servers agree on.
pub(super) async fn chain_checks(
    dns: &Dns,
    name: &DnsName,
    chain: &[String],
) -> (Vec<Check>, Option<Vec<IpAddr>>) {
    let names: Vec<String> = std::iter::once(name.as_str().to_owned())
        .chain(chain.iter().cloned())
        .collect();
    let per_name = join_all(names.iter().map(|n| zone_answers(dns, n))).await;
    let mut checks = Vec::new();
    let mut last_agreed = None;
    for answers in per_name {
        match answers {
            Ok(zone) => {
                last_agreed = zone_checks(&zone, &mut checks);
            }
            Err((n, reason)) => {
                checks.push(Check::skip(
                    CheckKind::DnsAuthoritative,
                    &n,
                    format!("authoritative servers not asked: {reason}"),
                ));
                last_agreed = None;
            }
        }
    }
    (checks, last_agreed)
}

async fn zone_answers(dns: &Dns, name: &str) -> Result<ZoneAnswers, (String, String)> {
    let (zone, servers) = dns
        .zone_of(name)
        .await
        .map_err(|reason| (name.to_owned(), reason))?;
    let timeout = dns.timeout();
    let asked = join_all(servers.iter().map(|server: &Upstream| {
        let (zone, name) = (zone.clone(), name.to_owned());
        async move {
            let Some(addr) = server.addr() else {
                return (
                    server.label.clone(),
                    Err(Said::Unreachable("no address".into())),
                    None,
                );
            };
            let (v4, v6, soa) = tokio::join!(
                ask(addr, &name, RecordType::A, timeout),
                ask(addr, &name, RecordType::AAAA, timeout),
                ask(addr, &zone, RecordType::SOA, timeout),
            );
            let serial = match soa {
                Said::Answer { records, .. } => records.iter().find_map(|r| match r {
                    RData::SOA(soa) => Some(soa.serial),
                    _ => None,
                }),
                _ => None,
            };
            (server.label.clone(), view(&v4, &v6), serial)
        }
    }))
    .await;
    let mut answers = Vec::new();
    let mut serials = Vec::new();
    for (label, answer, serial) in asked {
        if let Some(serial) = serial {
            serials.push((label.clone(), serial));
        }
        answers.push((label, answer));
    }
    Ok(ZoneAnswers {
        name: name.to_owned(),
        zone,
        answers,
        serials,
    })
}

/// The checks of one name at its zone's servers; the addresses they agree on, if any.
fn zone_checks(zone: &ZoneAnswers, checks: &mut Vec<Check>) -> Option<Vec<IpAddr>> {
    let answering = zone.answers.iter().filter(|(_, a)| a.is_ok()).count();
    for (label, answer) in &zone.answers {
        let target = format!("{label}: {}", zone.name);
        checks.push(match answer {
            Ok(view) => Check::pass(
                CheckKind::DnsAuthoritative,
                &target,
                format!("{} -> {view} (zone {})", zone.name, zone.zone),
            ),
            Err(failed) if answering > 0 => Check::warn(
                CheckKind::DnsAuthoritative,
                &target,
                failed.cause(),
                format!(
                    "{label} gave {} for {} (zone {}); the zone's other servers answer, and \
                     resolvers retry them, but one in {} queries may be slow or fail",
                    failed.describe(),
                    zone.name,
                    zone.zone,
                    zone.answers.len()
                ),
            ),
            Err(failed) => Check::fail(
                CheckKind::DnsAuthoritative,
                &target,
                failed.cause(),
                format!(
                    "DNS problem: {label} gave {} for {} (zone {}), and no server of the zone \
                     answers",
                    failed.describe(),
                    zone.name,
                    zone.zone
                ),
            ),
        });
    }
    let views: BTreeMap<&str, &View> = zone
        .answers
        .iter()
        .filter_map(|(label, a)| a.as_ref().ok().map(|v| (label.as_str(), v)))
        .collect();
    let distinct: BTreeSet<&View> = views.values().copied().collect();
    let serials: BTreeSet<u32> = zone.serials.iter().map(|(_, s)| *s).collect();
    let target = zone.name.as_str();
    checks.push(if views.len() < 2 {
        Check::skip(
            CheckKind::DnsAuthoritativeAgree,
            target,
            format!("fewer than two servers of zone {} answered", zone.zone),
        )
    } else if distinct.len() > 1 {
        let detail = views
            .iter()
            .map(|(label, view)| format!("{label}: {view}"))
            .collect::<Vec<_>>()
            .join("; ");
        Check::fail(
            CheckKind::DnsAuthoritativeAgree,
            target,
            Cause::D11,
            format!(
                "the servers of zone {} answer {} differently ({detail}): the CA may be given \
                 either{}",
                zone.zone,
                zone.name,
                serial_note(zone)
            ),
        )
    } else if serials.len() > 1 {
        Check::warn(
            CheckKind::DnsAuthoritativeAgree,
            target,
            Cause::D11,
            format!(
                "the servers of zone {} answer {} alike, but{}",
                zone.zone,
                zone.name,
                serial_note(zone)
            ),
        )
    } else {
        Check::pass(
            CheckKind::DnsAuthoritativeAgree,
            target,
            format!(
                "{} servers of zone {} agree{}",
                views.len(),
                zone.zone,
                serials
                    .first()
                    .map_or(String::new(), |s| format!(" (serial {s})"))
            ),
        )
    });
    match distinct.into_iter().collect::<Vec<_>>()[..] {
        [View::Addresses(a)] => Some(a.clone()),
        _ => None,
    }
}

/// ` ; SOA serials differ: a secondary is not in sync (…)` when they do.
fn serial_note(zone: &ZoneAnswers) -> String {
    let distinct: BTreeSet<u32> = zone.serials.iter().map(|(_, s)| *s).collect();
    if distinct.len() < 2 {
        return String::new();
    }
    let list = zone
        .serials
        .iter()
        .map(|(label, s)| format!("{label}: {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(" the SOA serials differ, a secondary is not in sync ({list})")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::probe::Status;
    use hickory_resolver::proto::rr::rdata::{A, CNAME};

    fn answer(records: Vec<RData>) -> Said {
        Said::Answer {
            records,
            ttl: 60,
            nxdomain: false,
        }
    }

    fn zone(answers: Vec<(&str, Result<View, Said>)>, serials: &[(&str, u32)]) -> ZoneAnswers {
        ZoneAnswers {
            name: "shop.customer.test".into(),
            zone: "customer.test".into(),
            answers: answers
                .into_iter()
                .map(|(l, a)| (l.to_owned(), a))
                .collect(),
            serials: serials.iter().map(|(l, s)| (l.to_string(), *s)).collect(),
        }
    }

    #[test]
    fn a_cname_is_the_view_of_its_name() {
        let cname = RData::CNAME(CNAME(Name::from_ascii("edge.cdn.test.").unwrap()));
        let v = view(&answer(vec![cname]), &answer(vec![])).unwrap();
        assert_eq!(v, View::Cname("edge.cdn.test".into()));
        let a = RData::A(A::new(192, 0, 2, 1));
        let v = view(&answer(vec![a]), &answer(vec![])).unwrap();
        assert_eq!(v.to_string(), "192.0.2.1");
        assert_eq!(view(&answer(vec![]), &Said::Timeout), Err(Said::Timeout));
    }

    #[test]
    fn one_failing_server_warns_and_all_failing_fails() {
        let ok = Ok(View::Cname("edge.cdn.test".into()));
        let mut checks = Vec::new();
        zone_checks(
            &zone(
                vec![
                    ("ns1", ok.clone()),
                    ("ns2", Err(Said::Failure(ResponseCode::Refused))),
                ],
                &[("ns1", 7)],
            ),
            &mut checks,
        );
        let ns2 = checks.iter().find(|c| c.target.starts_with("ns2")).unwrap();
        assert_eq!((ns2.status, ns2.cause), (Status::Warn, Some(Cause::D2)));
        assert!(ns2.detail.contains("REFUSED"), "{}", ns2.detail);

        let mut checks = Vec::new();
        zone_checks(
            &zone(
                vec![
                    ("ns1", Err(Said::Timeout)),
                    ("ns2", Err(Said::NotAuthoritative)),
                ],
                &[],
            ),
            &mut checks,
        );
        let fails: Vec<_> = checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.cause)
            .collect();
        assert_eq!(fails, [Some(Cause::D4), Some(Cause::D2)]);
    }

    #[test]
    fn disagreement_fails_and_a_lagging_serial_warns() {
        let mut checks = Vec::new();
        let a1 = Ok(View::Addresses(vec!["192.0.2.1".parse().unwrap()]));
        let a2 = Ok(View::Addresses(vec!["192.0.2.9".parse().unwrap()]));
        zone_checks(
            &zone(
                vec![("ns1", a1.clone()), ("ns2", a2)],
                &[("ns1", 7), ("ns2", 6)],
            ),
            &mut checks,
        );
        let agree = checks.last().unwrap();
        assert_eq!(
            (agree.status, agree.cause),
            (Status::Fail, Some(Cause::D11))
        );
        assert!(agree.detail.contains("ns2: 192.0.2.9"), "{}", agree.detail);
        assert!(agree.detail.contains("ns2: 6"), "{}", agree.detail);

        let mut checks = Vec::new();
        let agreed = zone_checks(
            &zone(
                vec![("ns1", a1.clone()), ("ns2", a1)],
                &[("ns1", 7), ("ns2", 6)],
            ),
            &mut checks,
        );
        let agree = checks.last().unwrap();
        assert_eq!(
            (agree.status, agree.cause),
            (Status::Warn, Some(Cause::D11))
        );
        assert_eq!(agreed, Some(vec!["192.0.2.1".parse().unwrap()]));
    }
}
