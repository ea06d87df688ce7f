//! The fast path's proxy against an origin that answers in every framing HTTP/1.1 allows:
//! chunked with trailers, close-delimited, informational answers first, large bodies, and
//! kept-alive connections the origin drops.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{collect, get, h1_client, Node};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An origin written against the socket, so it can answer in any framing. It counts
/// connections; `/drop` answers and then closes although it said keep-alive.
struct RawOrigin {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

const BIG: usize = 200_000;

impl RawOrigin {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(conn));
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut conn: TcpStream) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
        let reply: Vec<u8> = match path.as_str() {
            "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec(),
            "/close" => b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the origin closes".to_vec(),
            "/hints" => b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            "/big" => {
                let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").into_bytes();
                r.extend((0..BIG).map(|i| b'a' + (i % 26) as u8));
                r
            }
            "/head" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec(),
            _ => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{path}", path.len()).into_bytes(),
        };
        if conn.write_all(&reply).await.is_err() {
            return;
        }
        if path == "/close" || path == "/drop" {
            return;
        }
    }
}

async fn node_with(origin: &RawOrigin) -> Node {
    Node::builder().default_origin(origin.addr).start().await
}

async fn keepalive_get(node: &Node, paths: &[&str]) -> Vec<common::Response> {
    let stream = TcpStream::connect(node.http_addr()).await.unwrap();
    let mut sender = h1_client(stream).await;
    let mut out = Vec::new();
    for path in paths {
        let rsp = sender
            .send_request(get(path, Some("a.test")))
            .await
            .unwrap();
        out.push(collect(rsp).await);
    }
    out
}

#[tokio::test]
async fn chunked_bodies_and_trailers_pass_through() {
    let origin = RawOrigin::start().await;
    let node = node_with(&origin).await;
    let rsp = keepalive_get(&node, &["/chunked", "/after"]).await;
    assert_eq!(rsp[0].status, 200);
    assert_eq!(rsp[0].text(), "hello world");
    // The connection stayed usable after the chunked body.
    assert_eq!(rsp[1].text(), "/after");
}

#[tokio::test]
async fn close_delimited_bodies_end_the_client_connection() {
    let origin = RawOrigin::start().await;
    let node = node_with(&origin).await;
    let rsp = node.http_get("a.test", "/close").await;
    assert_eq!(rsp.status, 200);
    assert_eq!(rsp.text(), "until the origin closes");
}

#[tokio::test]
async fn informational_answers_are_relayed_before_the_final_one() {
    let origin = RawOrigin::start().await;
    let node = node_with(&origin).await;
    let raw = node
        .http_raw(b"GET /hints HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .await;
    // The raw parser sees the first head: the 103, then the 200 follows in the body bytes.
    assert_eq!(raw.status, 103);
    let rest = String::from_utf8_lossy(&raw.body);
    assert!(rest.contains("HTTP/1.1 200 OK"), "{rest}");
    assert!(rest.ends_with("ok"), "{rest}");
}

#[tokio::test]
async fn large_bodies_arrive_whole() {
    let origin = RawOrigin::start().await;
    let node = node_with(&origin).await;
    let rsp = keepalive_get(&node, &["/big", "/big"]).await;
    for r in &rsp {
        assert_eq!(r.body.len(), BIG);
        assert!(r
            .body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == b'a' + (i % 26) as u8));
    }
}

#[tokio::test]
async fn head_requests_get_no_body() {
    let origin = RawOrigin::start().await;
    let node = node_with(&origin).await;
    let stream = TcpStream::connect(node.http_addr()).await.unwrap();
    let mut sender = h1_client(stream).await;
    let req = http::Request::head("/head")
        .header("host", "a.test")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let rsp = collect(sender.send_request(req).await.unwrap()).await;
    assert_eq!(rsp.status, 200);
    assert_eq!(rsp.header("content-length"), Some("5"));
    assert!(rsp.body.is_empty());
    // And the connection carries the next request.
    let rsp = collect(
        sender
            .send_request(get("/next", Some("a.test")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(rsp.text(), "/next");
}

#[tokio::test]
async fn kept_alive_origin_connections_that_died_are_retried() {
    let origin = RawOrigin::start().await;
    let node = node_with(&origin).await;
    // `/drop` answers with keep-alive and closes: the pooled connection is dead.
    let first = keepalive_get(&node, &["/drop"]).await;
    assert_eq!(first[0].text(), "/drop");
    let second = keepalive_get(&node, &["/again"]).await;
    assert_eq!(second[0].status, 200);
    assert_eq!(second[0].text(), "/again");
    // Sequential requests otherwise share one origin connection.
    let before = origin.connections.load(Ordering::SeqCst);
    keepalive_get(&node, &["/a", "/b", "/c", "/d"]).await;
    let after = origin.connections.load(Ordering::SeqCst);
    assert!(after - before <= 1, "{before} -> {after}");
}
