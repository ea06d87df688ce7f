//! A hostile origin and hostile clients against both serving engines — the fast path
//! (`proxy.fast_path = true`) and pingora's proxy (`proxy.fast_path = false`) — over HTTP/1.1,
//! TLS and HTTP/2, with nginx (upstream keep-alive) as the reference.
//!
//! The property above all: no byte of one client's exchange ever reaches another connection.
//! Every honest origin answer carries the requesting client's nonce, every unsolicited origin
//! byte carries `POISON`; after each hostile exchange a *different* client connection (on the
//! other listener, for another site sharing the origin address) asks again and must get exactly
//! its own answer. Then both engines must give the same verdict for every case, and where
//! dcv-proxy's verdict differs from nginx's the table says why.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::hostile::{honest, HostileOrigin};
use common::nginx::Nginx;
use common::{h2_client, tls_connect, Node};
use dcv_proxy::testkit::TestCa;
use http_body_util::Full;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const DAY: Duration = Duration::from_secs(24 * 3600);
/// Sites `a.test` and `b.test` share one origin address.
const SITES: [&str; 2] = ["a.test", "b.test"];

fn nonce() -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "n{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

// ---- what a client saw

/// One exchange as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// A complete final answer (informational answers skipped), framed exactly.
    Answer {
        status: u16,
        body: Vec<u8>,
        /// Response headers, names lowercased.
        headers: Vec<(String, String)>,
    },
    /// The connection ended without a complete answer (closed, reset, truncated, misframed).
    Broken,
}

impl Seen {
    fn status(&self) -> Option<u16> {
        match self {
            Seen::Answer { status, .. } => Some(*status),
            Seen::Broken => None,
        }
    }

    fn body(&self) -> &[u8] {
        match self {
            Seen::Answer { body, .. } => body,
            Seen::Broken => b"",
        }
    }

    fn header_count(&self, name: &str) -> usize {
        match self {
            Seen::Answer { headers, .. } => headers.iter().filter(|(n, _)| n == name).count(),
            Seen::Broken => 0,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        match self {
            Seen::Answer { headers, .. } => headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str()),
            Seen::Broken => None,
        }
    }

    /// Status, or 0 for a broken exchange: what the engines are compared on.
    fn verdict(&self) -> u16 {
        self.status().unwrap_or(0)
    }
}

/// Reads one HTTP/1.1 exchange's answer from `raw` (everything the server sent until it
/// closed) strictly: informational heads skipped, the body framed by `Content-Length` or
/// chunked coding, and *nothing* after it. Returns the answer and any bytes after it.
fn parse_strict(raw: &[u8], head_request: bool) -> (Seen, Vec<u8>) {
    let (seen, rest, _) = parse_framed(raw, head_request);
    (seen, rest)
}

/// [`parse_strict`], and whether the answer's end is known from its framing (not the close).
fn parse_framed(raw: &[u8], head_request: bool) -> (Seen, Vec<u8>, bool) {
    let (seen, rest) = parse_one(raw, head_request);
    let framed = match &seen {
        Seen::Answer {
            headers, status, ..
        } => {
            head_request
                || *status == 204
                || *status == 304
                || headers
                    .iter()
                    .any(|(k, _)| k == "content-length" || k == "transfer-encoding")
        }
        Seen::Broken => false,
    };
    (seen, rest, framed)
}

fn parse_one(raw: &[u8], head_request: bool) -> (Seen, Vec<u8>) {
    let mut rest = raw;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(n)) = resp.parse(rest) else {
            return (Seen::Broken, rest.to_vec());
        };
        let status = resp.code.unwrap_or(0);
        let headers: Vec<(String, String)> = resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        rest = &rest[n..];
        if (100..200).contains(&status) {
            continue;
        }
        let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        if head_request || status == 204 || status == 304 {
            return (
                Seen::Answer {
                    status,
                    body: Vec::new(),
                    headers,
                },
                rest.to_vec(),
            );
        }
        if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut body = Vec::new();
            loop {
                let Ok(httparse::Status::Complete((len, size))) = httparse::parse_chunk_size(rest)
                else {
                    return (Seen::Broken, rest.to_vec());
                };
                rest = &rest[len..];
                let size = size as usize;
                if size == 0 {
                    // No trailers are sent by dcv-proxy; nginx sends none either.
                    let Some(after) = rest.strip_prefix(b"\r\n") else {
                        return (Seen::Broken, rest.to_vec());
                    };
                    return (
                        Seen::Answer {
                            status,
                            body,
                            headers,
                        },
                        after.to_vec(),
                    );
                }
                if rest.len() < size + 2 || &rest[size..size + 2] != b"\r\n" {
                    return (Seen::Broken, rest.to_vec());
                }
                body.extend_from_slice(&rest[..size]);
                rest = &rest[size + 2..];
            }
        }
        if let Some(len) = get("content-length") {
            let Ok(len) = len.trim().parse::<usize>() else {
                return (Seen::Broken, rest.to_vec());
            };
            if rest.len() < len {
                return (Seen::Broken, rest.to_vec());
            }
            return (
                Seen::Answer {
                    status,
                    body: rest[..len].to_vec(),
                    headers,
                },
                rest[len..].to_vec(),
            );
        }
        // Close-delimited: everything to the end is the body.
        return (
            Seen::Answer {
                status,
                body: rest.to_vec(),
                headers,
            },
            Vec::new(),
        );
    }
}

