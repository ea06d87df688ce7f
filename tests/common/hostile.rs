//! A hostile (or merely buggy) origin, written against the socket so that it can answer in any
//! framing and send bytes nobody asked for: late second responses, bodies after `HEAD`, `204`
//! and `304`, a `408` on an idle kept-alive connection, extra bytes in the same write as a
//! response, conflicting `Content-Length` and `Transfer-Encoding`, unrequested `101`.
//!
//! Requests are `GET /<case>/<nonce>` (or `HEAD`); every honest answer carries `ok:<nonce>`, and
//! every unsolicited byte carries `POISON`, so a client can tell its own answer from another
//! client's and from the origin's garbage. Each request head is recorded with the number of the
//! origin connection it came on.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A complete response carrying `POISON`: what a desynchronised pool would hand the next client.
pub const POISON: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nSet-Cookie: session=POISON\r\n\r\nPOISON-answer";

/// The body of an honest answer to `nonce`.
pub fn honest(nonce: &str) -> String {
    format!("ok:{nonce}")
}

/// One request head as the origin received it.
#[derive(Debug, Clone)]
pub struct SeenByOrigin {
    /// Which origin connection (1, 2, …, in order of accept).
    pub conn: usize,
    /// The head as received, lines split, without the empty line.
    pub lines: Vec<String>,
    /// The body bytes read after the head (by `Content-Length` or chunked framing).
    pub body: Vec<u8>,
}

impl SeenByOrigin {
    /// The request line.
    pub fn request_line(&self) -> &str {
        self.lines.first().map_or("", String::as_str)
    }

