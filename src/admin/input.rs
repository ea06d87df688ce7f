//! What the admin API accepts: every request body and path parameter is parsed and checked
//! here, by pure functions, before a handler touches any state — so a refused request changes
//! nothing, and the checks can be fuzzed on their own (`fuzz/fuzz_targets/admin_input.rs`).

use std::time::{Duration, SystemTime};

use base64::Engine;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;

use crate::config::{DnsName, RecordName};
use crate::state::certs::CertId;
use crate::state::AcmeAnswer;
use crate::state::{is_file_name, is_token};

/// Default lifetime of a token put through the API: long enough for any pending authorization,
/// short enough that a forgotten token does not answer forever.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest lifetime accepted for a token (Let's Encrypt keeps pending authorizations 7 days).
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Largest validation file accepted: the same cap as files served from the webroot.
pub const MAX_PKI_FILE: usize = 64 * 1024;
/// Longest TXT value accepted (a TXT record of several character-strings stays far below).
pub const MAX_TXT_VALUE: usize = 1024;

/// A refused input: the status and the reason sent back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refused {
    Refused {
        status,
        message: message.into(),
    }
}

/// Parses a JSON body, refusing unknown fields with serde's message (which has line and column).
pub fn json_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Refused> {
    if body.is_empty() {
        return Err(refuse(StatusCode::BAD_REQUEST, "a JSON body is required"));
    }
    serde_json::from_slice(body)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

/// `PUT /v1/acme/tokens/<token>`: the answer to store, created at `now`.
pub fn token_put(token: &str, body: &[u8], now: SystemTime) -> Result<AcmeAnswer, Refused> {
    token_path(token)?;
    let body: crate::api::TokenPut = json_body(body)?;
    // RFC 8555 §8.1: keyAuthorization = token || '.' || base64url(JWK thumbprint). Refusing
    // anything else catches the "file content incorrect" mistakes (H7) at the API.
    let thumbprint = body
        .key_authorization
        .strip_prefix(token)
        .and_then(|rest| rest.strip_prefix('.'));
    match thumbprint {
        Some(t) if !t.is_empty() && t.len() <= 128 && is_token(t) => {}
        _ => {
            return Err(refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "key_authorization must be \"{token}.<base64url account thumbprint>\" (RFC 8555 section 8.1)"
                ),
            ))
        }
    }
    let identifier = match body.identifier.as_deref().map(str::parse::<DnsName>) {
        None => None,
        Some(Ok(name)) => Some(name),
        Some(Err(e)) => {
            return Err(refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("identifier: {e}"),
            ))
        }
    };
    let ttl = body
        .ttl_seconds
        .map_or(DEFAULT_TOKEN_TTL, Duration::from_secs);
    if ttl.is_zero() || ttl > MAX_TOKEN_TTL {
        return Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "ttl_seconds must be between 1 and {}",
                MAX_TOKEN_TTL.as_secs()
            ),
        ));
    }
    Ok(AcmeAnswer {
        key_authorization: Bytes::from(body.key_authorization),
        identifier: identifier.map(|n| n.as_str().into()),
        expires: Some(now + ttl),
        created: now,
    })
}

/// A token in a path (`DELETE /v1/acme/tokens/<token>`).
pub fn token_path(token: &str) -> Result<(), Refused> {
    if is_token(token) {
        Ok(())
    } else {
        Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("{token:?} is not an ACME token (1-256 characters of A-Z a-z 0-9 - _)"),
        ))
    }
}

/// A host in a path (`/v1/pki/<host>…`).
pub fn host(host: &str) -> Result<DnsName, Refused> {
    host.parse::<DnsName>()
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("host: {e}")))
}

/// A validation file name in a path.
pub fn file_name(file: &str) -> Result<(), Refused> {
    if is_file_name(file) {
        Ok(())
    } else {
        Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("{file:?} is not a validation file name (one segment of A-Z a-z 0-9 . - _, not starting with '.')"),
        ))
    }
}

