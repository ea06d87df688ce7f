//! HTTP(S) the way Let's Encrypt's validation authority fetches an HTTP-01 token: Boulder's
//! `va/http.go` (read at commit 2d00c8e), rule for rule.
//!
//! - One address per attempt, chosen like Boulder does: the first AAAA address, and the first A
//!   address only after a *dial* error (`newHTTPValidationTarget`, `fallbackErr`,
//!   `processHTTPValidation`); the probe fetches from every address and [`ca_tolerates`] says
//!   which failures the CA would get past.
//! - Redirects (`processRedirect`, `extractRequestTarget`): only 301, 302, 307 and 308 (303 is
//!   refused); the 12th redirect is refused (`numRedirects > maxRedirect` is checked before the
//!   count goes up, so 11 are followed); only `http`/`https`; only the two validation ports
//!   (`probe.http_port` and `probe.https_port` play 80 and 443); a host ending in `.well-known`,
//!   an IP literal with a zone or in an IANA special-purpose block, or a name without an IANA
//!   TLD is refused; a path over 2000 bytes is refused; a URL seen twice is a loop. Every hop is
//!   resolved afresh (its first AAAA, else its first A, no fallback), the same host included.
//! - HTTPS hops: TLS 1.2 or newer, the certificate not verified (`httpTransport`,
//!   `InsecureSkipVerify`).
//! - The answer: status exactly 200, at most 127 bytes of body (128 read, 128 refused:
//!   `maxResponseSize`), trailing Unicode white space trimmed (`validateHTTP01`,
//!   `strings.TrimRightFunc(…, unicode.IsSpace)`) and compared byte for byte.
//! - Failures are worded like Boulder's problem details (`detailedError` in `va/va.go`:
//!   `<ip>: Fetching <url>: Timeout during connect (likely firewall problem)`, `Invalid response
//!   from <url>: 404`…), so what the probe says is what the CA will say.
//!
//! The probe deliberately differs in two places: addresses from DNS are not filtered for IANA
//! reserved blocks (Boulder's `bdns` drops them; the probe must work on loopback and private test
//! networks, and D6 compares the addresses with the node's), and a timeout is `probe.timeout`
//! per connect and per exchange rather than Boulder's 10 s dial and whole-validation deadline.
//!
//! Over HTTPS the certificate presented for the name is checked too (H10, C6, C4): not for
//! HTTP-01, which never looks at it, but for the browsers that come next.
//!
//! One connection per request, to the one address being probed: a connection pool or a
//! resolver inside the client would hide which address answers what.

mod cert_check;
mod exchange;
mod redirect;
#[cfg(test)]
pub(super) mod tests;
mod verdict;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Empty;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::DnsName;
use crate::probe::causes::Cause;
use crate::probe::dns::Upstream;
use crate::probe::report::{Check, CheckKind};
use cert_check::certificate_check;
pub(super) use cert_check::AnyCertificate;
pub(super) use exchange::{
    connect, is_no_application_protocol, ring_provider, tls_server_name, tls_words, Recorder,
};
use exchange::{hyper_words, one_exchange, Exchanged, Failure};
use redirect::{decoded_len, extract_request_target, resolve_first, resolve_reference};
pub(super) use verdict::{attempt_of, go_quote, judge, missing, Expected};

/// Boulder's `maxRedirect` (va/http.go). `processRedirect` refuses a redirect when
/// `numRedirects > maxRedirect` *before* counting it, so 11 redirects are followed and the 12th
/// is refused with "Too many redirects" (Boulder's own test expects the error at
/// `/max-redirect/12`).
pub(super) const MAX_REDIRECTS: usize = 10;
/// Boulder's `maxResponseSize` (va/http.go): at most this many bytes of the body are read, and
/// a body of this length or more is refused ("Invalid response from …").
pub(super) const MAX_RESPONSE_SIZE: usize = 128;
/// Boulder's `maxPathSize` (va/http.go): longest (decoded) path of a redirect target.
pub(super) const MAX_PATH_SIZE: usize = 2000;
/// Largest body read for a pki-validation file (other CAs' file validation, no Boulder limit).
const MAX_FILE_BODY: usize = 64 * 1024;
/// The name in dcv-proxy's self-signed default certificate (see the certificate store).
const DEFAULT_CERT_NAME: &str = "dcv-proxy.invalid";
/// Sent as `User-Agent`, so that the node's logs tell probes from the CA.
const USER_AGENT: &str = concat!("dcv-proxy-probe/", env!("CARGO_PKG_VERSION"));
/// Boulder's words when `detailedError` (va/va.go) recognises nothing more specific.
const GENERIC: &str = "Error getting validation data";

