//! DNS as the CA sees it: A/AAAA through the CNAME chain, asked of every configured recursive
//! resolver on its own and of every authoritative server directly, with the outcomes the CA
//! tells apart kept apart: NXDOMAIN (D1), SERVFAIL/REFUSED (D2), timeout (D4), no address (D5).
//! Then the answers are compared with what the node expects (D6) and with each other (D7, D11).
//!
//! Every resolver is a hickory `TokioResolver` over exactly one server, without cache and
//! without `/etc/hosts`, so that an answer is what that server says now.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;

use super::causes::Cause;
use super::report::{Check, CheckKind};
use crate::config::{DnsName, ProbeConfig};

/// Why the resolvers could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    /// `/etc/resolv.conf` could not be read and no `probe.resolvers` are configured.
    #[error(
        "no resolvers: probe.resolvers is empty and the system configuration cannot be read: {0}"
    )]
    SystemConfig(String),
    /// The system configuration names no server.
    #[error("no resolvers: probe.resolvers is empty and /etc/resolv.conf names no server")]
    NoServers,
    /// hickory refused a resolver.
    #[error("resolver {server}: {reason}")]
    Build { server: String, reason: String },
}

/// Most authoritative server addresses asked directly (a zone rarely has more than 8).
const MAX_AUTHORITATIVE: usize = 8;

/// The DNS servers a probe asks.
#[derive(Clone)]
pub(super) struct Dns {
    /// Recursive resolvers, each asked on its own (the CA's view, D4/D7 per resolver).
    recursive: Vec<Upstream>,
    /// Authoritative servers from the configuration; empty: found by NS lookup per name.
    authoritative: Vec<Upstream>,
    timeout: Duration,
}

/// One DNS server and the resolver that asks only it.
#[derive(Clone)]
pub(super) struct Upstream {
    /// How reports name it: `ip:port`, or `host (ip:port)` for an authoritative server.
    pub label: String,
    resolver: TokioResolver,
    /// Where it listens (UDP and TCP).
    addr: Option<SocketAddr>,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("label", &self.label)
            .finish()
    }
}

/// The outcome of one query, with the distinctions the catalogue needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer<T> {
    /// Records of the type asked for; `chain` holds the CNAME targets followed, in order.
    Records {
        records: Vec<T>,
        /// Lowest TTL of the records, seconds.
        ttl: u32,
        chain: Vec<String>,
    },
    /// NOERROR without a record of that type (NODATA), after `chain`.
    NoData { chain: Vec<String> },
    /// NXDOMAIN for `at` (the name itself, or the end of its CNAME chain).
    NxDomain { at: String, chain: Vec<String> },
    /// An error response code: SERVFAIL, REFUSED, NOTIMP…
    Failure(ResponseCode),
    /// No answer within the timeout.
    Timeout,
    /// The server could not be asked (connection refused, no route…).
    Unreachable(String),
}

impl<T> Answer<T> {
    /// The CNAME targets followed, if the answer says.
    pub(super) fn chain(&self) -> &[String] {
        match self {
            Answer::Records { chain, .. }
            | Answer::NoData { chain }
            | Answer::NxDomain { chain, .. } => chain,
            _ => &[],
        }
    }

    /// Short words for reports: `NXDOMAIN`, `SERVFAIL`, `timeout`…
    pub(super) fn describe_failure(&self) -> String {
        match self {
            Answer::Records { .. } => "records".into(),
            Answer::NoData { .. } => "no records (NOERROR)".into(),
            Answer::NxDomain { at, .. } => format!("NXDOMAIN for {at}"),
            Answer::Failure(code) => rcode_name(*code).into(),
            Answer::Timeout => "query timed out".into(),
            Answer::Unreachable(e) => format!("unreachable ({e})"),
        }
    }
}

