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

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Empty;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{AlertDescription, ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::causes::Cause;
use super::dns::{Answer, Resolution, Upstream};
use super::report::{Check, CheckKind};
use crate::config::DnsName;
use crate::state::certs::name_covers;

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

/// A TCP connection to `addr` within `timeout`; the error in Boulder's words
/// (`detailedError`: "Connection refused", "Timeout during connect (likely firewall problem)"…).
pub(super) async fn connect(timeout: Duration, addr: SocketAddr) -> Result<TcpStream, String> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(io_words(&e, true)),
        Err(_) => Err("Timeout during connect (likely firewall problem)".to_owned()),
    }
}

/// The ring provider, as everywhere in dcv-proxy.
pub(super) fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS name of a URL host: SNI for a name, none for an address (as Go does).
pub(super) fn tls_server_name(host: &str) -> Result<ServerName<'static>, String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_owned()).map_err(|e| format!("{GENERIC} ({e})"))
}

/// What [`Fetcher::exchange`] got.
struct Exchanged {
    status: u16,
    location: Option<String>,
    body: Bytes,
}

/// Where an exchange failed.
enum Failure {
    Tls(String),
    Head(hyper::Error),
    Body(String),
}

/// One HTTP/1.1 request; the body of a 200 read up to `limit` bytes and no further, like Go's
/// `io.LimitedReader` (a longer body is cut, not an error: the caller refuses its length).
async fn one_exchange<S>(
    stream: S,
    request: http::Request<Empty<Bytes>>,
    limit: usize,
) -> Result<Exchanged, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let answer = crate::http1::send(stream, request)
        .await
        .map_err(Failure::Head)?;
    let status = answer.head.status.as_u16();
    let location = answer
        .head
        .headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = if status == 200 {
        answer
            .body(limit)
            .await
            .map_err(|e| Failure::Body(e.to_string()))?
    } else {
        Bytes::new()
    };
    Ok(Exchanged {
        status,
        location,
        body,
    })
}

/// A stream that remembers the first bytes it read, so that a failure can be told apart the
/// way Boulder does: "HTTP/" where a TLS record was due ("Server only speaks HTTP, not TLS"),
/// an HTTP/2 SETTINGS frame where an HTTP/1.1 status line was due (`h2SettingsFrameErrRegex`).
pub(super) struct Recorder<S> {
    inner: S,
    first: Arc<Mutex<Vec<u8>>>,
}

impl<S> Recorder<S> {
    /// The stream, and where its first bytes will be.
    pub(super) fn new(inner: S) -> (Self, Arc<Mutex<Vec<u8>>>) {
        let first = Arc::new(Mutex::new(Vec::new()));
        (
            Self {
                inner,
                first: first.clone(),
            },
            first,
        )
    }
}

/// How many first bytes a [`Recorder`] keeps.
const RECORDED: usize = 16;

impl<S: AsyncRead + Unpin> AsyncRead for Recorder<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
            if first.len() < RECORDED {
                let fresh = &buf.filled()[before..];
                let room = RECORDED - first.len();
                first.extend_from_slice(&fresh[..fresh.len().min(room)]);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorder<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An I/O error in Boulder's words (`detailedError`: the syscall errors it names).
fn io_words(e: &std::io::Error, connecting: bool) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "Connection refused".into(),
        ErrorKind::NetworkUnreachable => "Network unreachable".into(),
        ErrorKind::ConnectionReset => "Connection reset by peer".into(),
        ErrorKind::TimedOut if connecting => {
            "Timeout during connect (likely firewall problem)".into()
        }
        ErrorKind::TimedOut => {
            "Timeout after connect (your server may be slow or overloaded)".into()
        }
        _ => format!("{GENERIC} ({e})"),
    }
}

/// A failed exchange in Boulder's words.
fn hyper_words(e: &hyper::Error, first: &[u8]) -> String {
    // `h2SettingsFrameErrRegex`: 00 00 ?? 04 00 00 00 00 00, an HTTP/2 server's first frame.
    if first.len() >= 9 && first[..2] == [0, 0] && first[3..9] == [4, 0, 0, 0, 0, 0] {
        return "Server is speaking HTTP/2 over HTTP".into();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return io_words(io, false);
        }
        source = inner.source();
    }
    if e.is_timeout() {
        return "Timeout after connect (your server may be slow or overloaded)".into();
    }
    format!("{GENERIC} ({e})")
}

/// A failed TLS handshake in Boulder's words: a TLS alert as Go prints it (`detailedError`
/// hands `tls.alert` strings back), plain HTTP on the TLS port, or the generic words.
pub(super) fn tls_words(e: &std::io::Error, first: &[u8]) -> String {
    if first.starts_with(b"HTTP/") {
        return "Server only speaks HTTP, not TLS".into();
    }
    if let Some(rustls::Error::AlertReceived(alert)) =
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
    {
        return format!("remote error: tls: {}", go_alert(*alert));
    }
    match e.kind() {
        std::io::ErrorKind::ConnectionReset => "Connection reset by peer".into(),
        _ => format!("{GENERIC} (TLS: {e})"),
    }
}

/// Whether the handshake failed on the server's `no_application_protocol` alert (RFC 7301
/// §3.2: it supports none of the protocols offered).
pub(super) fn is_no_application_protocol(e: &std::io::Error) -> bool {
    matches!(
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::AlertReceived(
            AlertDescription::NoApplicationProtocol
        ))
    )
}

/// A TLS alert as Go's `crypto/tls` names it (alert.go).
fn go_alert(alert: AlertDescription) -> String {
    let known = match alert {
        AlertDescription::CloseNotify => "close notify",
        AlertDescription::UnexpectedMessage => "unexpected message",
        AlertDescription::BadRecordMac => "bad record MAC",
        AlertDescription::RecordOverflow => "record overflow",
        AlertDescription::HandshakeFailure => "handshake failure",
        AlertDescription::BadCertificate => "bad certificate",
        AlertDescription::UnsupportedCertificate => "unsupported certificate",
        AlertDescription::CertificateRevoked => "revoked certificate",
        AlertDescription::CertificateExpired => "expired certificate",
        AlertDescription::CertificateUnknown => "unknown certificate",
        AlertDescription::IllegalParameter => "illegal parameter",
        AlertDescription::UnknownCA => "unknown certificate authority",
        AlertDescription::AccessDenied => "access denied",
        AlertDescription::DecodeError => "error decoding message",
        AlertDescription::DecryptError => "error decrypting message",
        AlertDescription::ProtocolVersion => "protocol version not supported",
        AlertDescription::InsufficientSecurity => "insufficient security level",
        AlertDescription::InternalError => "internal error",
        AlertDescription::InappropriateFallback => "inappropriate fallback",
        AlertDescription::UserCanceled => "user canceled",
        AlertDescription::NoRenegotiation => "no renegotiation",
        AlertDescription::MissingExtension => "missing extension",
        AlertDescription::UnsupportedExtension => "unsupported extension",
        AlertDescription::UnrecognisedName => "unrecognized name",
        AlertDescription::CertificateRequired => "certificate required",
        AlertDescription::NoApplicationProtocol => "no application protocol",
        other => return format!("{other:?}").to_ascii_lowercase(),
    };
    known.to_owned()
}

