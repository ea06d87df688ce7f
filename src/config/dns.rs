//! The `[dns]` section: the node's authoritative listener for the CDN's validation zones
//! (delegated DCV, the scheme Cloudflare offers its customers), and its typed form.
//!
//! A customer publishes once `_acme-challenge.<name> CNAME <name>.<zone>.` and the fleet
//! answers the DNS-01 TXT records (RFC 8555 §8.4) under `<zone>` itself, from the shared
//! challenge store. Without a `[[dns.zone]]` there is no listener: nothing binds port 53.
//!
//! ```toml
//! [dns]
//! listen = ["0.0.0.0:53"]
//!
//! [[dns.zone]]
//! name = "dcv.cdn.example"
//! name_servers = ["ns1.dcv.cdn.example", "ns2.cdn.example"]
//! addresses = { "ns1.dcv.cdn.example" = ["203.0.113.10"] }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::probe::Refusal;
use super::value::{HumanDuration, Parsed};
use super::DnsName;

/// The listener and its zones, valid by construction: at least one zone, no zone inside
/// another, every name server inside its zone given its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// UDP and TCP addresses the listener binds (port 53 in production: resolvers ask no other).
    pub listen: Vec<SocketAddr>,
    pub zones: Vec<ValidationZone>,
    /// TTL of the challenge TXT records, of the SOA, and of negative answers (the SOA minimum,
    /// RFC 2308 §5): short, so a value of the last order is never what a resolver keeps.
    pub ttl: Duration,
    /// Responses per second to one source (an IPv4 /24, an IPv6 /56) over UDP; `0`: no limit.
    pub rate_limit: u32,
    /// TCP connections held at once (RFC 7766 §6.2.2: a server bounds them).
    pub tcp_connections: usize,
}

/// One validation zone the fleet is authoritative for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationZone {
    /// The zone apex, e.g. `dcv.cdn.example`.
    pub name: DnsName,
    /// Its NS set, as the parent zone delegates it (the first one is the SOA MNAME).
    pub name_servers: Vec<DnsName>,
    /// The SOA RNAME (`hostmaster.cdn.example` for `hostmaster@cdn.example`).
    pub hostmaster: DnsName,
    /// Addresses of the name servers inside the zone, served as their A/AAAA records: they must
    /// equal the glue at the parent (RFC 1034 §4.2.1). Out-of-zone name servers are not here.
    pub addresses: BTreeMap<DnsName, Vec<IpAddr>>,
}

impl ValidationZone {
    /// Where the TXT records of `name` are answered: `<name>.<zone>` (the target of the
    /// customer's `_acme-challenge` CNAME). `None` when that is longer than DNS allows (253).
    pub fn delegated(&self, name: &DnsName) -> Option<String> {
        let full = format!("{}.{}", name.as_str(), self.name.as_str());
        (full.len() <= 253).then_some(full)
    }

    /// The name server names inside the zone, whose addresses the zone serves.
    pub fn in_zone(&self, name: &str) -> bool {
        is_at_or_below(name, self.name.as_str())
    }
}

/// Whether `name` is `zone` or below it (names lowercase, without trailing dot).
pub fn is_at_or_below(name: &str, zone: &str) -> bool {
    name == zone
        || name
            .strip_suffix(zone)
            .is_some_and(|prefix| prefix.ends_with('.'))
}

/// `[dns]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    #[serde(default = "default_listen")]
    listen: Spanned<Vec<Parsed<SocketAddr>>>,
    #[serde(default = "default_ttl")]
    ttl: Spanned<Parsed<HumanDuration>>,
    #[serde(default = "default_rate_limit")]
    rate_limit: Spanned<u32>,
    #[serde(default = "default_tcp_connections")]
    tcp_connections: Spanned<u32>,
    #[serde(default, rename = "zone")]
    zones: Vec<RawZone>,
}

/// `[[dns.zone]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    name: Spanned<Parsed<DnsName>>,
    name_servers: Spanned<Vec<Parsed<DnsName>>>,
    hostmaster: Option<Spanned<String>>,
    #[serde(default = "no_addresses")]
    addresses: Spanned<BTreeMap<String, Vec<Parsed<IpAddr>>>>,
}

