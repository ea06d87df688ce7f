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
