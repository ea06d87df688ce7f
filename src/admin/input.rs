//! What the admin API accepts: every request body and path parameter is parsed and checked
//! here, by pure functions, before a handler touches any state — so a refused request changes
//! nothing, and the checks can be fuzzed on their own (`fuzz/fuzz_targets/admin_input.rs`).

use std::time::{Duration, SystemTime};

use base64::Engine;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;

use crate::config::{DnsName, RecordName};
use crate::serve::classify::{is_file_name, is_token};
use crate::state::certs::CertId;
use crate::state::challenge::AcmeAnswer;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    key_authorization: String,
    identifier: Option<String>,
    ttl_seconds: Option<u64>,
}

/// `PUT /v1/acme/tokens/<token>`: the answer to store, created at `now`.
pub fn token_put(token: &str, body: &[u8], now: SystemTime) -> Result<AcmeAnswer, Refused> {
    token_path(token)?;
    let body: TokenBody = json_body(body)?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PkiBody {
    content: Option<String>,
    content_base64: Option<String>,
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
    let body: PkiBody = json_body(body)?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertBody {
    /// Leaf then intermediates (PEM); may also carry the key.
    certificate: String,
    /// PEM private key, unless it is in `certificate`.
    #[serde(default)]
    private_key: String,
    /// Names the certificate must cover (C6).
    #[serde(default)]
    names: Vec<String>,
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
    let body: CertBody = json_body(body)?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TxtBody {
    values: Vec<String>,
}

/// A TXT record name in a path (`/v1/probe/txt/<name>`).
pub fn record_name(name: &str) -> Result<RecordName, Refused> {
    name.parse()
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("name: {e}")))
}

/// `PUT /v1/probe/txt/<name>`: the name and its expected values.
pub fn txt_put(name: &str, body: &[u8]) -> Result<(RecordName, Vec<String>), Refused> {
    let name = record_name(name)?;
    let body: TxtBody = json_body(body)?;
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
}
