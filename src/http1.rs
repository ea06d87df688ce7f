//! One HTTP/1.1 exchange over a stream the caller opened, by hyper's client connection: the one
//! way dcv-proxy's own clients ask a server something — the probe's fetcher (the CA's view of
//! HTTP-01 and pki-validation), the ACME self-check, and the admin client (the CLI and
//! `dcv-proxy check`). Framing, chunking and the connection's end are hyper's; what is left here
//! is the part each caller would otherwise repeat: driving the connection task and closing the
//! socket on every path, and reading a body no further than a limit.
//!
//! The ACME client (instant-acme over hyper-util's pooled client, HTTP/2 too) and the proxy
//! (pingora) keep their own: they reuse connections, which none of these callers does.

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// A response head, with its body still to be read (or not: dropping it closes the connection).
pub(crate) struct Answer {
    pub(crate) head: http::response::Parts,
    body: Incoming,
    /// The connection task; aborted when the answer is dropped, which closes the socket.
    _driver: AbortOnDrop,
}

/// Sends `request` over `stream` and waits for the response head. The caller bounds the time
/// (`tokio::time::timeout` around this and [`Answer::body`]): each caller has its own limit and
/// its own words for running out of it.
pub(crate) async fn send<S, B>(stream: S, request: http::Request<B>) -> Result<Answer, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = AbortOnDrop(tokio::spawn(async move {
        // Its error, if any, is the request's or the body's: reported there.
        let _ = connection.await;
    }));
    let response = sender.send_request(request).await?;
    let (head, body) = response.into_parts();
    Ok(Answer {
        head,
        body,
        _driver: driver,
    })
}

impl Answer {
    /// The body, read up to `limit` bytes and no further, like Go's `io.LimitedReader`: a longer
    /// body is cut, not an error (a caller that refuses long bodies asks for one byte more than
    /// it accepts and looks at the length). Boulder reads an HTTP-01 answer the same way.
    pub(crate) async fn body(mut self, limit: usize) -> Result<Bytes, hyper::Error> {
        let mut body = BytesMut::new();
        while body.len() < limit {
            match self.body.frame().await {
                None => break,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let take = data.len().min(limit - body.len());
                        body.extend_from_slice(&data[..take]);
                    }
                }
                Some(Err(e)) => return Err(e),
            }
        }
        Ok(body.freeze())
    }
}

/// A request body of bytes for [`send`].
pub(crate) fn full(bytes: impl Into<Bytes>) -> Full<Bytes> {
    Full::new(bytes.into())
}

/// Aborts the connection task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that reads one request head and writes `answer`, then keeps the socket open.
    async fn one_shot(answer: &'static [u8]) -> tokio::io::DuplexStream {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match server.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = server.write_all(answer).await;
            // Hold the connection open: a body read must stop at the limit, not wait for EOF.
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        });
        client
    }

    fn get() -> http::Request<http_body_util::Empty<Bytes>> {
        http::Request::get("/x")
            .header(http::header::HOST, "a.test")
            .body(http_body_util::Empty::new())
            .expect("request")
    }

    #[tokio::test]
    async fn a_body_is_read_to_its_end_within_the_limit() {
        let stream = one_shot(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").await;
        let answer = send(stream, get()).await.expect("answer");
        assert_eq!(answer.head.status, 200);
        assert_eq!(&answer.body(100).await.expect("body")[..], b"hello");
    }

    #[tokio::test]
    async fn a_longer_body_is_cut_at_the_limit_without_waiting_for_the_rest() {
        // Content-Length promises more than is ever sent: reading past the limit would hang.
        let stream = one_shot(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789").await;
        let answer = send(stream, get()).await.expect("answer");
        let body = tokio::time::timeout(std::time::Duration::from_secs(5), answer.body(4))
            .await
            .expect("no wait past the limit")
            .expect("body");
        assert_eq!(&body[..], b"0123");
    }

    #[tokio::test]
    async fn a_misframed_head_is_hypers_error() {
        let stream =
            one_shot(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab").await;
        assert!(send(stream, get()).await.is_err());
    }
}
