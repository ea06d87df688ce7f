//! HTTP(S) the way the CA fetches: a TCP connect to each address on the HTTP and HTTPS ports
//! (H1), then `GET` with the `Host` the CA sends, following redirects like Let's Encrypt does
//! (at most 10, only `http`/`https`, only to the two validation ports, never to an IP address;
//! any redirect is reported, H4), the status (H2, H3) and the body (H7) judged; over HTTPS the
//! certificate presented for the name is checked too (H10, C6, C4).
//!
//! One connection per request, to the one address being probed: a connection pool or a
//! resolver inside the client would hide which address answers what.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::causes::Cause;
use super::dns::{Resolution, Upstream};
use super::report::{Check, CheckKind};
use crate::config::DnsName;
use crate::state::certs::name_covers;

/// Redirects the CA follows before giving up (Let's Encrypt: 10).
pub const MAX_REDIRECTS: usize = 10;
/// Largest body read: a token or validation file is tiny.
const MAX_BODY: usize = 64 * 1024;
/// The name in dcv-proxy's self-signed default certificate (see the certificate store).
const DEFAULT_CERT_NAME: &str = "dcv-proxy.invalid";
/// Sent as `User-Agent`, so that the node's logs tell probes from the CA.
const USER_AGENT: &str = concat!("dcv-proxy-probe/", env!("CARGO_PKG_VERSION"));

/// Why the HTTP client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    /// rustls refused the protocol versions of the ring provider.
    #[error("TLS client configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Fetches over HTTP/1.1 and HTTPS from one chosen address.
#[derive(Clone)]
pub struct Fetcher {
    timeout: Duration,
    http_port: u16,
    https_port: u16,
    tls: TlsConnector,
}

/// A URL the probe fetches: scheme, host, port, path (with query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
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
}

/// The final response of a fetch.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

/// A redirect followed.
#[derive(Debug, Clone)]
pub struct Hop {
    pub url: Url,
    pub status: u16,
    pub location: String,
}

/// Why a fetch ended without a response.
#[derive(Debug, Clone)]
pub enum FetchError {
    /// TCP connect refused, unreachable or timed out.
    Connect {
        url: Url,
        addr: SocketAddr,
        reason: String,
    },
    /// The TLS handshake failed.
    Tls { url: Url, reason: String },
    /// The request was sent but no complete response came back in time.
    Exchange { url: Url, reason: String },
    /// A redirect the CA would not follow (scheme, port, IP address, too many).
    Redirect(String),
    /// A redirect target's name does not resolve.
    Resolve { host: String, reason: String },
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Connect { url, addr, reason } => {
                write!(f, "fetching {url}: cannot connect to {addr}: {reason}")
            }
            FetchError::Tls { url, reason } => write!(f, "fetching {url}: TLS handshake: {reason}"),
            FetchError::Exchange { url, reason } => write!(f, "fetching {url}: {reason}"),
            FetchError::Redirect(reason) => f.write_str(reason),
            FetchError::Resolve { host, reason } => {
                write!(f, "redirect target {host} does not resolve: {reason}")
            }
        }
    }
}

/// What a fetch saw: the redirects followed and how it ended.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub hops: Vec<Hop>,
    pub outcome: Result<Response, FetchError>,
}