/// Checks what serde could not check alone. `None` when there is no `[dns]` section.
pub(super) fn build(raw: Option<RawDns>) -> Result<Option<DnsConfig>, Refusal> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.zones.is_empty() {
        return Err((
            raw.listen.span(),
            "dns.zone".into(),
            "[dns] without a [[dns.zone]]: name the validation zone the fleet answers (or remove [dns])".into(),
        ));
    }
    if raw.listen.get_ref().is_empty() {
        return Err((
            raw.listen.span(),
            "dns.listen".into(),
            "the DNS listener needs at least one address, e.g. [\"0.0.0.0:53\"]".into(),
        ));
    }
    let ttl = raw.ttl.get_ref().0 .0;
    if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(3600) {
        return Err((
            raw.ttl.span(),
            "dns.ttl".into(),
            format!("{ttl:?} is out of range (1s to 1h)"),
        ));
    }
    if *raw.rate_limit.get_ref() > 1_000_000 {
        return Err((
            raw.rate_limit.span(),
            "dns.rate_limit".into(),
            format!(
                "{} is out of range (0, no limit, to 1000000 responses per second)",
                raw.rate_limit.get_ref()
            ),
        ));
    }
    let tcp = *raw.tcp_connections.get_ref();
    if tcp == 0 || tcp > 65_536 {
        return Err((
            raw.tcp_connections.span(),
            "dns.tcp_connections".into(),
            format!("{tcp} is out of range (1 to 65536)"),
        ));
    }
    let mut zones: Vec<ValidationZone> = Vec::with_capacity(raw.zones.len());
    for (i, zone) in raw.zones.into_iter().enumerate() {
        let zone = build_zone(i, zone)?;
        if let Some(other) = zones.iter().find(|z| {
            is_at_or_below(zone.name.as_str(), z.name.as_str())
                || is_at_or_below(z.name.as_str(), zone.name.as_str())
        }) {
            return Err((
                0..0,
                format!("dns.zone[{i}].name"),
                format!(
                    "{} overlaps the zone {} (one is the other or inside it): a name would belong to both",
                    zone.name, other.name
                ),
            ));
        }
        zones.push(zone);
    }
    Ok(Some(DnsConfig {
        listen: raw.listen.into_inner().into_iter().map(|a| a.0).collect(),
        zones,
        ttl,
        rate_limit: raw.rate_limit.into_inner(),
        tcp_connections: tcp as usize,
    }))
}

fn build_zone(i: usize, raw: RawZone) -> Result<ValidationZone, Refusal> {
    let name_span = raw.name.span();
    let name = raw.name.into_inner().0;
    // The TXT records live at `<customer name>.<zone>`: a long zone leaves no room for them.
    if name.as_str().len() > 200 {
        return Err((
            name_span,
            format!("dns.zone[{i}].name"),
            format!(
                "{name} is {} characters long: at most 200, so that `<customer name>.{name}` fits in 253",
                name.as_str().len()
            ),
        ));
    }
    let ns_span = raw.name_servers.span();
    let name_servers: Vec<DnsName> = raw
        .name_servers
        .into_inner()
        .into_iter()
        .map(|n| n.0)
        .collect();
    if name_servers.is_empty() {
        return Err((
            ns_span,
            format!("dns.zone[{i}].name_servers"),
            "the zone's NS set, as its parent delegates it, e.g. [\"ns1.dcv.cdn.example\"]".into(),
        ));
    }
    let unique: BTreeSet<&DnsName> = name_servers.iter().collect();
    if unique.len() != name_servers.len() {
        return Err((
            ns_span,
            format!("dns.zone[{i}].name_servers"),
            "a name server is listed twice".into(),
        ));
    }
    let hostmaster = match raw.hostmaster {
        None => format!("hostmaster.{name}")
            .parse()
            .map_err(|e: String| (name_span.clone(), format!("dns.zone[{i}].name"), e))?,
        Some(mail) => rname(mail.get_ref())
            .map_err(|e| (mail.span(), format!("dns.zone[{i}].hostmaster"), e))?,
    };
    let addr_span = raw.addresses.span();
    let mut addresses = BTreeMap::new();
    for (host, ips) in raw.addresses.into_inner() {
        let key = format!("dns.zone[{i}].addresses");
        let host: DnsName = host
            .parse()
            .map_err(|e: String| (addr_span.clone(), key.clone(), e))?;
        if !name_servers.contains(&host) {
            return Err((
                addr_span,
                key,
                format!("{host} is not one of the zone's name_servers"),
            ));
        }
        if !is_at_or_below(host.as_str(), name.as_str()) {
            return Err((
                addr_span,
                key,
                format!(
                    "{host} is not inside {name}: its addresses are served by its own zone, not this one"
                ),
            ));
        }
        if ips.is_empty() {
            return Err((addr_span, key, format!("{host}: no address given")));
        }
        addresses.insert(host, ips.into_iter().map(|a| a.0).collect::<Vec<IpAddr>>());
    }
    // A name server inside the zone is found through the parent's glue, and the zone must
    // answer the same addresses (resolvers ask the child for them, RFC 1034 §4.2.1).
    if let Some(missing) = name_servers
        .iter()
        .find(|n| is_at_or_below(n.as_str(), name.as_str()) && !addresses.contains_key(*n))
    {
        return Err((
            ns_span,
            format!("dns.zone[{i}].addresses"),
            format!(
                "{missing} is inside {name}: give its addresses (the glue at the parent), e.g. addresses = {{ \"{missing}\" = [\"203.0.113.10\"] }}"
            ),
        ));
    }
    Ok(ValidationZone {
        name,
        name_servers,
        hostmaster,
        addresses,
    })
}