// ---- clients

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    H1,
    Tls,
    H2,
}

const VIAS: [Via; 3] = [Via::H1, Via::Tls, Via::H2];

/// Where a client connects.
#[derive(Clone, Copy)]
struct Target {
    name: &'static str,
    http: SocketAddr,
    https: Option<SocketAddr>,
}

impl Target {
    fn of(name: &'static str, node: &Node) -> Self {
        Self {
            name,
            http: node.http_addr(),
            https: Some(node.https_addr()),
        }
    }
}

/// Writes `raw`, reads until the server closes (or 10 s), returns every byte.
/// Writes `raw`, reads until the server closes, or until what it sent is a complete framed
/// answer followed by 300 ms of silence (a kept-alive connection); 10 s at most. Every byte.
async fn raw_exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, raw: &[u8]) -> Vec<u8> {
    let _ = stream.write_all(raw).await;
    let _ = stream.flush().await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 16384];
        loop {
            let complete = matches!(parse_framed(&buf, false), (Seen::Answer { .. }, _, true));
            let read = if complete {
                match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut chunk))
                    .await
                {
                    Ok(read) => read,
                    Err(_silence) => break,
                }
            } else {
                stream.read(&mut chunk).await
            };
            match read {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    buf
}

/// `raw` over plain TCP or TLS (SNI `host`); every byte the server sent.
async fn send_raw(target: Target, via: Via, host: &str, raw: &[u8]) -> Vec<u8> {
    match via {
        Via::H1 => raw_exchange(TcpStream::connect(target.http).await.unwrap(), raw).await,
        Via::Tls => {
            let https = target.https.expect("an HTTPS listener");
            let conn = tls_connect(https, Some(host), &["http/1.1"], None)
                .await
                .unwrap();
            raw_exchange(conn.stream, raw).await
        }
        Via::H2 => unreachable!("raw bytes are HTTP/1"),
    }
}

/// One request on a new connection; over HTTP/1 with `Connection: close`. `headers` are
/// extra request headers.
async fn request(
    target: Target,
    via: Via,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Seen, Vec<u8>) {
    if via == Via::H2 {
        return (
            h2_request(target, method, host, path, headers).await,
            Vec::new(),
        );
    }
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    let bytes = send_raw(target, via, host, raw.as_bytes()).await;
    let (seen, after) = parse_strict(&bytes, method == "HEAD");
    assert!(
        !contains(&bytes, b"POISON"),
        "{}/{via:?} {method} {path}: origin garbage reached the client: {:?}",
        target.name,
        String::from_utf8_lossy(&bytes)
    );
    (seen, after)
}