/// `PUT /v1/pki/<host>/<file>`: the host and the file's bytes.
pub fn pki_put(host_text: &str, file: &str, body: &[u8]) -> Result<(DnsName, Vec<u8>), Refused> {
    let host = host(host_text)?;
    file_name(file)?;
    let body: crate::api::PkiPut = json_body(body)?;
    let bytes = match (body.content, body.content_base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| {
                refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("content_base64 is not base64: {e}"),
                )
            })?,
        _ => {
            return Err(refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "give exactly one of content (text) or content_base64",
            ))
        }
    };
    if bytes.is_empty() || bytes.len() > MAX_PKI_FILE {
        return Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("a validation file must have 1 to {MAX_PKI_FILE} bytes"),
        ));
    }
    Ok((host, bytes))
}

/// A certificate id in a path.
pub fn cert_id(id: &str) -> Result<CertId, Refused> {
    CertId::parse(id).map_err(|e| refuse(StatusCode::BAD_REQUEST, e))
}

/// An upload, parsed; the certificate itself is checked by the store (`state::certs::check`).
#[derive(Debug)]
pub struct CertUpload {
    pub id: CertId,
    pub certificate: String,
    pub private_key: String,
    /// Lowercase; exact names or `*.` wildcards.
    pub names: Vec<String>,
}

/// `PUT /v1/certificates/<id>`.
pub fn cert_put(id: &str, body: &[u8]) -> Result<CertUpload, Refused> {
    let id = cert_id(id)?;
    let body: crate::api::CertPut = json_body(body)?;
    let mut names = Vec::with_capacity(body.names.len());
    for name in &body.names {
        let pattern = name.strip_prefix("*.").unwrap_or(name);
        match pattern.parse::<DnsName>() {
            Ok(_) => names.push(name.to_ascii_lowercase()),
            Err(e) => {
                return Err(refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("names: {e}"),
                ))
            }
        }
    }
    Ok(CertUpload {
        id,
        certificate: body.certificate,
        private_key: body.private_key,
        names,
    })
}

/// A TXT record name in a path (`/v1/probe/txt/<name>`).
pub fn record_name(name: &str) -> Result<RecordName, Refused> {
    name.parse()
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("name: {e}")))
}

/// `PUT /v1/probe/txt/<name>`: the name and its expected values.
pub fn txt_put(name: &str, body: &[u8]) -> Result<(RecordName, Vec<String>), Refused> {
    let name = record_name(name)?;
    let body: crate::api::TxtPut = json_body(body)?;
    if body.values.is_empty()
        || body
            .values
            .iter()
            .any(|v| v.is_empty() || v.len() > MAX_TXT_VALUE)
    {
        return Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("values: give 1 or more values of 1 to {MAX_TXT_VALUE} bytes"),
        ));
    }
    Ok((name, body.values))
}

/// The names and addresses the admin listener answers to (DNS-rebinding protection).
///
/// A page on the internet can make a browser send requests to `127.0.0.1:9180` by giving its own
/// name a short TTL and then the address of the victim (DNS rebinding): the browser thinks it
/// talks to the attacker's origin and lets the page read the answers. Its requests still carry
/// the attacker's name in `Host`, so the listener refuses every name that is not its own.
#[derive(Debug, Clone, Default)]
pub struct AdminHosts {
    /// Lowercase names accepted besides the ones every listener accepts (`admin.hosts`, the
    /// host's own name).
    names: Vec<String>,
}

impl AdminHosts {
    /// Accepts, besides IP addresses, `localhost` and single-label names, the `names` given.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names = names
            .into_iter()
            .map(|n| n.as_ref().trim_end_matches('.').to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        Self { names }
    }

