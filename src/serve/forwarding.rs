//! What a request and a response keep and gain on their way through the edge — one set of rules
//! for both serving engines: the fast path's proxy ([`super::fastproxy`]) and pingora's
//! ([`super::proxy`]).
//!
//! The request rules are pingora-proxy 0.9.1's own (`proxy_common.rs`, its default
//! `HttpUpstreamRequestPolicy`), written once here so that a request the fast path relays gets
//! exactly what pingora's proxy would have sent: on pingora's path they run after pingora's and
//! change nothing it already did; on the fast path they are the only ones. The differential
//! suite (`tests/adversarial.rs`) sends the same hostile requests through both engines and
//! compares what the origin receives.
//!
//! Forwarding headers are the proxy's, never the client's (a documented choice, see README
//! "Proxying"):
//! - `X-Forwarded-For`: every value the client sent, in order, joined into one header, with the
//!   client's address appended (nginx's `$proxy_add_x_forwarded_for`);
//! - `X-Forwarded-Proto` and `X-Forwarded-Host`: set from the connection and the `Host` header,
//!   whatever the client sent;
//! - `Forwarded` (RFC 7239) from the client is removed: dcv-proxy does not append to it, and an
//!   unverified one that does not name this hop would mislead the origin;
//! - spellings with underscores (`X-Forwarded_Proto`, `X_Forwarded_For`, …) are removed: CGI-style
//!   origins map `_` and `-` to the same variable, so they would override the proxy's headers
//!   (nginx drops every header with an underscore by default; dcv-proxy only these).

use std::fmt::Write as _;
use std::net::IpAddr;

use http::header::{self, HeaderName};
use pingora_http::{RequestHeader, ResponseHeader};

use super::counters::Scheme;

/// Most `Connection` tokens a request may carry (pingora-proxy's `MAX_CONNECTION_NOMINATIONS`:
/// the tenth is refused).
const MAX_CONNECTION_NOMINATIONS: usize = 10;

/// Headers a `Connection` token may not remove: the proxy sets or relies on them (pingora's
/// protected set).
const PROTECTED: [&str; 4] = [
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// Hop-by-hop request headers, never forwarded (RFC 9110 §7.6.1; pingora's
/// `strip_standard_hop_by_hop_headers`).
const REQUEST_HOP_BY_HOP: [&str; 10] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "connection",
    "upgrade",
    "http2-settings",
];

/// Hop-by-hop response headers, removed before a response goes to the client. Framing
/// (`Transfer-Encoding`, `Content-Length`) is left to the engine that writes the response.
const RESPONSE_HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// The forwarding headers the proxy sets; a client's copy (or an underscore spelling of one)
/// never reaches the origin.
const FORWARDING: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
];

/// Why a request is answered `400` instead of being forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum RequestRefused {
    /// `Connection` named ten or more headers.
    #[error("too many Connection header nominations")]
    TooManyNominations,
    /// `Connection` named a header the proxy sets or relies on (`Host`, `X-Forwarded-*`), or a
    /// pseudo-header.
    #[error("protected header cannot be nominated by the Connection header")]
    ProtectedNomination,
    /// A `Connection` token is not an HTTP token (RFC 9110 §5.6.2).
    #[error("invalid token nominated by the Connection header")]
    InvalidNomination,
    /// A header value cannot be represented (never seen from a parsed request).
    #[error("invalid forwarding header value")]
    InvalidValue,
    /// `Transfer-Encoding` other than one `chunked`: a repeated coding (RFC 9112 §6.1: "MUST
    /// NOT apply the chunked transfer coding more than once"; nginx answers 400 too).
    #[error("repeated transfer coding")]
    TransferEncoding,
}

/// Why an origin's response is answered `502` instead of being relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum ResponseRefused {
    /// `Transfer-Encoding` other than exactly `chunked`: a coding the proxy would have to undo to
    /// frame the body for the client (RFC 9112 §6.1); nginx answers 502 too.
    #[error("unsupported transfer-encoding from the origin")]
    TransferEncoding,
    /// `101 Switching Protocols` to a request that asked for no upgrade (RFC 9110 §15.2.2).
    #[error("unrequested 101 from the origin")]
    UnrequestedUpgrade,
}

