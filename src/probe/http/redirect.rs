//! Following a redirect the way Boulder does (`processRedirect`, `extractRequestTarget`): the
//! `Location` resolved against the current URL as Go's `url.Parse` and `ResolveReference` do,
//! the scheme, port, host and path rules, the IANA special-purpose blocks, and the address a
//! redirect target is fetched from.

use std::net::IpAddr;
use std::str::FromStr;

use super::{Url, GENERIC};
use crate::probe::dns::{Answer, Resolution, Upstream};

/// `newHTTPValidationTarget` for a redirect target: A and AAAA, the first AAAA address, else
/// the first A address, in the resolver's answer order (`getAddrs` puts AAAA first).
pub(super) async fn resolve_first(resolver: &Upstream, host: &str) -> Result<IpAddr, String> {
    let resolution = Resolution::of(resolver, host).await;
    if let Answer::Records { records, .. } = &resolution.v6 {
        if let Some(v6) = records.first() {
            return Ok(IpAddr::V6(*v6));
        }
    }
    if let Answer::Records { records, .. } = &resolution.v4 {
        if let Some(v4) = records.first() {
            return Ok(IpAddr::V4(*v4));
        }
    }
    Err(format!(
        "DNS problem: {} looking up A for {host}; DNS problem: {} looking up AAAA for {host}",
        resolution.v4.describe_failure(),
        resolution.v6.describe_failure()
    ))
}

/// A `Location` resolved against the URL that sent it (Go's `URL.Parse`, RFC 3986 §5.2), before
/// Boulder's rules look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reference {
    /// Lowercase (Go lowercases the scheme).
    pub(super) scheme: String,
    /// Lowercase (Boulder lowercases the host first thing), brackets kept for IPv6.
    pub(super) host: String,
    /// The port as written, if any.
    pub(super) port: Option<String>,
    /// The path as written (percent-encoded), dot segments removed.
    pub(super) path: String,
    pub(super) query: Option<String>,
}

/// Go's `(*URL).Parse(location)` on `current`: parses the reference (scheme, authority, path,
/// query; the fragment is dropped, it is never sent) and resolves it (`ResolveReference`,
/// `resolvePath`).
pub(super) fn resolve_reference(current: &Url, location: &str) -> Result<Reference, String> {
    if location.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    let without_fragment = location.split('#').next().unwrap_or("");
    // Go's `getScheme`: a letter, then letters, digits, '+', '-', '.', up to ':'.
    let mut scheme = None;
    let mut rest = without_fragment;
    for (i, c) in without_fragment.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err("missing protocol scheme".into()),
            ':' => {
                scheme = Some(without_fragment[..i].to_ascii_lowercase());
                rest = &without_fragment[i + 1..];
                break;
            }
            _ => break,
        }
    }
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q.to_owned())),
        None => (rest, None),
    };
    let (authority, path) = match rest.strip_prefix("//") {
        Some(after) if scheme.is_some() || !rest.starts_with("///") => {
            let end = after.find('/').unwrap_or(after.len());
            (Some(&after[..end]), &after[end..])
        }
        _ => (None, rest),
    };
    if scheme.is_some() && authority.is_none() && !path.starts_with('/') && !path.is_empty() {
        // An opaque URL (`http:foo`): no host.
        return Ok(Reference {
            scheme: scheme.unwrap_or_default(),
            host: String::new(),
            port: None,
            path: String::new(),
            query,
        });
    }
    let current_scheme = if current.https { "https" } else { "http" };
    match authority {
        Some(authority) => {
            let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let (host, port) = split_host_port(hostport)?;
            Ok(Reference {
                scheme: scheme.unwrap_or_else(|| current_scheme.to_owned()),
                host: host.to_ascii_lowercase(),
                port,
                path: resolve_path(path, ""),
                query,
            })
        }
        None if scheme.is_some() => Ok(Reference {
            // `http:/x`: a scheme and a path, no host.
            scheme: scheme.unwrap_or_default(),
            host: String::new(),
            port: None,
            path: resolve_path(path, ""),
            query,
        }),
        None => {
            let (base_path, base_query) = match current.path.split_once('?') {
                Some((p, q)) => (p, Some(q.to_owned())),
                None => (current.path.as_str(), None),
            };
            // An empty reference keeps the base query too.
            let query = if path.is_empty() && query.is_none() {
                base_query
            } else {
                query
            };
            let default = if current.https { 443 } else { 80 };
            Ok(Reference {
                scheme: current_scheme.to_owned(),
                host: current.host.clone(),
                port: (current.port != default).then(|| current.port.to_string()),
                path: resolve_path(base_path, path),
                query,
            })
        }
    }
}

