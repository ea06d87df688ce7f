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

mod head;
mod replay;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use pingora_core::apps::{HttpServerApp, ServerApp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::{GetSocketDigest, SocketDigest};
use pingora_core::protocols::{Shutdown, Stream, ALPN};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::listening::Service;
use pingora_http::RequestHeader;
use pingora_proxy::HttpProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::counters::Scheme;
use super::decide::{Decider, Decision, Tally, BAD_GATEWAY, BAD_REQUEST};
use super::fastproxy::{self, Relayed};
use super::forwarding;
use super::origin::OriginPool;
use super::park::ParkingLot;
use super::proxy::EdgeProxy;
use crate::inflight::{Front, InFlight};

use head::Head;
use head::HEAD_TOO_LARGE;
pub use head::{read_head, HeadRead, MAX_HEADERS};
use replay::Replay;

/// The head buffer of a connection: a typical request head fits, a longer one grows it.
pub(super) const HEAD_BUF: usize = 1024;
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