impl Fetcher {
    pub fn new(timeout: Duration, http_port: u16, https_port: u16) -> Result<Self, HttpSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
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
    pub fn url(&self, https: bool, name: &DnsName, path: &str) -> Url {
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
    pub async fn connect_check(&self, ip: IpAddr) -> Check {
        let addr = SocketAddr::new(ip, self.http_port);
        let target = addr.to_string();
        match self.connect(addr).await {
            Ok(_) => Check::pass(CheckKind::TcpConnect, target, "connection accepted"),
            Err(reason) => Check::fail(
                CheckKind::TcpConnect,
                target,
                Cause::H1,
                format!("cannot connect: {reason}"),
            ),
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<TcpStream, String> {
        match tokio::time::timeout(self.timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("timeout after {:?}", self.timeout)),
        }
    }

    /// GETs `url` from `ip`, following redirects like the CA; redirect targets on another host
    /// are resolved through `resolver`.
    pub async fn fetch(&self, url: Url, ip: IpAddr, resolver: &Upstream) -> Fetched {
        let mut hops = Vec::new();
        let mut url = url;
        let mut ip = Some(ip);
        loop {
            let addr = match ip {
                Some(ip) => ip,
                None => match resolve_one(resolver, &url.host).await {
                    Ok(ip) => ip,
                    Err(reason) => {
                        return Fetched {
                            hops,
                            outcome: Err(FetchError::Resolve {
                                host: url.host.clone(),
                                reason,
                            }),
                        }
                    }
                },
            };
            let (response, location) = match self.exchange(&url, addr).await {
                Ok(r) => r,
                Err(e) => {
                    return Fetched {
                        hops,
                        outcome: Err(e),
                    }
                }
            };
            let Some(location) = location.filter(|_| is_redirect(response.status)) else {
                return Fetched {
                    hops,
                    outcome: Ok(response),
                };
            };
            hops.push(Hop {
                url: url.clone(),
                status: response.status,
                location: location.clone(),
            });
            if hops.len() > MAX_REDIRECTS {
                return Fetched {
                    hops,
                    outcome: Err(FetchError::Redirect(format!(
                        "too many redirects: the CA follows at most {MAX_REDIRECTS}"
                    ))),
                };
            }
            let next = match resolve_location(&url, &location, self.http_port, self.https_port) {
                Ok(next) => next,
                Err(reason) => {
                    return Fetched {
                        hops,
                        outcome: Err(FetchError::Redirect(reason)),
                    }
                }
            };
            // The same host keeps the address under probe; another host is resolved afresh.
            ip = (next.host == url.host).then_some(addr);
            url = next;
        }
    }

    /// The HTTPS port of `ip`: a TCP connect (H1, C5), then a handshake for `name` (SNI)
    /// whose certificate is judged (H10, C6, C4). A full handshake rather than a bare connect,
    /// which the node would log as a failed handshake at every probe.
    pub async fn https_checks(&self, ip: IpAddr, name: &DnsName) -> (Check, Option<Check>) {
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
                    format!("cannot connect: {reason}"),
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

    /// One request and its response (the `Location` header for redirects).
    async fn exchange(
        &self,
        url: &Url,
        ip: IpAddr,
    ) -> Result<(Response, Option<String>), FetchError> {
        let addr = SocketAddr::new(ip, url.port);
        let tcp = self
            .connect(addr)
            .await
            .map_err(|reason| FetchError::Connect {
                url: url.clone(),
                addr,
                reason,
            })?;
        let request = http::Request::get(url.path.as_str())
            .header(http::header::HOST, url.host_header())
            .header(http::header::USER_AGENT, USER_AGENT)
            .header(http::header::ACCEPT, "*/*")
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Exchange {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let exchange = async {
            if url.https {
                let server_name =
                    ServerName::try_from(url.host.clone()).map_err(|e| (true, e.to_string()))?;
                let tls = self
                    .tls
                    .connect(server_name, tcp)
                    .await
                    .map_err(|e| (true, e.to_string()))?;
                http1(tls, request, MAX_BODY).await.map_err(|e| (false, e))
            } else {
                http1(tcp, request, MAX_BODY).await.map_err(|e| (false, e))
            }
        };
        let (parts, body) = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(r)) => r,
            Ok(Err((true, reason))) => {
                return Err(FetchError::Tls {
                    url: url.clone(),
                    reason,
                })
            }
            Ok(Err((false, reason))) => {
                return Err(FetchError::Exchange {
                    url: url.clone(),
                    reason,
                })
            }
            Err(_) => {
                return Err(FetchError::Exchange {
                    url: url.clone(),
                    reason: format!("no response within {:?}", self.timeout),
                })
            }
        };
        let location = parts
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((
            Response {
                status: parts.status.as_u16(),
                body,
            },
            location,
        ))
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// The first address of `host`, IPv6 first as the CA prefers it.
async fn resolve_one(resolver: &Upstream, host: &str) -> Result<IpAddr, String> {
    let resolution = Resolution::of(resolver, host).await;
    let addresses = resolution.addresses();
    addresses
        .iter()
        .find(|a| a.is_ipv6())
        .or_else(|| addresses.first())
        .copied()
        .ok_or_else(|| {
            format!(
                "{} (A), {} (AAAA)",
                resolution.v4.describe_failure(),
                resolution.v6.describe_failure()
            )
        })
}

/// Where a redirect from `current` to `location` leads, if the CA would follow it: only
/// `http`/`https`, only to the validation ports (`http_port`, `https_port` play 80 and 443),
/// never to an IP address (Let's Encrypt's rules for HTTP-01, RFC 8555 §8.3).
pub fn resolve_location(
    current: &Url,
    location: &str,
    http_port: u16,
    https_port: u16,
) -> Result<Url, String> {
    let location = location.trim();
    let (scheme, rest) = if let Some((scheme, rest)) = location.split_once("://") {
        (Some(scheme.to_ascii_lowercase()), Some(rest))
    } else if let Some(rest) = location.strip_prefix("//") {
        (None, Some(rest))
    } else {
        (None, None)
    };
    let Some(rest) = rest else {
        // Same scheme, host and port.
        let path = if location.starts_with('/') {
            location.to_owned()
        } else {
            let base = current.path.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{}{location}", if dir.is_empty() { "/" } else { dir })
        };
        return Ok(Url {
            path,
            ..current.clone()
        });
    };
    let https = match scheme.as_deref() {
        None => current.https,
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err(format!(
                "redirect to {location}: scheme {other:?}, the CA only follows http and https"
            ))
        }
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if authority.starts_with('[') {
        return Err(format!(
            "redirect to {location}: an IP address, the CA only follows names"
        ));
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => {
                let port: u16 = port
                    .parse()
                    .map_err(|_| format!("redirect to {location}: bad port {port:?}"))?;
                (host, Some(port))
            }
            None => (authority, None),
        }
    };
    if host.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "redirect to {location}: an IP address, the CA only follows names"
        ));
    }
    let host = host
        .parse::<DnsName>()
        .map_err(|e| format!("redirect to {location}: bad host: {e}"))?;
    let port = match port {
        None => {
            if https {
                https_port
            } else {
                http_port
            }
        }
        Some(p) if p == http_port || p == https_port => p,
        Some(p) => {
            return Err(format!(
                "redirect to {location}: port {p}, the CA only follows redirects to ports {http_port} and {https_port}"
            ))
        }
    };
    Ok(Url {
        https,
        host: host.as_str().to_owned(),
        port,
        path,
    })
}