/// The SOA RNAME of a mailbox (RFC 1035 §8: the local part becomes the first label).
fn rname(mail: &str) -> Result<DnsName, String> {
    let Some((local, domain)) = mail.split_once('@') else {
        return format!("{mail}.").parse().map_err(|e: String| {
            format!("expected a mailbox like \"hostmaster@cdn.example\": {e}")
        });
    };
    if local.is_empty() || local.contains('.') {
        return Err(format!(
            "{mail:?}: the local part must be one label without dots (it becomes the first label of the SOA RNAME)"
        ));
    }
    format!("{local}.{domain}").parse()
}

fn default_listen() -> Spanned<Vec<Parsed<SocketAddr>>> {
    Spanned::new(0..0, vec![Parsed(SocketAddr::from(([0, 0, 0, 0], 53)))])
}
fn default_ttl() -> Spanned<Parsed<HumanDuration>> {
    Spanned::new(0..0, Parsed(HumanDuration(Duration::from_secs(10))))
}
fn default_rate_limit() -> Spanned<u32> {
    Spanned::new(0..0, 100)
}
fn default_tcp_connections() -> Spanned<u32> {
    Spanned::new(0..0, 128)
}
fn no_addresses() -> Spanned<BTreeMap<String, Vec<Parsed<IpAddr>>>> {
    Spanned::new(0..0, BTreeMap::new())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_below_a_zone_are_told_from_look_alikes() {
        assert!(is_at_or_below("a.dcv.cdn.test", "dcv.cdn.test"));
        assert!(is_at_or_below("dcv.cdn.test", "dcv.cdn.test"));
        assert!(!is_at_or_below("xdcv.cdn.test", "dcv.cdn.test"));
        assert!(!is_at_or_below("cdn.test", "dcv.cdn.test"));
    }

    const ACME: &str = "[acme]\nterms_agreed = true\n";
    const ZONE: &str = "[dns]\nlisten = [\"127.0.0.1:53\"]\n[[dns.zone]]\nname = \"dcv.cdn.test\"\nname_servers = [\"ns1.cdn.test\"]\n";

    fn parse(text: &str) -> Result<super::super::Config, String> {
        super::super::Config::parse(std::path::Path::new("t.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_wildcard_certificate_needs_dns_01_and_dns_01_needs_a_zone() {
        let wild = "[[certificate]]\nnames = [\"*.shop.test\", \"shop.test\"]\n";
        let e = parse(&format!("{ACME}{wild}")).unwrap_err();
        assert!(
            e.contains("certificate[0].names[0]") && e.contains("dns-01"),
            "{e}"
        );
        let e = parse(&format!("{ACME}{wild}challenge = \"dns-01\"\n")).unwrap_err();
        assert!(
            e.contains("certificate[0].challenge") && e.contains("[dns]"),
            "{e}"
        );
        let c = parse(&format!("{ACME}{ZONE}{wild}challenge = \"dns-01\"\n")).unwrap();
        let cert = &c.certificates[0];
        assert_eq!(cert.id.as_str(), "wildcard.shop.test");
        let first = cert.names[0].dns().unwrap();
        assert!(first.is_wildcard());
        assert_eq!(first.base().as_str(), "shop.test");
        assert_eq!(c.probe.dns, c.dns, "the probe knows the zones");
    }

    #[test]
    fn zones_are_refused_with_the_reason() {
        let e = parse("[dns]\n").unwrap_err();
        assert!(e.contains("dns.zone"), "{e}");
        let e =
            parse("[[dns.zone]]\nname = \"dcv.cdn.test\"\nname_servers = [\"ns1.dcv.cdn.test\"]\n")
                .unwrap_err();
        assert!(
            e.contains("dns.zone[0].addresses") && e.contains("glue"),
            "{e}"
        );
        let e = parse(&format!(
            "{ZONE}addresses = {{ \"ns1.cdn.test\" = [\"192.0.2.1\"] }}\n"
        ))
        .unwrap_err();
        assert!(e.contains("not inside"), "{e}");
        let e = parse(&format!(
            "{ZONE}[[dns.zone]]\nname = \"a.dcv.cdn.test\"\nname_servers = [\"ns1.cdn.test\"]\n"
        ))
        .unwrap_err();
        assert!(e.contains("overlaps"), "{e}");
        let e = parse(&format!("{ZONE}unknown = 1\n")).unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        let c = parse(ZONE).unwrap();
        let dns = c.dns.unwrap();
        assert_eq!(dns.ttl, Duration::from_secs(10));
        assert_eq!(dns.zones[0].hostmaster.as_str(), "hostmaster.dcv.cdn.test");
        assert_eq!(
            dns.zones[0]
                .delegated(&"shop.test".parse().unwrap())
                .as_deref(),
            Some("shop.test.dcv.cdn.test")
        );
        assert!(parse("").unwrap().dns.is_none(), "off unless configured");
    }

    #[test]
    fn a_mailbox_becomes_the_rname() {
        assert_eq!(
            rname("hostmaster@cdn.example").unwrap().as_str(),
            "hostmaster.cdn.example"
        );
        assert!(rname("first.last@cdn.example").is_err());
    }
}
