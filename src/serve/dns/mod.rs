//! The authoritative DNS listener of the validation zones (`[dns]`): delegated DCV. A customer
//! publishes `_acme-challenge.<name> CNAME <name>.<zone>.` once; from then on every node of the
//! fleet answers the DNS-01 TXT records of `<name>` (RFC 8555 §8.4) in `<zone>` from the shared
//! challenge store, so a CA that asks any of the zone's name servers gets the value the
//! ordering node published a moment ago (no provider API, no D11 inside the fleet).
//!
//! It is no resolver and no general DNS server: SOA, NS, the in-zone name servers' addresses
//! and the challenge TXT records, nothing else ([`responder`] has the rules). The loops here
//! only move bytes: UDP datagrams as they come, TCP framed by hickory's two-byte length prefix
//! (RFC 1035 §4.2.2, RFC 7766 §8), with an idle timeout, a lifetime and a cap on open
//! connections (RFC 7766 §6.2.3), so that no client can hold what the edge's HTTP listeners
//! need (file descriptors, tasks).
//!
//! The sockets are bound with `SO_REUSEPORT`: a binary upgrade starts a process that binds
//! port 53 while the old one still answers there (pingora hands over only its own listeners);
//! both answer from the same state until the old one stops.

mod counters;
mod ratelimit;
mod responder;
mod zones;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hickory_net::runtime::iocompat::AsyncIoTokioAsStd;
use hickory_net::xfer::DnsStreamHandle;
use hickory_server::proto::op::SerialMessage;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use counters::DnsCounters;
pub use responder::{Responder, Transport, MAX_QUERY};
pub use zones::{ZoneError, Zones};

/// How long a TCP connection may stay without a query (RFC 7766 §6.2.3 leaves it to the
/// server; resolvers send their next query at once or not at all).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// How long one TCP connection may live, however busy: a client trickling queries cannot keep
/// a slot for ever.
const TCP_LIFETIME: Duration = Duration::from_secs(120);

/// A socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({proto}): {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub proto: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// The listener's sockets, bound before the server runs so that a port that cannot be had
/// stops the start with the reason.
pub struct DnsSockets {
    udp: Vec<std::net::UdpSocket>,
    tcp: Vec<std::net::TcpListener>,
}

impl DnsSockets {
    /// Binds UDP and TCP on every address of `listen` (IPv6 ones v6-only, as the HTTP
    /// listeners are, so `0.0.0.0:53` and `[::]:53` can both be given).
    pub fn bind(listen: &[SocketAddr]) -> Result<Self, BindError> {
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for &addr in listen {
            udp.push(socket(addr, Type::DGRAM, Protocol::UDP)?.into());
            let listener = socket(addr, Type::STREAM, Protocol::TCP)?;
            listener.listen(128).map_err(|source| BindError {
                addr,
                proto: "TCP",
                source,
            })?;
            tcp.push(listener.into());
        }
        Ok(Self { udp, tcp })
    }
}

fn socket(addr: SocketAddr, kind: Type, proto: Protocol) -> Result<Socket, BindError> {
    let name = if kind == Type::DGRAM { "UDP" } else { "TCP" };
    let error = |source| BindError {
        addr,
        proto: name,
        source,
    };
    let socket = Socket::new(Domain::for_address(addr), kind, Some(proto)).map_err(error)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(error)?;
    }
    socket.set_reuse_port(true).map_err(error)?;
    if kind == Type::STREAM {
        socket.set_reuse_address(true).map_err(error)?;
    }
    socket.set_nonblocking(true).map_err(error)?;
    socket.bind(&addr.into()).map_err(error)?;
    Ok(socket)
}

/// The running listener: every socket served by one task, until shutdown.
pub struct DnsListener {
    sockets: Mutex<Option<DnsSockets>>,
    responder: Arc<Responder>,
    tcp_connections: usize,
}

impl DnsListener {
    pub fn new(sockets: DnsSockets, responder: Arc<Responder>, tcp_connections: usize) -> Self {
        Self {
            sockets: Mutex::new(Some(sockets)),
            responder,
            tcp_connections,
        }
    }

    /// Serves until `shutdown` turns true (or its sender is gone). Runs once: the sockets are
    /// taken by the first call.
    pub async fn run(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let sockets = self
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(sockets) = sockets else { return };
        let mut tasks = JoinSet::new();
        let slots = Arc::new(Semaphore::new(self.tcp_connections));
        for socket in sockets.udp {
            match tokio::net::UdpSocket::from_std(socket) {
                Ok(socket) => {
                    tasks.spawn(serve_udp(socket, self.responder.clone()));
                }
                Err(e) => tracing::error!(error = %e, "DNS listener: UDP socket not served"),
            }
        }
        for listener in sockets.tcp {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => {
                    tasks.spawn(serve_tcp(listener, self.responder.clone(), slots.clone()));
                }
                Err(e) => tracing::error!(error = %e, "DNS listener: TCP socket not served"),
            }
        }
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        // Dropping the tasks closes the sockets: the kernel sends what arrives to the
        // successor's sockets (SO_REUSEPORT) from now on.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// One UDP socket: a datagram is a message (RFC 1035 §4.2.1).
async fn serve_udp(socket: tokio::net::UdpSocket, responder: Arc<Responder>) {
    // One byte more than the largest query: a datagram that fills it was cut by the kernel and
    // is dropped as oversize.
    let mut buf = vec![0u8; MAX_QUERY + 1];
    loop {
        let (len, source) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            // An ICMP error for an earlier answer, or a transient shortage: the socket is fine.
            Err(e) => {
                tracing::debug!(error = %e, "DNS listener: UDP receive failed");
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        // Port 0 cannot be answered (hickory's server refuses it as well).
        if source.port() == 0 {
            continue;
        }
        let Some(message) = buf.get(..len) else {
            continue;
        };
        if let Some(reply) = responder.respond(message, source, Transport::Udp) {
            if let Err(e) = socket.send_to(&reply, source).await {
                tracing::debug!(error = %e, %source, "DNS listener: UDP answer not sent");
            }
        }
    }
}

/// One TCP listener: each connection in a task of its own, at most `slots` at once.
async fn serve_tcp(
    listener: tokio::net::TcpListener,
    responder: Arc<Responder>,
    slots: Arc<Semaphore>,
) {
    loop {
        let (stream, source) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: wait instead of spinning.
                tracing::warn!(error = %e, "DNS listener: TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            responder.counters().tcp_refused();
            drop(stream);
            continue;
        };
        let responder = responder.clone();
        tokio::spawn(async move {
            let open = responder.counters().tcp_open().clone();
            open.inc();
            let _ =
                tokio::time::timeout(TCP_LIFETIME, serve_connection(stream, source, &responder))
                    .await;
            open.dec();
            drop(slot);
        });
    }
}

/// Queries on one connection, answered in order (hickory frames both ways).
async fn serve_connection(
    stream: tokio::net::TcpStream,
    source: SocketAddr,
    responder: &Responder,
) {
    let (framed, mut sender) =
        hickory_net::tcp::TcpStream::from_stream(AsyncIoTokioAsStd(stream), source);
    let mut messages = hickory_server::server::TimeoutStream::new(framed, TCP_IDLE);
    while let Some(message) = messages.next().await {
        let Ok(message) = message else { return };
        let (bytes, _) = message.into_parts();
        if let Some(reply) = responder.respond(&bytes, source, Transport::Tcp) {
            // Written by the stream before it reads the next query.
            if sender.send(SerialMessage::new(reply, source)).is_err() {
                return;
            }
        }
    }
}