/// `newHTTPValidationTarget` for a redirect target: A and AAAA, the first AAAA address, else
/// the first A address, in the resolver's answer order (`getAddrs` puts AAAA first).
async fn resolve_first(resolver: &Upstream, host: &str) -> Result<IpAddr, String> {
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
struct Reference {
    /// Lowercase (Go lowercases the scheme).
    scheme: String,
    /// Lowercase (Boulder lowercases the host first thing), brackets kept for IPv6.
    host: String,
    /// The port as written, if any.
    port: Option<String>,
    /// The path as written (percent-encoded), dot segments removed.
    path: String,
    query: Option<String>,
}

/// Go's `(*URL).Parse(location)` on `current`: parses the reference (scheme, authority, path,
/// query; the fragment is dropped, it is never sent) and resolves it (`ResolveReference`,
/// `resolvePath`).
fn resolve_reference(current: &Url, location: &str) -> Result<Reference, String> {
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
fn extract_request_target(
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
fn decoded_len(path: &str) -> usize {
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
fn reserved_block(ip: IpAddr) -> Option<String> {
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
fn resolve_location(
    current: &Url,
    location: &str,
    http_port: u16,
    https_port: u16,
) -> Result<Url, String> {
    let reference = resolve_reference(current, location)?;
    let url = extract_request_target(&reference, http_port, https_port)?;
    if decoded_len(&reference.path) > MAX_PATH_SIZE {
        return Err("Redirect target too long".into());
    }
    Ok(url)
}

/// Judges a fetch of something whose body must be `expected`; a missing answer is `miss`
/// (H2, or H5/H8 when it is missing on one side only). The detail starts with what Boulder
/// would say (`processHTTPValidation`, `validateHTTP01`, `detailedError`), then the redirects.
pub(super) fn judge(
    kind: CheckKind,
    target: &str,
    fetched: &Fetched,
    expected: Expected<'_>,
    miss: Cause,
) -> Check {
    let redirects = redirect_text(&fetched.hops);
    let ip = fetched.address;
    let fail =
        |cause: Cause, said: String| Check::fail(kind, target, cause, format!("{said}{redirects}"));
    let response = match &fetched.outcome {
        Ok(r) => r,
        Err(e) => {
            let cause = match e {
                FetchError::Connect { .. } | FetchError::Exchange { .. } => Cause::H1,
                FetchError::Tls { .. } => Cause::C5,
                FetchError::Body { .. } => Cause::H3,
                FetchError::Redirect { .. } | FetchError::Resolve { .. } => Cause::H4,
            };
            return fail(cause, format!("{ip}: {e}"));
        }
    };
    let url = &fetched.url;
    let status = response.status;
    if status != 200 {
        // Boulder: "Invalid response from <url>: <status>", the status before the body.
        let cause = match status {
            404 | 410 => miss,
            // A redirect not followed: no `Location`, or a 3xx Go's client does not follow.
            300..=399 => Cause::H4,
            _ => Cause::H3,
        };
        return fail(
            cause,
            format!("{ip}: Invalid response from {url}: {status}"),
        );
    }
    match expected {
        Expected::Body(key_authorization) => {
            let body = &response.body;
            if body.len() >= MAX_RESPONSE_SIZE {
                return fail(
                    Cause::H7,
                    format!(
                        "{ip}: Invalid response from {url}: {} (the CA reads at most {} bytes and refuses a body of {MAX_RESPONSE_SIZE} or more)",
                        go_quote(body),
                        MAX_RESPONSE_SIZE - 1
                    ),
                );
            }
            let payload = trim_right_space(body);
            if payload != key_authorization {
                return fail(
                    Cause::H7,
                    format!(
                        "The key authorization file from the server did not match this challenge. Expected {} (got {})",
                        go_quote(key_authorization),
                        go_quote(payload)
                    ),
                );
            }
        }
        Expected::Sha256(_) => {
            if !expected.matches(&response.body) {
                return fail(
                    Cause::H7,
                    format!(
                        "200 with {} ({} bytes), expected {}",
                        preview(&response.body),
                        response.body.len(),
                        expected.describe()
                    ),
                );
            }
        }
    }
    match fetched.hops.first() {
        None => Check::pass(kind, target, "200, content matches"),
        Some(first) => Check::warn(
            kind,
            target,
            Cause::H4,
            format!(
                "200 with the right content, but redirected from {}{redirects}",
                first.url
            ),
        ),
    }
}

/// Whether `fetched` is a miss that a change still on its way would explain: a 404 (410), or
/// a 200 with other content. Redirect trouble, refusals and unreachable addresses are not.
pub(super) fn missing(fetched: &Fetched, expected: Expected<'_>) -> bool {
    match &fetched.outcome {
        Ok(r) => matches!(r.status, 404 | 410) || (r.status == 200 && !expected.matches(&r.body)),
        Err(_) => false,
    }
}

/// The attempt an address's fetch stands for, for [`ca_tolerates`]: validated (passed or only
/// warned), fell back (a dial error), or failed otherwise.
pub(super) fn attempt_of(fetched: &Fetched, judged: &Check) -> Attempt {
    use super::report::Status;
    if matches!(judged.status, Status::Pass | Status::Warn) {
        Attempt::Validates
    } else if fetched.dial_error().is_some() {
        Attempt::FallsBack
    } else {
        Attempt::Fails
    }
}

/// What a body must be.
#[derive(Debug, Clone, Copy)]
pub(super) enum Expected<'a> {
    /// A key authorization: the body, trailing white space trimmed, must be exactly these
    /// bytes (Boulder `validateHTTP01`), and shorter than [`MAX_RESPONSE_SIZE`].
    Body(&'a [u8]),
    /// Content with this SHA-256 (lowercase hex): a registered validation file, served as is.
    Sha256(&'a str),
}

impl Expected<'_> {
    fn matches(&self, body: &[u8]) -> bool {
        match self {
            Expected::Body(expected) => {
                body.len() < MAX_RESPONSE_SIZE && trim_right_space(body) == *expected
            }
            Expected::Sha256(hex) => {
                crate::state::certs::hex(ring::digest::digest(&ring::digest::SHA256, body).as_ref())
                    == *hex
            }
        }
    }

    /// How many bytes of body to read: Boulder's 128 for a key authorization, 64 KiB for a file.
    pub(super) fn body_limit(&self) -> usize {
        match self {
            Expected::Body(_) => MAX_RESPONSE_SIZE,
            Expected::Sha256(_) => MAX_FILE_BODY,
        }
    }

    fn describe(&self) -> String {
        match self {
            Expected::Body(expected) => format!("{} ({} bytes)", preview(expected), expected.len()),
            Expected::Sha256(hex) => format!("the registered file (SHA-256 {hex})"),
        }
    }
}

/// The redirects a fetch answered, after Boulder's words; a long chain shows its first two
/// and its last hops.
fn redirect_text(hops: &[Hop]) -> String {
    if hops.is_empty() {
        return String::new();
    }
    let show = |hop: &Hop| {
        format!(
            "{} at {} -{}-> {}",
            hop.url, hop.address, hop.status, hop.location
        )
    };
    let shown: Vec<String> = if hops.len() > 4 {
        let mut shown: Vec<String> = hops[..2].iter().map(show).collect();
        shown.push(format!("… {} more …", hops.len() - 3));
        shown.extend(hops[hops.len() - 1..].iter().map(show));
        shown
    } else {
        hops.iter().map(show).collect()
    };
    format!(" (redirects: {})", shown.join(", "))
}

/// Go's `strings.TrimRightFunc(string(body), unicode.IsSpace)`: trailing Unicode white space
/// (`\t \n \v \f \r`, space, U+0085, U+00A0 and the other White_Space characters) removed, one
/// decoded character at a time from the end; a byte that is not UTF-8 stops it, as Go's
/// `RuneError` is no space.
fn trim_right_space(body: &[u8]) -> &[u8] {
    let mut end = body.len();
    while let Some((c, width)) = last_char(&body[..end]) {
        if !c.is_whitespace() {
            break;
        }
        end -= width;
    }
    &body[..end]
}

/// The last UTF-8 character of `bytes` and its width; `None` when empty or not UTF-8 there.
fn last_char(bytes: &[u8]) -> Option<(char, usize)> {
    (1..=bytes.len().min(4)).find_map(|width| {
        let tail = std::str::from_utf8(&bytes[bytes.len() - width..]).ok()?;
        let mut chars = tail.chars();
        let c = chars.next()?;
        chars.next().is_none().then_some((c, width))
    })
}

/// Go's `%q` (`strconv.Quote`) of bytes, as Boulder formats bodies in its problem details:
/// double quotes, `\a \b \f \n \r \t \v \\ \"`, `\xNN` for a byte that is not UTF-8 or a
/// control character, `\uNNNN`/`\UNNNNNNNN` for other unprintable characters.
pub(super) fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    let mut rest = bytes;
    while let Some(&first) = rest.first() {
        let width = match first {
            0x00..=0x7f => 1,
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        };
        let decoded = (width > 0 && rest.len() >= width)
            .then(|| std::str::from_utf8(&rest[..width]).ok())
            .flatten()
            .and_then(|s| s.chars().next());
        let Some(c) = decoded else {
            out.push_str(&format!("\\x{first:02x}"));
            rest = &rest[1..];
            continue;
        };
        rest = &rest[width..];
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c == ' ' || !(c.is_control() || c.is_whitespace()) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// A body for a report line: quoted, cut at 60 characters.
fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let cut: String = text.chars().take(60).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// H10, C6, C4: the certificate presented for `name` must cover it and be current.
pub(super) fn certificate_check(
    target: &str,
    name: &DnsName,
    der: &[u8],
    now: SystemTime,
) -> Check {
    let kind = CheckKind::HttpsCertificate;
    let cert = match X509Certificate::from_der(der) {
        Ok((_, cert)) => cert,
        Err(e) => {
            return Check::fail(
                kind,
                target,
                Cause::H10,
                format!("the certificate presented does not parse: {e}"),
            )
        }
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for general in &san.value.general_names {
            if let GeneralName::DNSName(n) = general {
                names.push(n.to_ascii_lowercase());
            }
        }
    }
    let not_after = cert.validity().not_after.timestamp();
    let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(not_after.max(0) as u64);
    let until = humantime::format_rfc3339_seconds(expires);
    if !names.iter().any(|san| name_covers(san, name.as_str())) {
        if names.iter().any(|n| n == DEFAULT_CERT_NAME) {
            // Not yet issued: HTTP-01 validation does not need it (the CA does not check
            // certificates), browsers do.
            return Check::warn(
                kind,
                target,
                Cause::C6,
                format!("no certificate for {name} yet: the node presents its self-signed default"),
            );
        }
        return Check::fail(
            kind,
            target,
            Cause::H10,
            format!(
                "the certificate presented covers {} (issuer {}), not {name}",
                if names.is_empty() {
                    "no DNS name".to_owned()
                } else {
                    names.join(", ")
                },
                cert.issuer()
            ),
        );
    }
    if expires < now {
        return Check::fail(kind, target, Cause::C4, format!("expired at {until}"));
    }
    Check::pass(
        kind,
        target,
        format!(
            "covers {name} (issuer {}), valid until {until}",
            cert.issuer()
        ),
    )
}

/// Accepts any certificate: Boulder does not verify certificates when it follows a redirect to
/// HTTPS during HTTP-01 (`httpTransport`: `InsecureSkipVerify`), nor the TLS-ALPN-01 challenge
/// certificate, which is self-signed (`getChallengeCert`); the probe judges certificates itself
/// instead of failing the handshake. Handshake signatures are still verified with the
/// certificate's key, as Go's client does with `InsecureSkipVerify`.
#[derive(Debug)]
pub(super) struct AnyCertificate(pub(super) Arc<CryptoProvider>);

impl AnyCertificate {
    /// The handshake signature checked with the certificate's own public key. Not through
    /// webpki, which refuses to parse a certificate with a critical extension it does not know,
    /// and the TLS-ALPN-01 challenge certificate has one (acmeIdentifier, RFC 8737 §3). TLS 1.3
    /// takes the scheme's first algorithm, TLS 1.2 any of them (as rustls' own
    /// `verify_tls12_signature`/`verify_tls13_signature` do).
    fn verify(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // RFC 8446 §4.2.3: no PKCS #1 v1.5 and no SHA-1 in TLS 1.3 handshake signatures.
        let tls13_scheme = matches!(
            dss.scheme,
            SignatureScheme::ECDSA_NISTP256_SHA256
                | SignatureScheme::ECDSA_NISTP384_SHA384
                | SignatureScheme::ECDSA_NISTP521_SHA512
                | SignatureScheme::RSA_PSS_SHA256
                | SignatureScheme::RSA_PSS_SHA384
                | SignatureScheme::RSA_PSS_SHA512
                | SignatureScheme::ED25519
                | SignatureScheme::ED448
        );
        if tls13 && !tls13_scheme {
            return Err(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into());
        }
        let (_, parsed) = X509Certificate::from_der(cert.as_ref()).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        let key = parsed.public_key().subject_public_key.data.as_ref();
        let candidates = self
            .0
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algorithms)| *algorithms)
            .ok_or(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
        let candidates = if tls13 {
            &candidates[..candidates.len().min(1)]
        } else {
            candidates
        };
        if candidates.iter().any(|algorithm| {
            algorithm
                .verify_signature(key, message, dss.signature())
                .is_ok()
        }) {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadSignature,
            ))
        }
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, UdpSocket};

    use super::*;
    use crate::probe::dns::Dns;
    use crate::probe::Status;

    const KA: &str = "tok.thumbprint";

    fn current() -> Url {
        Url {
            https: false,
            host: "shop.dcvcheck.com".into(),
            port: 80,
            path: "/.well-known/acme-challenge/tok".into(),
        }
    }

    fn follow(location: &str) -> Result<Url, String> {
        resolve_location(&current(), location, 80, 443)
    }

    #[test]
    fn redirect_targets_the_ca_follows() {
        let u = follow("https://www.dcvcheck.com/.well-known/acme-challenge/tok").unwrap();
        assert_eq!(
            (u.https, u.port, u.host.as_str()),
            (true, 443, "www.dcvcheck.com")
        );
        let u = follow("/moved/tok").unwrap();
        assert_eq!(
            (u.host.as_str(), u.path.as_str()),
            ("shop.dcvcheck.com", "/moved/tok")
        );
        let u = follow("other").unwrap();
        assert_eq!(u.path, "/.well-known/acme-challenge/other");
        let u = follow("../x/./y?q=1#frag").unwrap();
        assert_eq!(u.path, "/.well-known/x/y?q=1");
        let u = follow("?v=2").unwrap();
        assert_eq!(u.path, "/.well-known/acme-challenge/tok?v=2");
        // Either port with either scheme, as Boulder compares the port alone.
        let u = follow("//cdn.dcvcheck.com:443/x").unwrap();
        assert_eq!((u.https, u.port), (false, 443));
        let u = follow("HTTPS://WWW.DcvCheck.COM:80").unwrap();
        assert_eq!(
            (u.https, u.port, u.host.as_str(), u.path.as_str()),
            (true, 80, "www.dcvcheck.com", "/")
        );
        // A private suffix is looked through to its ICANN TLD.
        assert!(follow("https://someone.github.io/x").is_ok());
        // A public IP literal is followed (Boulder allows IP redirect targets that are not
        // reserved).
        let u = follow("http://8.8.8.8/x").unwrap();
        assert_eq!(
            (u.host.as_str(), u.ip()),
            ("8.8.8.8", Some("8.8.8.8".parse().unwrap()))
        );
        let u = follow("http://[2606:4700:4700::1111]/x").unwrap();
        assert_eq!(u.host, "[2606:4700:4700::1111]");
        // Test ports stand in for 80 and 443.
        let u = resolve_location(&current(), "https://a.dcvcheck.com/x", 8080, 8443).unwrap();
        assert_eq!(u.port, 8443);
    }

    #[test]
    fn redirect_targets_the_ca_refuses_in_its_words() {
        for (location, says) in [
            (
                "http://shop.dcvcheck.com:8080/x",
                "Invalid port in redirect target. Only ports 80 and 443 are supported, not 8080",
            ),
            ("https://shop.dcvcheck.com:99999/x", "not 99999"),
            (
                "ftp://shop.dcvcheck.com/x",
                "Invalid protocol scheme in redirect target. Only \"http\" and \"https\" protocol schemes are supported, not \"ftp\"",
            ),
            ("gopher:whatever", "not \"gopher\""),
            ("http:///x", "Invalid empty host in redirect target"),
            (
                "https://shop.dcvcheck.com.well-known/acme-challenge/tok",
                "Check webserver config for missing '/' in redirect target.",
            ),
            (
                "http://127.0.0.1/x",
                "Invalid host in redirect target: IP address is in a reserved address block: [RFC1122], Section 3.2.1.3: Loopback",
            ),
            (
                "http://[::1]/x",
                "Invalid host in redirect target: IP address is in a reserved address block: [RFC4291]: Loopback Address",
            ),
            ("http://10.1.2.3/x", "[RFC1918]: Private-Use"),
            ("http://192.0.0.9/x", "[RFC7723]: Port Control Protocol Anycast"),
            ("http://[2001:db8::1]/x", "[RFC3849]: Documentation"),
            (
                "http://[fe80::1%25eth0]/x",
                "Invalid host in redirect target: contains scope zone",
            ),
            (
                "http://shop.notasuffixzz/x",
                "Invalid host in redirect target, must end in IANA registered TLD",
            ),
            ("http://localhost/x", "must end in IANA registered TLD"),
        ] {
            let e = follow(location).unwrap_err();
            assert!(e.contains(says), "{location}: {e}");
        }
    }

    #[test]
    fn redirect_paths_are_limited_to_2000_bytes_decoded() {
        let at = |n: usize| format!("/{}", "a".repeat(n - 1));
        assert!(follow(&at(MAX_PATH_SIZE)).is_ok());
        assert_eq!(
            follow(&at(MAX_PATH_SIZE + 1)).unwrap_err(),
            "Redirect target too long"
        );
        // Go limits `URL.Path`, the decoded path: 700 escapes are 700 bytes, not 2100.
        let encoded = format!("/{}", "%41".repeat(700));
        assert!(follow(&encoded).is_ok());
        // The query does not count.
        assert!(follow(&format!("/x?{}", "q".repeat(3000))).is_ok());
    }

    #[test]
    fn trailing_unicode_white_space_is_trimmed_like_go() {
        for (body, trimmed) in [
            (&b"tok.thumb\r\n\t "[..], &b"tok.thumb"[..]),
            (b"tok.thumb\x0b\x0c", b"tok.thumb"),
            (
                "tok.thumb\u{a0}\u{85}\u{2028}\u{3000}".as_bytes(),
                b"tok.thumb",
            ),
            (b" tok.thumb", b" tok.thumb"),
            (b"tok.thumb\x00", b"tok.thumb\x00"),
            (b"tok.thumb \xff ", b"tok.thumb \xff"),
            (b"", b""),
        ] {
            assert_eq!(trim_right_space(body), trimmed, "{body:?}");
        }
    }

    #[test]
    fn bodies_are_quoted_like_go() {
        assert_eq!(go_quote(b"a\"b\\c\n\t"), r#""a\"b\\c\n\t""#);
        assert_eq!(go_quote(b"\x00\x7f\xff"), r#""\x00\x7f\xff""#);
        assert_eq!(go_quote("é\u{a0}".as_bytes()), "\"é\\u00a0\"");
    }

    fn response(status: u16, body: &[u8], hops: usize) -> Fetched {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        Fetched {
            hops: (0..hops)
                .map(|_| Hop {
                    url: current(),
                    address: ip,
                    status: 301,
                    location: "https://x/".into(),
                })
                .collect(),
            outcome: Ok(Response {
                status,
                body: Bytes::copy_from_slice(body),
            }),
            address: ip,
            url: current(),
            trail: Trail::default(),
        }
    }

    fn judged(f: &Fetched) -> (Status, Option<Cause>, String) {
        let c = judge(
            CheckKind::HttpToken,
            "t",
            f,
            Expected::Body(KA.as_bytes()),
            Cause::H2,
        );
        (c.status, c.cause, c.detail)
    }

    #[test]
    fn only_status_200_passes() {
        assert_eq!(
            judged(&response(200, b"tok.thumbprint\n", 0)).0,
            Status::Pass
        );
        for status in [201, 202, 203, 204, 206] {
            let (s, c, d) = judged(&response(status, KA.as_bytes(), 0));
            assert_eq!((s, c), (Status::Fail, Some(Cause::H3)), "{status}");
            assert_eq!(
                d,
                format!(
                    "192.0.2.1: Invalid response from http://shop.dcvcheck.com/.well-known/acme-challenge/tok: {status}"
                )
            );
        }
        assert_eq!(judged(&response(404, b"", 0)).1, Some(Cause::H2));
        assert_eq!(judged(&response(410, b"", 0)).1, Some(Cause::H2));
        assert_eq!(judged(&response(403, b"", 0)).1, Some(Cause::H3));
        assert_eq!(judged(&response(500, b"", 0)).1, Some(Cause::H3));
        // A redirect that was not followed (no Location, or a 3xx Go does not follow).
        assert_eq!(judged(&response(301, b"", 0)).1, Some(Cause::H4));
        assert_eq!(judged(&response(304, b"", 0)).1, Some(Cause::H4));
    }

    #[test]
    fn content_is_compared_after_trimming_and_under_128_bytes() {
        let (s, c, d) = judged(&response(200, b"tok.thumbprint", 1));
        assert_eq!((s, c), (Status::Warn, Some(Cause::H4)), "{d}");
        let (s, c, d) = judged(&response(200, b"old.value", 0));
        assert_eq!((s, c), (Status::Fail, Some(Cause::H7)));
        assert_eq!(
            d,
            "The key authorization file from the server did not match this challenge. Expected \"tok.thumbprint\" (got \"old.value\")"
        );
        // 127 bytes pass (white space padding included), 128 fail whatever they hold.
        let padded = |n: usize| format!("{KA}{}", " ".repeat(n - KA.len()));
        assert_eq!(
            judged(&response(200, padded(127).as_bytes(), 0)).0,
            Status::Pass
        );
        let (s, c, d) = judged(&response(200, padded(128).as_bytes(), 0));
        assert_eq!((s, c), (Status::Fail, Some(Cause::H7)), "{d}");
        assert!(
            d.starts_with("192.0.2.1: Invalid response from http://shop.dcvcheck.com/"),
            "{d}"
        );
        // The same limit for a key authorization that long itself.
        let long = "k".repeat(127);
        let c = judge(
            CheckKind::HttpToken,
            "t",
            &response(200, long.as_bytes(), 0),
            Expected::Body(long.as_bytes()),
            Cause::H2,
        );
        assert_eq!(c.status, Status::Pass, "{}", c.detail);
        let longer = "k".repeat(128);
        let c = judge(
            CheckKind::HttpToken,
            "t",
            &response(200, longer.as_bytes(), 0),
            Expected::Body(longer.as_bytes()),
            Cause::H2,
        );
        assert_eq!(c.status, Status::Fail, "{}", c.detail);
        // Leading white space is not trimmed.
        assert_eq!(
            judged(&response(200, b" tok.thumbprint", 0)).1,
            Some(Cause::H7)
        );
    }

    #[test]
    fn the_ca_falls_back_to_the_first_a_only_after_a_dial_error_on_the_aaaa() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        use Attempt::*;
        // A refusing AAAA with a working A: the CA falls back and validates.
        let all = [(v6, FallsBack), (v4, Validates)];
        assert!(ca_tolerates(v6, FallsBack, &all, true).is_some());
        // ... unless the A fails too.
        let all = [(v6, FallsBack), (v4, Fails)];
        assert!(ca_tolerates(v6, FallsBack, &all, false).is_none());
        assert!(ca_tolerates(v4, Fails, &all, false).is_none());
        // No A to fall back to.
        let all = [(v6, FallsBack)];
        assert!(ca_tolerates(v6, FallsBack, &all, true).is_none());
        // An AAAA that answered (404, wrong content…): no fallback.
        let all = [(v6, Fails), (v4, Validates)];
        assert!(ca_tolerates(v6, Fails, &all, true).is_none());
        // An A that fails while every AAAA connects: the CA never reaches it.
        let all = [(v6, Validates), (v4, Fails)];
        assert!(ca_tolerates(v4, Fails, &all, false).is_some());
        let all = [(v6, Fails), (v4, FallsBack)];
        assert!(ca_tolerates(v4, FallsBack, &all, false).is_some());
        // ... but any AAAA that falls back may lead the CA to it.
        let all = [(v6, Validates), (v6b, FallsBack), (v4, Fails)];
        assert!(ca_tolerates(v4, Fails, &all, false).is_none());
        // IPv4 only: every address may be the first.
        let all = [(v4, Fails)];
        assert!(ca_tolerates(v4, Fails, &all, false).is_none());
    }

    #[test]
    fn only_dial_errors_fall_back() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let with = |outcome| Fetched {
            hops: vec![],
            outcome,
            address: ip,
            url: current(),
            trail: Trail::default(),
        };
        let dial = with(Err(FetchError::Connect {
            url: current(),
            reason: "Connection refused".into(),
        }));
        assert_eq!(dial.dial_error(), Some(0));
        let judged = judge(
            CheckKind::HttpToken,
            "t",
            &dial,
            Expected::Body(b"x"),
            Cause::H2,
        );
        assert_eq!(judged.cause, Some(Cause::H1));
        assert_eq!(
            judged.detail,
            "192.0.2.1: Fetching http://shop.dcvcheck.com/.well-known/acme-challenge/tok: Connection refused"
        );
        assert_eq!(attempt_of(&dial, &judged), Attempt::FallsBack);
        for outcome in [
            Err(FetchError::Tls {
                url: current(),
                reason: "remote error: tls: handshake failure".into(),
            }),
            Err(FetchError::Exchange {
                url: current(),
                reason: "Timeout after connect (your server may be slow or overloaded)".into(),
            }),
            Ok(Response {
                status: 404,
                body: Bytes::new(),
            }),
        ] {
            let fetched = with(outcome);
            let judged = judge(
                CheckKind::HttpToken,
                "t",
                &fetched,
                Expected::Body(b"x"),
                Cause::H2,
            );
            assert_eq!(
                attempt_of(&fetched, &judged),
                Attempt::Fails,
                "{}",
                judged.detail
            );
        }
    }

    #[test]
    fn reserved_blocks_are_the_most_specific() {
        let r = |ip: &str| reserved_block(ip.parse().unwrap());
        assert_eq!(
            r("0.0.0.0").unwrap(),
            "IP address is in a reserved address block: [RFC1122], Section 3.2.1.3: \"This host on this network\""
        );
        assert!(r("192.0.0.1")
            .unwrap()
            .ends_with("IPv4 Service Continuity Prefix"));
        assert!(r("192.0.0.200")
            .unwrap()
            .ends_with("IETF Protocol Assignments"));
        assert!(r("2001:1::2")
            .unwrap()
            .ends_with("Traversal Using Relays around NAT Anycast"));
        assert!(r("::ffff:127.0.0.1")
            .unwrap()
            .ends_with("IPv4-mapped Address"));
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "11.0.0.1"] {
            assert_eq!(r(public), None, "{public}");
        }
    }

    // --- fetches against loopback servers and a loopback DNS -------------------------------

    /// A DNS server on loopback answering A and AAAA from a map (NODATA otherwise).
    pub(crate) async fn dns_server(
        records: HashMap<&'static str, (Vec<Ipv4Addr>, Vec<Ipv6Addr>)>,
    ) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                if let Some(reply) = dns_reply(&buf[..n], &records) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        addr
    }

    fn dns_reply(
        query: &[u8],
        records: &HashMap<&'static str, (Vec<Ipv4Addr>, Vec<Ipv6Addr>)>,
    ) -> Option<Vec<u8>> {
        let mut end = 12;
        let mut labels = Vec::new();
        loop {
            let len = *query.get(end)? as usize;
            end += 1;
            if len == 0 {
                break;
            }
            labels.push(String::from_utf8_lossy(query.get(end..end + len)?).to_ascii_lowercase());
            end += len;
        }
        let qtype = u16::from_be_bytes([*query.get(end)?, *query.get(end + 1)?]);
        end += 4;
        let name = labels.join(".");
        let (v4, v6) = records.get(name.as_str()).cloned().unwrap_or_default();
        let rdata: Vec<Vec<u8>> = match qtype {
            1 => v4.iter().map(|a| a.octets().to_vec()).collect(),
            28 => v6.iter().map(|a| a.octets().to_vec()).collect(),
            _ => Vec::new(),
        };
        let mut reply = query.get(..end)?.to_vec();
        reply[2] = 0x84 | (query[2] & 0x01);
        reply[3] = 0x80;
        reply[4..6].copy_from_slice(&[0, 1]);
        reply[6..8].copy_from_slice(&(rdata.len() as u16).to_be_bytes());
        reply[8..12].copy_from_slice(&[0; 4]);
        for data in rdata {
            reply.extend_from_slice(&[0xc0, 0x0c]);
            reply.extend_from_slice(&qtype.to_be_bytes());
            reply.extend_from_slice(&[0, 1, 0, 0, 0, 0]);
            reply.extend_from_slice(&(data.len() as u16).to_be_bytes());
            reply.extend_from_slice(&data);
        }
        Some(reply)
    }

    type Reply = Arc<dyn Fn(&str) -> String + Send + Sync>;

    /// An HTTP/1.1 server on `listener` answering each request with `reply(path)`, raw.
    fn serve(listener: TcpListener, reply: Reply) {
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut byte).await {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    let _ = stream.write_all(reply(&path).as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
    }

    fn answer(status: u16, location: Option<&str>, body: &str) -> String {
        let location = location
            .map(|l| format!("Location: {l}\r\n"))
            .unwrap_or_default();
        format!(
            "HTTP/1.1 {status} X\r\n{location}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    /// A loopback port free on 127.0.0.1 and on ::1, with a listener on each family asked for.
    async fn listeners(v4: bool, v6: bool) -> (u16, Option<TcpListener>, Option<TcpListener>) {
        loop {
            let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = probe.local_addr().unwrap().port();
            drop(probe);
            let four = match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => l,
                Err(_) => continue,
            };
            let six = match TcpListener::bind(("::1", port)).await {
                Ok(l) => l,
                Err(_) => continue,
            };
            return (port, v4.then_some(four), v6.then_some(six));
        }
    }

    struct Lab {
        fetcher: Fetcher,
        dns: Dns,
        port: u16,
    }

    impl Lab {
        async fn new(
            port: u16,
            https_port: u16,
            records: HashMap<&'static str, (Vec<Ipv4Addr>, Vec<Ipv6Addr>)>,
        ) -> Self {
            let dns = dns_server(records).await;
            let text = format!("[probe]\nresolvers = [\"{dns}\"]\ntimeout = \"2s\"\n");
            let config = crate::config::Config::parse(std::path::Path::new("x.toml"), &text)
                .unwrap()
                .probe;
            Self {
                fetcher: Fetcher::new(Duration::from_secs(2), port, https_port).unwrap(),
                dns: Dns::from_config(&config).unwrap(),
                port,
            }
        }

        fn url(&self, path: &str) -> Url {
            Url {
                https: false,
                host: "shop.dcvcheck.com".into(),
                port: self.port,
                path: path.into(),
            }
        }

        async fn fetch(&self, path: &str, ip: &str) -> (Fetched, Check) {
            let fetched = self
                .fetcher
                .fetch_with(
                    self.url(path),
                    ip.parse().unwrap(),
                    self.dns.primary(),
                    MAX_RESPONSE_SIZE,
                    Trail::default(),
                )
                .await;
            let check = judge(
                CheckKind::HttpToken,
                "t",
                &fetched,
                Expected::Body(KA.as_bytes()),
                Cause::H2,
            );
            (fetched, check)
        }
    }

    fn v4_only() -> HashMap<&'static str, (Vec<Ipv4Addr>, Vec<Ipv6Addr>)> {
        HashMap::from([("shop.dcvcheck.com", (vec![Ipv4Addr::LOCALHOST], vec![]))])
    }

    #[tokio::test]
    async fn only_301_302_307_308_are_followed() {
        let (port, listener, _) = listeners(true, false).await;
        serve(
            listener.unwrap(),
            Arc::new(
                |path: &str| match path.trim_start_matches('/').parse::<u16>() {
                    Ok(status) => answer(status, Some("/ok"), ""),
                    Err(_) => answer(200, None, KA),
                },
            ),
        );
        let lab = Lab::new(port, 1, v4_only()).await;
        for status in [301, 302, 307, 308] {
            let (fetched, check) = lab.fetch(&format!("/{status}"), "127.0.0.1").await;
            assert_eq!(
                (check.status, check.cause),
                (Status::Warn, Some(Cause::H4)),
                "{status}: {}",
                check.detail
            );
            assert_eq!(fetched.hops.len(), 1);
        }
        let (_, check) = lab.fetch("/303", "127.0.0.1").await;
        assert_eq!((check.status, check.cause), (Status::Fail, Some(Cause::H4)));
        assert!(
            check
                .detail
                .starts_with("127.0.0.1: Fetching /ok: received disallowed redirect status code"),
            "{}",
            check.detail
        );
        // Not redirects for Go's client: the response itself, which is not 200.
        for status in [300, 304, 305] {
            let (_, check) = lab.fetch(&format!("/{status}"), "127.0.0.1").await;
            assert_eq!(
                (check.status, check.cause),
                (Status::Fail, Some(Cause::H4)),
                "{status}"
            );
            assert!(
                check.detail.contains(&format!(": {status}")),
                "{}",
                check.detail
            );
        }
    }

    #[tokio::test]
    async fn eleven_redirects_are_followed_and_the_twelfth_refused() {
        let (port, listener, _) = listeners(true, false).await;
        // /chain/N/i redirects to /chain/N/i+1 until i = N, which answers.
        serve(
            listener.unwrap(),
            Arc::new(|path: &str| {
                let parts: Vec<usize> = path.split('/').filter_map(|p| p.parse().ok()).collect();
                match parts[..] {
                    [n, i] if i < n => answer(301, Some(&format!("/chain/{n}/{}", i + 1)), ""),
                    _ => answer(200, None, KA),
                }
            }),
        );
        let lab = Lab::new(port, 1, v4_only()).await;
        let (fetched, check) = lab.fetch("/chain/11/0", "127.0.0.1").await;
        assert_eq!(
            (check.status, check.cause),
            (Status::Warn, Some(Cause::H4)),
            "{}",
            check.detail
        );
        assert_eq!(fetched.hops.len(), 11);
        let (fetched, check) = lab.fetch("/chain/12/0", "127.0.0.1").await;
        assert_eq!((check.status, check.cause), (Status::Fail, Some(Cause::H4)));
        assert!(
            check
                .detail
                .starts_with("127.0.0.1: Fetching /chain/12/12: Too many redirects"),
            "{}",
            check.detail
        );
        assert_eq!(fetched.hops.len(), 12);
    }

    #[tokio::test]
    async fn a_url_seen_twice_is_a_loop() {
        let (port, listener, _) = listeners(true, false).await;
        serve(
            listener.unwrap(),
            Arc::new(|path: &str| match path {
                "/a" => answer(302, Some("/b"), ""),
                "/b" => answer(307, Some("/a"), ""),
                _ => answer(301, Some(path), ""),
            }),
        );
        let lab = Lab::new(port, 1, v4_only()).await;
        let (fetched, check) = lab.fetch("/a", "127.0.0.1").await;
        assert_eq!((check.status, check.cause), (Status::Fail, Some(Cause::H4)));
        assert!(
            check
                .detail
                .starts_with("127.0.0.1: Fetching /a: Redirect loop detected"),
            "{}",
            check.detail
        );
        assert_eq!(fetched.hops.len(), 2);
        // A page redirecting to itself.
        let (_, check) = lab.fetch("/self", "127.0.0.1").await;
        assert!(
            check.detail.contains("Redirect loop detected"),
            "{}",
            check.detail
        );
    }

    #[tokio::test]
    async fn redirects_to_other_ports_and_ip_addresses_are_refused() {
        let (port, listener, _) = listeners(true, false).await;
        serve(
            listener.unwrap(),
            Arc::new(move |path: &str| match path {
                "/port" => answer(301, Some("http://shop.dcvcheck.com:8080/x"), ""),
                "/ip" => answer(301, Some(&format!("http://127.0.0.1:{port}/x")), ""),
                _ => answer(200, None, KA),
            }),
        );
        let lab = Lab::new(port, 1, v4_only()).await;
        let (_, check) = lab.fetch("/port", "127.0.0.1").await;
        assert_eq!(check.cause, Some(Cause::H4));
        assert!(
            check
                .detail
                .contains(&format!("Only ports {port} and 1 are supported, not 8080")),
            "{}",
            check.detail
        );
        let (_, check) = lab.fetch("/ip", "127.0.0.1").await;
        assert_eq!(check.cause, Some(Cause::H4));
        assert!(
            check.detail.contains(
                "Invalid host in redirect target: IP address is in a reserved address block"
            ),
            "{}",
            check.detail
        );
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_128_bytes_only_for_a_200() {
        let (port, listener, _) = listeners(true, false).await;
        serve(
            listener.unwrap(),
            Arc::new(|path: &str| match path {
                "/127" => answer(
                    200,
                    None,
                    &format!("{KA}\r\n\t{}", " ".repeat(127 - KA.len() - 3)),
                ),
                "/128" => answer(200, None, &format!("{KA}{}", " ".repeat(128 - KA.len()))),
                "/huge" => answer(200, None, &"a".repeat(100_000)),
                _ => answer(201, None, KA),
            }),
        );
        let lab = Lab::new(port, 1, v4_only()).await;
        let (_, check) = lab.fetch("/127", "127.0.0.1").await;
        assert_eq!(check.status, Status::Pass, "{}", check.detail);
        let (fetched, check) = lab.fetch("/128", "127.0.0.1").await;
        assert_eq!(
            (check.status, check.cause),
            (Status::Fail, Some(Cause::H7)),
            "{}",
            check.detail
        );
        assert_eq!(fetched.outcome.unwrap().body.len(), 128);
        let (fetched, check) = lab.fetch("/huge", "127.0.0.1").await;
        assert_eq!(check.cause, Some(Cause::H7));
        assert_eq!(fetched.outcome.unwrap().body.len(), 128);
        let (fetched, check) = lab.fetch("/created", "127.0.0.1").await;
        assert_eq!((check.status, check.cause), (Status::Fail, Some(Cause::H3)));
        assert!(fetched.outcome.unwrap().body.is_empty());
    }

    #[tokio::test]
    async fn a_dial_error_on_a_redirect_hop_is_not_rescued_by_the_a_address() {
        // The AAAA answers HTTP and redirects to https on the same host; nothing listens for
        // HTTPS on the AAAA. Boulder resolves the hop afresh (its AAAA, no fallback), gets the
        // dial error, retries the validation on the first A with the same records, meets the
        // same redirect again and calls it a loop.
        let (port, v4, v6) = listeners(true, true).await;
        let (https_port, _, _) = listeners(false, false).await;
        let redirect: Reply = Arc::new(move |_: &str| {
            answer(
                301,
                Some(&format!("https://shop.dcvcheck.com:{https_port}/tok")),
                "",
            )
        });
        serve(v4.unwrap(), redirect.clone());
        serve(v6.unwrap(), redirect);
        let records = HashMap::from([(
            "shop.dcvcheck.com",
            (vec![Ipv4Addr::LOCALHOST], vec![Ipv6Addr::LOCALHOST]),
        )]);
        let lab = Lab::new(port, https_port, records).await;
        let (first, check) = lab.fetch("/tok", "::1").await;
        assert_eq!(first.dial_error(), Some(1), "{}", check.detail);
        assert!(
            check.detail.starts_with(&format!(
                "::1: Fetching https://shop.dcvcheck.com:{https_port}/tok: Connection refused"
            )),
            "{}",
            check.detail
        );
        assert_eq!(attempt_of(&first, &check), Attempt::FallsBack);
        let retry = lab
            .fetcher
            .fetch_with(
                lab.url("/tok"),
                "127.0.0.1".parse().unwrap(),
                lab.dns.primary(),
                MAX_RESPONSE_SIZE,
                first.trail.clone(),
            )
            .await;
        let check = judge(
            CheckKind::HttpToken,
            "t",
            &retry,
            Expected::Body(KA.as_bytes()),
            Cause::H2,
        );
        assert_eq!((check.status, check.cause), (Status::Fail, Some(Cause::H4)));
        assert!(
            check.detail.contains("Redirect loop detected"),
            "{}",
            check.detail
        );
    }

    #[tokio::test]
    async fn a_refused_aaaa_falls_back_but_an_aaaa_that_answers_does_not() {
        let (port, v4, v6) = listeners(true, true).await;
        serve(v4.unwrap(), Arc::new(|_: &str| answer(200, None, KA)));
        // ::1 answers 404 on this port: an HTTP answer, no fallback.
        serve(v6.unwrap(), Arc::new(|_: &str| answer(404, None, "")));
        let lab = Lab::new(port, 1, v4_only()).await;
        let (f6, c6) = lab.fetch("/tok", "::1").await;
        let (f4, c4) = lab.fetch("/tok", "127.0.0.1").await;
        assert_eq!(attempt_of(&f6, &c6), Attempt::Fails);
        assert_eq!(attempt_of(&f4, &c4), Attempt::Validates);
        // Nothing on ::1 at another port: a dial error, which falls back.
        let (other, _, _) = listeners(false, false).await;
        let lab = Lab::new(other, 1, v4_only()).await;
        let (f6, c6) = lab.fetch("/tok", "::1").await;
        assert_eq!(f6.dial_error(), Some(0));
        assert_eq!(attempt_of(&f6, &c6), Attempt::FallsBack);
        assert!(c6.detail.ends_with("Connection refused"), "{}", c6.detail);
    }

    #[test]
    fn certificates_must_cover_the_name() {
        let name: DnsName = "shop.dcvcheck.com".parse().unwrap();
        let ca = crate::testkit::TestCa::new("probe").unwrap();
        let der = |names: &[&str]| {
            let leaf = ca.leaf(names, Duration::from_secs(3600)).unwrap();
            let block = leaf
                .leaf_pem
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>();
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(block)
                .unwrap()
        };
        let now = SystemTime::now();
        let c = certificate_check("t", &name, &der(&["*.dcvcheck.com"]), now);
        assert_eq!(c.status, Status::Pass, "{}", c.detail);
        let c = certificate_check("t", &name, &der(&["other-site.com"]), now);
        assert_eq!(c.cause, Some(Cause::H10));
        assert!(c.detail.contains("other-site.com"), "{}", c.detail);
        let c = certificate_check("t", &name, &der(&[DEFAULT_CERT_NAME]), now);
        assert_eq!(c.cause, Some(Cause::C6));
        let later = now + Duration::from_secs(2 * 3600);
        let c = certificate_check("t", &name, &der(&["shop.dcvcheck.com"]), later);
        assert_eq!(c.cause, Some(Cause::C4));
    }
}