/// Why the HTTP client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    /// rustls refused the protocol versions of the ring provider.
    #[error("TLS client configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Fetches over HTTP/1.1 and HTTPS from one chosen address.
#[derive(Clone)]
pub(super) struct Fetcher {
    timeout: Duration,
    http_port: u16,
    https_port: u16,
    tls: TlsConnector,
}

/// A URL the probe fetches: scheme, host, port, path (with query).
///
/// `host` is a name, an IPv4 address, or an IPv6 address in brackets (a redirect to an IP
/// literal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            write!(f, "{scheme}://{}{}", self.host, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

impl Url {
    /// The `Host` header: the port only when it is not the scheme's default.
    fn host_header(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The host as an address, for a redirect to an IP literal.
    fn ip(&self) -> Option<IpAddr> {
        let bare = self
            .host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host);
        bare.parse().ok()
    }
}

/// The final response of a fetch. The body is read only for a 200 (Boulder checks the status
/// before reading), and only up to the limit.
#[derive(Debug, Clone)]
pub(super) struct Response {
    pub status: u16,
    pub body: Bytes,
}

/// A redirect answered (followed, or refused: then it is the last one).
#[derive(Debug, Clone)]
pub(super) struct Hop {
    pub url: Url,
    /// The address that answered it.
    pub address: IpAddr,
    pub status: u16,
    pub location: String,
}

/// Why a fetch ended without a response. The texts are Boulder's (`detailedError`, va/va.go).
#[derive(Debug, Clone)]
pub(super) enum FetchError {
    /// TCP connect refused, unreachable or timed out: Boulder's "dial" error, the only one after
    /// which it tries another address (`fallbackErr`).
    Connect { url: Url, reason: String },
    /// The TLS handshake of an HTTPS hop failed.
    Tls { url: Url, reason: String },
    /// The request was sent but no complete response head came back.
    Exchange { url: Url, reason: String },
    /// The body of the 200 could not be read.
    Body { reason: String },
    /// A redirect the CA refuses; `location` is the `Location` header as sent, which Boulder
    /// names in its message (Go's `url.Error` for a `CheckRedirect` error).
    Redirect { location: String, reason: String },
    /// A redirect target's name does not resolve.
    Resolve { location: String, reason: String },
}

impl FetchError {
    /// Boulder's detail without the address prefix.
    fn boulder(&self) -> String {
        match self {
            FetchError::Connect { url, reason, .. }
            | FetchError::Tls { url, reason }
            | FetchError::Exchange { url, reason } => format!("Fetching {url}: {reason}"),
            FetchError::Body { reason, .. } => {
                format!("Error reading HTTP response body: {reason}")
            }
            FetchError::Redirect { location, reason } => format!("Fetching {location}: {reason}"),
            FetchError::Resolve {
                location, reason, ..
            } => format!("Fetching {location}: {reason}"),
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.boulder())
    }
}

/// What one validation attempt has seen so far: the URLs requested (Boulder's validation
/// records, against which a redirect loop is detected) and the redirects counted. Boulder keeps
/// both across its IPv6→IPv4 retry (`processRedirect` is one closure over `records` and
/// `numRedirects`), so the retry continues a trail instead of starting one.
#[derive(Debug, Clone, Default)]
pub(super) struct Trail {
    records: Vec<Url>,
    redirects: usize,
}

/// What a fetch saw: the redirects and how it ended.
#[derive(Debug, Clone)]
pub(super) struct Fetched {
    pub hops: Vec<Hop>,
    pub outcome: Result<Response, FetchError>,
    /// The address of the last request (Boulder prefixes its problem detail with it).
    pub address: IpAddr,
    /// The last URL requested.
    pub url: Url,
    /// The attempt's trail, to continue it on a fallback address.
    pub trail: Trail,
}

impl Fetched {
    /// `Some(n)` when the fetch ended with a dial error on its `n`-th request (0: the first):
    /// Boulder then retries the whole validation on the first A address, however far the
    /// redirects had gone (`fallbackErr` sees the dial error through `client.Do`).
    pub(super) fn dial_error(&self) -> Option<usize> {
        matches!(self.outcome, Err(FetchError::Connect { .. })).then_some(self.hops.len())
    }
}