/// Prepares `req` for the origin: hop-by-hop and `Connection`-named headers removed, the
/// forwarding headers set. `client` is the address of the client's connection.
pub(super) fn prepare_request(
    req: &mut RequestHeader,
    client: Option<IpAddr>,
    scheme: Scheme,
) -> Result<(), RequestRefused> {
    let nominated = nominations(
        req.headers
            .get_all(header::CONNECTION)
            .iter()
            .map(|v| v.as_bytes()),
    )?;
    for name in nominated.iter().flatten() {
        req.remove_header(name);
    }
    for name in REQUEST_HOP_BY_HOP {
        req.remove_header(name);
    }
    set_forwarding(req, client, scheme)
}

/// Refuses request framing pingora would accept but no sender may produce: `chunked` applied
/// twice, in one line or two (pingora itself refuses every other coding). Run before a request
/// body is read (`request_filter`); the fast path never relays a request with a body.
pub(super) fn check_request_framing(req: &RequestHeader) -> Result<(), RequestRefused> {
    let codings = req
        .headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .filter(|token| !token.trim_ascii().is_empty())
        .count();
    if codings > 1 {
        return Err(RequestRefused::TransferEncoding);
    }
    Ok(())
}

/// The request for the origin from an HTTP/1.1 head the fast path read: the client's method,
/// target and headers with [`prepare_request`]'s rules applied; `None` when they refuse it
/// (`400`, as pingora's proxy answers).
///
/// Built in one pass over the parsed lines — a line that would be removed is never added —
/// rather than by [`prepare_request`]'s removals from a full header map: same rules, same
/// result (`single_pass_matches_prepare_request` below), a fifth of the fast path's proxy CPU
/// less (callgrind, docs/performance.md).
pub fn upstream_request(
    method: &str,
    target: &str,
    headers: &[httparse::Header<'_>],
    client: Option<IpAddr>,
    scheme: Scheme,
) -> Option<Box<RequestHeader>> {
    let nominated = nominations(
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .map(|h| h.value),
    )
    .ok()?;
    let mut req = RequestHeader::build(method, target.as_bytes(), Some(headers.len() + 3)).ok()?;
    let mut forwarded_for = String::new();
    let mut host: Option<&[u8]> = None;
    for h in headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            // Checked as a header value, as adding it to a map would.
            http::HeaderValue::from_bytes(h.value).ok()?;
            push_forwarded_for(&mut forwarded_for, h.value);
            continue;
        }
        if host.is_none() && name.eq_ignore_ascii_case(b"host") {
            host = Some(h.value);
        }
        let dropped = REQUEST_HOP_BY_HOP
            .iter()
            .chain(FORWARDING.iter())
            .any(|hop| hop.as_bytes().eq_ignore_ascii_case(name))
            || nominated
                .iter()
                .flatten()
                .any(|n| n.as_str().as_bytes().eq_ignore_ascii_case(name))
            || (name.contains(&b'_') && is_forwarding_spelling(name));
        if !dropped {
            req.append_header(h.name.to_owned(), h.value).ok()?;
        }
    }
    append_forwarding(&mut req, forwarded_for, client, scheme, host).ok()?;
    Some(Box::new(req))
}

/// The headers `Connection` names (its lines' values), checked as pingora checks them.
fn nominations<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<[Option<HeaderName>; MAX_CONNECTION_NOMINATIONS], RequestRefused> {
    let mut out: [Option<HeaderName>; MAX_CONNECTION_NOMINATIONS] = Default::default();
    let mut count = 0;
    let tokens = values
        .flat_map(|value| value.split(|b| *b == b','))
        .map(|token| token.trim_ascii())
        .filter(|token| !token.is_empty());
    for token in tokens {
        count += 1;
        if count >= MAX_CONNECTION_NOMINATIONS {
            return Err(RequestRefused::TooManyNominations);
        }
        if token.starts_with(b":") {
            return Err(RequestRefused::ProtectedNomination);
        }
        if !token.iter().all(|b| is_tchar(*b)) {
            return Err(RequestRefused::InvalidNomination);
        }
        let name = HeaderName::from_bytes(token).map_err(|_| RequestRefused::InvalidNomination)?;
        if PROTECTED.contains(&name.as_str()) {
            return Err(RequestRefused::ProtectedNomination);
        }
        out[count - 1] = Some(name);
    }
    Ok(out)
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn set_forwarding(
    req: &mut RequestHeader,
    client: Option<IpAddr>,
    scheme: Scheme,
) -> Result<(), RequestRefused> {
    let mut forwarded_for = String::new();
    for value in req.headers.get_all("x-forwarded-for") {
        push_forwarded_for(&mut forwarded_for, value.as_bytes());
    }
    let host = req.headers.get(header::HOST).cloned();
    // Underscore spellings of the forwarding headers, then the client's own copies.
    let spoofed: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|name| {
            name.as_str().contains('_') && is_forwarding_spelling(name.as_str().as_bytes())
        })
        .cloned()
        .collect();
    for name in &spoofed {
        req.remove_header(name);
    }
    for name in FORWARDING {
        req.remove_header(name);
    }
    append_forwarding(
        req,
        forwarded_for,
        client,
        scheme,
        host.as_ref().map(|h| h.as_bytes()),
    )
}

