//! The fast path's proxy: plain `GET`/`HEAD` requests without a body, to plain-HTTP origins,
//! over HTTP/1.1 with a pool of kept-alive origin connections.
//!
//! This is the bulk of an edge node's traffic, and pingora's general proxy spends about twice
//! nginx's CPU per request on it (sessions, header maps, modules, tasks). Here a request head is
//! copied to the origin with the forwarding headers added and hop-by-hop headers removed
//! (RFC 9110 §7.6.1), and the response is relayed as it comes: Content-Length, chunked (framing
//! parsed, bytes passed through) or close-delimited bodies. Everything else (bodies, upgrades,
//! TLS origins, HTTP/2) stays with pingora, which [`super::fastpath`] hands it to.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pingora_core::protocols::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Idle origin connections kept per origin address.
const MAX_IDLE_PER_ORIGIN: usize = 128;
/// Largest response head accepted from an origin.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The response buffer of an origin connection: a typical head and a small body in one read.
const RESPONSE_BUF: usize = 4096;
/// A buffer grown past this by a long body is not kept with an idle connection.
const MAX_KEPT_BUF: usize = 32 * 1024;

/// Kept-alive connections to origins, by address.
#[derive(Default)]
pub struct OriginPool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
}

/// An idle origin connection and its response buffer, kept together so that a proxied request
/// on a kept-alive connection allocates no buffer.
struct Idle {
    conn: TcpStream,
    buf: BytesMut,
}

impl OriginPool {
    fn checkout(&self, addr: SocketAddr) -> Option<Idle> {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&addr)
            .and_then(Vec::pop)
    }

    fn checkin(&self, addr: SocketAddr, conn: TcpStream, mut buf: BytesMut) {
        if buf.capacity() > MAX_KEPT_BUF {
            buf = BytesMut::new();
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let conns = idle.entry(addr).or_default();
        if conns.len() < MAX_IDLE_PER_ORIGIN {
            conns.push(Idle { conn, buf });
        }
    }
}

/// How a proxied exchange ended.
pub enum Relayed {
    /// The response was relayed; `close` when the client connection must end now.
    Done { status: u16, close: bool },
    /// Nothing was sent to the client: the origin could not be reached or answered garbage.
    Unreachable(String),
    /// The client went away or the origin broke off mid-response; the connection is over.
    Broken(String),
}

