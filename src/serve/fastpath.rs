//! The HTTP/1.1 fast path in front of pingora.
//!
//! Validation answers, their misses and the HTTP→HTTPS redirect are the edge's most frequent
//! cheap requests, and pingora's general request machinery (sessions, modules, header maps)
//! costs several times what answering them does. This front parses the request head with
//! `httparse`, asks the same [`Decider`] pingora uses, and writes a response rendered in advance
//! (challenge answers are rendered when stored). Anything else — HTTP/2, request bodies,
//! proxied requests, HTTP/1.0, unusual heads — is handed to pingora untouched: the bytes read
//! so far are replayed to it ([`Replay`]). So the fast path can only ever answer what pingora
//! would have answered the same way, and every feature of the proxy stays pingora's.
//!
//! Every HTTP/1.x request head of a connection passes through here, whichever engine then
//! serves it, so the limits on heads hold for both: at most [`MAX_HEAD`] bytes (`431`), and the
//! whole head within [`HEAD_TIMEOUT`] of its first byte (a client that sends a byte now and
//! then is closed on, as nginx's `client_header_timeout` does). A request handed to pingora goes
//! back through here for the next one on the connection.
//!
//! Reading the head is a pure function ([`read_head`]) so that it can be fuzzed on its own.

use std::borrow::Cow;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use pingora_core::apps::{HttpServerApp, ServerApp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::SslDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, SocketDigest, TimingDigest,
};
use pingora_core::protocols::{Peek, Shutdown, Ssl, Stream, UniqueID, UniqueIDType, ALPN};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::listening::Service;
use pingora_http::RequestHeader;
use pingora_proxy::HttpProxy;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use super::classify;
use super::counters::Scheme;
use super::decide::{Decider, Decision, Tally, BAD_GATEWAY, BAD_REQUEST};
use super::fastproxy::{self, Relayed};
use super::forwarding;
use super::origin::OriginPool;
use super::park::ParkingLot;
use super::proxy::EdgeProxy;
use crate::inflight::{Front, InFlight};

/// Largest request head accepted on HTTP/1.x, the same as pingora's HTTP/2 header-list limit:
/// a longer one gets `431` and the connection is closed, before anything reaches pingora or an
/// origin (pingora alone would read up to 1 MiB).
pub(super) const MAX_HEAD: usize = 64 * 1024;

/// The answer to a head longer than [`MAX_HEAD`].
const HEAD_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
Content-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\n\r\n\
request header fields too large\n";
/// Most header lines the fast path looks at; a head with more is handed to pingora once it is
/// complete (and within [`MAX_HEAD`]).
pub const MAX_HEADERS: usize = 32;
/// The head buffer of a connection: a typical request head fits, a longer one grows it.
const HEAD_BUF: usize = 1024;
/// Less room than this left for the next read: make room ([`HEAD_BUF`] more).
const HEAD_ROOM_MIN: usize = 256;
/// How long a connection may stay idle before the first byte of a request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a plain-HTTP connection waits for its next request in its own task before it is
/// parked ([`super::park`]). Busy connections (a next request within this time) never pay for
/// parking; an idle one costs a few bytes instead of a task, and its next request a few system
/// calls and a new task.
const PARK_AFTER: Duration = Duration::from_millis(100);

/// The application behind the edge listeners: the fast path, then pingora.
pub struct FastPath {
    inner: Arc<HttpProxy<EdgeProxy>>,
    decider: Arc<Decider>,
    origins: OriginPool,
    inflight: InFlight,
    /// Started with the first connection parked; `None` when the kernel refused an epoll set.
    parking: OnceLock<Option<Arc<ParkingLot>>>,
}

impl FastPath {
    pub fn new(
        inner: HttpProxy<EdgeProxy>,
        decider: Arc<Decider>,
        inflight: InFlight,
        origins: OriginPool,
    ) -> Self {
        Self {
            inner: Arc::new(inner),
            decider,
            origins,
            inflight,
            parking: OnceLock::new(),
        }
    }
}