/// Judges a fetch of something whose body must be `expected`; a missing answer is `miss`
/// (H2, or H5/H8 when it is missing on one side only).
pub fn judge(
    kind: CheckKind,
    target: &str,
    fetched: &Fetched,
    expected: Expected<'_>,
    miss: Cause,
) -> Check {
    let redirects = redirect_text(&fetched.hops);
    let response = match &fetched.outcome {
        Ok(r) => r,
        Err(e @ FetchError::Redirect(_)) => {
            return Check::fail(kind, target, Cause::H4, format!("{redirects}{e}"))
        }
        Err(e @ FetchError::Tls { .. }) => {
            return Check::fail(kind, target, Cause::C5, format!("{redirects}{e}"))
        }
        Err(e @ FetchError::Resolve { .. }) => {
            return Check::fail(kind, target, Cause::H4, format!("{redirects}{e}"))
        }
        Err(e) => return Check::fail(kind, target, Cause::H1, format!("{redirects}{e}")),
    };
    let url = fetched
        .hops
        .first()
        .map(|h| h.url.to_string())
        .unwrap_or_default();
    let status = response.status;
    match status {
        200 => {
            if expected.matches(&response.body) {
                if fetched.hops.is_empty() {
                    Check::pass(kind, target, "200, content matches")
                } else {
                    Check::warn(
                        kind,
                        target,
                        Cause::H4,
                        format!("{redirects}200 with the right content, but redirected from {url}"),
                    )
                }
            } else {
                Check::fail(
                    kind,
                    target,
                    Cause::H7,
                    format!(
                        "{redirects}200 with {} ({} bytes), expected {}",
                        preview(trim_end(&response.body)),
                        response.body.len(),
                        expected.describe()
                    ),
                )
            }
        }
        404 | 410 => Check::fail(
            kind,
            target,
            miss,
            format!("{redirects}Invalid response: {status}"),
        ),
        _ => Check::fail(
            kind,
            target,
            Cause::H3,
            format!("{redirects}Invalid response: {status}"),
        ),
    }
}

/// Whether `fetched` is a miss that a change still on its way would explain: a 404 (410), or
/// a 200 with other content. Redirect trouble, refusals and unreachable addresses are not.
pub fn missing(fetched: &Fetched, expected: Expected<'_>) -> bool {
    match &fetched.outcome {
        Ok(r) => matches!(r.status, 404 | 410) || (r.status == 200 && !expected.matches(&r.body)),
        Err(_) => false,
    }
}

