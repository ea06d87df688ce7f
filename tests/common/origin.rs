//! The origin behind the node under test: an in-process HTTP/1.1 and HTTP/2 server on a free
//! loopback port that records every request that reaches it and answers as the test asks
//! (a status, a delay, a body size).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the origin saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    /// Path and query, as sent on the request line.
    pub path: String,
    pub host: Option<String>,
    pub x_forwarded_for: Option<String>,
    pub x_forwarded_proto: Option<String>,
}

/// An HTTP/1.1 origin on a loopback port. Answers every request with `200` and the body
/// `<name>:<path and query>`, and records each request and each TCP connection. A path
/// `/slow/<ms>` is answered after `ms` milliseconds (an in-flight request across a stop or an
/// upgrade).
pub struct TestOrigin {
    name: String,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
    /// Dropped with the origin: its connections close.
    _open: tokio::sync::watch::Sender<()>,
}

impl TestOrigin {
    /// An origin whose answers start with `origin:`.
    pub async fn start() -> Self {
        Self::named("origin").await
    }

    /// An origin whose answers start with `<name>:` (to tell two origins apart).
    pub async fn named(name: &str) -> Self {
        Self::named_on(name, "127.0.0.1:0".parse().expect("an address")).await
    }

    /// An origin on `addr` (the address of an origin that went away and comes back).
    pub async fn named_on(name: &str, addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind the origin");
        let addr = listener.local_addr().expect("origin address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (open, closed) = tokio::sync::watch::channel(());
        let task = {
            let (seen, connections, name) = (seen.clone(), connections.clone(), name.to_owned());
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (seen, name) = (seen.clone(), name.clone());
                    let service = hyper::service::service_fn(move |req| {
                        let (seen, name) = (seen.clone(), name.clone());
                        async move {
                            if let Some(ms) = slow_ms(&req) {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                            Ok::<_, std::convert::Infallible>(answer(&name, &seen, req))
                        }
                    });
                    let mut closed = closed.clone();
                    tokio::spawn(async move {
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service);
                        // A dropped origin closes its kept-alive connections too.
                        tokio::select! {
                            _ = conn => {}
                            _ = closed.changed() => {}
                        }
                    });
                }
            })
        };
        Self {
            name: name.to_owned(),
            addr,
            seen,
            connections,
            task,
            _open: open,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().expect("origin log").clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The body this origin answers for `path`.
    pub fn body_for(&self, path: &str) -> String {
        format!("{}:{path}", self.name)
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn slow_ms<B>(req: &http::Request<B>) -> Option<u64> {
    req.uri().path().strip_prefix("/slow/")?.parse().ok()
}

fn answer(
    name: &str,
    seen: &Mutex<Vec<SeenRequest>>,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    seen.lock().expect("origin log").push(SeenRequest {
        method: req.method().to_string(),
        path: path.clone(),
        host: header("host"),
        x_forwarded_for: header("x-forwarded-for"),
        x_forwarded_proto: header("x-forwarded-proto"),
    });
    http::Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .header("x-origin", name)
        .body(Full::new(Bytes::from(format!("{name}:{path}"))))
        .expect("a valid response")
}
