//! Delegated DNS validation as the CA's resolver meets it: the customer's
//! `_acme-challenge.<name>` CNAME into a validation zone the fleet answers (`[dns]`), the
//! zone's delegation at its parent, and every name server and fleet member answering it.
//!
//! Three things break it, each with its own cause:
//!
//! - D13: the CNAME is missing, points elsewhere (another CDN, an old zone), or TXT records
//!   sit at `_acme-challenge.<name>` itself — the CA reads those, not the fleet's;
//! - D14: the parent of the validation zone does not delegate it (no NS records), delegates
//!   it to name servers without addresses, or to servers that do not answer for it (lame);
//! - D15: a fleet node's DNS listener does not answer — the zone's other name servers cover
//!   for it (unbound retries them), so this is a warning unless no name server answers.
//!
//! And in the gate before a DNS-01 challenge is announced, the value itself: a member that
//! answers without it while others have it is D11 (asked again for
//! [`super::fleet::PROPAGATION_WAIT`] first: the value travels through etcd), and the
//! resolvers and every name server of the zone are asked by [`super::txt`] (D9, D10, D11).
//! What the resolvers and servers say is judged by the same rules as the rest of the probe
//! (README "Verdicts").

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use futures_util::StreamExt;
use hickory_net::client::Client;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::DnsHandle;
use hickory_resolver::proto::op::{DnsRequestOptions, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::time::Instant;

use super::causes::Cause;
use super::dns::{name_text, rcode_name, Answer, Dns, Resolution};
use super::report::{Check, CheckKind, Report};
use super::zone::{self, Said};
use super::{FleetView, Prober};
use crate::config::{reachable, DnsConfig, DnsName, ExpectedTxt, ValidationZone};

impl Prober {
    /// The checks that decide a DNS-01 validation of `name` (`*.base` for a wildcard), whose TXT
    /// value for `key_authorization` the node has published: CAA for DNS-01 (`issuewild` for a
    /// wildcard), DNSSEC of the `_acme-challenge` chain, the delegation (D13, D14), every
    /// member's listener (D15, D11), and the value at every resolver and every name server of
    /// the zone (D9–D11). The gate before the CA is told runs it until it passes.
    pub async fn probe_dns01(&self, name: &DnsName, key_authorization: &str) -> Report {
        let started = SystemTime::now();
        let clock = Instant::now();
        let base = name.base();
        let wildcard = name.is_wildcard();
        let value = crate::acme::txt_value(key_authorization);
        let mut checks = Vec::new();
        let work = async {
            // Judged as DNS-01, whatever the configured method (CAA `validationmethods`, RFC
            // 8657 §4).
            let mut config = self.config.clone();
            config.validation_method = "dns-01".to_owned();
            let challenge = format!("_acme-challenge.{base}");
            let (caa, dnssec, fleet) = tokio::join!(
                super::caa::check(&self.dns, &base, wildcard, &config),
                super::dnssec::check(&self.dns, &challenge, RecordType::TXT, &self.anchors),
                self.fleet_view(),
            );
            checks.push(dnssec);
            checks.extend(caa);
            match &self.config.dns {
                Some(dns) => {
                    checks.extend(delegation_checks(self, dns, &base, &fleet, Some(&value)).await)
                }
                None => checks.push(Check::error(
                    CheckKind::DnsValidationZone,
                    "",
                    "no [dns] validation zone is configured: nothing answers DNS-01 here",
                )),
            }
            match challenge.parse() {
                Ok(record) => {
                    let expected = [ExpectedTxt {
                        name: record,
                        value: value.clone(),
                    }];
                    checks.extend(super::txt::check(&self.dns, &base, &expected).await);
                }
                Err(e) => checks.push(Check::error(CheckKind::DnsTxt, &challenge, e)),
            }
        };
        let cut_short = self.within_deadline(clock, work).await;
        checks.extend(cut_short);
        Report {
            name: name.to_string(),
            started,
            duration: clock.elapsed(),
            checks,
        }
    }

    /// The delegation checks of a full probe of `name` (the base of a wildcard), when the node
    /// answers validation zones and the name is validated over DNS: no value is in flight, so
    /// the name servers and members are asked for the zone's SOA. And the dns-persist-01
    /// record, which any name may prepare.
    pub(super) async fn dns_validation_stage(
        &self,
        name: &DnsName,
        wildcard: bool,
        checks: &mut Vec<Check>,
    ) {
        let by_dns = wildcard || self.config.validation_method == "dns-01";
        let delegation = async {
            match (&self.config.dns, by_dns) {
                (Some(dns), true) => {
                    let fleet = self.fleet_view().await;
                    delegation_checks(self, dns, name, &fleet, None).await
                }
                _ => Vec::new(),
            }
        };
        // One query to the first resolver, next to the delegation's: it adds no wait.
        let (delegation, persist) = tokio::join!(
            delegation,
            super::persist::check(&self.dns, name, wildcard, &self.config)
        );
        checks.extend(delegation);
        checks.push(persist);
    }
}

/// D13, D14 and D15 (and D11 at members when `value` is given) for `name` and the zones of
/// `dns`.
async fn delegation_checks(
    prober: &Prober,
    dns: &DnsConfig,
    name: &DnsName,
    fleet: &FleetView,
    value: Option<&str>,
) -> Vec<Check> {
    let ours = our_addresses(prober, dns, fleet);
    let (cname, zones) = tokio::join!(
        cname_checks(&prober.dns, dns, name),
        join_all(dns.zones.iter().map(|z| zone_checks(&prober.dns, z, &ours))),
    );
    let mut checks = cname;
    let mut name_servers = BTreeSet::new();
    for (zone_checks, servers) in zones {
        checks.extend(zone_checks);
        name_servers.extend(servers);
    }
    checks.extend(member_checks(prober, dns, name, fleet, &name_servers, value).await);
    checks
}

/// Where the fleet's DNS listeners are, as far as this node knows: its own listen addresses
/// and public addresses, and every member's published DNS addresses and public addresses.
fn our_addresses(prober: &Prober, dns: &DnsConfig, fleet: &FleetView) -> BTreeSet<IpAddr> {
    let mut ours: BTreeSet<IpAddr> = dns
        .listen
        .iter()
        .filter(|a| !a.ip().is_unspecified())
        .map(|a| a.ip())
        .collect();
    ours.extend(prober.config.public_addresses.iter().copied());
    if let FleetView::Members(fleet) = fleet {
        for member in &fleet.members {
            ours.extend(member.dns.iter().map(SocketAddr::ip));
            ours.extend(member.addresses.iter().copied());
        }
    }
    ours
}

/// D13: `_acme-challenge.<name>` at every resolver must be a CNAME to `<name>.<zone>`.
async fn cname_checks(dns: &Dns, config: &DnsConfig, name: &DnsName) -> Vec<Check> {
    let record = format!("_acme-challenge.{name}");
    let targets: Vec<(String, &ValidationZone)> = config
        .zones
        .iter()
        .filter_map(|z| z.delegated(name).map(|t| (t, z)))
        .collect();
    let Some((first, _)) = targets.first() else {
        return vec![Check::fail(
            CheckKind::DnsDelegationCname,
            &record,
            Cause::D13,
            format!(
                "{name} is too long to be delegated: {name}.<zone> would exceed 253 characters"
            ),
        )];
    };
    let instruction = format!("publish `{record}. CNAME {first}.` at the DNS provider of {name}");
    let answers = join_all(dns.recursive().iter().map(|up| {
        up.query(&record, RecordType::TXT, |r| match r {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
    }))
    .await;
    dns.recursive()
        .iter()
        .zip(answers)
        .map(|(up, answer)| {
            let target = format!("{record} at resolver {}", up.label);
            let kind = CheckKind::DnsDelegationCname;
            if let Some(to) = answer.chain().first() {
                return match targets.iter().find(|(t, _)| t == to) {
                    Some((_, zone)) => Check::pass(
                        kind,
                        &target,
                        format!("CNAME {to} (validation zone {})", zone.name),
                    ),
                    None => Check::fail(
                        kind,
                        &target,
                        Cause::D13,
                        format!(
                            "{record} is a CNAME to {to}, not to the validation zone: the CA reads the TXT records there, which this fleet does not answer; {instruction} instead"
                        ),
                    ),
                };
            }
            match answer {
                Answer::Records { records, .. } => Check::fail(
                    kind,
                    &target,
                    Cause::D13,
                    format!(
                        "TXT records are published at {record} itself ({}), not delegated: the CA reads those, not the fleet's; delete them and {instruction} (a CNAME cannot share its name, RFC 1034 §3.6.2)",
                        records.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>().join(", ")
                    ),
                ),
                Answer::NoData { .. } | Answer::NxDomain { .. } => Check::fail(
                    kind,
                    &target,
                    Cause::D13,
                    format!("no CNAME at {record}: {instruction} (once; it serves every renewal)"),
                ),
                Answer::Failure(code) => Check::fail(
                    kind,
                    &target,
                    Cause::D2,
                    format!("DNS problem: {} looking up {record}", rcode_name(code)),
                ),
                failed @ (Answer::Timeout | Answer::Unreachable(_)) => Check::fail(
                    kind,
                    &target,
                    Cause::D4,
                    format!("DNS problem: {} looking up {record}", failed.describe_failure()),
                ),
            }
        })
        .collect()
}

/// What one server of the parent zone says about the validation zone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Referral {
    /// The NS names it delegates to (a referral, or an answer when it also serves the child),
    /// with the glue it sent.
    Delegated {
        ns: Vec<String>,
        glue: BTreeMap<String, Vec<IpAddr>>,
    },
    /// It answers for the parent and has no delegation: NXDOMAIN, or NOERROR without NS.
    Missing(&'static str),
    /// It could not be asked, or failed.
    Failed(Said),
}

/// D14: the zone's NS at every server of its parent, then every name server so named asked
/// for the zone's SOA, authoritatively. Returns the checks and the name servers' addresses.
async fn zone_checks(
    dns: &Dns,
    zone: &ValidationZone,
    ours: &BTreeSet<IpAddr>,
) -> (Vec<Check>, BTreeSet<IpAddr>) {
    let kind = CheckKind::DnsValidationZone;
    let apex = zone.name.as_str();
    let parent = apex.split_once('.').map_or(".", |(_, p)| p);
    let (parent_zone, servers) = match dns.zone_of(parent).await {
        Ok(found) => found,
        Err(reason) => {
            return (
                vec![Check::fail(
                    kind,
                    apex,
                    Cause::D14,
                    format!("the parent of {apex} cannot be found: {reason}"),
                )],
                BTreeSet::new(),
            )
        }
    };
    let timeout = dns.timeout();
    let referrals = join_all(servers.iter().map(|up| async move {
        match up.addr() {
            Some(addr) => ask_referral(addr, apex, timeout).await,
            None => Referral::Failed(Said::Unreachable("no address".into())),
        }
    }))
    .await;
    let mut checks = Vec::new();
    let mut delegated: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    let answering = referrals
        .iter()
        .filter(|r| !matches!(r, Referral::Failed(_)))
        .count();
    let configured: BTreeSet<String> = zone
        .name_servers
        .iter()
        .map(|n| n.as_str().to_owned())
        .collect();
    for (up, referral) in servers.iter().zip(&referrals) {
        let target = format!("NS {apex} at {} (zone {parent_zone})", up.label);
        checks.push(match referral {
            Referral::Delegated { ns, glue } => {
                for host in ns {
                    let entry = delegated.entry(host.clone()).or_default();
                    for ip in glue.get(host).into_iter().flatten() {
                        if !entry.contains(ip) {
                            entry.push(*ip);
                        }
                    }
                }
                let given: BTreeSet<String> = ns.iter().cloned().collect();
                if given == configured {
                    Check::pass(kind, &target, format!("delegated to {}", ns.join(", ")))
                } else {
                    Check::warn(
                        kind,
                        &target,
                        Cause::D14,
                        format!(
                            "delegated to {}, while the zone's own NS set is {} (dns.zone.name_servers): resolvers may use either set",
                            ns.join(", "),
                            zone.name_servers
                                .iter()
                                .map(DnsName::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                }
            }
            Referral::Missing(how) => Check::fail(
                kind,
                &target,
                Cause::D14,
                format!(
                    "{} answers {how} for NS {apex}: {parent_zone} does not delegate the validation zone; add `{apex}. NS <name server>` for each of {} (and their addresses)",
                    up.label,
                    zone.name_servers
                        .iter()
                        .map(DnsName::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Referral::Failed(said) if answering > 0 => Check::warn(
                kind,
                &target,
                failure_cause(said),
                format!(
                    "{} gave {} for NS {apex}; the parent's other servers answer",
                    up.label,
                    said.describe()
                ),
            ),
            Referral::Failed(said) => Check::fail(
                kind,
                &target,
                failure_cause(said),
                format!(
                    "DNS problem: {} gave {} for NS {apex}, and no server of {parent_zone} answers",
                    up.label,
                    said.describe()
                ),
            ),
        });
    }
    // Out-of-zone name servers come without glue: their addresses are their own zone's.
    for (host, ips) in &mut delegated {
        if ips.is_empty() {
            *ips = Resolution::of(dns.primary(), host).await.addresses();
        }
    }
    let mut addresses = BTreeSet::new();
    let mut asked = Vec::new();
    for (host, ips) in &delegated {
        if ips.is_empty() {
            checks.push(Check::fail(
                kind,
                host,
                Cause::D14,
                format!(
                    "{host}, a name server of {apex}, has no address (no glue at the parent, no A/AAAA): no resolver can reach it"
                ),
            ));
        }
        for ip in ips {
            addresses.insert(*ip);
            asked.push((host.clone(), SocketAddr::new(*ip, 53)));
        }
    }
    let said = join_all(
        asked
            .iter()
            .map(|(_, addr)| zone::ask(*addr, apex, RecordType::SOA, timeout)),
    )
    .await;
    let soa_ok = |s: &Said| matches!(s, Said::Answer { records, .. } if records.iter().any(|r| matches!(r, RData::SOA(_))));
    let answering = said.iter().filter(|s| soa_ok(s)).count();
    for ((host, addr), said) in asked.iter().zip(said) {
        let target = format!("{host} ({addr})");
        let member = ours.contains(&addr.ip());
        let whose = if member {
            "a fleet node's DNS listener"
        } else {
            "not a known address of the fleet"
        };
        if soa_ok(&said) {
            checks.push(Check::pass(
                kind,
                &target,
                format!("answers for {apex} ({whose})"),
            ));
            continue;
        }
        let cause = if member { Cause::D15 } else { Cause::D14 };
        let what = match &said {
            Said::Answer { .. } => "an authoritative answer without the zone's SOA".to_owned(),
            other => other.describe(),
        };
        let detail = format!("{host} at {addr} gave {what} for SOA {apex} ({whose})");
        checks.push(if answering > 0 {
            Check::warn(
                kind,
                &target,
                cause,
                format!("{detail}; the zone's other name servers answer, and resolvers retry them"),
            )
        } else {
            Check::fail(
                kind,
                &target,
                cause,
                format!("DNS problem: {detail}, and no name server of the zone answers"),
            )
        });
    }
    (checks, addresses)
}

/// A lame or silent server of the parent is its zone's problem (D2, D4), not the delegation's.
fn failure_cause(said: &Said) -> Cause {
    match said {
        Said::Timeout | Said::Unreachable(_) => Cause::D4,
        _ => Cause::D2,
    }
}

/// D15 (and D11 with a value): every member's DNS listener — or this node's, alone — asked
/// for the zone's SOA and, with `value`, for the TXT value at `<name>.<zone>`.
async fn member_checks(
    prober: &Prober,
    dns: &DnsConfig,
    name: &DnsName,
    fleet: &FleetView,
    name_servers: &BTreeSet<IpAddr>,
    value: Option<&str>,
) -> Vec<Check> {
    let kind = CheckKind::FleetDns;
    let targets: Vec<(String, SocketAddr)> = match fleet {
        FleetView::Members(fleet) => fleet
            .members
            .iter()
            .flat_map(|m| m.dns.iter().map(move |a| (m.node_id.clone(), *a)))
            .collect(),
        FleetView::Unknown(e) => {
            return vec![Check::error(
                kind,
                "",
                format!("cannot list the fleet's members: {e}"),
            )]
        }
        FleetView::Only(id) => dns
            .listen
            .iter()
            .map(|a| (id.clone(), reachable(a)))
            .collect(),
        FleetView::Alone => dns
            .listen
            .iter()
            .map(|a| ("this node".to_owned(), reachable(a)))
            .collect(),
    };
    if targets.is_empty() {
        return vec![Check::skip(
            kind,
            "",
            "no member published a DNS listener address ([dns] listen)",
        )];
    }
    let timeout = prober.dns.timeout();
    let settle = match fleet {
        FleetView::Members(_) => Instant::now() + super::fleet::PROPAGATION_WAIT,
        _ => Instant::now(),
    };
    let asked = join_all(targets.iter().map(|(id, addr)| async move {
        let mut per_zone = Vec::new();
        for zone in &dns.zones {
            per_zone.push((
                zone,
                ask_member(*addr, zone, name, value, timeout, settle).await,
            ));
        }
        (id.as_str(), *addr, per_zone)
    }))
    .await;
    // Who has the value, for D11 ("while others have it").
    let having: BTreeSet<&str> = asked
        .iter()
        .filter(|(_, _, zones)| zones.iter().all(|(_, m)| *m == MemberSaid::Has))
        .map(|(id, _, _)| *id)
        .collect();
    let mut checks = Vec::new();
    for (id, addr, zones) in &asked {
        let listed = name_servers.contains(&addr.ip());
        for (zone, said) in zones {
            let target = format!("{id} at {addr} (zone {})", zone.name);
            let others: Vec<&str> = having.iter().copied().filter(|o| o != id).collect();
            checks.push(match said {
                MemberSaid::Has => Check::pass(kind, &target, "answers the TXT value"),
                MemberSaid::Answers => Check::pass(kind, &target, format!("answers for {}", zone.name)),
                MemberSaid::Lacks(records) if !others.is_empty() => Check::fail(
                    kind,
                    &target,
                    Cause::D11,
                    format!(
                        "{id} answers {} at {}, while {} {} the value (asked again for {} ms: not a propagation delay): the CA's resolver may ask it",
                        if records.is_empty() { "no TXT record".to_owned() } else { format!("only {}", records.join(", ")) },
                        zone.delegated(name).unwrap_or_default(),
                        others.join(", "),
                        if others.len() == 1 { "has" } else { "have" },
                        super::fleet::PROPAGATION_WAIT.as_millis()
                    ),
                ),
                MemberSaid::Lacks(_) => Check::fail(
                    kind,
                    &target,
                    Cause::D9,
                    format!(
                        "{id} does not answer the TXT value at {}, and no member does: it was not published",
                        zone.delegated(name).unwrap_or_default()
                    ),
                ),
                MemberSaid::Silent(said) => {
                    let detail = format!(
                        "{id}'s DNS listener at {addr} gave {} for {}",
                        said.describe(),
                        zone.name
                    );
                    if listed {
                        Check::warn(kind, &target, Cause::D15, format!("{detail}; it is a name server of the zone: resolvers retry another, slower"))
                    } else {
                        Check::warn(kind, &target, Cause::D15, format!("{detail}; it is not one of the zone's name servers, so the CA does not ask it"))
                    }
                }
            });
        }
    }
    if value.is_some() && !having.is_empty() {
        // Members that the CA reaches (they are name servers) all lack it: no one can validate.
        if !asked
            .iter()
            .any(|(id, addr, _)| having.contains(id) && name_servers.contains(&addr.ip()))
            && !name_servers.is_empty()
        {
            checks.push(Check::fail(
                kind,
                "",
                Cause::D14,
                "the members that answer the value are none of the zone's name servers: the CA's resolver never asks them",
            ));
        }
    }
    checks
}

/// What one member's listener said for one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MemberSaid {
    /// It answers the value.
    Has,
    /// No value was asked for, and it answers the zone's SOA.
    Answers,
    /// It answers for the zone, without the value (the TXT values it has instead).
    Lacks(Vec<String>),
    /// It does not answer for the zone.
    Silent(Said),
}

/// The SOA of `zone` at `addr`, or the value at `<name>.<zone>` — asked again until `settle`
/// while the value is missing (it may be on its way through etcd).
async fn ask_member(
    addr: SocketAddr,
    zone: &ValidationZone,
    name: &DnsName,
    value: Option<&str>,
    timeout: Duration,
    settle: Instant,
) -> MemberSaid {
    let Some(value) = value else {
        return match zone::ask(addr, zone.name.as_str(), RecordType::SOA, timeout).await {
            Said::Answer { records, .. } if records.iter().any(|r| matches!(r, RData::SOA(_))) => {
                MemberSaid::Answers
            }
            Said::Answer { .. } => MemberSaid::Silent(Said::NotAuthoritative),
            other => MemberSaid::Silent(other),
        };
    };
    let Some(at) = zone.delegated(name) else {
        return MemberSaid::Lacks(Vec::new());
    };
    let mut pause = Duration::from_millis(20);
    loop {
        let said = zone::ask(addr, &at, RecordType::TXT, timeout).await;
        let result = match said {
            Said::Answer { records, .. } => {
                let texts: Vec<String> = records
                    .iter()
                    .filter_map(|r| match r {
                        RData::TXT(t) => Some(
                            t.txt_data
                                .iter()
                                .map(|s| String::from_utf8_lossy(s).into_owned())
                                .collect::<String>(),
                        ),
                        _ => None,
                    })
                    .collect();
                if texts.iter().any(|t| t == value) {
                    return MemberSaid::Has;
                }
                MemberSaid::Lacks(texts)
            }
            other => MemberSaid::Silent(other),
        };
        if Instant::now() + pause > settle {
            return result;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Asks a server of the parent zone for NS of `zone` without recursion, and reads the referral
/// (the authority section's NS set and the additional section's glue) or the answer.
async fn ask_referral(server: SocketAddr, zone: &str, timeout: Duration) -> Referral {
    let Ok(fqdn) = Name::from_ascii(format!("{zone}.")) else {
        return Referral::Failed(Said::Unreachable(format!("{zone:?} is not a DNS name")));
    };
    let mut options = DnsRequestOptions::default();
    options.recursion_desired = false;
    options.use_edns = true;
    let udp = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(timeout))
        .build();
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(udp);
    let task = tokio::spawn(background);
    let response = tokio::time::timeout(
        timeout,
        client
            .lookup(Query::query(fqdn, RecordType::NS), options)
            .next(),
    )
    .await;
    task.abort();
    let message = match response {
        Err(_) => return Referral::Failed(Said::Timeout),
        Ok(None) => return Referral::Failed(Said::Unreachable("no response".into())),
        Ok(Some(Err(e))) => return Referral::Failed(Said::Unreachable(e.to_string())),
        Ok(Some(Ok(response))) => response.into_message(),
    };
    let code = message.metadata.response_code;
    if code == ResponseCode::NXDomain {
        return Referral::Missing("NXDOMAIN");
    }
    if code != ResponseCode::NoError {
        return Referral::Failed(Said::Failure(code));
    }
    let zone_lower = zone.to_ascii_lowercase();
    let ns: Vec<String> = message
        .answers
        .iter()
        .chain(&message.authorities)
        .filter(|r| name_text(&r.name) == zone_lower)
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some(name_text(&ns.0)),
            _ => None,
        })
        .collect();
    if ns.is_empty() {
        return if message.metadata.authoritative {
            Referral::Missing("no NS records (NOERROR)")
        } else {
            Referral::Failed(Said::NotAuthoritative)
        };
    }
    let mut glue: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for r in &message.additionals {
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        let host = name_text(&r.name);
        if ns.contains(&host) {
            glue.entry(host).or_default().push(ip);
        }
    }
    Referral::Delegated { ns, glue }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parent_server_failure_is_the_parents_cause() {
        assert_eq!(failure_cause(&Said::Timeout), Cause::D4);
        assert_eq!(
            failure_cause(&Said::Failure(ResponseCode::Refused)),
            Cause::D2
        );
    }
}
