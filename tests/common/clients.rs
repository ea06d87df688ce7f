//! Clients that see exactly what the node sends: requests written and responses read by hand
//! (HTTP/1.1 on a raw socket, so framing mistakes show), and hyper's client connections for
//! keep-alive and HTTP/2.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::DEADLINE;

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// The status document is exactly what its type says: read as `api::Status<acme::AcmeStatus>`
/// (as the CLI reads it) and written back, nothing is lost, renamed or refused. Every test that
/// reads `/v1/status` checks it, in whatever state the node is.
pub fn assert_typed_status(doc: &serde_json::Value) {
    let typed: dcv_proxy::api::Status<dcv_proxy::acme::AcmeStatus> =
        serde_json::from_value(doc.clone())
            .unwrap_or_else(|e| panic!("/v1/status does not read as its type: {e}\n{doc:#}"));
    let back = serde_json::to_value(&typed).expect("status document");
    assert_eq!(
        &back, doc,
        "/v1/status changed when read as its type and written back"
    );
}

/// `METHOD path HTTP/1.1` with `Host`, `Connection: close` and `headers`.
pub fn request_bytes(method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in headers {
        let _ = write!(req, "{n}: {v}\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// Writes `request`, reads until the peer closes, parses the response.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> Response {
    let io = async {
        stream.write_all(request).await?;
        stream.flush().await?;
        let mut buf = Vec::new();
        // A TLS peer may close without close_notify, and a server that refuses a request before
        // reading its body may reset the connection after answering: what was read is still the
        // response.
        match stream.read_to_end(&mut buf).await {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ) && !buf.is_empty() => {}
            Err(e) => return Err(e),
        }
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(DEADLINE, io)
        .await
        .expect("the response did not complete in time")
        .expect("request I/O");
    parse_response(&buf)
}

pub(super) async fn try_raw(addr: SocketAddr, request: &[u8]) -> Option<Response> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream.write_all(request).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    try_parse_response(&buf)
}

/// Parses one HTTP/1.1 response: status, headers, body (chunked, or to EOF).
pub fn parse_response(buf: &[u8]) -> Response {
    try_parse_response(buf)
        .unwrap_or_else(|| panic!("not an HTTP response: {:?}", String::from_utf8_lossy(buf)))
}

pub fn try_parse_response(buf: &[u8]) -> Option<Response> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return body;
        };
        let size_text = std::str::from_utf8(&rest[..eol]).unwrap_or("0");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return body;
        }
        let start = eol + 2;
        body.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = rest.get(start + size + 2..).unwrap_or_default();
    }
}

/// An HTTP/1.1 client connection over `stream` that can carry several requests.
pub async fn h1_client<S>(stream: S) -> http1::SendRequest<Full<Bytes>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 client handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// An HTTP/2 client connection over `stream`.
pub async fn h2_client<S>(stream: S) -> http2::SendRequest<Full<Bytes>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("HTTP/2 client handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// `GET uri` with `Host: host` (HTTP/1.1; for HTTP/2 pass an absolute `uri` instead).
pub fn get(uri: &str, host: Option<&str>) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::builder().method("GET").uri(uri);
    if let Some(host) = host {
        req = req.header("host", host);
    }
    req.body(Full::new(Bytes::new())).expect("a valid request")
}

/// Collects a hyper response into a [`Response`].
pub async fn collect(resp: http::Response<hyper::body::Incoming>) -> Response {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = tokio::time::timeout(DEADLINE, resp.into_body().collect())
        .await
        .expect("the body did not complete in time")
        .expect("read the body")
        .to_bytes()
        .to_vec();
    Response {
        status,
        headers,
        body,
    }
}