impl Dns {
    /// Resolvers from the configuration (or `/etc/resolv.conf`), and the configured
    /// authoritative servers.
    pub(super) fn from_config(config: &ProbeConfig) -> Result<Self, DnsSetupError> {
        let timeout = config.timeout;
        let recursive = if config.resolvers.is_empty() {
            let (system, _) = hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| DnsSetupError::SystemConfig(e.to_string()))?;
            let servers: Vec<Upstream> = system
                .name_servers()
                .iter()
                .map(|ns| {
                    let port = ns.connections.first().map_or(53, |c| c.port);
                    let addr = SocketAddr::new(ns.ip, port);
                    Upstream::build(addr.to_string(), ns.clone(), true, timeout, addr)
                })
                .collect::<Result<_, _>>()?;
            if servers.is_empty() {
                return Err(DnsSetupError::NoServers);
            }
            servers
        } else {
            config
                .resolvers
                .iter()
                .map(|addr| Upstream::at(addr.to_string(), *addr, true, timeout))
                .collect::<Result<_, _>>()?
        };
        let authoritative = config
            .authoritative
            .iter()
            .map(|addr| Upstream::at(addr.to_string(), *addr, false, timeout))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            recursive,
            authoritative,
            timeout,
        })
    }

    pub(super) fn recursive(&self) -> &[Upstream] {
        &self.recursive
    }

    /// The resolver asked for CAA, NS and redirect targets: the first configured one.
    pub(super) fn primary(&self) -> &Upstream {
        // `from_config` never builds a `Dns` without a recursive resolver.
        &self.recursive[0]
    }

    /// How long one query may take (`probe.timeout`).
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The authoritative servers of `name`'s zone: the configured ones, else those its NS
    /// records name (found by climbing from the name), on port 53.
    pub(super) async fn authoritative_for(&self, name: &DnsName) -> Result<Vec<Upstream>, String> {
        self.zone_of(name.as_str())
            .await
            .map(|(_, servers)| servers)
    }

    /// The zone `name` is in and its authoritative servers. The zone is the closest name at
    /// or above `name` that has NS records of its own (RFC 1034 §4.2: the zone cut); NS
    /// records behind a CNAME belong to the target's zone, not to this name's. The servers are
    /// the configured `probe.authoritative` ones when set, else those the zone's NS records
    /// name, on port 53.
    pub(super) async fn zone_of(&self, name: &str) -> Result<(String, Vec<Upstream>), String> {
        let primary = self.primary();
        let mut zone = name;
        let found = loop {
            match primary
                .query(zone, RecordType::NS, |r| match r {
                    RData::NS(ns) => Some(name_text(&ns.0)),
                    _ => None,
                })
                .await
            {
                Answer::Records { records, chain, .. } if chain.is_empty() => break Ok(records),
                Answer::Records { .. } | Answer::NoData { .. } | Answer::NxDomain { .. } => {}
                other => {
                    break Err(format!(
                        "NS lookup for {zone} via {}: {}",
                        primary.label,
                        other.describe_failure()
                    ))
                }
            }
            match zone.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => zone = parent,
                _ => break Err(format!("no NS records found for {name} or its parents")),
            }
        };
        if !self.authoritative.is_empty() {
            let zone = if found.is_ok() { zone } else { name };
            return Ok((zone.to_owned(), self.authoritative.clone()));
        }
        let hosts = found?;
        let mut servers = Vec::new();
        for host in hosts {
            let resolution = Resolution::of(primary, &host).await;
            for ip in resolution.addresses() {
                if servers.len() < MAX_AUTHORITATIVE {
                    let addr = SocketAddr::new(ip, 53);
                    servers.push(
                        Upstream::at(format!("{host} ({addr})"), addr, false, self.timeout)
                            .map_err(|e| e.to_string())?,
                    );
                }
            }
        }
        if servers.is_empty() {
            return Err(format!(
                "the NS records of {zone} name servers without addresses"
            ));
        }
        Ok((zone.to_owned(), servers))
    }
}