/// Builds the request head for the origin from the client's head.
pub fn upstream_head(
    method: &str,
    target: &str,
    headers: &[httparse::Header<'_>],
    client_ip: Option<std::net::IpAddr>,
    proto: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<&[u8]> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(|t| t.trim_ascii())
        .collect();
    let mut forwarded_for: Option<&[u8]> = None;
    for h in headers {
        let name = h.name;
        if HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
            || named
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
            || name.eq_ignore_ascii_case("x-forwarded-proto")
        {
            continue;
        }
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            forwarded_for = Some(h.value);
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    // X-Forwarded-For: append this hop, as nginx's $proxy_add_x_forwarded_for does.
    if let Some(ip) = client_ip {
        out.extend_from_slice(b"X-Forwarded-For: ");
        if let Some(prior) = forwarded_for.filter(|p| !p.is_empty()) {
            out.extend_from_slice(prior);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(ip.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    } else if let Some(prior) = forwarded_for {
        out.extend_from_slice(b"X-Forwarded-For: ");
        out.extend_from_slice(prior);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"X-Forwarded-Proto: ");
    out.extend_from_slice(proto.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out
}

/// One request to relay.
pub struct Exchange<'a> {
    pub origin: SocketAddr,
    /// The request head for the origin ([`upstream_head`]).
    pub head: &'a [u8],
    /// A `HEAD` request: the answer has no body whatever its headers say.
    pub is_head: bool,
    /// The client asked to close after this answer.
    pub client_close: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

/// Sends the request to its origin and relays the answer to `down`. A reused connection that
/// turns out dead before answering is retried once on a fresh one (`GET`/`HEAD` are
/// idempotent).
pub async fn relay(pool: &OriginPool, ex: &Exchange<'_>, down: &mut Stream) -> Relayed {
    let Exchange {
        origin,
        head,
        is_head,
        client_close,
        connect_timeout,
        read_timeout,
    } = *ex;
    let mut resp = BytesMut::new();
    for attempt in 0..2 {
        let (mut up, reused) = match pool.checkout(origin) {
            Some(Idle { conn, buf }) if attempt == 0 => {
                resp = buf;
                (conn, true)
            }
            _ => match tokio::time::timeout(connect_timeout, TcpStream::connect(origin)).await {
                Ok(Ok(conn)) => {
                    let _ = conn.set_nodelay(true);
                    (conn, false)
                }
                Ok(Err(e)) => return Relayed::Unreachable(format!("connect {origin}: {e}")),
                Err(_) => return Relayed::Unreachable(format!("connect {origin}: timed out")),
            },
        };
        if let Err(e) = up.write_all(head).await {
            if reused {
                continue;
            }
            return Relayed::Unreachable(format!("write to {origin}: {e}"));
        }
        resp.clear();
        // Reclaims the space of earlier responses in place; allocates only for a new buffer.
        resp.reserve(RESPONSE_BUF);
        match read_head(&mut up, &mut resp, read_timeout).await {
            Ok(Some(())) => {}
            // Closed before a byte of answer: a kept-alive connection the origin had dropped.
            Ok(None) if reused => continue,
            Ok(None) => return Relayed::Unreachable(format!("{origin} closed without answering")),
            Err(e) => return Relayed::Unreachable(format!("reading from {origin}: {e}")),
        }
        return relay_response(
            pool,
            origin,
            up,
            resp,
            is_head,
            client_close,
            down,
            read_timeout,
        )
        .await;
    }
    Relayed::Unreachable(format!("{origin}: kept-alive connections failed"))
}

/// Reads until a complete response head is in `buf`; `Ok(None)` on a clean close before any
/// byte.
async fn read_head(
    up: &mut TcpStream,
    buf: &mut BytesMut,
    timeout: Duration,
) -> io::Result<Option<()>> {
    loop {
        if find_head_end(buf).is_some() {
            return Ok(Some(()));
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "response head too large",
            ));
        }
        buf.reserve(4096);
        let n = tokio::time::timeout(timeout, up.read_buf(buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "read timed out"))??;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed inside the response head",
                ))
            };
        }
    }
}

