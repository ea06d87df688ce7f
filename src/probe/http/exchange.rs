//! One exchange with one address, and how it fails in Boulder's words: the TCP connect within
//! the probe's timeout, TLS (any certificate accepted, see [`super::AnyCertificate`]), one
//! HTTP/1.1 request through [`crate::http1`], and every failure worded like `detailedError`
//! (`va/va.go`): "Connection refused", "Server only speaks HTTP, not TLS", a TLS alert's
//! name as Go prints it.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use super::GENERIC;

use bytes::Bytes;
use http_body_util::Empty;
use rustls::crypto::CryptoProvider;
use rustls::AlertDescription;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP connection to `addr` within `timeout`; the error in Boulder's words
/// (`detailedError`: "Connection refused", "Timeout during connect (likely firewall problem)"…).
pub(in crate::probe) async fn connect(
    timeout: Duration,
    addr: SocketAddr,
) -> Result<TcpStream, String> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(io_words(&e, true)),
        Err(_) => Err("Timeout during connect (likely firewall problem)".to_owned()),
    }
}

/// The ring provider, as everywhere in dcv-proxy.
pub(in crate::probe) fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS name of a URL host: SNI for a name, none for an address (as Go does).
pub(in crate::probe) fn tls_server_name(host: &str) -> Result<ServerName<'static>, String> {
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
pub(super) struct Exchanged {
    pub(super) status: u16,
    pub(super) location: Option<String>,
    pub(super) body: Bytes,
}

/// Where an exchange failed.
pub(super) enum Failure {
    Tls(String),
    Head(hyper::Error),
    Body(String),
}

/// One HTTP/1.1 request; the body of a 200 read up to `limit` bytes and no further, like Go's
/// `io.LimitedReader` (a longer body is cut, not an error: the caller refuses its length).
pub(super) async fn one_exchange<S>(
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
pub(in crate::probe) struct Recorder<S> {
    inner: S,
    first: Arc<Mutex<Vec<u8>>>,
}

impl<S> Recorder<S> {
    /// The stream, and where its first bytes will be.
    pub(in crate::probe) fn new(inner: S) -> (Self, Arc<Mutex<Vec<u8>>>) {
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
pub(super) fn hyper_words(e: &hyper::Error, first: &[u8]) -> String {
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
pub(in crate::probe) fn tls_words(e: &std::io::Error, first: &[u8]) -> String {
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
pub(in crate::probe) fn is_no_application_protocol(e: &std::io::Error) -> bool {
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
