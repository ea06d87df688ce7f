//! The fast path's proxy: plain `GET`/`HEAD` requests without a body, relayed over HTTP/1.1.
//!
//! This is the bulk of an edge node's traffic, and pingora's general proxy (sessions, modules,
//! per-request tasks and channels) spends far more CPU per request on it than nginx. Here the
//! request the fast path read is sent on a connection from pingora-core's pool, and the answer is
//! read by pingora-core's HTTP/1 client session: the origin side — response parsing, body
//! framing (RFC 9112 §6.3), the checks that decide whether a connection may be reused, and the
//! watch over idle connections — is pingora's, not ours. What is ours is only the client side of
//! the response: the head as the origin sent it minus hop-by-hop headers
//! ([`super::forwarding`]), and the body framed for an HTTP/1.1 client by `Content-Length` or
//! chunked coding.
//!
//! A connection goes back to the pool only when pingora's session says it may: a complete,
//! unambiguous response with nothing after it.

use std::io;

use pingora_core::protocols::http::v1::client::HttpSession;
use pingora_core::upstreams::peer::{HttpPeer, Peer};
use pingora_error::{Error, ErrorType, RetryType};
use pingora_http::{HeaderNameVariant, RequestHeader, ResponseHeader};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::forwarding::{self, ResponseHops};
use super::origin::OriginPool;

/// Body bytes gathered behind the head before a write: a small body leaves with its head.
const COALESCE: usize = 16 * 1024;

/// How a proxied exchange ended.
#[derive(Debug)]
pub enum Relayed {
    /// The response was relayed; `close` when the client connection must end now.
    Done { status: u16, close: bool },
    /// Nothing was sent to the client: the origin could not be reached or answered something
    /// that cannot be relayed. The client gets `502`.
    Unreachable(String),
    /// The client went away or the origin broke off mid-response; the connection is over.
    Broken(String),
}

/// Sends `req` (a `GET` or `HEAD` without a body, prepared by [`forwarding::prepare_request`])
/// to `peer` and relays the answer to `down`. A reused connection that fails before a byte of
/// answer is retried once on a new one, as pingora's proxy does (`GET`/`HEAD` are idempotent).
pub(super) async fn relay<W>(
    pool: &OriginPool,
    peer: &HttpPeer,
    req: Box<RequestHeader>,
    client_close: bool,
    down: &mut W,
) -> Relayed
where
    W: AsyncWrite + Unpin + Send,
{
    let transport = pool.transport();
    let mut req = Some(req);
    let mut retried = false;
    loop {
        // pingora's `get_stream`, in two steps: a pooled connection first; a new one otherwise,
        // its connect future (8 KiB of TCP and TLS handshake state) boxed so that it is not
        // carried in, and copied with, every relay's future.
        let pooled = if retried {
            None
        } else {
            transport.reused_stream(peer).await
        };
        let (stream, reused) = match pooled {
            Some(stream) => (stream, true),
            None => match Box::pin(transport.new_stream(peer)).await {
                Ok(stream) => (stream, false),
                Err(e) => return Relayed::Unreachable(format!("connect {peer}: {e}")),
            },
        };
        let mut up = HttpSession::new_with_options(stream, peer);
        up.read_timeout = peer.options.read_timeout;
        up.write_timeout = peer.options.write_timeout;
        // A reused connection may fail and the request go again: the session gets a copy.
        let current = if reused { req.clone() } else { req.take() };
        let Some(current) = current else {
            return Relayed::Unreachable(format!("{peer}: no request to send"));
        };
        match exchange(&mut up, current, client_close, down).await {
            Err(e) if reused && !retried && retryable(&e) => {
                retried = true;
                continue;
            }
            Err(e) => return Relayed::Unreachable(format!("{peer}: {e}")),
            Ok(relayed) => {
                if matches!(relayed, Relayed::Done { .. }) {
                    up.respect_keepalive();
                    if let Some(stream) = up.reuse().await {
                        let idle = peer.options.idle_timeout;
                        transport.release_stream(stream, peer.reuse_hash(), idle);
                    }
                }
                return relayed;
            }
        }
    }
}