/// A request head as far as the fast path is concerned.
#[derive(Debug)]
pub enum HeadRead<'a> {
    /// More bytes are needed.
    Partial,
    /// Not for the fast path (HTTP/1.0, a body, an upgrade, a malformed or unusual head):
    /// pingora gets the connection with every byte read so far — the whole head, unless the
    /// head is malformed in a way pingora refuses at once.
    HandOver,
    /// Longer than [`MAX_HEAD`], complete or not: answered with `431`, whatever the size of
    /// the reads it arrived in.
    TooLarge,
    /// A complete head the fast path can decide on.
    Head(Head<'a>),
}

/// The parts of a complete HTTP/1.1 head that decide the answer.
#[derive(Debug)]
pub struct Head<'a> {
    /// Bytes of the head, the blank line included.
    pub len: usize,
    /// The request method.
    pub method: &'a str,
    /// Every header line, for the request relayed to an origin.
    pub headers: &'a [httparse::Header<'a>],
    /// `GET` or `HEAD`.
    pub get_or_head: bool,
    /// `HEAD`: answer without a body.
    pub head: bool,
    /// The origin-form request target (path and query).
    pub target: &'a str,
    /// The target's path.
    pub path: &'a str,
    /// The normalised `Host` (see [`classify::request_host`]).
    pub host: Option<Cow<'a, str>>,
    /// The client asked to close after this answer (a `close` token in `Connection`).
    pub close: bool,
}

/// Reads the request head at the start of `buf`, its header lines into `headers` (the fast
/// path looks at no more than [`MAX_HEADERS`]). Never panics, never allocates unless the host
/// needs lowercasing.
pub fn read_head<'a>(buf: &'a [u8], headers: &'a mut [httparse::Header<'a>]) -> HeadRead<'a> {
    let mut req = httparse::Request::new(headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Complete(_)) => return HeadRead::TooLarge,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return HeadRead::TooLarge,
        Ok(httparse::Status::Partial) => return HeadRead::Partial,
        // More header lines than the fast path looks at, or a request line pingora may still
        // accept after escaping it: pingora's, but only once the whole head is here and within
        // the limit, so that the limits hold for it too.
        Err(
            httparse::Error::TooManyHeaders | httparse::Error::Token | httparse::Error::Version,
        ) => {
            return match head_end(buf) {
                Some(end) if end <= MAX_HEAD => HeadRead::HandOver,
                Some(_) => HeadRead::TooLarge,
                None if buf.len() >= MAX_HEAD => HeadRead::TooLarge,
                None => HeadRead::Partial,
            };
        }
        // Anything else malformed pingora refuses as soon as it reads it (400).
        Err(_) => return HeadRead::HandOver,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return HeadRead::HandOver;
    };
    if !target.starts_with('/') {
        return HeadRead::HandOver;
    }
    let mut host = None;
    let mut close = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return HeadRead::HandOver;
            }
            host = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= h
                .value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length") && h.value != b"0")
            || h.name.eq_ignore_ascii_case("expect")
            || h.name.eq_ignore_ascii_case("upgrade")
        {
            // A body, a 100-continue or an upgrade: pingora's.
            return HeadRead::HandOver;
        }
    }
    let head = method == "HEAD";
    HeadRead::Head(Head {
        len,
        method,
        headers: req.headers,
        get_or_head: method == "GET" || head,
        head,
        target,
        path: target.split_once('?').map_or(target, |(p, _)| p),
        host: classify::request_host(None, host),
        close,
    })
}

/// Where the head at the start of `buf` ends (just past its empty line), with line ends of
/// CRLF or a bare LF, as httparse reads them.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = buf[from..].iter().position(|b| *b == b'\n') {
        let nl = from + at;
        match (buf.get(nl + 1), buf.get(nl + 2)) {
            (Some(b'\n'), _) => return Some(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
            _ => {}
        }
        from = nl + 1;
    }
    None
}