impl Upstream {
    fn at(
        label: String,
        addr: SocketAddr,
        recursion: bool,
        timeout: Duration,
    ) -> Result<Self, DnsSetupError> {
        let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
        for connection in &mut ns.connections {
            connection.port = addr.port();
        }
        Self::build(label, ns, recursion, timeout, addr)
    }

    fn build(
        label: String,
        ns: NameServerConfig,
        recursion: bool,
        timeout: Duration,
        addr: SocketAddr,
    ) -> Result<Self, DnsSetupError> {
        let config = ResolverConfig::from_parts(None, Vec::new(), vec![ns]);
        let mut builder =
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        let options = builder.options_mut();
        options.timeout = timeout;
        // One retry covers a lost UDP packet; more would only stretch a timeout (D4).
        options.attempts = 1;
        options.cache_size = 0;
        options.use_hosts_file = ResolveHosts::Never;
        options.recursion_desired = recursion;
        options.preserve_intermediates = true;
        options.num_concurrent_reqs = 1;
        let resolver = builder.build().map_err(|e| DnsSetupError::Build {
            server: label.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            label,
            resolver,
            addr: Some(addr),
        })
    }

    /// Where this server listens.
    pub(super) fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Asks this server for `rtype` records of `name`, following CNAMEs; `pick` keeps the
    /// records of interest.
    pub(super) async fn query<T>(
        &self,
        name: &str,
        rtype: RecordType,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Answer<T> {
        // A fully qualified name: no search-list suffix is ever tried.
        let fqdn = match Name::from_ascii(format!("{name}.")) {
            Ok(n) => n,
            Err(e) => return Answer::Unreachable(format!("{name:?} is not a DNS name: {e}")),
        };
        match self.resolver.lookup(fqdn, rtype).await {
            Ok(lookup) => {
                let mut chain = Vec::new();
                let mut records = Vec::new();
                let mut ttl = u32::MAX;
                for record in lookup.answers() {
                    if let RData::CNAME(target) = &record.data {
                        chain.push(name_text(&target.0));
                    } else if let Some(value) = pick(&record.data) {
                        ttl = ttl.min(record.ttl);
                        records.push(value);
                    }
                }
                if records.is_empty() {
                    Answer::NoData { chain }
                } else {
                    Answer::Records {
                        records,
                        ttl,
                        chain,
                    }
                }
            }
            Err(e) => classify_error(name, e),
        }
    }
}

/// Turns a hickory error into the distinction the catalogue makes.
fn classify_error<T>(name: &str, e: NetError) -> Answer<T> {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(no)) => {
            let at = name_text(no.query.name());
            // The error names the last name asked: the end of the CNAME chain, if any.
            let chain = if at == name {
                Vec::new()
            } else {
                vec![at.clone()]
            };
            if no.response_code == ResponseCode::NXDomain {
                Answer::NxDomain { at, chain }
            } else {
                Answer::NoData { chain }
            }
        }
        NetError::Dns(DnsError::ResponseCode(code)) => Answer::Failure(code),
        NetError::Timeout => Answer::Timeout,
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => Answer::Timeout,
        NetError::Io(io) => Answer::Unreachable(io.to_string()),
        other => Answer::Unreachable(other.to_string()),
    }
}

/// `Name` as text: lowercase, without the trailing dot.
pub(super) fn name_text(name: &Name) -> String {
    let text = name.to_ascii().to_ascii_lowercase();
    text.strip_suffix('.').map(str::to_owned).unwrap_or(text)
}

/// The common names of response codes (what `dig` prints).
pub(super) fn rcode_name(code: ResponseCode) -> &'static str {
    match code {
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotAuth => "NOTAUTH",
        _ => "error response",
    }
}

/// The A and AAAA answers of one server for one name.
#[derive(Debug, Clone)]
pub(super) struct Resolution {
    pub v4: Answer<Ipv4Addr>,
    pub v6: Answer<Ipv6Addr>,
}