/// How an attempt from one address ends, as Boulder's choice of address sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempt {
    /// The CA validates when it uses this address.
    Validates,
    /// It fails in a way after which Boulder tries the first A address (HTTP-01: a dial error,
    /// va/http.go `fallbackErr`; TLS-ALPN-01: any error before a certificate is in hand,
    /// va/tlsalpn.go `tryGetChallengeCert`).
    FallsBack,
    /// It fails, and Boulder does not try another address.
    Fails,
}

/// Whether the CA gets past a failure at `ip`, and why, given every address's [`Attempt`]:
/// Boulder uses the first AAAA address and reaches an A address only after a failure that
/// falls back there (va/http.go `newHTTPValidationTarget`, va/tlsalpn.go
/// `tryGetChallengeCert`). `fallback_validates` says whether the attempt that follows a
/// fallback from `ip` validates at every A address (the answer order decides which is first).
///
/// Answer order is not fixed (resolvers rotate, and the CA asks from several perspectives), so
/// each address is taken as possibly first of its family: a failure is tolerated only when it
/// is, whichever address comes first. `None`: the CA fails when it lands here.
pub(super) fn ca_tolerates(
    ip: IpAddr,
    attempt: Attempt,
    attempts: &[(IpAddr, Attempt)],
    fallback_validates: bool,
) -> Option<String> {
    let has_v4 = attempts.iter().any(|(a, _)| a.is_ipv4());
    let has_v6 = attempts.iter().any(|(a, _)| a.is_ipv6());
    match (ip.is_ipv6(), attempt) {
        (_, Attempt::Validates) => None,
        (true, Attempt::Fails) => None,
        (true, Attempt::FallsBack) => (has_v4 && fallback_validates).then(|| {
            "tolerated: the CA tries the first AAAA address and, after a connection failure \
             there, the first A address, which validates"
                .to_owned()
        }),
        (false, _) => {
            let reached = !has_v6
                || attempts
                    .iter()
                    .any(|(a, t)| a.is_ipv6() && *t == Attempt::FallsBack);
            (!reached).then(|| {
                "tolerated: the CA uses the first AAAA address and reaches an A address only \
                 after a connection failure there, and every AAAA address connects"
                    .to_owned()
            })
        }
    }
}

/// Why a failure on the HTTP port (`https` false) or on the HTTPS port does not fail a
/// validation by `method` (`probe.validation_method`), or `None` when the CA validates there:
/// HTTP-01 is fetched from port 80 (RFC 8555 §8.3; Boulder reaches 443 only through a
/// redirect, which the token check follows, and then verifies no certificate), TLS-ALPN-01 is
/// a handshake on port 443 (RFC 8737 §3; judged by the TLS-ALPN-01 checks), DNS-01 connects to
/// nothing.
pub(super) fn port_unused(method: &str, https: bool) -> Option<&'static str> {
    match (method, https) {
        ("http-01", false) | ("tls-alpn-01", true) => None,
        ("http-01", true) => Some(
            "tolerated: HTTP-01 is fetched from port 80 (RFC 8555 §8.3); the CA reaches port 443 only through a redirect, which the token check follows, and verifies no certificate there",
        ),
        ("tls-alpn-01", false) => Some(
            "tolerated: TLS-ALPN-01 is validated on port 443 only (RFC 8737 §3); the CA does not connect to port 80 for it",
        ),
        _ => Some("tolerated: DNS-01 is validated in DNS; the CA does not connect to the node"),
    }
}

/// Turns a failing check into a warning that says why the CA tolerates it.
pub(super) fn tolerate(mut check: Check, why: &str) -> Check {
    if check.status == super::report::Status::Fail {
        check.status = super::report::Status::Warn;
        check.detail = format!("{} ({why})", check.detail);
    }
    check
}