/// A status code as its three digits (httparse reads exactly three).
fn push_status(out: &mut Vec<u8>, status: u16) {
    let status = status.min(999);
    out.extend_from_slice(&[
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ]);
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// How the response body is delimited (RFC 9112 §6.3).
enum Body {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

#[allow(clippy::too_many_arguments)]
async fn relay_response(
    pool: &OriginPool,
    origin: SocketAddr,
    mut up: TcpStream,
    mut resp: BytesMut,
    is_head: bool,
    client_close: bool,
    down: &mut Stream,
    timeout: Duration,
) -> Relayed {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        let head_len = match parsed.parse(&resp) {
            Ok(httparse::Status::Complete(n)) => n,
            _ => return Relayed::Unreachable(format!("{origin} sent an invalid response head")),
        };
        let status = parsed.code.unwrap_or(502);
        let reason = parsed.reason.unwrap_or("");
        let mut body = Body::UntilClose;
        let mut origin_close = parsed.version == Some(0);
        // Room for the head and the body bytes already read: relay_length sends them together.
        let mut out = Vec::with_capacity(resp.len() + 64);
        out.extend_from_slice(b"HTTP/1.1 ");
        push_status(&mut out, status);
        out.push(b' ');
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        let named: Vec<&[u8]> = parsed
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .map(|t| t.trim_ascii())
            .collect();
        for h in parsed.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("connection") {
                if h.value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
                {
                    origin_close = true;
                } else if h
                    .value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"keep-alive"))
                    && parsed.version == Some(0)
                {
                    origin_close = false;
                }
                continue;
            }
            if name.eq_ignore_ascii_case("transfer-encoding") {
                if h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    body = Body::Chunked;
                } else {
                    return Relayed::Unreachable(format!(
                        "{origin} sent an unsupported transfer-encoding"
                    ));
                }
            } else if name.eq_ignore_ascii_case("content-length") && !matches!(body, Body::Chunked)
            {
                match std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                {
                    Some(n) => body = Body::Length(n),
                    None => {
                        return Relayed::Unreachable(format!(
                            "{origin} sent an invalid content-length"
                        ))
                    }
                }
            }
            if HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
                && !name.eq_ignore_ascii_case("transfer-encoding")
                || named
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
            {
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
        if (100..200).contains(&status) {
            // Informational (103 Early Hints): relay it and read the final answer.
            out.extend_from_slice(b"\r\n");
            if down.write_all(&out).await.is_err() {
                return Relayed::Broken("client gone".into());
            }
            resp.advance(head_len);
            if find_head_end(&resp).is_none() {
                match read_head(&mut up, &mut resp, timeout).await {
                    Ok(Some(())) => {}
                    _ => {
                        return Relayed::Broken(format!(
                            "{origin} stopped after an informational answer"
                        ))
                    }
                }
            }
            continue;
        }
        if is_head || status == 204 || status == 304 {
            body = Body::None;
        }
        let until_close = matches!(body, Body::UntilClose);
        let close = client_close || until_close;
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        resp.advance(head_len);

        // A Content-Length body leaves with the head; any other head goes first.
        let relayed = if let Body::Length(n) = body {
            relay_length(&mut up, &mut resp, out, n, down, timeout).await
        } else {
            if down.write_all(&out).await.is_err() {
                return Relayed::Broken("client gone".into());
            }
            match body {
                Body::Chunked => relay_chunked(&mut up, &mut resp, down, timeout)
                    .await
                    .map(|_| true),
                Body::UntilClose => relay_until_close(&mut up, &mut resp, down, timeout)
                    .await
                    .map(|_| false),
                Body::None | Body::Length(_) => Ok(true),
            }
        };
        let reusable = match relayed {
            Ok(reusable) => reusable,
            Err(e) => return Relayed::Broken(format!("relaying from {origin}: {e}")),
        };
        if down.flush().await.is_err() {
            return Relayed::Broken("client gone".into());
        }
        if reusable && !origin_close && resp.is_empty() {
            pool.checkin(origin, up, resp);
        }
        return Relayed::Done { status, close };
    }
}

/// A Content-Length body: joined to the head in one write when it is already here.
async fn relay_length(
    up: &mut TcpStream,
    pending: &mut BytesMut,
    mut head: Vec<u8>,
    length: u64,
    down: &mut Stream,
    timeout: Duration,
) -> io::Result<bool> {
    let mut remaining = length;
    let first = remaining.min(pending.len() as u64) as usize;
    head.extend_from_slice(&pending[..first]);
    pending.advance(first);
    remaining -= first as u64;
    down.write_all(&head).await?;
    while remaining > 0 {
        pending.clear();
        pending.reserve(16 * 1024);
        let n = read_some(up, pending, timeout).await?;
        let take = remaining.min(n as u64) as usize;
        down.write_all(&pending[..take]).await?;
        pending.advance(take);
        remaining -= take as u64;
    }
    // Bytes beyond the body make the connection unusable.
    Ok(pending.is_empty())
}

