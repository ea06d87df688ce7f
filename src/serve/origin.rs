//! How the edge reaches an origin, the same for both serving engines: the pingora peer of an
//! origin (address, TLS and SNI, timeouts) and the pool of idle origin connections the fast
//! path's proxy uses (pingora-core's `TransportConnector`, whose pool watches every idle
//! connection and drops it on any byte or EOF from the origin).

use std::time::Duration;

use pingora_core::connectors::{ConnectorOptions, TransportConnector};
use pingora_core::server::configuration::ServerConf;
use pingora_core::upstreams::peer::HttpPeer;

use crate::config::OriginAddr;

/// How long an origin connection may wait idle in a pool. Below the keep-alive timeouts of
/// common origin servers (nginx 75 s, Apache 5 s is the exception the retry covers), so the
/// edge rarely picks a connection the origin is closing at that moment.
pub(super) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The peer for `origin`. Pools are keyed by everything that tells one origin connection from
/// another (pingora's `HttpPeer` hash: address, scheme, SNI, certificate checks), so a TLS
/// connection made for one site's name is never reused for another's.
pub(super) fn peer(
    origin: &OriginAddr,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> HttpPeer {
    // The SNI string is only needed (and only allocated) for TLS origins.
    let sni = if origin.tls {
        origin.host.clone()
    } else {
        String::new()
    };
    let mut peer = HttpPeer::new(origin.addr, origin.tls, sni);
    peer.options.connection_timeout = Some(connect_timeout);
    peer.options.read_timeout = Some(read_timeout);
    peer.options.write_timeout = Some(read_timeout);
    peer.options.idle_timeout = Some(POOL_IDLE_TIMEOUT);
    peer
}

/// Connections to origins for the fast path's proxy, kept alive in pingora's pool.
pub struct OriginPool {
    transport: TransportConnector,
}

impl OriginPool {
    /// A pool sized and configured like the one pingora's own proxy makes from `conf`.
    pub fn new(conf: &ServerConf) -> Self {
        Self {
            transport: TransportConnector::new(Some(ConnectorOptions::from_server_conf(conf))),
        }
    }

    pub(super) fn transport(&self) -> &TransportConnector {
        &self.transport
    }
}