async fn h2_request(
    target: Target,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Seen {
    let https = target.https.expect("an HTTPS listener");
    let conn = tls_connect(https, Some(host), &["h2"], None).await.unwrap();
    let mut h2 = h2_client(conn.stream).await;
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("https://{host}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let resp = match tokio::time::timeout(Duration::from_secs(10), h2.send_request(req)).await {
        Ok(Ok(resp)) => resp,
        _ => return Seen::Broken,
    };
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = match tokio::time::timeout(
        Duration::from_secs(10),
        http_body_util::BodyExt::collect(resp.into_body()),
    )
    .await
    {
        Ok(Ok(body)) => body.to_bytes().to_vec(),
        _ => return Seen::Broken,
    };
    assert!(
        !contains(&body, b"POISON"),
        "{}/h2 {method} {path}: origin garbage reached the client",
        target.name
    );
    Seen::Answer {
        status,
        body,
        headers,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---- the world

struct World {
    origin: HostileOrigin,
    fast: Node,
    pingora: Node,
    nginx: Nginx,
}

impl World {
    async fn start() -> Self {
        let origin = HostileOrigin::start().await;
        let ca = TestCa::new("adversarial").unwrap();
        let leaf = ca.leaf(&SITES, 30 * DAY).unwrap();
        let mut nodes = Vec::new();
        for pingora_only in [false, true] {
            let mut builder = Node::builder().site(&SITES, origin.addr());
            if pingora_only {
                builder = builder.pingora_only();
            }
            let node = builder.start().await;
            node.install_cert("sites", &leaf, &SITES).await;
            nodes.push(node);
        }
        let pingora = nodes.pop().unwrap();
        let fast = nodes.pop().unwrap();
        let nginx = Nginx::reverse_proxy(origin.addr()).await;
        Self {
            origin,
            fast,
            pingora,
            nginx,
        }
    }

    fn engines(&self) -> [Target; 2] {
        [
            Target::of("fast-path", &self.fast),
            Target::of("pingora", &self.pingora),
        ]
    }

    fn nginx(&self) -> Target {
        Target {
            name: "nginx",
            http: self.nginx.addr(),
            https: None,
        }
    }
}

/// After a hostile exchange: other clients, on other connections, the other listener and the
/// other site, must each get exactly their own answer — several times, so that every pooled
/// origin connection is tried.
async fn others_get_their_own(target: Target, case: &str) {
    for (i, via) in [Via::H1, Via::Tls, Via::H1, Via::Tls, Via::H2, Via::H1]
        .into_iter()
        .enumerate()
    {
        if via != Via::H1 && target.https.is_none() {
            continue;
        }
        let n = nonce();
        let host = SITES[i % 2];
        let (seen, after) = request(target, via, "GET", host, &format!("/ok/{n}"), &[]).await;
        assert_eq!(
            seen.status(),
            Some(200),
            "{}: after {case}, {via:?} client {i} got {seen:?}",
            target.name
        );
        assert_eq!(
            seen.body(),
            honest(&n).as_bytes(),
            "{}: after {case}, {via:?} client {i} got another exchange's bytes",
            target.name
        );
        assert!(after.is_empty(), "{}: bytes after the answer", target.name);
    }
}

// ---- the origin misbehaves

/// Cases where the origin sends bytes after a response it framed. The hostile client's own
/// answer is its honest one (the origin framed it), and nothing after it may reach anyone.
const DESYNC: [(&str, &str); 8] = [
    ("late", "GET"),
    ("idle408", "GET"),
    ("headbody", "HEAD"),
    ("headbody", "GET"),
    ("204", "GET"),
    ("304", "GET"),
    ("exact4096", "GET"),
    ("chunkextra", "GET"),
];

#[tokio::test]
async fn bytes_an_origin_sends_after_its_answer_never_reach_another_client() {
    let world = World::start().await;
    for target in world.engines().into_iter().chain([world.nginx()]) {
        for (case, method) in DESYNC {
            for via in VIAS {
                if via != Via::H1 && target.https.is_none() {
                    continue;
                }
                let n = nonce();
                let (seen, after) =
                    request(target, via, method, "a.test", &format!("/{case}/{n}"), &[]).await;
                let expected = match case {
                    "204" => 204,
                    "304" => 304,
                    _ => 200,
                };
                assert_eq!(
                    seen.status(),
                    Some(expected),
                    "{}/{via:?} {method} {case}: {seen:?}",
                    target.name
                );
                if method == "GET" && expected == 200 {
                    assert_eq!(seen.body(), honest(&n).as_bytes(), "{}", target.name);
                }
                assert!(
                    seen.body().is_empty() || method == "GET",
                    "{}/{via:?}: a body after HEAD",
                    target.name
                );
                assert!(
                    after.is_empty(),
                    "{}/{via:?} {case}: bytes after the answer: {:?}",
                    target.name,
                    String::from_utf8_lossy(&after)
                );
                // Let late bytes arrive on the idle pooled connection first.
                tokio::time::sleep(Duration::from_millis(80)).await;
                others_get_their_own(target, case).await;
            }
        }
    }
}

/// The hostile origin's framing cases, with the verdict a client gets.
#[derive(Debug)]
struct FramingCase {
    case: &'static str,
    /// What dcv-proxy answers (both engines, every transport); 0: the connection breaks.
    dcv: u16,
    /// What nginx answers, and why it differs where it does.
    nginx: (u16, &'static str),
    /// The client's answer is the honest one.
    honest_body: bool,
}

const FRAMING: [FramingCase; 13] = [
    FramingCase {
        case: "clte",
        dcv: 200,
        nginx: (200, ""),
        honest_body: true,
    },
    FramingCase {
        case: "twocl",
        dcv: 502,
        nginx: (
            200,
            "nginx 1.22 frames by the last Content-Length and relays a cut body; differing \
             values are an unrecoverable framing error (RFC 9110 §8.6)",
        ),
        honest_body: false,
    },
    FramingCase {
        case: "samecl",
        dcv: 200,
        nginx: (200, ""),
        honest_body: true,
    },
    FramingCase {
        case: "obsfold",
        dcv: 200,
        nginx: (
            502,
            "nginx 1.22 refuses a folded field line with 502; RFC 9112 §5.2 lets a proxy \
             either refuse it or replace each obs-fold with a space, which pingora-core's \
             client does on both engines (the client never sees a line break in a value)",
        ),
        honest_body: true,
    },
    FramingCase {
        case: "pluscl",
        dcv: 502,
        nginx: (
            200,
            "nginx 1.22 ignores a Content-Length it cannot parse and reads to the close; a \
             malformed value is an unrecoverable framing error (RFC 9110 §8.6)",
        ),
        honest_body: false,
    },
    FramingCase {
        case: "tegzip",
        dcv: 502,
        nginx: (
            200,
            "nginx 1.22 relays a body of an unknown transfer coding as if it had none (the \
             client gets gzip bytes nobody declared); dcv-proxy refuses what it cannot frame",
        ),
        honest_body: false,
    },
    FramingCase {
        case: "tetwice",
        dcv: 502,
        nginx: (
            200,
            "nginx reads `chunked, chunked` as chunked; dcv-proxy accepts exactly one \
             `chunked` coding (a doubled coding is either a bug or a probe)",
        ),
        honest_body: false,
    },
    FramingCase {
        case: "hints",
        dcv: 200,
        nginx: (
            0,
            "nginx 1.22 takes the 103 for the final answer and waits for a body that never \
             comes (no answer within the test's 10 s); dcv-proxy relays the 103 (RFC 9110 \
             §15.2), then the final answer",
        ),
        honest_body: true,
    },
    FramingCase {
        case: "upgrade101",
        dcv: 502,
        nginx: (
            0,
            "nginx 1.22 relays an unrequested 101 and then the origin's raw bytes to the \
             client (the connection becomes a tunnel the origin chose); dcv-proxy answers 502",
        ),
        honest_body: false,
    },
    FramingCase {
        case: "closedelim",
        dcv: 200,
        nginx: (200, ""),
        honest_body: true,
    },
    FramingCase {
        case: "truncated",
        dcv: 0,
        nginx: (0, ""),
        honest_body: false,
    },
    FramingCase {
        case: "halfhead",
        dcv: 502,
        nginx: (502, ""),
        honest_body: false,
    },
    FramingCase {
        case: "garbage",
        dcv: 502,
        nginx: (
            0,
            "nginx 1.22 takes an answer without a status line for HTTP/0.9 and relays the \
             origin's raw bytes; dcv-proxy answers 502",
        ),
        honest_body: false,
    },
];

#[tokio::test]
async fn misframed_answers_get_one_verdict_from_both_engines() {
    let world = World::start().await;
    let mut table = String::from("\ncase         dcv  nginx\n");
    for fc in &FRAMING {
        for target in world.engines() {
            for via in VIAS {
                let n = nonce();
                let (seen, after) = request(
                    target,
                    via,
                    "GET",
                    "b.test",
                    &format!("/{}/{n}", fc.case),
                    &[],
                )
                .await;
                // HTTP/2 cannot show a broken body as a status: a reset stream is "broken".
                assert_eq!(
                    seen.verdict(),
                    fc.dcv,
                    "{}/{via:?} {}: {seen:?}",
                    target.name,
                    fc.case
                );
                if fc.honest_body {
                    assert_eq!(seen.body(), honest(&n).as_bytes(), "{}", fc.case);
                }
                assert!(
                    seen == Seen::Broken || after.is_empty(),
                    "{}: bytes after the answer",
                    fc.case
                );
                if fc.case == "obsfold" {
                    // RFC 9112 §5.2: each obs-fold replaced by a space (pingora-core's client).
                    assert_eq!(seen.header("x-folded"), Some("a b"), "{seen:?}");
                }
                if fc.case == "samecl" && via != Via::H2 {
                    assert_eq!(
                        seen.header_count("content-length"),
                        1,
                        "{}/{via:?}: one Content-Length for the client: {seen:?}",
                        target.name
                    );
                }
                if fc.case == "closedelim" && via != Via::H2 {
                    assert_eq!(
                        seen.header("transfer-encoding"),
                        Some("chunked"),
                        "a close-delimited body goes out chunked"
                    );
                }
                others_get_their_own(target, fc.case).await;
            }
        }
        let n = nonce();
        let raw = format!(
            "GET /{}/{n} HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n",
            fc.case
        );
        let bytes = send_raw(world.nginx(), Via::H1, "b.test", raw.as_bytes()).await;
        let (seen, _) = parse_strict(&bytes, false);
        table.push_str(&format!(
            "{:<12} {:>3}  {:>3}\n",
            fc.case,
            fc.dcv,
            seen.verdict()
        ));
        assert_eq!(
            seen.verdict(),
            fc.nginx.0,
            "nginx on {} (update the table and its reason): {seen:?} {:?}",
            fc.case,
            String::from_utf8_lossy(&bytes)
        );
        assert!(
            fc.nginx.0 == fc.dcv || !fc.nginx.1.is_empty(),
            "{}: dcv-proxy differs from nginx without a reason",
            fc.case
        );
        others_get_their_own(world.nginx(), fc.case).await;
    }
    eprintln!("{table}");
}

/// Both framings in one answer: relayed by chunked coding and the origin connection closed
/// after it (the next request opens a new one), on both engines.
#[tokio::test]
async fn cl_and_te_answers_close_their_origin_connection() {
    let world = World::start().await;
    for target in world.engines() {
        for via in [Via::H1, Via::Tls] {
            let before = world.origin.connections();
            let n = nonce();
            let (seen, _) = request(target, via, "GET", "a.test", &format!("/clte/{n}"), &[]).await;
            assert_eq!(seen.body(), honest(&n).as_bytes());
            assert_eq!(seen.header("content-length"), None, "{seen:?}");
            let m = nonce();
            request(target, via, "GET", "a.test", &format!("/ok/{m}"), &[]).await;
            let first = world.origin.seen_with(&format!("/clte/{n}"));
            let second = world.origin.seen_with(&format!("/ok/{m}"));
            assert_eq!((first.len(), second.len()), (1, 1));
            assert_ne!(
                first[0].conn, second[0].conn,
                "{}/{via:?}: the origin connection was reused after CL+TE",
                target.name
            );
            assert!(world.origin.connections() > before);
        }
    }
}

// ---- the client misbehaves

/// A hostile request: raw HTTP/1.1 bytes, sent as they are.
struct ClientCase {
    name: &'static str,
    raw: String,
    /// dcv-proxy's verdict (status of the first answer; 0: no answer).
    dcv: u16,
    /// nginx's verdict, and the reason where it differs.
    nginx: (u16, &'static str),
}

fn client_cases(n: &str) -> Vec<ClientCase> {
    let h = "Host: a.test\r\n";
    let c = |name, raw: String, dcv, nginx| ClientCase {
        name,
        raw,
        dcv,
        nginx,
    };
    vec![
        c(
            "cl.te",
            format!("POST /ok/{n} HTTP/1.1\r\n{h}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGPOST /smuggled/{n} HTTP/1.1\r\n{h}\r\n"),
            200,
            (400, "nginx refuses a request with both framings; pingora frames it by \
                   Transfer-Encoding and closes the connection after it (RFC 9112 §6.1), so \
                   the smuggled bytes are never read as a request"),
        ),
        c(
            "te.cl",
            format!("POST /ok/{n} HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"),
            200,
            (400, "as cl.te"),
        ),
        c(
            "te-xchunked",
            format!("POST /ok/{n} HTTP/1.1\r\n{h}Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            400,
            (501, "nginx answers an unknown coding with 501; pingora with 400 (RFC 9112 \
                   §6.1 allows either)"),
        ),
        c(
            "te-space-before-colon",
            format!("POST /ok/{n} HTTP/1.1\r\n{h}Transfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            400,
            (400, ""),
        ),
        c(
            "te-chunked-identity",
            format!("POST /ok/{n} HTTP/1.1\r\n{h}Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            400,
            (501, "as te-xchunked"),
        ),
        c(
            "te-two-lines",
            format!("POST /ok/{n} HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            400,
            (400, ""),
        ),
        c(
            "te-http10",
            format!("POST /ok/{n} HTTP/1.0\r\n{h}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            400,
            (400, ""),
        ),
        c(
            "two-hosts",
            format!("GET /ok/{n} HTTP/1.1\r\n{h}Host: b.test\r\n\r\n"),
            400,
            (400, ""),
        ),
        c(
            "two-content-lengths",
            format!("POST /ok/{n} HTTP/1.1\r\n{h}Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
            400,
            (400, ""),
        ),
        c(
            "obs-fold",
            format!("GET /ok/{n} HTTP/1.1\r\n{h}X-Folded: a\r\n b\r\n\r\n"),
            400,
            (400, ""),
        ),
        c(
            "bare-lf",
            format!("GET /ok/{n} HTTP/1.1\n{h}\n"),
            200,
            (200, ""),
        ),
        c(
            "nul-in-header",
            format!("GET /ok/{n} HTTP/1.1\r\n{h}X-A: a\0b\r\n\r\n"),
            400,
            (400, ""),
        ),
        c(
            "control-byte-in-path",
            format!("GET /ok/{n}\x01 HTTP/1.1\r\n{h}\r\n"),
            200,
            (400, "pingora percent-encodes bytes a request target may not hold and forwards \
                   the request (the origin sees `%01`, never the raw byte); nginx refuses"),
        ),
        c(
            "absolute-form",
            format!("GET http://a.test/ok/{n} HTTP/1.1\r\nHost: a.test\r\n\r\n"),
            200,
            (200, ""),
        ),
        c(
            "absolute-form-other-host",
            format!("GET http://b.test/ok/{n} HTTP/1.1\r\nHost: a.test\r\n\r\n"),
            400,
            (200, "pingora refuses a request whose absolute-form authority and Host disagree \
                   (an ambiguity the client chose); nginx routes by the target's authority \
                   (RFC 9112 §3.2.2)"),
        ),
        c(
            "connection-host",
            format!("GET /ok/{n} HTTP/1.1\r\n{h}Connection: host\r\n\r\n"),
            400,
            (200, "nginx does not remove headers that Connection names; pingora refuses a \
                   Connection that names Host or an X-Forwarded header (it would delete \
                   what the proxy sets)"),
        ),
        c(
            "connection-x-forwarded-for",
            format!("GET /ok/{n} HTTP/1.1\r\n{h}Connection: X-Forwarded-For\r\n\r\n"),
            400,
            (200, "as connection-host"),
        ),
    ]
}

#[tokio::test]
async fn hostile_requests_get_one_verdict_from_both_engines() {
    let world = World::start().await;
    let mut table = String::from("\ncase                          dcv  nginx\n");
    for case in client_cases("x") {
        let mut verdicts = Vec::new();
        for target in world.engines() {
            for via in [Via::H1, Via::Tls] {
                let n = nonce();
                let raw = case.raw.replace("/x", &format!("/{n}"));
                let bytes = send_raw(target, via, "a.test", raw.as_bytes()).await;
                let (seen, _) = parse_strict(&bytes, false);
                verdicts.push((target.name, via, seen.verdict()));
                if seen.verdict() == 200 {
                    assert!(
                        seen.body().starts_with(honest(&n).as_bytes()),
                        "{}: {seen:?}",
                        case.name
                    );
                }
                assert!(
                    world.origin.seen_with("smuggled").is_empty()
                        && world.origin.seen_with("GPOST").is_empty(),
                    "{}: a smuggled request reached the origin",
                    case.name
                );
                others_get_their_own(target, case.name).await;
            }
        }
        for (name, via, verdict) in &verdicts {
            assert_eq!(
                *verdict, case.dcv,
                "{} on {name}/{via:?}: {verdicts:?}",
                case.name
            );
        }
        let raw = case.raw.replace("/x", &format!("/{}", nonce()));
        let bytes = send_raw(world.nginx(), Via::H1, "a.test", raw.as_bytes()).await;
        let (nginx, _) = parse_strict(&bytes, false);
        table.push_str(&format!(
            "{:<29} {:>3}  {:>3}\n",
            case.name,
            case.dcv,
            nginx.verdict()
        ));
        assert_eq!(
            nginx.verdict(),
            case.nginx.0,
            "nginx on {} (update the table and its reason): {nginx:?}",
            case.name
        );
        assert!(
            case.nginx.0 == case.dcv || !case.nginx.1.is_empty(),
            "{}: dcv-proxy differs from nginx without a reason",
            case.name
        );
    }
    eprintln!("{table}");
}

/// What the origin receives: hop-by-hop headers gone, forwarding headers the proxy's — the same
/// from both engines and over every transport.
#[tokio::test]
async fn both_engines_forward_the_same_request() {
    let world = World::start().await;
    let hostile: &[(&str, &str)] = &[
        ("X-Forwarded-For", "198.51.100.7"),
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-Proto", "gopher"),
        ("X-Forwarded-Host", "evil.test"),
        ("X-Forwarded_Proto", "https"),
        ("X_Forwarded_For", "10.9.9.9"),
        ("Forwarded", "for=10.9.9.9;proto=https"),
        ("Proxy-Authorization", "Basic c2VjcmV0"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("X-Kept", "yes"),
    ];
    let mut seen_sets = Vec::new();
    for target in world.engines() {
        for via in VIAS {
            let n = nonce();
            let mut headers = hostile.to_vec();
            // Connection-specific headers are not HTTP/2 headers at all (RFC 9113 §8.2.2).
            if via == Via::H2 {
                headers.retain(|(k, _)| !matches!(*k, "Keep-Alive" | "TE"));
            }
            let (seen, _) =
                request(target, via, "GET", "a.test", &format!("/ok/{n}"), &headers).await;
            assert_eq!(seen.status(), Some(200), "{}/{via:?}", target.name);
            let got = world.origin.seen_with(&n);
            assert_eq!(got.len(), 1);
            let r = &got[0];
            let scheme = if via == Via::H1 { "http" } else { "https" };
            assert_eq!(
                r.header("x-forwarded-for"),
                ["198.51.100.7, 203.0.113.9, 127.0.0.1"],
                "{}/{via:?}",
                target.name
            );
            assert_eq!(r.header("x-forwarded-proto"), [scheme]);
            assert_eq!(r.header("x-forwarded-host"), ["a.test"]);
            assert_eq!(r.header("host"), ["a.test"]);
            assert_eq!(r.header("x-kept"), ["yes"]);
            for gone in [
                "x-forwarded_proto",
                "x_forwarded_for",
                "forwarded",
                "proxy-authorization",
                "keep-alive",
                "te",
                "connection",
            ] {
                assert!(
                    !r.has(gone),
                    "{}/{via:?}: {gone} reached the origin",
                    target.name
                );
            }
            let mut names: Vec<String> = r
                .lines
                .iter()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, _)| k.to_ascii_lowercase())
                .collect();
            names.sort();
            seen_sets.push((target.name, via, names));
        }
    }
    // Over HTTP/1.1 both engines send the origin the same header set.
    let h1: Vec<_> = seen_sets
        .iter()
        .filter(|(_, via, _)| *via == Via::H1)
        .collect();
    assert_eq!(h1[0].2, h1[1].2, "{h1:?}");
}

/// `Connection: close, X-Other`: X-Other is not forwarded, and the client connection is closed
/// after the answer, on both engines.
#[tokio::test]
async fn connection_close_with_other_tokens_closes() {
    let world = World::start().await;
    for target in world.engines() {
        for via in [Via::H1, Via::Tls] {
            let n = nonce();
            // Two requests in one write: the second must not be answered.
            let m = nonce();
            let raw = format!(
                "GET /ok/{n} HTTP/1.1\r\nHost: a.test\r\nConnection: close, X-Other\r\nX-Other: 1\r\n\r\n\
                 GET /ok/{m} HTTP/1.1\r\nHost: a.test\r\n\r\n"
            );
            let bytes = send_raw(target, via, "a.test", raw.as_bytes()).await;
            let (seen, after) = parse_strict(&bytes, false);
            assert_eq!(seen.body(), honest(&n).as_bytes());
            assert_eq!(seen.header("connection"), Some("close"), "{seen:?}");
            assert!(
                after.is_empty(),
                "{}/{via:?}: answered after close",
                target.name
            );
            let got = world.origin.seen_with(&n);
            assert!(!got[0].has("x-other"), "{}: X-Other forwarded", target.name);
            assert!(world.origin.seen_with(&m).is_empty());
        }
    }
}

/// Pipelined requests across the fast path's answer, its proxy and pingora: answered in order,
/// each with its own answer.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order_across_engines() {
    let world = World::start().await;
    for target in world.engines() {
        for via in [Via::H1, Via::Tls] {
            let (a, b) = (nonce(), nonce());
            let raw = format!(
                "GET /.well-known/acme-challenge/unknown-token HTTP/1.1\r\nHost: a.test\r\n\r\n\
                 GET /ok/{a} HTTP/1.1\r\nHost: a.test\r\n\r\n\
                 POST /ok/{b} HTTP/1.1\r\nHost: b.test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
            );
            let bytes = send_raw(target, via, "a.test", raw.as_bytes()).await;
            let (first, rest) = parse_strict(&bytes, false);
            let (second, rest) = parse_strict(&rest, false);
            let (third, rest) = parse_strict(&rest, false);
            assert_eq!(first.status(), Some(404), "{}/{via:?}", target.name);
            assert_eq!(
                second.body(),
                honest(&a).as_bytes(),
                "{}/{via:?}",
                target.name
            );
            assert_eq!(
                third.body(),
                honest(&b).as_bytes(),
                "{}/{via:?}",
                target.name
            );
            assert!(rest.is_empty());
            assert_eq!(world.origin.seen_with(&b)[0].body, b"abc");
        }
    }
}

// ---- limits on heads

/// 33 short header lines (more than the fast path looks at) and one of 200 KiB: `431` from both
/// engines, and nothing reaches the origin.
#[tokio::test]
async fn heads_over_the_limit_get_431_whatever_their_shape() {
    let world = World::start().await;
    for target in world.engines() {
        for via in [Via::H1, Via::Tls] {
            let n = nonce();
            let mut raw = format!("GET /ok/{n} HTTP/1.1\r\nHost: a.test\r\n");
            for i in 0..33 {
                raw.push_str(&format!("X-{i}: v\r\n"));
            }
            raw.push_str(&format!("X-Big: {}\r\n\r\n", "b".repeat(200 * 1024)));
            let bytes = send_raw(target, via, "a.test", raw.as_bytes()).await;
            let (seen, _) = parse_strict(&bytes, false);
            assert_eq!(seen.status(), Some(431), "{}/{via:?}", target.name);
            assert!(world.origin.seen_with(&n).is_empty());
            // A head within the limit with many lines is pingora's and is served.
            let m = nonce();
            let mut raw = format!("GET /ok/{m} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n");
            for i in 0..100 {
                raw.push_str(&format!("X-{i}: v\r\n"));
            }
            raw.push_str("\r\n");
            let bytes = send_raw(target, via, "a.test", raw.as_bytes()).await;
            let (seen, _) = parse_strict(&bytes, false);
            assert_eq!(
                seen.body(),
                honest(&m).as_bytes(),
                "{}/{via:?}",
                target.name
            );
        }
    }
}

/// A head dripped one byte at a time is closed on at `server.head_timeout` from its first byte,
/// not kept alive by each byte; after a request pingora served too (the connection comes back
/// to the fast path's limits).
#[tokio::test]
async fn slow_heads_are_cut_off_at_the_head_deadline() {
    let origin = HostileOrigin::start().await;
    for pingora_only in [false, true] {
        let mut builder = Node::builder()
            .site(&SITES, origin.addr())
            .head_timeout("2s");
        if pingora_only {
            builder = builder.pingora_only();
        }
        let node = builder.start().await;
        let mut conn = TcpStream::connect(node.http_addr()).await.unwrap();
        // First a request pingora serves (a body), on the same connection.
        let n = nonce();
        conn.write_all(
            format!("POST /ok/{n} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\n\r\nx")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        while !contains(&buf, honest(&n).as_bytes()) {
            let mut chunk = [0u8; 4096];
            let got = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
                .await
                .expect("the answer to the first request")
                .unwrap();
            assert!(got > 0, "closed before answering: {buf:?}");
            buf.extend_from_slice(&chunk[..got]);
        }
        // Then a head, one byte every 500 ms: 12 bytes would take 6 s.
        let started = tokio::time::Instant::now();
        let mut closed = false;
        for b in b"GET /ok/slow".iter() {
            if conn.write_all(&[*b]).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut probe = [0u8; 1];
            if let Ok(Ok(0)) =
                tokio::time::timeout(Duration::from_millis(1), conn.read(&mut probe)).await
            {
                closed = true;
                break;
            }
        }
        assert!(closed, "a dripped head was still being read after 6 s");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "closed only after {:?}",
            started.elapsed()
        );
        assert!(origin.seen_with("/ok/slow").is_empty());
    }
}