/// Adds one client `X-Forwarded-For` line to the list: every line, in order, is one list (RFC
/// 9110 §5.3); a line that is not visible ASCII or is empty is left out.
fn push_forwarded_for(list: &mut String, value: &[u8]) {
    let Ok(value) = std::str::from_utf8(value) else {
        return;
    };
    // `HeaderValue::to_str`'s rule: visible ASCII and tabs only.
    if !value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return;
    }
    let value = value.trim();
    if value.is_empty() {
        return;
    }
    if !list.is_empty() {
        list.push_str(", ");
    }
    list.push_str(value);
}

/// Appends the proxy's forwarding headers: the client list with the client's address, the
/// scheme, the `Host` the client sent.
fn append_forwarding(
    req: &mut RequestHeader,
    mut forwarded_for: String,
    client: Option<IpAddr>,
    scheme: Scheme,
    host: Option<&[u8]>,
) -> Result<(), RequestRefused> {
    if let Some(ip) = client {
        if !forwarded_for.is_empty() {
            forwarded_for.push_str(", ");
        }
        let _ = write!(forwarded_for, "{ip}");
    }
    if !forwarded_for.is_empty() {
        req.append_header("X-Forwarded-For", forwarded_for)
            .map_err(|_| RequestRefused::InvalidValue)?;
    }
    req.append_header("X-Forwarded-Proto", scheme.as_str())
        .map_err(|_| RequestRefused::InvalidValue)?;
    if let Some(host) = host {
        let host = http::HeaderValue::from_bytes(host).map_err(|_| RequestRefused::InvalidValue)?;
        req.append_header("X-Forwarded-Host", host)
            .map_err(|_| RequestRefused::InvalidValue)?;
    }
    Ok(())
}

/// `name` (any case) is a forwarding header once `_` is read as `-`.
fn is_forwarding_spelling(name: &[u8]) -> bool {
    FORWARDING.iter().any(|f| {
        f.len() == name.len()
            && f.bytes()
                .zip(name.iter().map(u8::to_ascii_lowercase))
                .all(|(f, n)| f == n || (f == b'-' && n == b'_'))
    })
}

/// The hop-by-hop headers of one origin response (RFC 9110 §7.6.1), `Connection`-named ones
/// included, after its `Transfer-Encoding` was checked. Framing headers (`Transfer-Encoding`,
/// `Content-Length`) are never removed by name: the engine that writes the response frames it.
pub(super) struct ResponseHops {
    nominated: Vec<HeaderName>,
}

/// Checks an origin's response: `502` unless its transfer coding is one the proxy can frame for
/// the client, and for a `101` the request asked for an upgrade (`upgrade_requested`).
pub(super) fn check_response(
    resp: &ResponseHeader,
    upgrade_requested: bool,
) -> Result<ResponseHops, ResponseRefused> {
    if resp.status == http::StatusCode::SWITCHING_PROTOCOLS && !upgrade_requested {
        return Err(ResponseRefused::UnrequestedUpgrade);
    }
    let mut te = resp.headers.get_all(header::TRANSFER_ENCODING).iter();
    if let Some(first) = te.next() {
        if te.next().is_some()
            || !first
                .as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"chunked")
        {
            return Err(ResponseRefused::TransferEncoding);
        }
    }
    let nominated = resp
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .map(|token| token.trim_ascii())
        .filter_map(|token| HeaderName::from_bytes(token).ok())
        .filter(|name| name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING)
        .collect();
    Ok(ResponseHops { nominated })
}

impl ResponseHops {
    /// Whether the header `name` (any case) goes on to the client.
    pub(super) fn keeps(&self, name: &[u8]) -> bool {
        !RESPONSE_HOP_BY_HOP
            .iter()
            .any(|hop| hop.as_bytes().eq_ignore_ascii_case(name))
            && !self
                .nominated
                .iter()
                .any(|n| n.as_str().as_bytes().eq_ignore_ascii_case(name))
    }