/// A chunked body, framing parsed (to know where it ends), bytes passed through as they are.
async fn relay_chunked(
    up: &mut TcpStream,
    pending: &mut BytesMut,
    down: &mut Stream,
    timeout: Duration,
) -> io::Result<()> {
    loop {
        let (line_len, size) = loop {
            match httparse::parse_chunk_size(pending) {
                Ok(httparse::Status::Complete((len, size))) => break (len, size),
                Ok(httparse::Status::Partial) => {
                    pending.reserve(4096);
                    read_some(up, pending, timeout).await?;
                }
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "invalid chunk size",
                    ))
                }
            }
        };
        if size == 0 {
            // The last chunk, then trailers ending with an empty line.
            loop {
                if pending.len() >= line_len + 2 && &pending[line_len..line_len + 2] == b"\r\n" {
                    down.write_all(&pending[..line_len + 2]).await?;
                    pending.advance(line_len + 2);
                    return Ok(());
                }
                if let Some(end) = pending[line_len..]
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                {
                    let end = line_len + end + 4;
                    down.write_all(&pending[..end]).await?;
                    pending.advance(end);
                    return Ok(());
                }
                if pending.len() > MAX_RESPONSE_HEAD {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "trailers too large",
                    ));
                }
                pending.reserve(4096);
                read_some(up, pending, timeout).await?;
            }
        }
        let mut remaining = line_len as u64 + size + 2;
        while remaining > 0 {
            if pending.is_empty() {
                pending.reserve(16 * 1024);
                read_some(up, pending, timeout).await?;
            }
            let take = remaining.min(pending.len() as u64) as usize;
            down.write_all(&pending[..take]).await?;
            pending.advance(take);
            remaining -= take as u64;
        }
    }
}

/// A body delimited by the origin closing the connection (HTTP/1.0 style).
async fn relay_until_close(
    up: &mut TcpStream,
    pending: &mut BytesMut,
    down: &mut Stream,
    timeout: Duration,
) -> io::Result<()> {
    down.write_all(pending).await?;
    pending.clear();
    loop {
        pending.reserve(16 * 1024);
        let n = tokio::time::timeout(timeout, up.read_buf(pending))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "read timed out"))??;
        if n == 0 {
            return Ok(());
        }
        down.write_all(pending).await?;
        pending.clear();
    }
}

async fn read_some(up: &mut TcpStream, buf: &mut BytesMut, timeout: Duration) -> io::Result<usize> {
    let n = tokio::time::timeout(timeout, up.read_buf(buf))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "read timed out"))??;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "origin closed mid-body",
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_written_as_three_digits() {
        for (code, text) in [(103, "103"), (200, "200"), (404, "404"), (599, "599")] {
            let mut out = Vec::new();
            push_status(&mut out, code);
            assert_eq!(out, text.as_bytes());
        }
    }

    #[test]
    fn upstream_head_forwards_end_to_end_headers_only() {
        let headers = [
            httparse::Header {
                name: "Host",
                value: b"a.test",
            },
            httparse::Header {
                name: "Connection",
                value: b"keep-alive, X-Secret",
            },
            httparse::Header {
                name: "X-Secret",
                value: b"hop",
            },
            httparse::Header {
                name: "Keep-Alive",
                value: b"timeout=5",
            },
            httparse::Header {
                name: "X-Forwarded-For",
                value: b"198.51.100.7",
            },
            httparse::Header {
                name: "X-Forwarded-Proto",
                value: b"https",
            },
            httparse::Header {
                name: "Accept",
                value: b"*/*",
            },
        ];
        let ip = "127.0.0.1".parse().ok();
        let head = String::from_utf8(upstream_head("GET", "/p?q=1", &headers, ip, "http"))
            .unwrap_or_default();
        assert!(
            head.starts_with("GET /p?q=1 HTTP/1.1\r\nHost: a.test\r\n"),
            "{head}"
        );
        assert!(head.contains("Accept: */*\r\n"));
        assert!(
            head.contains("X-Forwarded-For: 198.51.100.7, 127.0.0.1\r\n"),
            "{head}"
        );
        assert!(head.contains("X-Forwarded-Proto: http\r\n"));
        for gone in ["Connection", "Keep-Alive", "X-Secret", "https"] {
            assert!(!head.contains(gone), "{gone} leaked: {head}");
        }
        assert!(head.ends_with("\r\n\r\n"));
    }
}
