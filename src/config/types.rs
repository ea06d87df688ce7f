//! Value types that are valid by construction: a [`DnsName`] is a hostname a CA would accept, an
//! [`OriginAddr`] is a resolved socket address with its TLS settings.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

/// A lowercase DNS hostname without trailing dot: labels of 1–63 letters, digits and inner hyphens,
/// at most 253 characters in all (RFC 1035 §2.3.4; catalogue P6). A certificate name may also be
/// `*.` and such a name ([`DnsName::wildcard`]): parsing never makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(String);

impl DnsName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `*.parent`, a wildcard certificate name (RFC 8555 §7.1.3), validated over DNS only.
    pub fn wildcard(parent: &DnsName) -> Result<DnsName, String> {
        if parent.is_wildcard() || parent.0.len() + 2 > 253 {
            return Err(format!("*.{parent} is not a wildcard name a CA accepts"));
        }
        Ok(DnsName(format!("*.{parent}")))
    }

    /// Whether this is `*.parent`.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// The name without its `*.` label: where a wildcard's DNS-01 record is (RFC 8555 §8.4).
    pub fn base(&self) -> DnsName {
        DnsName(self.0.strip_prefix("*.").unwrap_or(&self.0).to_owned())
    }

    /// The name with a leading `www.` removed, or with one added: the CA checks both (H8).
    pub fn www_sibling(&self) -> DnsName {
        match self.0.strip_prefix("www.") {
            Some(apex) if apex.contains('.') => DnsName(apex.to_owned()),
            _ => DnsName(format!("www.{}", self.0)),
        }
    }
}

impl FromStr for DnsName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        if name.is_empty() {
            return Err("empty name".into());
        }
        if name.len() > 253 {
            return Err(format!(
                "{s:?} is {} characters long, at most 253 are allowed",
                name.len()
            ));
        }
        for label in name.split('.') {
            if label.is_empty() {
                return Err(format!("{s:?} has an empty label"));
            }
            if label.len() > 63 {
                return Err(format!(
                    "{s:?}: label {label:?} is longer than 63 characters"
                ));
            }
            if let Some(c) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
            {
                return Err(format!(
                    "{s:?}: character {c:?} is not allowed (letters, digits and '-' only; write internationalised names as punycode, xn--…)"
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(format!("{s:?}: label {label:?} starts or ends with '-'"));
            }
        }
        Ok(DnsName(name))
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A site name: an exact hostname, or `*.parent` covering one label below `parent`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    Exact(DnsName),
    Wildcard(DnsName),
}

impl HostPattern {
    /// Whether `host` (lowercase, no port) falls under this pattern.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(n) => n.as_str() == host,
            HostPattern::Wildcard(parent) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent.as_str()),
        }
    }
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("*.") {
            Some(parent) => Ok(HostPattern::Wildcard(parent.parse()?)),
            None if s.contains('*') => Err(format!(
                "{s:?}: a wildcard may only be the whole leftmost label (\"*.example.com\")"
            )),
            None => Ok(HostPattern::Exact(s.parse()?)),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(n) => write!(f, "{n}"),
            HostPattern::Wildcard(n) => write!(f, "*.{n}"),
        }
    }
}

/// Where proxied requests go: a socket address, plain or TLS.
///
/// Written `127.0.0.1:8080`, `http://origin.internal:8080` or `https://origin.example.com`.
/// Hostnames are resolved once, when the configuration is loaded, like nginx does for a static
/// `proxy_pass`: a request never waits on DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginAddr {
    pub addr: SocketAddr,
    pub tls: bool,
    /// SNI and certificate name when `tls` (the host as written).
    pub host: String,
    /// The text as written in the configuration.
    pub written: String,
}