/// What a body must be.
#[derive(Debug, Clone, Copy)]
pub enum Expected<'a> {
    /// These bytes, trailing whitespace ignored, as the CA compares a key authorization
    /// (RFC 8555 §8.3).
    Body(&'a [u8]),
    /// Content with this SHA-256 (lowercase hex): a registered validation file, served as is.
    Sha256(&'a str),
}

impl Expected<'_> {
    fn matches(&self, body: &[u8]) -> bool {
        match self {
            Expected::Body(expected) => trim_end(body) == trim_end(expected),
            Expected::Sha256(hex) => {
                crate::state::certs::check::hex(
                    ring::digest::digest(&ring::digest::SHA256, body).as_ref(),
                ) == *hex
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Expected::Body(expected) => {
                let expected = trim_end(expected);
                format!("{} ({} bytes)", preview(expected), expected.len())
            }
            Expected::Sha256(hex) => format!("the registered file (SHA-256 {hex})"),
        }
    }
}

fn redirect_text(hops: &[Hop]) -> String {
    if hops.is_empty() {
        return String::new();
    }
    let mut text = String::from("redirected ");
    for hop in hops {
        text.push_str(&format!("{} -{}-> {}, ", hop.url, hop.status, hop.location));
    }
    text.push_str("then ");
    text
}

fn trim_end(body: &[u8]) -> &[u8] {
    let end = body
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &body[..end]
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
pub fn certificate_check(target: &str, name: &DnsName, der: &[u8], now: SystemTime) -> Check {
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

/// One HTTP/1.1 exchange over `stream`; the body is read up to `limit` bytes.
pub(crate) async fn http1<S, B>(
    stream: S,
    request: http::Request<B>,
    limit: usize,
) -> Result<(http::response::Parts, Bytes), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // The connection task ends with the exchange; aborting it on every path closes the socket.
    let driver = AbortOnDrop(tokio::spawn(connection));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .to_bytes();
    drop(driver);
    Ok((parts, body))
}

/// A request body for [`http1`].
pub(crate) fn full(bytes: impl Into<Bytes>) -> Full<Bytes> {
    Full::new(bytes.into())
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Accepts any certificate: the CA does not verify certificates when it follows a redirect to
/// HTTPS during HTTP-01, and the probe judges the certificate itself (names, expiry) instead
/// of failing the handshake. Handshake signatures are still verified.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::probe::report::Status;

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
    fn redirects_the_ca_follows() {
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
        let u = follow("//cdn.dcvcheck.com:443/x").unwrap();
        assert_eq!((u.https, u.port), (false, 443));
        // Test ports stand in for 80 and 443.
        let u = resolve_location(&current(), "https://a.dcvcheck.com/x", 8080, 8443).unwrap();
        assert_eq!(u.port, 8443);
    }

    #[test]
    fn redirects_the_ca_refuses() {
        for (location, says) in [
            ("http://shop.dcvcheck.com:8080/x", "port 8080"),
            ("ftp://shop.dcvcheck.com/x", "scheme"),
            ("http://192.0.2.1/x", "IP address"),
            ("http://[2001:db8::1]/x", "IP address"),
        ] {
            let e = follow(location).unwrap_err();
            assert!(e.contains(says), "{location}: {e}");
        }
    }

    fn fetched(status: u16, body: &str, hops: usize) -> Fetched {
        Fetched {
            hops: (0..hops)
                .map(|_| Hop {
                    url: current(),
                    status: 301,
                    location: "https://x/".into(),
                })
                .collect(),
            outcome: Ok(Response {
                status,
                body: Bytes::copy_from_slice(body.as_bytes()),
            }),
        }
    }

    fn judged(f: &Fetched) -> (Status, Option<Cause>, String) {
        let c = judge(
            CheckKind::HttpToken,
            "t",
            f,
            Expected::Body(b"tok.thumb"),
            Cause::H2,
        );
        (c.status, c.cause, c.detail)
    }

    #[test]
    fn responses_are_judged_like_the_ca() {
        assert_eq!(judged(&fetched(200, "tok.thumb\n", 0)).0, Status::Pass);
        let (s, c, d) = judged(&fetched(200, "tok.thumb", 1));
        assert_eq!((s, c), (Status::Warn, Some(Cause::H4)), "{d}");
        let (s, c, d) = judged(&fetched(200, "old.value", 0));
        assert_eq!((s, c), (Status::Fail, Some(Cause::H7)));
        assert!(d.contains("\"old.value\""), "{d}");
        assert_eq!(judged(&fetched(404, "", 0)).1, Some(Cause::H2));
        assert_eq!(judged(&fetched(403, "", 0)).1, Some(Cause::H3));
        let too_many = Fetched {
            hops: vec![],
            outcome: Err(FetchError::Redirect("too many redirects".into())),
        };
        assert_eq!(judged(&too_many).1, Some(Cause::H4));
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
