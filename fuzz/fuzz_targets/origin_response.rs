//! An origin's answer, any bytes, read by pingora-core's HTTP/1 client session and relayed by
//! the fast path's proxy (`serve::fastproxy::exchange`) to a client buffer: the origin side of
//! proxying, where a misframed or overlong answer once reached another client.
//!
//! Asserts, besides "no panic, no sanitizer report":
//! - what the client gets is well-formed: informational heads, then one final head whose body
//!   is framed by `Content-Length` (exactly that many bytes) or chunked coding (ending with the
//!   last chunk), or has none (`HEAD`, `204`, `304`) — and nothing after it;
//! - a connection pingora would put back in the pool has nothing left unread: no byte of the
//!   origin's answer is left for the next request (the connection is the origin's bytes, then
//!   EOF, so anything readable after the exchange is such a byte).
#![no_main]

use std::sync::OnceLock;

use dcv_proxy::serve::{exchange, Relayed};
use libfuzzer_sys::fuzz_target;
use pingora_core::protocols::http::v1::client::HttpSession;
use pingora_http::RequestHeader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

/// Checks `out` is informational heads, then one complete final answer, and nothing more.
fn check_client_bytes(out: &[u8], head_request: bool) {
    let mut rest = out;
    loop {
        // As many lines as pingora-core's HTTP/1 client takes from an origin (its MAX_HEADERS,
        // 256), plus the framing and `Connection: close` lines the relay may add.
        let mut headers = [httparse::EMPTY_HEADER; 258];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("client got {other:?}: {:?}", String::from_utf8_lossy(out)),
        };
        let status = resp.code.expect("a status");
        let header = |name: &str| {
            resp.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
                .collect::<Vec<_>>()
        };
        let (cl, te) = (header("content-length"), header("transfer-encoding"));
        assert!(cl.is_empty() || te.is_empty(), "both framings sent");
        assert!(cl.len() <= 1 && te.len() <= 1, "framing repeated");
        rest = &rest[n..];
        if (100..200).contains(&status) {
            assert_ne!(status, 101, "an upgrade relayed");
            continue;
        }
        if head_request || status == 204 || status == 304 {
            assert!(rest.is_empty(), "a body after a bodiless answer");
            return;
        }
        if let Some(te) = te.first() {
            assert_eq!(*te, b"chunked");
            loop {
                let (len, size) = match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete(c)) => c,
                    other => panic!("bad chunk {other:?}: {:?}", String::from_utf8_lossy(out)),
                };
                rest = &rest[len..];
                let size = usize::try_from(size).expect("a chunk size that fits");
                if size == 0 {
                    assert_eq!(rest, b"\r\n", "bytes after the last chunk");
                    return;
                }
                assert!(rest.len() >= size + 2 && &rest[size..size + 2] == b"\r\n");
                rest = &rest[size + 2..];
            }
        }
        let cl = cl.first().expect("a final answer is framed for the client");
        let cl: usize = std::str::from_utf8(cl)
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("a Content-Length of digits");
        assert_eq!(rest.len(), cl, "the body is not what Content-Length says");
        return;
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the request method; the rest is what the origin sends.
    let Some((&pick, answer)) = data.split_first() else {
        return;
    };
    let method = if pick & 1 == 1 { "HEAD" } else { "GET" };
    runtime().block_on(async {
        let (ours, mut origin) = tokio::io::duplex(answer.len() + 65536);
        origin.write_all(answer).await.expect("room in the pipe");
        // Reading the request is not needed: the pipe has room for it. Closing the write side
        // leaves the answer followed by EOF.
        origin.shutdown().await.expect("shutdown");
        let mut up = HttpSession::new(Box::new(ours));
        up.read_timeout = Some(std::time::Duration::from_millis(50));
        let mut req = RequestHeader::build(method, b"/", None).expect("a request");
        req.insert_header("Host", "a.test").expect("a header");
        let mut out = Vec::new();
        let relayed = exchange(&mut up, Box::new(req), false, &mut out).await;
        match relayed {
            // Nothing reached the client: it gets 502.
            Err(_) => assert!(out.is_empty() || out.starts_with(b"HTTP/1.1 1")),
            Ok(Relayed::Done { .. }) => {
                check_client_bytes(&out, method == "HEAD");
                up.respect_keepalive();
                if let Some(mut stream) = up.reuse().await {
                    let mut left = [0u8; 1];
                    let n = stream.read(&mut left).await.unwrap_or(0);
                    assert_eq!(n, 0, "a reused connection had bytes left");
                }
            }
            Ok(Relayed::Broken(_) | Relayed::Unreachable(_)) => {}
        }
    });
});