/// What the fast path made of one request head.
enum Step {
    /// Write these bytes; close afterwards when `close`.
    Respond {
        bytes: Bytes,
        head_len: usize,
        close: bool,
    },
    /// A `GET` or `HEAD` without a body for an origin: relay it ([`fastproxy`]).
    Proxy {
        peer: Arc<pingora_core::upstreams::peer::HttpPeer>,
        request: Box<RequestHeader>,
        head_len: usize,
        close: bool,
        tally: Tally,
    },
    /// Not ours: pingora takes the connection with everything read so far.
    HandOver,
}

#[async_trait]
impl ServerApp for FastPath {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _inflight = self.inflight.enter(Front::Edge);
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return ServerApp::process_new(&self.inner, stream, shutdown).await;
        }
        let (mut io, mut buf, reused) = Replay::take(stream);
        // Cleared when parking this connection failed: it then waits in its task, as before.
        let mut may_park = true;
        let scheme = if io.get_ssl_digest().is_some() {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let client_ip = io
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        // Set by the first byte of a head: the whole head must arrive by then.
        let mut head_deadline: Option<Instant> = None;
        let step = loop {
            match self.parse(&buf, scheme, client_ip) {
                Some(step) => break step,
                None => {
                    // Stopping (or handing over to a new process) and idle between two
                    // requests: close now rather than race the next request against the exit.
                    // A new connection gets its first request answered whatever happens.
                    let idle = reused && buf.is_empty();
                    if idle && *shutdown.borrow() {
                        Shutdown::shutdown(&mut *io).await;
                        return None;
                    }
                    if buf.capacity() - buf.len() < HEAD_ROOM_MIN {
                        // Reclaims the bytes of earlier requests in place when it can: an idle
                        // keep-alive connection keeps one head buffer, not a grown one.
                        buf.reserve(HEAD_BUF);
                    }
                    if !buf.is_empty() && head_deadline.is_none() {
                        // However the head is spread over reads (nginx's
                        // `client_header_timeout`): not re-armed by each read, so a client
                        // dripping bytes cannot hold the connection.
                        head_deadline = Some(Instant::now() + self.decider.routing().head_timeout);
                    }
                    // Nothing of a request read on a plain TCP connection: parked if idle on.
                    let lot = if may_park
                        && buf.is_empty()
                        && scheme == Scheme::Http
                        && is_tcp(&io)
                        && !*shutdown.borrow()
                    {
                        self.parking_lot(shutdown)
                    } else {
                        None
                    };
                    let wait = match (head_deadline, lot) {
                        (Some(deadline), _) => deadline.saturating_duration_since(Instant::now()),
                        (None, Some(_)) => PARK_AFTER,
                        (None, None) => IDLE_TIMEOUT,
                    };
                    let mut stop = shutdown.clone();
                    // tokio's timer, kept by this runtime's own driver: pingora's fast_timeout
                    // keeps its timers in a wheel shared with a clock thread under a lock, and
                    // challenge-http's p99 came out lower without it in A/B runs
                    // (docs/performance.md).
                    let read = tokio::select! {
                        read = tokio::time::timeout(
                            wait,
                            io.read_buf(&mut buf),
                        ) => read,
                        _ = stop.changed(), if idle => {
                            Shutdown::shutdown(&mut *io).await;
                            return None;
                        }
                    };
                    match read {
                        Ok(Ok(n)) if n > 0 => {}
                        // Idle before a first byte: parked if it can be.
                        Err(_idle) if head_deadline.is_none() => {
                            match lot.map(|lot| park(io, lot)) {
                                Some(Err(kept)) => {
                                    io = kept;
                                    may_park = false;
                                }
                                // Parked, or idle for the whole timeout.
                                _ => return None,
                            }
                        }
                        // Closed, failed, or the head not complete by its deadline (nginx
                        // closes without an answer too).
                        _ => return None,
                    }
                }
            }
        };
        match step {
            Step::HandOver => self.hand_over(io, buf, shutdown).await,
            Step::Proxy {
                peer,
                request,
                head_len,
                close,
                tally,
            } => {
                buf.advance(head_len);
                // Boxed: the relay's state is only allocated while a request is relayed, not
                // carried by every idle keep-alive connection.
                let relayed = Box::pin(fastproxy::relay(
                    &self.origins,
                    &peer,
                    request,
                    close,
                    &mut io,
                ))
                .await;
                self.decider.count(tally, scheme);
                let close = match relayed {
                    Relayed::Done { status, close } => {
                        self.decider.count_proxied(status);
                        close
                    }
                    Relayed::Unreachable(cause) => {
                        // The cause goes to the log, never to the client.
                        tracing::warn!(status = 502, error = %cause, "request failed");
                        self.decider.count_proxied(502);
                        let sent = async {
                            io.write_all(BAD_GATEWAY.response).await?;
                            io.flush().await
                        }
                        .await;
                        close || sent.is_err()
                    }
                    Relayed::Broken(cause) => {
                        tracing::debug!(error = %cause, "proxied exchange broken off");
                        self.decider.count_proxied(0);
                        true
                    }
                };
                if close || *shutdown.borrow() {
                    Shutdown::shutdown(&mut *io).await;
                    return None;
                }
                Some(Replay::wrap(io, buf, true))
            }
            Step::Respond {
                bytes,
                head_len,
                close,
            } => {
                let written = async {
                    io.write_all(&bytes).await?;
                    io.flush().await
                }
                .await;
                buf.advance(head_len);
                if written.is_err() || close || *shutdown.borrow() {
                    Shutdown::shutdown(&mut *io).await;
                    return None;
                }
                Some(Replay::wrap(io, buf, true))
            }
        }
    }
}