impl FromStr for OriginAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (tls, rest) = if let Some(rest) = s.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = s.strip_prefix("http://") {
            (false, rest)
        } else if s.contains("://") {
            return Err(format!(
                "{s:?}: only http:// and https:// origins are supported"
            ));
        } else {
            (false, s)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(format!("{s:?}: an origin is host:port, without a path"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = split_host_port(rest, default_port)
            .ok_or_else(|| format!("{s:?}: expected host:port (e.g. \"127.0.0.1:8080\")"))?;
        let addr = resolve(&host, port)
            .map_err(|e| format!("{s:?}: cannot resolve {host:?}: {e}"))?
            .ok_or_else(|| format!("{s:?}: {host:?} resolves to no address"))?;
        Ok(OriginAddr {
            addr,
            tls,
            host,
            written: s.to_owned(),
        })
    }
}

/// The first address of `host`.
#[cfg(not(fuzzing))]
fn resolve(host: &str, port: u16) -> std::io::Result<Option<SocketAddr>> {
    use std::net::ToSocketAddrs;
    (host, port).to_socket_addrs().map(|mut addrs| addrs.next())
}

/// Under the fuzzer the configuration parser never asks the network: only IP literals
/// resolve (a name would be a DNS query per input).
#[cfg(fuzzing)]
fn resolve(host: &str, port: u16) -> std::io::Result<Option<SocketAddr>> {
    host.parse::<std::net::IpAddr>()
        .map(|ip| Some(SocketAddr::new(ip, port)))
        .map_err(|_| std::io::Error::other("names are not resolved while fuzzing"))
}

/// Splits `host[:port]`, `[v6][:port]`; `None` when the port is not a number.
fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host.to_owned(), port.parse().ok()?)),
        Some(_) => None,
        None if s.is_empty() => None,
        None => Some((s.to_owned(), default_port)),
    }
}

/// The certificate id reserved for the default certificate (presented when nothing else covers
/// the requested name).
pub const DEFAULT_CERT_ID: &str = "default";

/// A certificate id: the file stem under `certs/`, `[a-z0-9][a-z0-9._-]{0,63}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CertId(Arc<str>);

impl CertId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
            })
            && !s.contains("..");
        if ok {
            Ok(CertId(s.into()))
        } else {
            Err(format!(
                "{s:?} is not a certificate id (1-64 of a-z, 0-9, '.', '-', '_', starting with a letter or digit)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CertId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CertId::parse(s)
    }
}

impl fmt::Display for CertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name a certificate is ordered for: a DNS name (RFC 8555 §9.7.7 `dns` identifier), or an
/// IP address (RFC 8738 §3 `ip` identifier), validated by HTTP-01 or TLS-ALPN-01 only (RFC 8738
/// §7: there is no DNS-01 for an address) and without CAA (CAA records live in DNS names).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CertName {
    Dns(DnsName),
    Ip(std::net::IpAddr),
}

impl CertName {
    /// The IP address, for an `ip` identifier.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            CertName::Ip(ip) => Some(*ip),
            CertName::Dns(_) => None,
        }
    }

    /// The DNS name, for a `dns` identifier.
    pub fn dns(&self) -> Option<&DnsName> {
        match self {
            CertName::Dns(n) => Some(n),
            CertName::Ip(_) => None,
        }
    }

    /// The text of the name as it appears in a subjectAltName, a `Host` header (without
    /// brackets) and the ACME identifier's `value`: RFC 5952 form for IPv6 (RFC 8738 §3).
    pub fn text(&self) -> String {
        self.to_string()
    }

    /// Parses a certificate name: an IP address (IPv4 dotted quad, or IPv6, optionally in
    /// brackets), else a [`HostPattern`]. Returns the address in canonical form (RFC 5952 for
    /// IPv6), or why it cannot be ordered.
    pub fn parse(s: &str) -> Result<Result<CertName, HostPattern>, String> {
        let bare = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
            return check_ip(s, ip).map(|ip| Ok(CertName::Ip(ip)));
        }
        // Something that looks like an address but is not one ("1.2.3", "10.0.0.256"): a DNS
        // name of digits only is no name a CA issues for (RFC 1123 §2.1, the TLD is not numeric).
        let last = s.rsplit('.').next().unwrap_or(s);
        if s.contains(':') || (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format!(
                "{s:?} is neither an IP address (\"192.0.2.1\", \"2001:db8::1\") nor a DNS name"
            ));
        }
        s.parse::<HostPattern>().map(Err)
    }
}

/// Refuses addresses no CA issues for and IPv4 written as IPv6 (RFC 8738 §3: an IPv4 address
/// is the dotted-quad form, an IPv6 one RFC 5952's).
fn check_ip(s: &str, ip: std::net::IpAddr) -> Result<std::net::IpAddr, String> {
    use std::net::IpAddr;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(format!(
            "{s:?} is an unspecified or multicast address: a certificate is for one address a client connects to"
        ));
    }
    if let IpAddr::V4(v4) = ip {
        if v4.is_broadcast() {
            return Err(format!("{s:?} is the broadcast address"));
        }
    }
    if let IpAddr::V6(v6) = ip {
        if let Some(v4) = v6.to_ipv4_mapped() {
            return Err(format!(
                "{s:?} is an IPv4-mapped IPv6 address: write it as {v4} (RFC 8738 §3)"
            ));
        }
    }
    Ok(ip)
}