    /// Values of the header `name` (case-insensitive), in order.
    pub fn header(&self, name: &str) -> Vec<String> {
        self.lines
            .iter()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    /// Whether a header named `name` is present in any spelling of case.
    pub fn has(&self, name: &str) -> bool {
        !self.header(name).is_empty()
    }
}

pub struct HostileOrigin {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<SeenByOrigin>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HostileOrigin {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the origin");
        let addr = listener.local_addr().expect("origin address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let task = {
            let (seen, connections) = (seen.clone(), connections.clone());
            tokio::spawn(async move {
                while let Ok((conn, _)) = listener.accept().await {
                    let n = connections.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::spawn(serve(conn, n, seen.clone()));
                }
            })
        };
        Self {
            addr,
            seen,
            connections,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request head received so far.
    pub fn seen(&self) -> Vec<SeenByOrigin> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The requests whose request line contains `needle`.
    pub fn seen_with(&self, needle: &str) -> Vec<SeenByOrigin> {
        self.seen()
            .into_iter()
            .filter(|s| s.request_line().contains(needle))
            .collect()
    }

    /// Origin connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for HostileOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The end of a head in `buf` (CRLF CRLF).
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

async fn read_more(conn: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match conn.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

async fn serve(mut conn: TcpStream, n: usize, seen: Arc<Mutex<Vec<SeenByOrigin>>>) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(end) = head_end(&buf) {
                break end;
            }
            if !read_more(&mut conn, &mut buf).await {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end - 4]).into_owned();
        buf.drain(..end);
        let lines: Vec<String> = head.split("\r\n").map(str::to_owned).collect();
        let mut request = SeenByOrigin {
            conn: n,
            lines,
            body: Vec::new(),
        };
        // Request bodies, framed as the proxy framed them.
        if let Some(len) = request
            .header("content-length")
            .first()
            .and_then(|v| v.parse::<usize>().ok())
        {
            while buf.len() < len {
                if !read_more(&mut conn, &mut buf).await {
                    return;
                }
            }
            request.body = buf.drain(..len).collect();
        } else if request
            .header("transfer-encoding")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("chunked"))
        {
            let end = loop {
                if let Some(p) = buf.windows(5).position(|w| w == b"0\r\n\r\n") {
                    break p + 5;
                }
                if !read_more(&mut conn, &mut buf).await {
                    return;
                }
            };
            request.body = buf.drain(..end).collect();
        }
        let line = request.request_line().to_owned();
        seen.lock().unwrap_or_else(|p| p.into_inner()).push(request);
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or("GET").to_owned();
        let target = parts.next().unwrap_or("/");
        // Absolute-form targets name the path after the authority.
        let path = target
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or(target);
        let mut segments = path.trim_start_matches('/').splitn(2, '/');
        let case = segments.next().unwrap_or("").to_owned();
        let nonce = segments
            .next()
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("")
            .to_owned();
        if !answer(&mut conn, &method, &case, &nonce).await {
            return;
        }
    }
}

fn with_length(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn chunked(body: &str) -> String {
    format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len())
}

/// Writes the answer for `case`; `false` when the connection is to end.
async fn answer(conn: &mut TcpStream, method: &str, case: &str, nonce: &str) -> bool {
    let ok = honest(nonce);
    match case {
        // A second, unsolicited response written a moment after the answer.
        "late" => {
            if conn.write_all(&with_length("200 OK", &ok)).await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
            conn.write_all(POISON).await.is_ok()
        }
        // What many servers do to an idle kept-alive connection: 408, then close.
        "idle408" => {
            if conn.write_all(&with_length("200 OK", &ok)).await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _ = conn
                .write_all(
                    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 13\r\nConnection: close\r\n\r\nPOISON-answer",
                )
                .await;
            false
        }
        // A body after an answer that has none, in the same write.
        "headbody" => {
            let mut out =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", ok.len()).into_bytes();
            if method != "HEAD" {
                out.extend_from_slice(ok.as_bytes());
            }
            out.extend_from_slice(POISON);
            conn.write_all(&out).await.is_ok()
        }
        "204" | "304" => {
            let status = if case == "204" {
                "204 No Content"
            } else {
                "304 Not Modified"
            };
            let mut out = format!("HTTP/1.1 {status}\r\nX-Nonce: {nonce}\r\n\r\n").into_bytes();
            out.extend_from_slice(POISON);
            conn.write_all(&out).await.is_ok()
        }
        // A response of exactly 4096 bytes with the poison in the same write (one read of the
        // old fast proxy's 4 KiB buffer ended exactly at the response).
        "exact4096" => {
            let base = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Pad: \r\n\r\n{ok}",
                ok.len()
            );
            let pad = "p".repeat(4096 - base.len());
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Pad: {pad}\r\n\r\n{ok}",
                ok.len()
            )
            .into_bytes();
            assert_eq!(out.len(), 4096);
            out.extend_from_slice(POISON);
            conn.write_all(&out).await.is_ok()
        }
        // Extra bytes after the last chunk, in the same write.
        "chunkextra" => {
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                chunked(&ok)
            )
            .into_bytes();
            out.extend_from_slice(POISON);
            conn.write_all(&out).await.is_ok()
        }
        // Both framings: chunked frames it (RFC 9112 §6.3); a reader trusting Content-Length
        // would take 4 bytes and read the rest as the next answer.
        "clte" => {
            let out = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                chunked(&ok)
            );
            conn.write_all(out.as_bytes()).await.is_ok()
        }
        "twocl" => {
            let out = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Length: 4\r\n\r\n{ok}",
                ok.len()
            );
            let _ = conn.write_all(out.as_bytes()).await;
            false
        }
        // The same Content-Length twice: one valid length (RFC 9110 §8.6 lets a recipient
        // keep one), to be relayed with one line.
        "samecl" => {
            let out = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {0}\r\nContent-Length: {0}\r\n\r\n{ok}",
                ok.len()
            );
            conn.write_all(out.as_bytes()).await.is_ok()
        }
        // A field line folded onto the next (obs-fold, RFC 9112 §5.2).
        "obsfold" => {
            let out = format!(
                "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: {}\r\n\r\n{ok}",
                ok.len()
            );
            conn.write_all(out.as_bytes()).await.is_ok()
        }
        "pluscl" => {
            let out = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: +{}\r\n\r\n{ok}",
                ok.len()
            );
            let _ = conn.write_all(out.as_bytes()).await;
            false
        }
        "tegzip" => {
            let out = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n{ok}");
            let _ = conn.write_all(out.as_bytes()).await;
            false
        }
        "tetwice" => {
            let out = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                chunked(&ok)
            );
            let _ = conn.write_all(out.as_bytes()).await;
            false
        }
        "hints" => {
            let mut out =
                b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n".to_vec();
            out.extend_from_slice(&with_length("200 OK", &ok));
            conn.write_all(&out).await.is_ok()
        }
        "upgrade101" => {
            let _ = conn
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: upgrade\r\n\r\nPOISON-answer")
                .await;
            false
        }
        // No framing at all: the body ends when the origin closes.
        "closedelim" => {
            let out = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n{ok}");
            let _ = conn.write_all(out.as_bytes()).await;
            false
        }
        // Closes in the middle of the body.
        "truncated" => {
            let out = format!("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{ok}");
            let _ = conn.write_all(out.as_bytes()).await;
            false
        }
        // Closes in the middle of the head.
        "halfhead" => {
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Le").await;
            false
        }
        "garbage" => {
            let _ = conn
                .write_all(b"HTTQ/9 two hundred\r\n\r\nPOISON-answer")
                .await;
            false
        }
        // Anything else: an honest answer.
        _ => conn.write_all(&with_length("200 OK", &ok)).await.is_ok(),
    }
}