impl Resolution {
    /// Asks `upstream` for A and AAAA at once.
    pub(super) async fn of(upstream: &Upstream, name: &str) -> Self {
        let (v4, v6) = tokio::join!(
            upstream.query(name, RecordType::A, |r| match r {
                RData::A(a) => Some(a.0),
                _ => None,
            }),
            upstream.query(name, RecordType::AAAA, |r| match r {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            }),
        );
        Self { v4, v6 }
    }

    /// Every address, IPv4 first, sorted.
    pub(super) fn addresses(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        if let Answer::Records { records, .. } = &self.v4 {
            out.extend(records.iter().map(|a| IpAddr::V4(*a)));
        }
        if let Answer::Records { records, .. } = &self.v6 {
            out.extend(records.iter().map(|a| IpAddr::V6(*a)));
        }
        out.sort();
        out.dedup();
        out
    }

    /// The CNAME chain (the longer of the two answers').
    pub(super) fn chain(&self) -> Vec<String> {
        let (a, b) = (self.v4.chain(), self.v6.chain());
        if a.len() >= b.len() { a } else { b }.to_vec()
    }

    /// What the CA would conclude from this server's answers, as a check.
    ///
    /// The CA asks for A and AAAA together and only fails when neither yields an address; an
    /// address with the other family failing is a warning, since the CA may still succeed.
    pub(super) fn check(&self, kind: CheckKind, target: &str, name: &DnsName) -> Check {
        let addresses = self.addresses();
        let via = chain_text(name, &self.chain());
        if !addresses.is_empty() {
            let detail = format!("{name}{via} -> {}", join(&addresses));
            for (family, answer) in [("AAAA", self.v6_any()), ("A", self.v4_any())] {
                if let Some(cause) = failure_cause(&answer) {
                    return Check::warn(
                        kind,
                        target,
                        cause,
                        format!(
                            "{detail}, but {} looking up {family}",
                            answer.describe_failure()
                        ),
                    );
                }
            }
            return Check::pass(kind, target, detail);
        }
        // No address: the most telling failure wins, in the CA's order of reporting.
        for answer in [self.v4_any(), self.v6_any()] {
            if let Answer::Timeout | Answer::Unreachable(_) = answer {
                return Check::fail(
                    kind,
                    target,
                    Cause::D4,
                    format!(
                        "DNS problem: {} looking up A for {name}",
                        answer.describe_failure()
                    ),
                );
            }
        }
        for (family, answer) in [("A", self.v4_any()), ("AAAA", self.v6_any())] {
            if let Answer::Failure(code) = answer {
                return Check::fail(
                    kind,
                    target,
                    Cause::D2,
                    format!(
                        "DNS problem: {} looking up {family} for {name}",
                        rcode_name(code)
                    ),
                );
            }
        }
        for answer in [self.v4_any(), self.v6_any()] {
            if let Answer::NxDomain { at, .. } = &answer {
                if at == name.as_str() {
                    return Check::fail(
                        kind,
                        target,
                        Cause::D1,
                        format!("DNS problem: NXDOMAIN looking up A for {name}"),
                    );
                }
                return Check::fail(
                    kind,
                    target,
                    Cause::D5,
                    format!("{name}{via}: the CNAME target {at} does not exist (NXDOMAIN)"),
                );
            }
        }
        Check::fail(
            kind,
            target,
            Cause::D5,
            format!("No valid IP addresses found for {name}{via}: no A or AAAA record"),
        )
    }

    fn v4_any(&self) -> Answer<()> {
        erase(&self.v4)
    }

    fn v6_any(&self) -> Answer<()> {
        erase(&self.v6)
    }

    /// How this server's answer compares with others': the addresses, or the kind of
    /// absence; `None` for failures, which are reported on their own (D2, D4).
    pub(super) fn view(&self) -> Option<String> {
        let addresses = self.addresses();
        if !addresses.is_empty() {
            return Some(join(&addresses));
        }
        match (self.v4_any(), self.v6_any()) {
            (Answer::NxDomain { .. }, _) | (_, Answer::NxDomain { .. }) => Some("NXDOMAIN".into()),
            (Answer::NoData { .. }, Answer::NoData { .. }) => Some("no address".into()),
            _ => None,
        }
    }
}