    /// The extra names accepted, for the refusal's advice and the start-up log.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Checks the `Host` of an admin request. Accepted:
///
/// - no `Host` at all (HTTP/1.0 tools; a browser always sends one);
/// - any IP address, with or without port: a browser sends one only when the page itself was
///   loaded from that address, so no name was resolved and nothing was rebound;
/// - `localhost` and `*.localhost` (RFC 6761 §6.3: never resolved through public DNS);
/// - a name without a dot (`admin`, the host's short name): no such name can be registered in
///   public DNS (ICANN forbids dotless domains, SAC053), so no page on the internet has one;
/// - the names of [`AdminHosts`] (`admin.hosts` and the host's own name).
///
/// The port is not compared: an SSH tunnel or a port forward in front of the listener changes
/// it. A `Host` that is not even syntactically a host is a `400`; any other name is a `421
/// Misdirected Request` (RFC 9110 §15.5.20: this listener does not serve that name).
pub fn admin_host(host: Option<&str>, allowed: &AdminHosts) -> Result<(), Refused> {
    let Some(raw) = host else {
        return Ok(());
    };
    let name = host_name(raw).ok_or_else(|| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("Host {raw:?} is not a host name or address with an optional port"),
        )
    })?;
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let ok = name.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || !name.contains('.')
        || allowed.names.contains(&name);
    if ok {
        return Ok(());
    }
    let extra = if allowed.names.is_empty() {
        String::new()
    } else {
        format!(", {}", allowed.names.join(", "))
    };
    Err(refuse(
        StatusCode::MISDIRECTED_REQUEST,
        format!(
            "Host {raw:?} is not a name of this admin listener (refused against DNS rebinding): \
             use an IP address, localhost{extra}, or add the name to admin.hosts"
        ),
    ))
}

/// The host part of a `Host` value: `name`, `name:port`, `1.2.3.4:port`, `[v6]:port`.
fn host_name(raw: &str) -> Option<&str> {
    let port_ok = |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = raw.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        return match after.strip_prefix(':') {
            None if after.is_empty() => Some(v6),
            Some(port) if port_ok(port) => Some(v6),
            _ => None,
        };
    }
    let name = match raw.rsplit_once(':') {
        Some((name, port)) if port_ok(port) => name,
        Some(_) => return None,
        None => raw,
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    valid.then_some(name)
}

/// The token of an `Authorization` header of the Bearer scheme (RFC 6750 §2.1), with the
/// scheme compared case-insensitively as RFC 9110 §11.1 says (`bearer`, `BEARER`), and any
/// number of spaces before the token. `None` for another scheme or no token.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Options of the status page, from its query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageOptions {
    /// Seconds between reloads (`0`: no reload).
    pub refresh: u32,
}

/// How often the status page reloads itself unless `?refresh=` says otherwise.
pub const DEFAULT_PAGE_REFRESH: u32 = 30;