/// Go's `parseHost` for an authority: `[v6]:port` or `host:port`, the port digits only.
fn split_host_port(hostport: &str) -> Result<(String, Option<String>), String> {
    let (host, port) = if hostport.starts_with('[') {
        let Some(end) = hostport.find(']') else {
            return Err("missing ']' in host".into());
        };
        let (host, after) = hostport.split_at(end + 1);
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("invalid port {after:?} after host")),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        Some("") | None => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Some(p.to_owned()),
        Some(p) => return Err(format!("invalid port \":{p}\" after host")),
    };
    // `%25` is how a zone is written in a URL (RFC 6874).
    Ok((host.replace("%25", "%"), port))
}

/// Go's `resolvePath` (net/url): `reference` merged with `base`, dot segments removed.
fn resolve_path(base: &str, reference: &str) -> String {
    let full = if reference.is_empty() {
        base.to_owned()
    } else if !reference.starts_with('/') {
        let cut = base.rfind('/').map_or(0, |i| i + 1);
        format!("{}{reference}", &base[..cut])
    } else {
        reference.to_owned()
    };
    if full.is_empty() {
        return String::new();
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = full.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                // Never above the root: the first (empty) segment stays.
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if joined.starts_with("//") {
        // Go writes one leading '/' and drops a second.
        joined[1..].to_owned()
    } else if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

/// Boulder's `extractRequestTarget` (va/http.go): the scheme, the port, the host of a redirect
/// target, in its order and with its words; then the URL the probe requests next.
pub(super) fn extract_request_target(
    reference: &Reference,
    http_port: u16,
    https_port: u16,
) -> Result<Url, String> {
    let https = match reference.scheme.as_str() {
        "http" => false,
        "https" => true,
        other => {
            return Err(format!(
                "Invalid protocol scheme in redirect target. Only \"http\" and \"https\" protocol schemes are supported, not {other:?}"
            ))
        }
    };
    let port = match &reference.port {
        Some(digits) => {
            let port: u64 = digits.parse().map_err(|e| format!("{GENERIC} ({e})"))?;
            if port != u64::from(http_port) && port != u64::from(https_port) {
                return Err(format!(
                    "Invalid port in redirect target. Only ports {http_port} and {https_port} are supported, not {port}"
                ));
            }
            // Checked equal to one of two u16 just above.
            u16::try_from(port).unwrap_or(http_port)
        }
        None if https => https_port,
        None => http_port,
    };
    let bare = reference
        .host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(&reference.host);
    if bare.is_empty() {
        return Err("Invalid empty host in redirect target".into());
    }
    // Apache's `Redirect / https://example.org` without the slash.
    if bare.ends_with(".well-known") {
        return Err(format!(
            "Invalid host in redirect target {bare:?}. Check webserver config for missing '/' in redirect target."
        ));
    }
    let (address, zone) = match bare.split_once('%') {
        Some((address, zone)) => (address, Some(zone)),
        None => (bare, None),
    };
    let path = if reference.path.is_empty() {
        "/".to_owned()
    } else {
        reference.path.clone()
    };
    let path = match &reference.query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    if let Ok(ip) = IpAddr::from_str(address) {
        if zone.is_some() {
            return Err("Invalid host in redirect target: contains scope zone".into());
        }
        if let Some(reserved) = reserved_block(ip) {
            return Err(format!("Invalid host in redirect target: {reserved}"));
        }
        let host = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        return Ok(Url {
            https,
            host,
            port,
            path,
        });
    }
    if !has_iana_tld(bare) {
        return Err("Invalid host in redirect target, must end in IANA registered TLD".into());
    }
    Ok(Url {
        https,
        host: bare.to_owned(),
        port,
        path,
    })
}

/// The length of a path once percent-decoded (Go's `URL.Path`, which `maxPathSize` limits).
pub(super) fn decoded_len(path: &str) -> usize {
    percent_encoding::percent_decode_str(path).count()
}

/// Boulder's `iana.ExtractSuffix`: the name ends in a suffix of the ICANN section of the public
/// suffix list (private rules ignored, no default rule). A private suffix such as `github.io`
/// is looked through to the ICANN suffix under it.
fn has_iana_tld(host: &str) -> bool {
    let mut rest = host.to_owned();
    loop {
        let Some(suffix) = psl::suffix(rest.as_bytes()) else {
            return false;
        };
        match suffix.typ() {
            Some(psl::Type::Icann) => return true,
            Some(psl::Type::Private) => {
                let private = String::from_utf8_lossy(suffix.as_bytes()).into_owned();
                match private.split_once('.') {
                    Some((_, parent)) => rest = parent.to_owned(),
                    None => return false,
                }
            }
            None => return false,
        }
    }
}

/// The IANA special-purpose address registries Boulder embeds (iana/data/
/// iana-ipv4-special-registry-1.csv and iana-ipv6-special-registry-1.csv): block, RFC, name.
const RESERVED: &[(&str, &str, &str)] = &[
    ("0.0.0.0/8", "[RFC791], Section 3.2", "\"This network\""),
    (
        "0.0.0.0/32",
        "[RFC1122], Section 3.2.1.3",
        "\"This host on this network\"",
    ),
    ("10.0.0.0/8", "[RFC1918]", "Private-Use"),
    ("100.64.0.0/10", "[RFC6598]", "Shared Address Space"),
    ("127.0.0.0/8", "[RFC1122], Section 3.2.1.3", "Loopback"),
    ("169.254.0.0/16", "[RFC3927]", "Link Local"),
    ("172.16.0.0/12", "[RFC1918]", "Private-Use"),
    (
        "192.0.0.0/24",
        "[RFC6890], Section 2.1",
        "IETF Protocol Assignments",
    ),
    (
        "192.0.0.0/29",
        "[RFC7335]",
        "IPv4 Service Continuity Prefix",
    ),
    ("192.0.0.8/32", "[RFC7600]", "IPv4 dummy address"),
    ("192.0.0.9/32", "[RFC7723]", "Port Control Protocol Anycast"),
    (
        "192.0.0.10/32",
        "[RFC8155]",
        "Traversal Using Relays around NAT Anycast",
    ),
    (
        "192.0.0.170/32",
        "[RFC8880][RFC7050], Section 2.2",
        "NAT64/DNS64 Discovery",
    ),
    (
        "192.0.0.171/32",
        "[RFC8880][RFC7050], Section 2.2",
        "NAT64/DNS64 Discovery",
    ),
    ("192.0.2.0/24", "[RFC5737]", "Documentation (TEST-NET-1)"),
    ("192.31.196.0/24", "[RFC7535]", "AS112-v4"),
    ("192.52.193.0/24", "[RFC7450]", "AMT"),
    (
        "192.88.99.0/24",
        "[RFC7526]",
        "Deprecated (6to4 Relay Anycast)",
    ),
    ("192.88.99.2/32", "[RFC6751]", "6a44-relay anycast address"),
    ("192.168.0.0/16", "[RFC1918]", "Private-Use"),
    (
        "192.175.48.0/24",
        "[RFC7534]",
        "Direct Delegation AS112 Service",
    ),
    ("198.18.0.0/15", "[RFC2544]", "Benchmarking"),
    ("198.51.100.0/24", "[RFC5737]", "Documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "[RFC5737]", "Documentation (TEST-NET-3)"),
    ("240.0.0.0/4", "[RFC1112], Section 4", "Reserved"),
    (
        "255.255.255.255/32",
        "[RFC8190] [RFC919], Section 7",
        "Limited Broadcast",
    ),
    ("::1/128", "[RFC4291]", "Loopback Address"),
    ("::/128", "[RFC4291]", "Unspecified Address"),
    ("::ffff:0:0/96", "[RFC4291]", "IPv4-mapped Address"),
    ("64:ff9b::/96", "[RFC6052]", "IPv4-IPv6 Translat."),
    ("64:ff9b:1::/48", "[RFC8215]", "IPv4-IPv6 Translat."),
    ("100::/64", "[RFC6666]", "Discard-Only Address Block"),
    ("100:0:0:1::/64", "[RFC9780]", "Dummy IPv6 Prefix"),
    ("2001::/23", "[RFC2928]", "IETF Protocol Assignments"),
    ("2001::/32", "[RFC4380] [RFC8190]", "TEREDO"),
    (
        "2001:1::1/128",
        "[RFC7723]",
        "Port Control Protocol Anycast",
    ),
    (
        "2001:1::2/128",
        "[RFC8155]",
        "Traversal Using Relays around NAT Anycast",
    ),
    (
        "2001:1::3/128",
        "[RFC9665]",
        "DNS-SD Service Registration Protocol Anycast",
    ),
    ("2001:2::/48", "[RFC5180][RFC Errata 1752]", "Benchmarking"),
    ("2001:3::/32", "[RFC7450]", "AMT"),
    ("2001:4:112::/48", "[RFC7535]", "AS112-v6"),
    (
        "2001:10::/28",
        "[RFC4843]",
        "Deprecated (previously ORCHID)",
    ),
    ("2001:20::/28", "[RFC7343]", "ORCHIDv2"),
    (
        "2001:30::/28",
        "[RFC9374]",
        "Drone Remote ID Protocol Entity Tags (DETs) Prefix",
    ),
    ("2001:db8::/32", "[RFC3849]", "Documentation"),
    ("2002::/16", "[RFC3056]", "6to4"),
    (
        "2620:4f:8000::/48",
        "[RFC7534]",
        "Direct Delegation AS112 Service",
    ),
    ("3fff::/20", "[RFC9637]", "Documentation"),
    ("5f00::/16", "[RFC9602]", "Segment Routing (SRv6) SIDs"),
    ("fc00::/7", "[RFC4193] [RFC8190]", "Unique-Local"),
    ("fe80::/10", "[RFC4291]", "Link-Local Unicast"),
];

/// Boulder's `iana.IsReservedAddr`: the most specific special-purpose block holding `ip`, in
/// its words ("IP address is in a reserved address block: [RFC1918]: Private-Use").
pub(super) fn reserved_block(ip: IpAddr) -> Option<String> {
    let mut blocks: Vec<(IpAddr, u8, &str, &str)> = RESERVED
        .iter()
        .filter_map(|(block, rfc, name)| {
            let (address, bits) = block.split_once('/')?;
            Some((address.parse().ok()?, bits.parse().ok()?, *rfc, *name))
        })
        .collect();
    // Most specific first, as Boulder sorts them.
    blocks.sort_by_key(|block| std::cmp::Reverse(block.1));
    blocks
        .into_iter()
        .find(|(network, bits, _, _)| in_block(ip, *network, *bits))
        .map(|(_, _, rfc, name)| {
            format!("IP address is in a reserved address block: {rfc}: {name}")
        })
}

fn in_block(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Where a redirect from `current` to `location` leads, if the CA would follow it (the URL
/// parse and Boulder's `extractRequestTarget` and path limit; the redirect count, the status
/// and loops are the fetch's). What the tests hold the redirect rules to.
#[cfg(test)]
pub(super) fn resolve_location(
    current: &Url,
    location: &str,
    http_port: u16,
    https_port: u16,
) -> Result<Url, String> {
    use super::MAX_PATH_SIZE;
    let reference = resolve_reference(current, location)?;
    let url = extract_request_target(&reference, http_port, https_port)?;
    if decoded_len(&reference.path) > MAX_PATH_SIZE {
        return Err("Redirect target too long".into());
    }
    Ok(url)
}