    /// Removes the hop-by-hop headers from `resp` (pingora's engine, which writes `resp`), and
    /// keeps one line of a repeated `Content-Length`: pingora-core's client accepts repeats only
    /// when they hold the same value, and RFC 9110 §8.6 lets a proxy send one instead (the fast
    /// path's `write_head` does the same).
    pub(super) fn strip(&self, resp: &mut ResponseHeader) {
        for name in &self.nominated {
            resp.remove_header(name);
        }
        for name in RESPONSE_HOP_BY_HOP {
            resp.remove_header(name);
        }
        let mut lengths = resp.headers.get_all(header::CONTENT_LENGTH).iter();
        if let (Some(first), Some(_)) = (lengths.next(), lengths.next()) {
            let first = first.clone();
            // pingora-core's client refused the answer unless every line holds this value.
            let _ = resp.insert_header(header::CONTENT_LENGTH, first);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        req
    }

    fn value<'a>(req: &'a RequestHeader, name: &str) -> Vec<&'a str> {
        req.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn hop_by_hop_and_nominated_headers_are_removed() {
        let mut req = request(&[
            ("Host", "a.test"),
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "hop"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic eDp5"),
            ("TE", "trailers"),
            ("Accept", "*/*"),
        ]);
        prepare_request(&mut req, "192.0.2.1".parse().ok(), Scheme::Http).unwrap();
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "proxy-authorization",
            "te",
        ] {
            assert!(value(&req, gone).is_empty(), "{gone} forwarded");
        }
        assert_eq!(value(&req, "host"), ["a.test"]);
        assert_eq!(value(&req, "accept"), ["*/*"]);
    }

    #[test]
    fn protected_headers_cannot_be_nominated() {
        for connection in ["host", "close, Host", "X-Forwarded-For", ":authority"] {
            let mut req = request(&[("Host", "a.test"), ("Connection", connection)]);
            assert_eq!(
                prepare_request(&mut req, None, Scheme::Http),
                Err(RequestRefused::ProtectedNomination),
                "{connection}"
            );
        }
        let mut req = request(&[("Connection", "\"x-forwarded-for\"")]);
        assert_eq!(
            prepare_request(&mut req, None, Scheme::Http),
            Err(RequestRefused::InvalidNomination)
        );
        let many = (0..10)
            .map(|i| format!("x-{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut req = request(&[("Connection", &many)]);
        assert_eq!(
            prepare_request(&mut req, None, Scheme::Http),
            Err(RequestRefused::TooManyNominations)
        );
        let nine = (0..9)
            .map(|i| format!("x-{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut req = request(&[("Connection", &nine)]);
        assert_eq!(prepare_request(&mut req, None, Scheme::Http), Ok(()));
    }

    /// `upstream_request` (one pass over parsed lines, the fast path) and `prepare_request`
    /// (removals from a map, pingora's path) send the origin the same header lines.
    #[test]
    fn single_pass_matches_prepare_request() {
        let cases: &[&[(&str, &str)]] = &[
            &[("Host", "a.test"), ("Accept", "*/*")],
            &[
                ("Host", "a.test:8080"),
                ("X-Forwarded-For", "198.51.100.7"),
                ("x-forwarded-for", " 203.0.113.9, 10.0.0.1 "),
                ("X-Forwarded-For", ""),
                ("X-Forwarded-Proto", "https"),
                ("X-FORWARDED-HOST", "evil.test"),
                ("X-Forwarded_Proto", "https"),
                ("X_FORWARDED_FOR", "1.2.3.4"),
                ("Forwarded", "for=1.2.3.4"),
                ("X_Other", "kept"),
            ],
            &[
                ("Host", "a.test"),
                ("Connection", "keep-alive, X-Secret"),
                ("connection", "x-other"),
                ("X-Secret", "hop"),
                ("x-other", "hop"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Authorization", "Basic eDp5"),
                ("TE", "trailers"),
                ("Upgrade", "h2c"),
                ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
                ("Cookie", "a=1"),
                ("cookie", "b=2"),
            ],
            &[("Connection", "Host")],
            &[("Connection", ":path")],
            &[("Connection", "a b")],
            &[("Connection", "a,b,c,d,e,f,g,h,i,j")],
            &[("X-Forwarded-For", "caf\u{e9}"), ("Host", "b.test")],
            &[],
        ];
        let client = "127.0.0.1".parse().ok();
        for case in cases {
            let lines: Vec<httparse::Header<'_>> = case
                .iter()
                .map(|(k, v)| httparse::Header {
                    name: k,
                    value: v.as_bytes(),
                })
                .collect();
            let fast = upstream_request("GET", "/x", &lines, client, Scheme::Https);
            let mut slow = request(case);
            let refused = prepare_request(&mut slow, client, Scheme::Https).is_err();
            assert_eq!(fast.is_none(), refused, "{case:?}");
            let Some(fast) = fast else { continue };
            let sent = |req: &RequestHeader| {
                let mut lines: Vec<(String, Vec<u8>)> = Vec::new();
                for name in req.headers.keys() {
                    for value in req.headers.get_all(name) {
                        lines.push((name.to_string(), value.as_bytes().to_vec()));
                    }
                }
                lines.sort_by(|a, b| a.0.cmp(&b.0));
                lines
            };
            assert_eq!(sent(&fast), sent(&slow), "{case:?}");
        }
    }

    #[test]
    fn chunked_twice_is_refused() {
        for te in [
            &["chunked", "chunked"][..],
            &["chunked, chunked"],
            &["gzip, chunked"],
        ] {
            let mut req = request(&[]);
            for v in te {
                req.append_header("Transfer-Encoding", *v).unwrap();
            }
            assert_eq!(
                check_request_framing(&req),
                Err(RequestRefused::TransferEncoding),
                "{te:?}"
            );
        }
        let mut req = request(&[("Transfer-Encoding", "chunked")]);
        assert_eq!(check_request_framing(&req), Ok(()));
        req.remove_header("transfer-encoding");
        assert_eq!(check_request_framing(&req), Ok(()));
    }

    #[test]
    fn forwarding_headers_are_the_proxys() {
        let mut req = request(&[
            ("Host", "a.test:8080"),
            ("X-Forwarded-For", "198.51.100.7"),
            ("X-Forwarded-For", "203.0.113.9, 10.0.0.1"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.test"),
            ("X-Forwarded_Proto", "https"),
            ("X_Forwarded_For", "1.2.3.4"),
            ("Forwarded", "for=1.2.3.4"),
            ("X_Other", "kept"),
        ]);
        prepare_request(&mut req, "127.0.0.1".parse().ok(), Scheme::Http).unwrap();
        assert_eq!(
            value(&req, "x-forwarded-for"),
            ["198.51.100.7, 203.0.113.9, 10.0.0.1, 127.0.0.1"]
        );
        assert_eq!(value(&req, "x-forwarded-proto"), ["http"]);
        assert_eq!(value(&req, "x-forwarded-host"), ["a.test:8080"]);
        for gone in ["x-forwarded_proto", "x_forwarded_for", "forwarded"] {
            assert!(value(&req, gone).is_empty(), "{gone} forwarded");
        }
        assert_eq!(value(&req, "x_other"), ["kept"]);
    }

    #[test]
    fn responses_lose_hop_by_hop_headers_and_odd_codings_are_refused() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for (k, v) in [
            ("Connection", "keep-alive, X-Hop, Content-Length"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Content-Length", "5"),
            ("Set-Cookie", "a=b"),
        ] {
            resp.append_header(k.to_string(), v).unwrap();
        }
        let hops = check_response(&resp, false).unwrap();
        assert!(!hops.keeps(b"X-HOP") && !hops.keeps(b"keep-alive") && hops.keeps(b"Set-Cookie"));
        assert!(hops.keeps(b"content-length"));
        hops.strip(&mut resp);
        assert!(resp.headers.get("x-hop").is_none());
        assert!(resp.headers.get("connection").is_none());
        assert!(resp.headers.get("keep-alive").is_none());
        assert_eq!(resp.headers.get("content-length").unwrap(), "5");
        assert_eq!(resp.headers.get("set-cookie").unwrap(), "a=b");
        for te in [&["gzip, chunked"][..], &["gzip"], &["chunked", "chunked"]] {
            let mut resp = ResponseHeader::build(200, None).unwrap();
            for v in te {
                resp.append_header("Transfer-Encoding", *v).unwrap();
            }
            assert_eq!(
                check_response(&resp, false).err(),
                Some(ResponseRefused::TransferEncoding),
                "{te:?}"
            );
        }
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("Transfer-Encoding", "Chunked").unwrap();
        assert!(check_response(&resp, false).is_ok());
        let resp = ResponseHeader::build(101, None).unwrap();
        assert_eq!(
            check_response(&resp, false).err(),
            Some(ResponseRefused::UnrequestedUpgrade)
        );
        assert!(check_response(&resp, true).is_ok());
    }
}