/// `GET /?refresh=N`: `N` of 0 (no reload) or 5 to 3600 seconds; other keys are refused, so a
/// mistyped one does not silently do nothing.
pub fn page_query(query: Option<&str>) -> Result<PageOptions, Refused> {
    let mut options = PageOptions {
        refresh: DEFAULT_PAGE_REFRESH,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "refresh" => match value.parse::<u32>() {
                Ok(n) if n == 0 || (5..=3600).contains(&n) => options.refresh = n,
                _ => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        format!("refresh={value:?}: give 0 (no reload) or 5 to 3600 seconds"),
                    ))
                }
            },
            _ => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown query parameter {key:?}: the status page takes refresh=<seconds>"
                    ),
                ))
            }
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn a_token_needs_its_own_key_authorization() {
        let ok = token_put("abc", br#"{"key_authorization": "abc.XYZ_-1"}"#, NOW).unwrap();
        assert_eq!(ok.expires, Some(NOW + DEFAULT_TOKEN_TTL));
        for (token, body, status) in [
            ("a.b", &br#"{"key_authorization": "a.b.c"}"#[..], 400),
            ("abc", br#"{"key_authorization": "abd.x"}"#, 422),
            ("abc", br#"{"key_authorization": "abc."}"#, 422),
            (
                "abc",
                br#"{"key_authorization": "abc.x", "ttl_seconds": 0}"#,
                422,
            ),
            (
                "abc",
                br#"{"key_authorization": "abc.x", "identifier": "a b"}"#,
                422,
            ),
            ("abc", br#"{"key_authorization": "abc.x", "more": 1}"#, 400),
            ("abc", b"", 400),
        ] {
            let err = token_put(token, body, NOW).unwrap_err();
            assert_eq!(err.status.as_u16(), status, "{token} {err}");
        }
    }

    #[test]
    fn pki_files_are_one_segment_and_bounded() {
        let (host, bytes) = pki_put("Example.COM", "f.txt", br#"{"content": "x"}"#).unwrap();
        assert_eq!(
            (host.as_str(), bytes.as_slice()),
            ("example.com", &b"x"[..])
        );
        assert!(pki_put("example.com", "..", br#"{"content": "x"}"#).is_err());
        assert!(pki_put("example.com", "f", br#"{"content": ""}"#).is_err());
        let big = format!(r#"{{"content": "{}"}}"#, "x".repeat(MAX_PKI_FILE + 1));
        assert!(pki_put("example.com", "f", big.as_bytes()).is_err());
    }

    #[test]
    fn certificate_uploads_check_ids_and_names() {
        let up = cert_put("a", br#"{"certificate": "x", "names": ["*.A.test"]}"#).unwrap();
        assert_eq!(up.names, ["*.a.test"]);
        assert_eq!(
            cert_put("A", br#"{"certificate": "x"}"#)
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            cert_put("a", br#"{"certificate": "x", "names": ["**"]}"#)
                .unwrap_err()
                .status,
            422
        );
    }

    #[test]
    fn admin_host_accepts_addresses_localhost_and_own_names_only() {
        let hosts = AdminHosts::new(["Edge-1.Example.NET."]);
        for ok in [
            None,
            Some("127.0.0.1:9180"),
            Some("127.0.0.1"),
            Some("localhost:9180"),
            Some("LOCALHOST"),
            Some("app.localhost:8000"),
            Some("[::1]:9180"),
            Some("[::1]"),
            Some("10.0.0.5:9180"),
            Some("admin"),
            Some("edge-1.example.net:9180"),
            Some("edge-1.example.net."),
        ] {
            assert_eq!(admin_host(ok, &hosts), Ok(()), "{ok:?}");
        }
        for (bad, status) in [
            ("rebind.attacker.example:9180", 421),
            ("127.0.0.1.nip.io:9180", 421),
            ("localhost.attacker.example", 421),
            ("example.net", 421),
            ("a b", 400),
            ("[::1", 400),
            ("[nope]:1", 400),
            ("host:port", 400),
            ("", 400),
        ] {
            let err = admin_host(Some(bad), &hosts).unwrap_err();
            assert_eq!(err.status.as_u16(), status, "{bad:?}: {err}");
        }
        let err = admin_host(Some("evil.example"), &hosts).unwrap_err();
        assert!(err.message.contains("admin.hosts"), "{err}");
        assert!(err.message.contains("edge-1.example.net"), "{err}");
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for (header, token) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER   abc", Some("abc")),
            ("  Bearer abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
            ("Bearerabc", None),
        ] {
            assert_eq!(bearer_token(header), token, "{header:?}");
        }
    }

    #[test]
    fn page_query_takes_a_bounded_refresh_only() {
        assert_eq!(page_query(None).unwrap().refresh, DEFAULT_PAGE_REFRESH);
        assert_eq!(page_query(Some("refresh=0")).unwrap().refresh, 0);
        assert_eq!(page_query(Some("refresh=60")).unwrap().refresh, 60);
        for bad in [
            "refresh=1",
            "refresh=x",
            "refresh=99999",
            "other=1",
            "refresh",
        ] {
            assert_eq!(page_query(Some(bad)).unwrap_err().status, 400, "{bad}");
        }
    }
}