impl Fetcher {
    pub(super) fn new(
        timeout: Duration,
        http_port: u16,
        https_port: u16,
    ) -> Result<Self, HttpSetupError> {
        // TLS 1.2 and 1.3 only: Boulder refuses an HTTPS redirect target below TLS 1.2
        // (`processRedirect`), and Go's client offers nothing older.
        let mut config = ClientConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(ring_provider())))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            timeout,
            http_port,
            https_port,
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// `http://` or `https://` `name` on the configured port.
    pub(super) fn url(&self, https: bool, name: &DnsName, path: &str) -> Url {
        Url {
            https,
            host: name.as_str().to_owned(),
            port: if https {
                self.https_port
            } else {
                self.http_port
            },
            path: path.to_owned(),
        }
    }

    /// H1: a TCP connection to `ip` on the HTTP port opens within the timeout.
    pub(super) async fn connect_check(&self, ip: IpAddr) -> Check {
        let addr = SocketAddr::new(ip, self.http_port);
        let target = addr.to_string();
        match self.connect(addr).await {
            Ok(_) => Check::pass(CheckKind::TcpConnect, target, "connection accepted"),
            Err(reason) => Check::fail(
                CheckKind::TcpConnect,
                target,
                Cause::H1,
                format!("{ip}: {reason}"),
            ),
        }
    }

    /// A TCP connection within the timeout; the error in Boulder's words.
    async fn connect(&self, addr: SocketAddr) -> Result<TcpStream, String> {
        connect(self.timeout, addr).await
    }

    /// GETs `url` from `ip`, following redirects like the CA, reading at most 64 KiB of body
    /// (pki-validation files); redirect targets are resolved through `resolver`.
    pub(super) async fn fetch(&self, url: Url, ip: IpAddr, resolver: &Upstream) -> Fetched {
        self.fetch_with(url, ip, resolver, MAX_FILE_BODY, Trail::default())
            .await
    }

    /// GETs `url` from `ip` the way Boulder's `processHTTPValidation` does one `client.Do`:
    /// redirects checked by `processRedirect`, every hop resolved afresh (`newHTTPValidationTarget`:
    /// first AAAA, else first A, no fallback), `limit` bytes of body read at most. `trail` is
    /// empty for a first attempt, or the trail of the attempt this one falls back from.
    pub(super) async fn fetch_with(
        &self,
        url: Url,
        ip: IpAddr,
        resolver: &Upstream,
        limit: usize,
        mut trail: Trail,
    ) -> Fetched {
        let mut hops = Vec::new();
        let mut url = url;
        let mut ip = ip;
        // The base record (or, on a fallback, the retry record) of the first request.
        trail.records.push(url.clone());
        loop {
            let answer = match self.exchange(&url, ip, limit).await {
                Ok(answer) => answer,
                Err(e) => {
                    return Fetched {
                        hops,
                        outcome: Err(e),
                        address: ip,
                        url,
                        trail,
                    }
                }
            };
            let done = |hops, trail, url, answer: Exchanged| Fetched {
                hops,
                outcome: Ok(Response {
                    status: answer.status,
                    body: answer.body,
                }),
                address: ip,
                url,
                trail,
            };
            // Go's client redirects on these five only (`redirectBehavior`), and returns a
            // redirect without `Location` as the response.
            if !matches!(answer.status, 301 | 302 | 303 | 307 | 308) {
                return done(hops, trail, url, answer);
            }
            let Some(location) = answer.location.clone().filter(|l| !l.is_empty()) else {
                return done(hops, trail, url, answer);
            };
            hops.push(Hop {
                url: url.clone(),
                address: ip,
                status: answer.status,
                location: location.clone(),
            });
            let refuse = |hops, trail, url, reason: String| Fetched {
                hops,
                outcome: Err(FetchError::Redirect {
                    location: location.clone(),
                    reason,
                }),
                address: ip,
                url,
                trail,
            };
            // `req.URL.Parse(loc)`, before `CheckRedirect`: Go names the current URL.
            let reference = match resolve_reference(&url, &location) {
                Ok(r) => r,
                Err(e) => {
                    return Fetched {
                        hops,
                        outcome: Err(FetchError::Redirect {
                            location: url.to_string(),
                            reason: format!(
                                "{GENERIC} (the Location header {location:?} does not parse: {e})"
                            ),
                        }),
                        address: ip,
                        url,
                        trail,
                    }
                }
            };
            // `processRedirect`, in its order.
            if trail.redirects > MAX_REDIRECTS {
                return refuse(hops, trail, url, "Too many redirects".into());
            }
            trail.redirects += 1;
            if !matches!(answer.status, 301 | 302 | 307 | 308) {
                return refuse(
                    hops,
                    trail,
                    url,
                    "received disallowed redirect status code".into(),
                );
            }
            let next = match extract_request_target(&reference, self.http_port, self.https_port) {
                Ok(next) => next,
                Err(reason) => return refuse(hops, trail, url, reason),
            };
            if decoded_len(&reference.path) > MAX_PATH_SIZE {
                return refuse(hops, trail, url, "Redirect target too long".into());
            }
            if trail.records.contains(&next) {
                return refuse(hops, trail, url, "Redirect loop detected".into());
            }
            let next_ip = match next.ip() {
                Some(literal) => literal,
                None => match resolve_first(resolver, &next.host).await {
                    Ok(found) => found,
                    Err(reason) => {
                        return Fetched {
                            hops,
                            outcome: Err(FetchError::Resolve {
                                location: location.clone(),
                                reason,
                            }),
                            address: ip,
                            url,
                            trail,
                        }
                    }
                },
            };
            trail.records.push(next.clone());
            url = next;
            ip = next_ip;
        }
    }

    /// The HTTPS port of `ip`: a TCP connect (C5), then a handshake for `name` (SNI) whose
    /// certificate is judged (H10, C6, C4). A full handshake rather than a bare connect,
    /// which the node would log as a failed handshake at every probe. The statuses are those of
    /// a site served over HTTPS; the caller tolerates them for a validation that never uses the
    /// port.
    pub(super) async fn https_checks(&self, ip: IpAddr, name: &DnsName) -> (Check, Option<Check>) {
        let addr = SocketAddr::new(ip, self.https_port);
        let target = addr.to_string();
        let tcp = match self.connect(addr).await {
            Ok(tcp) => tcp,
            Err(reason) => {
                let cause = if self.https_port == self.http_port {
                    Cause::H1
                } else {
                    Cause::C5
                };
                let check = Check::fail(
                    CheckKind::TcpConnect,
                    &target,
                    cause,
                    format!("{ip}: {reason}"),
                );
                return (check, None);
            }
        };
        let connected = Check::pass(CheckKind::TcpConnect, &target, "connection accepted");
        let handshake = async {
            let server_name =
                ServerName::try_from(name.as_str().to_owned()).map_err(|e| e.to_string())?;
            let tls = tokio::time::timeout(self.timeout, self.tls.connect(server_name, tcp))
                .await
                .map_err(|_| format!("TLS handshake timeout after {:?}", self.timeout))?
                .map_err(|e| format!("TLS handshake: {e}"))?;
            tls.get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec())
                .ok_or_else(|| "no certificate presented".to_owned())
        };
        let certificate = match handshake.await {
            Ok(der) => certificate_check(&target, name, &der, SystemTime::now()),
            Err(reason) => Check::fail(CheckKind::HttpsCertificate, &target, Cause::C5, reason),
        };
        (connected, Some(certificate))
    }

    /// One request and its response head (and, for a 200, up to `limit` bytes of body).
    async fn exchange(&self, url: &Url, ip: IpAddr, limit: usize) -> Result<Exchanged, FetchError> {
        let addr = SocketAddr::new(ip, url.port);
        let tcp = self
            .connect(addr)
            .await
            .map_err(|reason| FetchError::Connect {
                url: url.clone(),
                reason,
            })?;
        let (stream, first_bytes) = Recorder::new(tcp);
        let request = http::Request::get(url.path.as_str())
            .header(http::header::HOST, url.host_header())
            .header(http::header::USER_AGENT, USER_AGENT)
            // Boulder sends it for mod_security's sake (`processHTTPValidation`).
            .header(http::header::ACCEPT, "*/*")
            .header(http::header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Exchange {
                url: url.clone(),
                reason: format!("{GENERIC} ({e})"),
            })?;
        let first = || {
            first_bytes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        };
        let exchange = async {
            if url.https {
                let server_name = tls_server_name(&url.host).map_err(Failure::Tls)?;
                let tls = self
                    .tls
                    .connect(server_name, stream)
                    .await
                    .map_err(|e| Failure::Tls(tls_words(&e, &first())))?;
                one_exchange(tls, request, limit).await
            } else {
                one_exchange(stream, request, limit).await
            }
        };
        let outcome = tokio::time::timeout(self.timeout, exchange).await;
        let url = url.clone();
        match outcome {
            Ok(Ok(exchanged)) => Ok(exchanged),
            Ok(Err(Failure::Tls(reason))) => Err(FetchError::Tls { url, reason }),
            Ok(Err(Failure::Head(e))) => Err(FetchError::Exchange {
                url,
                reason: hyper_words(&e, &first()),
            }),
            Ok(Err(Failure::Body(reason))) => Err(FetchError::Body { reason }),
            Err(_) => Err(FetchError::Exchange {
                url,
                reason: "Timeout after connect (your server may be slow or overloaded)".into(),
            }),
        }
    }
}