/// One exchange on the origin session `up`: the request, the answer relayed to `down`. `Err`
/// when nothing reached the client (the caller retries or answers `502`); after it, pingora's
/// session decides whether `up` may be reused (`respect_keepalive`, `reuse`). Public for the
/// fuzz target (`fuzz/fuzz_targets/origin_response.rs`).
pub async fn exchange<W>(
    up: &mut HttpSession,
    req: Box<RequestHeader>,
    client_close: bool,
    down: &mut W,
) -> pingora_error::Result<Relayed>
where
    W: AsyncWrite + Unpin + Send,
{
    let is_head = req.method == http::Method::HEAD;
    up.write_request_header(req).await?;
    match read_final_head(up, down).await? {
        Final::Head(hops) => Ok(relay_response(up, &hops, is_head, client_close, down).await),
        Final::Informational(e) => Ok(Relayed::Broken(e)),
    }
}

/// A failure on a reused connection before any answer: the origin had closed it.
fn retryable(e: &Error) -> bool {
    matches!(e.retry, RetryType::ReusedOnly)
        || matches!(
            e.etype(),
            ErrorType::WriteError | ErrorType::ConnectionClosed
        )
}

enum Final {
    /// The final response head is read and checked: these are its hop-by-hop headers.
    Head(ResponseHops),
    /// An informational answer was relayed and then the exchange broke.
    Informational(String),
}

/// Reads response heads until the final one, relaying informational answers (103 Early Hints)
/// to the client as they come. `101` is refused: no upgrade was asked for.
async fn read_final_head<W>(up: &mut HttpSession, down: &mut W) -> pingora_error::Result<Final>
where
    W: AsyncWrite + Unpin + Send,
{
    let mut relayed_any = false;
    loop {
        if let Err(e) = up.read_response().await {
            if relayed_any {
                return Ok(Final::Informational(format!(
                    "after an informational answer: {e}"
                )));
            }
            return Err(e);
        }
        let Some(resp) = up.resp_header() else {
            return Error::e_explain(ErrorType::InvalidHTTPHeader, "no response head");
        };
        // The fast path relays no upgrade: a 101 is refused here.
        let hops = match forwarding::check_response(resp, false) {
            Ok(hops) => hops,
            Err(e) => return Error::e_explain(ErrorType::InvalidHTTPHeader, e.to_string()),
        };
        if !(100..200).contains(&resp.status.as_u16()) {
            return Ok(Final::Head(hops));
        }
        let mut out = Vec::with_capacity(256);
        write_head(&mut out, resp, &hops, Framing::None, false);
        if down.write_all(&out).await.is_err() {
            return Ok(Final::Informational("client gone".into()));
        }
        relayed_any = true;
    }
}

/// How the body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (`HEAD`, `1xx`, `204`, `304`): the head as the origin sent it.
    None,
    /// The origin's `Content-Length`, kept.
    Length,
    /// Chunked coding: the origin's, or for a close-delimited body (so that the client
    /// connection survives it, as nginx does).
    Chunked,
}

/// Relays the final response `up` has read: its head, then its body as pingora's session
/// de-frames it.
async fn relay_response<W>(
    up: &mut HttpSession,
    hops: &ResponseHops,
    is_head: bool,
    client_close: bool,
    down: &mut W,
) -> Relayed
where
    W: AsyncWrite + Unpin + Send,
{
    let Some(resp) = up.resp_header() else {
        return Relayed::Unreachable("no response head".into());
    };
    let status = resp.status.as_u16();
    let framing = if is_head || status == 204 || status == 304 {
        Framing::None
    } else if resp.headers.contains_key(http::header::TRANSFER_ENCODING) {
        Framing::Chunked
    } else if resp.headers.contains_key(http::header::CONTENT_LENGTH) {
        // pingora's session validated it (digits, one value) or refused the response.
        Framing::Length
    } else {
        Framing::Chunked
    };
    let mut out = Vec::with_capacity(512);
    write_head(&mut out, resp, hops, framing, client_close);
    if framing == Framing::None {
        if let Err(e) = write_out(down, &out).await {
            return Relayed::Broken(format!("client gone: {e}"));
        }
        return Relayed::Done {
            status,
            close: client_close,
        };
    }
    loop {
        let piece = match up.read_body_ref().await {
            Ok(Some(piece)) => piece,
            Ok(None) => break,
            Err(e) => {
                // The head may have left already: the client connection cannot be trusted on.
                let _ = write_out(down, &out).await;
                return Relayed::Broken(format!("origin body: {e}"));
            }
        };
        if piece.is_empty() {
            continue;
        }
        if framing == Framing::Chunked {
            push_chunk_size(&mut out, piece.len());
        }
        if out.len() + piece.len() <= COALESCE {
            out.extend_from_slice(piece);
        } else {
            let written = async {
                down.write_all(&out).await?;
                down.write_all(piece).await
            }
            .await;
            out.clear();
            if let Err(e) = written {
                return Relayed::Broken(format!("client gone: {e}"));
            }
        }
        if framing == Framing::Chunked {
            out.extend_from_slice(b"\r\n");
        }
    }
    if framing == Framing::Chunked {
        // Trailers are not relayed (nginx drops them too).
        out.extend_from_slice(b"0\r\n\r\n");
    }
    if let Err(e) = write_out(down, &out).await {
        return Relayed::Broken(format!("client gone: {e}"));
    }
    Relayed::Done {
        status,
        close: client_close,
    }
}