fn erase<T>(answer: &Answer<T>) -> Answer<()> {
    match answer {
        Answer::Records { ttl, chain, .. } => Answer::Records {
            records: Vec::new(),
            ttl: *ttl,
            chain: chain.clone(),
        },
        Answer::NoData { chain } => Answer::NoData {
            chain: chain.clone(),
        },
        Answer::NxDomain { at, chain } => Answer::NxDomain {
            at: at.clone(),
            chain: chain.clone(),
        },
        Answer::Failure(code) => Answer::Failure(*code),
        Answer::Timeout => Answer::Timeout,
        Answer::Unreachable(e) => Answer::Unreachable(e.clone()),
    }
}

/// The cause of a failed lookup (not of an empty one).
fn failure_cause(answer: &Answer<()>) -> Option<Cause> {
    match answer {
        Answer::Failure(_) => Some(Cause::D2),
        Answer::Timeout | Answer::Unreachable(_) => Some(Cause::D4),
        _ => None,
    }
}

/// ` (CNAME a -> b)` or nothing.
pub(super) fn chain_text(name: &DnsName, chain: &[String]) -> String {
    if chain.is_empty() {
        return String::new();
    }
    let mut text = format!(" (CNAME {name}");
    for target in chain {
        text.push_str(" -> ");
        text.push_str(target);
    }
    text.push(')');
    text
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the address checks learnt: the CA's view (the union over the recursive resolvers).
#[derive(Debug, Default)]
pub(super) struct Findings {
    pub addresses: Vec<IpAddr>,
    pub chain: Vec<String>,
    /// The authoritative servers of the zone (for the TXT checks); empty when not found.
    pub authoritative: Vec<Upstream>,
}

/// Runs the address checks of `name`: per resolver; per authoritative server of every zone
/// the name and its CNAME chain pass through (D2, D4, D11, [`super::zone`]); D6; D7.
pub(super) async fn check_addresses(
    dns: &Dns,
    name: &DnsName,
    config: &ProbeConfig,
    checks: &mut Vec<Check>,
) -> Findings {
    let recursive = resolve_all(dns.recursive(), name.as_str()).await;
    let mut findings = Findings::default();
    for (label, resolution) in &recursive {
        checks.push(resolution.check(CheckKind::DnsResolve, label, name));
        findings.addresses.extend(resolution.addresses());
        if findings.chain.is_empty() {
            findings.chain = resolution.chain();
        }
    }
    findings.addresses.sort();
    findings.addresses.dedup();
    // The chain the resolvers followed, each of its names at its own zone's servers.
    let ((zone_checks, authoritative_view), servers) = tokio::join!(
        super::zone::chain_checks(dns, name, &findings.chain),
        dns.authoritative_for(name),
    );
    checks.extend(zone_checks);
    if let Ok(servers) = servers {
        findings.authoritative = servers;
    }

    checks.push(points_here(name, &findings, config));
    // The resolvers against each other, and against the authoritative servers of the chain's
    // last name when those agree among themselves (a resolver with another answer sees
    // another view, D7).
    let mut resolver_views = views(&recursive);
    if let Some(addresses) = authoritative_view {
        resolver_views.insert("authoritative servers".into(), join(&addresses));
    }
    checks.push(agreement(
        CheckKind::DnsAgree,
        Cause::D7,
        "resolvers",
        &resolver_views,
    ));
    findings
}

/// Every server's answer for `name`, asked at once.
async fn resolve_all(servers: &[Upstream], name: &str) -> Vec<(String, Resolution)> {
    let asks = servers
        .iter()
        .map(|up| async move { (up.label.clone(), Resolution::of(up, name).await) });
    futures_util::future::join_all(asks).await
}

fn views(resolutions: &[(String, Resolution)]) -> BTreeMap<String, String> {
    resolutions
        .iter()
        .filter_map(|(label, r)| r.view().map(|v| (label.clone(), v)))
        .collect()
}

fn agreement(kind: CheckKind, cause: Cause, what: &str, views: &BTreeMap<String, String>) -> Check {
    if views.len() < 2 {
        return Check::skip(kind, "", format!("fewer than two {what} answered"));
    }
    let distinct: BTreeSet<&String> = views.values().collect();
    if let [view] = distinct.into_iter().collect::<Vec<_>>()[..] {
        let labels: Vec<&str> = views.keys().map(String::as_str).collect();
        return Check::pass(kind, "", format!("{} agree: {view}", labels.join(", ")));
    }
    let detail = views
        .iter()
        .map(|(label, view)| format!("{label}: {view}"))
        .collect::<Vec<_>>()
        .join("; ");
    Check::fail(kind, "", cause, format!("answers differ: {detail}"))
}

/// D6: the CA's view must be the node's addresses, or reach the CDN's CNAME target.
fn points_here(name: &DnsName, findings: &Findings, config: &ProbeConfig) -> Check {
    let kind = CheckKind::DnsPointsHere;
    if config.public_addresses.is_empty() && config.cname_target.is_none() {
        return Check::skip(
            kind,
            "",
            "set probe.public_addresses or probe.cname_target to compare",
        );
    }
    if findings.addresses.is_empty() {
        return Check::skip(kind, "", "no address to compare");
    }
    let via = chain_text(name, &findings.chain);
    if let Some(target) = &config.cname_target {
        if findings.chain.iter().any(|c| c == target.as_str()) {
            return Check::pass(kind, "", format!("{name}{via} reaches {target}"));
        }
    }
    if !config.public_addresses.is_empty() {
        let foreign: Vec<IpAddr> = findings
            .addresses
            .iter()
            .filter(|a| !config.public_addresses.contains(a))
            .copied()
            .collect();
        if foreign.is_empty() {
            return Check::pass(
                kind,
                "",
                format!("{name}{via} -> {}: this node", join(&findings.addresses)),
            );
        }
        if foreign.len() < findings.addresses.len() {
            // Some addresses are this node's: whether the CA validates depends on which it
            // tries and what the others answer (the fetch checks say: H1 falls back, an answer
            // from a foreign server fails), so this alone is a warning.
            return Check::warn(
                kind,
                "",
                Cause::D6,
                format!(
                    "{name}{via} resolves to {} besides this node ({})",
                    join(&foreign),
                    join(&config.public_addresses)
                ),
            );
        }
        return Check::fail(
            kind,
            "",
            Cause::D6,
            format!(
                "{name}{via} resolves to {}, not to this node ({})",
                join(&foreign),
                join(&config.public_addresses)
            ),
        );
    }
    let target = config
        .cname_target
        .as_ref()
        .map_or(String::new(), ToString::to_string);
    Check::fail(
        kind,
        "",
        Cause::D6,
        format!(
            "{name}{} -> {} does not go through the CDN name {target}",
            if via.is_empty() {
                " (no CNAME)".to_owned()
            } else {
                via
            },
            join(&findings.addresses)
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::probe::Status;

    fn name() -> DnsName {
        "shop.dcvcheck.com".parse().unwrap()
    }

    fn resolution(v4: Answer<Ipv4Addr>, v6: Answer<Ipv6Addr>) -> Resolution {
        Resolution { v4, v6 }
    }

    fn check(r: &Resolution) -> (Status, Option<Cause>, String) {
        let c = r.check(CheckKind::DnsResolve, "r", &name());
        (c.status, c.cause, c.detail)
    }

    #[test]
    fn outcomes_map_to_their_causes() {
        let nx = Answer::NxDomain {
            at: "shop.dcvcheck.com".into(),
            chain: vec![],
        };
        let (s, c, d) = check(&resolution(nx.clone(), Answer::NoData { chain: vec![] }));
        assert_eq!((s, c), (Status::Fail, Some(Cause::D1)));
        assert_eq!(
            d,
            "DNS problem: NXDOMAIN looking up A for shop.dcvcheck.com"
        );

        let sf = Answer::Failure(ResponseCode::ServFail);
        let (_, c, d) = check(&resolution(sf, Answer::Failure(ResponseCode::ServFail)));
        assert_eq!(c, Some(Cause::D2));
        assert_eq!(
            d,
            "DNS problem: SERVFAIL looking up A for shop.dcvcheck.com"
        );

        let (_, c, _) = check(&resolution(Answer::Timeout, Answer::Timeout));
        assert_eq!(c, Some(Cause::D4));

        let (_, c, d) = check(&resolution(
            Answer::NoData { chain: vec![] },
            Answer::NoData { chain: vec![] },
        ));
        assert_eq!(c, Some(Cause::D5));
        assert!(d.starts_with("No valid IP addresses found"), "{d}");

        let dangling = Answer::NxDomain {
            at: "gone.cdn.net".into(),
            chain: vec!["gone.cdn.net".into()],
        };
        let (_, c, d) = check(&resolution(dangling, Answer::NoData { chain: vec![] }));
        assert_eq!(c, Some(Cause::D5));
        assert!(d.contains("CNAME shop.dcvcheck.com -> gone.cdn.net"), "{d}");
    }

    #[test]
    fn an_address_with_the_other_family_failing_is_a_warning() {
        let v4 = Answer::Records {
            records: vec![Ipv4Addr::new(192, 0, 2, 1)],
            ttl: 60,
            chain: vec![],
        };
        let (s, c, _) = check(&resolution(v4.clone(), Answer::NoData { chain: vec![] }));
        assert_eq!((s, c), (Status::Pass, None));
        let (s, c, _) = check(&resolution(v4, Answer::Timeout));
        assert_eq!((s, c), (Status::Warn, Some(Cause::D4)));
    }

    #[test]
    fn disagreement_names_every_view() {
        let mut views = BTreeMap::new();
        views.insert("a".to_owned(), "192.0.2.1".to_owned());
        views.insert("b".to_owned(), "192.0.2.1".to_owned());
        let c = agreement(CheckKind::DnsAgree, Cause::D7, "resolvers", &views);
        assert_eq!(c.status, Status::Pass);
        views.insert("c".to_owned(), "NXDOMAIN".to_owned());
        let c = agreement(CheckKind::DnsAgree, Cause::D7, "resolvers", &views);
        assert_eq!((c.status, c.cause), (Status::Fail, Some(Cause::D7)));
        assert!(c.detail.contains("c: NXDOMAIN"), "{}", c.detail);
    }

    #[test]
    fn points_here_compares_addresses_and_cname_target() {
        let mut config = crate::config::Config::parse(std::path::Path::new("x.toml"), "")
            .unwrap()
            .probe;
        let findings = Findings {
            addresses: vec!["192.0.2.1".parse().unwrap(), "192.0.2.9".parse().unwrap()],
            chain: vec!["edge.cdn.net".into()],
            authoritative: vec![],
        };
        assert_eq!(
            points_here(&name(), &findings, &config).status,
            Status::Skip
        );
        config.public_addresses = vec!["192.0.2.1".parse().unwrap()];
        let c = points_here(&name(), &findings, &config);
        assert_eq!((c.status, c.cause), (Status::Warn, Some(Cause::D6)));
        assert!(c.detail.contains("192.0.2.9"), "{}", c.detail);
        config.public_addresses = vec!["192.0.2.7".parse().unwrap()];
        let c = points_here(&name(), &findings, &config);
        assert_eq!((c.status, c.cause), (Status::Fail, Some(Cause::D6)));
        config.cname_target = Some("edge.cdn.net".parse().unwrap());
        assert_eq!(
            points_here(&name(), &findings, &config).status,
            Status::Pass
        );
    }
}