impl FastPath {
    /// pingora serves one request with the bytes read so far in front of the connection; the
    /// connection then comes back here for its next request, so that every head passes the
    /// fast path's limits.
    async fn hand_over(
        self: &Arc<Self>,
        io: Stream,
        buf: BytesMut,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut session = ServerSession::new_http1(Replay::wrap(io, buf, true));
        // As pingora's own HTTP/1 loop does: no reuse while stopping, else 60 s.
        session.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
        // Requests pipelined behind this one come back with the connection (RFC 9112 §9.3.2)
        // instead of making pingora close it.
        session.set_pipelining_enabled(true);
        let reused = self.inner.process_new_http(session, shutdown).await?;
        let (stream, settings) = reused.consume();
        let next = settings
            .and_then(|mut s| s.take_pipelined_prefix())
            .unwrap_or_default();
        Some(Replay::wrap(stream, next, true))
    }

    fn parking_lot(self: &Arc<Self>, shutdown: &ShutdownWatch) -> Option<&Arc<ParkingLot>> {
        self.parking
            .get_or_init(|| {
                let parked = self.decider.counters().parked();
                match ParkingLot::new(IDLE_TIMEOUT - PARK_AFTER, parked) {
                    Ok(lot) => {
                        let app = Arc::clone(self);
                        let stop = shutdown.clone();
                        let wake = move |socket| app.resume(socket, &stop);
                        tokio::spawn(lot.clone().run(shutdown.clone(), wake));
                        Some(lot)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "idle connections stay in their tasks: no epoll set");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// A parked connection has a next request (or closed): serve it in a task of its own, as
    /// pingora serves an accepted one.
    fn resume(self: &Arc<Self>, socket: OwnedFd, shutdown: &ShutdownWatch) {
        let tcp = match tokio::net::TcpStream::from_std(std::net::TcpStream::from(socket)) {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::debug!(error = %e, "a parked connection could not be resumed");
                return;
            }
        };
        let mut stream = L4Stream::from(tcp);
        let digest = SocketDigest::from_raw_fd(stream.as_raw_fd());
        stream.set_socket_digest(digest);
        tokio::spawn(Service::handle_event(
            Box::new(stream),
            Arc::clone(self),
            shutdown.clone(),
        ));
    }

    /// `None` while the head is incomplete.
    fn parse(
        &self,
        buf: &[u8],
        scheme: Scheme,
        client_ip: Option<std::net::IpAddr>,
    ) -> Option<Step> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let parsed = match read_head(buf, &mut headers) {
            HeadRead::Partial => return None,
            HeadRead::HandOver => return Some(Step::HandOver),
            HeadRead::TooLarge => {
                return Some(Step::Respond {
                    bytes: Bytes::from_static(HEAD_TOO_LARGE),
                    head_len: buf.len(),
                    close: true,
                })
            }
            HeadRead::Head(_) if !self.decider.routing().fast_path => return Some(Step::HandOver),
            HeadRead::Head(parsed) => parsed,
        };
        let Head {
            len: head_len,
            method,
            headers,
            get_or_head,
            head,
            target,
            path,
            host,
            close,
        } = parsed;
        let view = super::decide::RequestView {
            scheme,
            get_or_head,
            path,
            host: host.as_deref(),
            target,
        };
        let (decision, tally) = self.decider.decide(&view);
        let (full, body_start) = match decision {
            // Anything but GET/HEAD is pingora's (bodies, upgrades, methods with effects).
            Decision::Proxy(_) if !view.get_or_head => return Some(Step::HandOver),
            Decision::Proxy(origin) => {
                let request =
                    forwarding::upstream_request(method, target, headers, client_ip, scheme);
                let Some(request) = request else {
                    // Refused as pingora's proxy refuses it (forwarding::RequestRefused).
                    return Some(Step::Respond {
                        bytes: Bytes::from_static(BAD_REQUEST.response),
                        head_len,
                        close: true,
                    });
                };
                let peer = self.decider.routing().peer(&origin);
                return Some(Step::Proxy {
                    peer,
                    request,
                    head_len,
                    close,
                    tally,
                });
            }
            Decision::Answer(reply) => (
                reply.response().clone(),
                reply.response().len() - reply.len(),
            ),
            Decision::Fixed(fixed) => (
                Bytes::from_static(fixed.response),
                fixed.response.len() - fixed.body.len(),
            ),
            Decision::Redirect { status, location } => {
                let text = format!(
                    "HTTP/1.1 {status} {}\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n",
                    reason(status)
                );
                let len = text.len();
                (Bytes::from(text), len)
            }
        };
        self.decider.count(tally, scheme);
        let bytes = match (head, close) {
            (false, false) => full,
            (true, false) => full.slice(..body_start),
            // `Connection: close` asked: say so in the answer (RFC 9112 §9.6).
            (_, true) => {
                let headers_end = body_start - 2;
                let mut out = Vec::with_capacity(full.len() + 19);
                out.extend_from_slice(&full[..headers_end]);
                out.extend_from_slice(b"Connection: close\r\n\r\n");
                if !head {
                    out.extend_from_slice(&full[body_start..]);
                }
                Bytes::from(out)
            }
        };
        Some(Step::Respond {
            bytes,
            head_len,
            close,
        })
    }
}

/// A plain TCP connection (not TLS, not a Unix socket): one that can be parked.
fn is_tcp(io: &Stream) -> bool {
    io.as_any()
        .downcast_ref::<L4Stream>()
        .is_some_and(|s| s.tcp_stream().is_some())
}

/// Parks the socket of the idle connection `io` in `lot` and ends the connection's hold on it
/// (a duplicate of the descriptor is parked, `io`'s own is closed); gives `io` back when the
/// socket cannot be parked (the lot is shutting down, out of descriptors or epoll watches).
fn park(io: Stream, lot: &ParkingLot) -> Result<(), Stream> {
    let duplicate = io
        .as_any()
        .downcast_ref::<L4Stream>()
        .and_then(L4Stream::tcp_stream)
        .and_then(|tcp| tcp.as_fd().try_clone_to_owned().ok());
    let Some(duplicate) = duplicate else {
        return Err(io);
    };
    match lot.park(duplicate) {
        Ok(()) => Ok(()),
        // The duplicate is closed here; `io` still holds the socket.
        Err(_duplicate) => Err(io),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        _ => "Redirect",
    }
}

/// A connection with bytes already read from it, replayed before anything else: how a request
/// the fast path started to read reaches pingora intact.
pub(super) struct Replay {
    prefix: BytesMut,
    inner: Stream,
    /// A request was served on this connection already: it is a kept-alive one.
    reused: bool,
}

impl Replay {
    /// The underlying stream, any bytes left from an earlier request, and whether a request
    /// was served on it already.
    fn take(stream: Stream) -> (Stream, BytesMut, bool) {
        if stream.as_any().is::<Replay>() {
            if let Ok(replay) = stream.into_any().downcast::<Replay>() {
                let Replay {
                    prefix,
                    inner,
                    reused,
                } = *replay;
                return (inner, prefix, reused);
            }
            // `is` said it is a Replay; the downcast cannot fail. Without a stream there is
            // nothing to serve.
            unreachable!("a Replay downcasts to Replay")
        }
        (stream, BytesMut::with_capacity(HEAD_BUF), false)
    }

    /// `inner` behind the `prefix` still to be read, remembering whether it was `reused`.
    fn wrap(inner: Stream, prefix: BytesMut, reused: bool) -> Stream {
        if prefix.is_empty() && !reused {
            inner
        } else {
            Box::new(Replay {
                prefix,
                inner,
                reused,
            })
        }
    }
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
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
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Replay {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(&mut *self.inner).await
    }
}

impl UniqueID for Replay {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Replay {
    fn get_ssl(&self) -> Option<&pingora_core::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Replay {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Replay {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Replay {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Replay {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        if self.prefix.len() >= buf.len() {
            buf.copy_from_slice(&self.prefix[..buf.len()]);
            return Ok(true);
        }
        // A partial prefix cannot be peeked together with the socket: say peeking is not
        // supported, which callers handle (pingora then skips its h2c preface check).
        if !self.prefix.is_empty() {
            return Ok(false);
        }
        self.inner.try_peek(buf).await
    }
}

impl fmt::Debug for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replay")
            .field("prefix", &self.prefix.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> HeadRead<'static> {
        // A test's few heads may live as long as the test binary.
        let raw: &'static str = Box::leak(raw.to_owned().into_boxed_str());
        let headers = Box::leak(Box::new([httparse::EMPTY_HEADER; MAX_HEADERS]));
        read_head(raw.as_bytes(), headers)
    }

    #[test]
    fn plain_gets_are_read() {
        let HeadRead::Head(h) =
            head("GET /.well-known/acme-challenge/t?x=1 HTTP/1.1\r\nHost: A.test:80\r\n\r\n")
        else {
            panic!("not a head");
        };
        assert_eq!(h.path, "/.well-known/acme-challenge/t");
        assert_eq!(h.target, "/.well-known/acme-challenge/t?x=1");
        assert_eq!(h.host.as_deref(), Some("a.test"));
        assert!(h.get_or_head && !h.head && !h.close);
        assert!(matches!(
            head("HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n"),
            HeadRead::Head(Head {
                head: true,
                close: true,
                host: None,
                ..
            })
        ));
    }

    #[test]
    fn partial_heads_wait() {
        assert!(matches!(
            head("GET / HTTP/1.1\r\nHost: a"),
            HeadRead::Partial
        ));
        assert!(matches!(head(""), HeadRead::Partial));
    }

    #[test]
    fn heads_past_the_limit_are_too_large_complete_or_not() {
        let big = "x".repeat(MAX_HEAD);
        let complete = format!("GET / HTTP/1.1\r\nX-Big: {big}\r\n\r\n");
        assert!(matches!(head(&complete), HeadRead::TooLarge));
        assert!(matches!(head(&complete[..MAX_HEAD]), HeadRead::TooLarge));
        let fits = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", &big[..MAX_HEAD - 64]);
        assert!(matches!(head(&fits), HeadRead::Head(_)));
    }

    #[test]
    fn unusual_heads_go_to_pingora() {
        for raw in [
            "GET / HTTP/1.0\r\n\r\n",
            "GET http://a.test/ HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "G\0T / HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(head(raw), HeadRead::HandOver), "{raw:?}");
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        assert!(matches!(
            head(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            HeadRead::HandOver
        ));
    }

    #[test]
    fn the_431_answer_is_consistent() {
        let text = std::str::from_utf8(HEAD_TOO_LARGE).unwrap_or_default();
        let (headers, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(headers.starts_with("HTTP/1.1 431 "));
        assert!(headers.contains(&format!("Content-Length: {}", body.len())));
    }
}
