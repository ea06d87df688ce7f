//! A connection with bytes already read from it, replayed before anything else: how a request
//! the fast path started to read reaches pingora intact, with every digest pingora asks of a
//! stream answered by the stream underneath.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::SslDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, SocketDigest, TimingDigest,
};
use pingora_core::protocols::{Peek, Shutdown, Ssl, Stream, UniqueID, UniqueIDType, ALPN};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::HEAD_BUF;

/// A connection with bytes already read from it, replayed before anything else: how a request
/// the fast path started to read reaches pingora intact.
pub(super) struct Replay {
    prefix: BytesMut,
    inner: Stream,
    /// A request was served on this connection already: it is a kept-alive one.
    reused: bool,
}

impl Replay {
    /// The underlying stream, any bytes left from an earlier request, and whether a request
    /// was served on it already.
    pub(super) fn take(stream: Stream) -> (Stream, BytesMut, bool) {
        if stream.as_any().is::<Replay>() {
            if let Ok(replay) = stream.into_any().downcast::<Replay>() {
                let Replay {
                    prefix,
                    inner,
                    reused,
                } = *replay;
                return (inner, prefix, reused);
            }
            // `is` said it is a Replay; the downcast cannot fail. Without a stream there is
            // nothing to serve.
            unreachable!("a Replay downcasts to Replay")
        }
        (stream, BytesMut::with_capacity(HEAD_BUF), false)
    }

    /// `inner` behind the `prefix` still to be read, remembering whether it was `reused`.
    pub(super) fn wrap(inner: Stream, prefix: BytesMut, reused: bool) -> Stream {
        if prefix.is_empty() && !reused {
            inner
        } else {
            Box::new(Replay {
                prefix,
                inner,
                reused,
            })
        }
    }
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Replay {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(&mut *self.inner).await
    }
}

impl UniqueID for Replay {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Replay {
    fn get_ssl(&self) -> Option<&pingora_core::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Replay {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Replay {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Replay {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Replay {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        if self.prefix.len() >= buf.len() {
            buf.copy_from_slice(&self.prefix[..buf.len()]);
            return Ok(true);
        }
        // A partial prefix cannot be peeked together with the socket: say peeking is not
        // supported, which callers handle (pingora then skips its h2c preface check).
        if !self.prefix.is_empty() {
            return Ok(false);
        }
        self.inner.try_peek(buf).await
    }
}

impl fmt::Debug for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replay")
            .field("prefix", &self.prefix.len())
            .finish_non_exhaustive()
    }
}