async fn write_out<W: AsyncWrite + Unpin>(down: &mut W, out: &[u8]) -> io::Result<()> {
    down.write_all(out).await?;
    down.flush().await
}

/// The response head for the client: status line, the origin's end-to-end headers in their
/// case (in pingora's header-map order: lines of one name together), then the framing header of `framing` and `Connection: close` when asked.
fn write_head(
    out: &mut Vec<u8>,
    resp: &ResponseHeader,
    hops: &ResponseHops,
    framing: Framing,
    close: bool,
) {
    let status = resp.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    let reason = resp
        .get_reason_phrase()
        .or_else(|| status.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    // One `Content-Length` line however many the origin sent (as `ResponseHops::strip`).
    let mut length_sent = false;
    let _ = resp.map(|name, value| {
        let name: &[u8] = match &name {
            HeaderNameVariant::Case(c) => c.as_slice(),
            HeaderNameVariant::Titled(t) => t.as_bytes(),
        };
        let length = name.eq_ignore_ascii_case(b"content-length");
        let framing_header = name.eq_ignore_ascii_case(b"transfer-encoding")
            || (length && (framing == Framing::Chunked || length_sent));
        length_sent |= length;
        if hops.keeps(name) && !framing_header {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Ok(())
    });
    if framing == Framing::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if close {
        // The client asked to close after this answer (RFC 9112 §9.6).
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn push_chunk_size(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(HEX[(len >> (i * 4)) & 0xf]);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn chunk_sizes_are_hex() {
        for (len, text) in [
            (1, "1"),
            (15, "f"),
            (16, "10"),
            (4096, "1000"),
            (65535, "ffff"),
        ] {
            let mut out = Vec::new();
            push_chunk_size(&mut out, len);
            assert_eq!(out, format!("{text}\r\n").as_bytes());
        }
    }

    #[test]
    fn heads_keep_end_to_end_headers_and_frame_the_body() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for (k, v) in [
            ("Set-Cookie", "a=1"),
            ("Connection", "X-Hop"),
            ("X-Hop", "h"),
            ("Content-Length", "5"),
            ("Set-Cookie", "b=2"),
        ] {
            resp.append_header(k.to_string(), v).unwrap();
        }
        let hops = forwarding::check_response(&resp, false).unwrap();
        let mut out = Vec::new();
        write_head(&mut out, &resp, &hops, Framing::Length, true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            // pingora's header map keeps lines of one name together, in their order.
            "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 5\r\n\
             Connection: close\r\n\r\n"
        );
        let mut out = Vec::new();
        write_head(&mut out, &resp, &hops, Framing::Chunked, false);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("Content-Length"), "{text}");
        assert!(
            text.ends_with("Transfer-Encoding: chunked\r\n\r\n"),
            "{text}"
        );
    }

    /// Found by the `origin_response` fuzz target: an origin's `Content-Length: 3` sent twice
    /// (same value, so pingora-core's client frames by it) went to the client twice.
    #[test]
    fn a_repeated_content_length_leaves_once() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for (k, v) in [("Content-Length", "3"), ("content-length", "3")] {
            resp.append_header(k.to_string(), v).unwrap();
        }
        let hops = forwarding::check_response(&resp, false).unwrap();
        let mut out = Vec::new();
        write_head(&mut out, &resp, &hops, Framing::Length, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
        );
        let mut stripped = resp.clone();
        hops.strip(&mut stripped);
        assert_eq!(stripped.headers.get_all("content-length").iter().count(), 1);
    }
}