impl fmt::Display for CertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertName::Dns(n) => write!(f, "{n}"),
            CertName::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The reverse-DNS name of `ip` (RFC 1035 §3.5 `in-addr.arpa`, RFC 3596 §2.5 `ip6.arpa`),
/// without the trailing dot: the SNI a CA sends in a TLS-ALPN-01 validation of an IP
/// identifier (RFC 8738 §6).
pub fn reverse_dns_name(ip: std::net::IpAddr) -> String {
    use std::fmt::Write as _;
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        std::net::IpAddr::V6(v6) => {
            let mut out = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                let _ = write!(out, "{:x}.{:x}.", byte & 0x0f, byte >> 4);
            }
            out.push_str("ip6.arpa");
            out
        }
    }
}

/// The address whose reverse-DNS name is `name` (case-insensitive, trailing dot allowed), the
/// inverse of [`reverse_dns_name`]; `None` for any other name.
pub fn ip_of_reverse_name(name: &str) -> Option<std::net::IpAddr> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets = [0u8; 4];
        let labels: Vec<&str> = rest.split('.').collect();
        if labels.len() != 4 {
            return None;
        }
        for (i, label) in labels.iter().rev().enumerate() {
            // No leading zeros: "01" is not how an address's reverse name is written.
            if label.is_empty() || (label.len() > 1 && label.starts_with('0')) {
                return None;
            }
            octets[i] = label.parse().ok()?;
        }
        return Some(std::net::Ipv4Addr::from(octets).into());
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<&str> = rest.split('.').collect();
    if nibbles.len() != 32 {
        return None;
    }
    let mut octets = [0u8; 16];
    for (i, pair) in nibbles.chunks(2).enumerate() {
        let low = u8::from_str_radix(pair[0], 16)
            .ok()
            .filter(|_| pair[0].len() == 1)?;
        let high = u8::from_str_radix(pair[1], 16)
            .ok()
            .filter(|_| pair[1].len() == 1)?;
        octets[15 - i] = (high << 4) | low;
    }
    Some(std::net::Ipv6Addr::from(octets).into())
}

#[cfg(test)]
mod cert_name_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn addresses_are_canonical_and_names_stay_names() {
        let ip = |s: &str| match CertName::parse(s).unwrap() {
            Ok(CertName::Ip(ip)) => ip.to_string(),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(ip("192.0.2.1"), "192.0.2.1");
        assert_eq!(ip("2001:DB8:0:0::1"), "2001:db8::1");
        assert_eq!(ip("[2001:db8::1]"), "2001:db8::1");
        assert!(matches!(
            CertName::parse("a.example.test").unwrap(),
            Err(HostPattern::Exact(_))
        ));
        for bad in [
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
            "::ffff:192.0.2.1",
        ] {
            assert!(CertName::parse(bad).is_err(), "{bad}");
        }
        for bad in ["10.0.0.256", "1.2.3", "2001:db8::g"] {
            let e = CertName::parse(bad).unwrap_err();
            assert!(e.contains("neither an IP address"), "{bad}: {e}");
        }
    }

    #[test]
    fn reverse_names_round_trip() {
        let v4: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(reverse_dns_name(v4), "1.0.0.127.in-addr.arpa");
        assert_eq!(ip_of_reverse_name("1.0.0.127.in-addr.arpa."), Some(v4));
        let v6: std::net::IpAddr = "2001:db8::567:89ab".parse().unwrap();
        // RFC 8738 §6's example.
        assert_eq!(
            reverse_dns_name(v6),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
        assert_eq!(ip_of_reverse_name(&reverse_dns_name(v6)), Some(v6));
        for other in [
            "a.example.test",
            "1.0.0.in-addr.arpa",
            "01.0.0.127.in-addr.arpa",
            "x.ip6.arpa",
        ] {
            assert_eq!(ip_of_reverse_name(other), None, "{other}");
        }
    }
}
