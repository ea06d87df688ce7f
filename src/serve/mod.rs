//! Serving: the listeners on ports 80 and 443, the edge proxy behind them and TLS termination.

mod alpn;
mod classify;
mod counters;
mod decide;
pub mod dns;
mod fastpath;
mod fastproxy;
mod forwarding;
mod origin;
mod park;
mod proxy;
mod routing;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::HttpsConfig;
use crate::inflight::InFlight;
use pingora_core::listeners::{ListenerConfig, TcpSocketOptions};
use pingora_core::protocols::l4::stream::L4BufferSettings;
use pingora_core::server::configuration::ServerConf;
use pingora_core::services::listening::Service;

pub use alpn::AlpnChallengeAcceptor;
pub use classify::{classify, normalize_host, request_host, Route};
pub use counters::{HandshakeFailure, HandshakeFailures, Scheme, ServeCounters};
pub use decide::{Decider, Decision, RequestView};
pub use fastpath::{read_head, FastPath, HeadRead, MAX_HEADERS};
pub use fastproxy::{exchange, Relayed};
pub use forwarding::upstream_request;
pub use proxy::EdgeProxy;
pub use routing::Routing;
pub use tls::{CertResolver, HandshakeAddresses};

/// The pingora service carrying every HTTP and HTTPS listener: the fast path in front of the
/// pingora proxy, both deciding with `decider`.
pub fn edge_service(
    server_conf: &Arc<ServerConf>,
    decider: Arc<Decider>,
    http: &[SocketAddr],
    https: &HttpsConfig,
    resolver: Arc<CertResolver>,
    alpn: Arc<alpn::AlpnChallengeAcceptor>,
    inflight: InFlight,
) -> pingora_error::Result<Service<FastPath>> {
    let mut proxy =
        pingora_proxy::HttpProxy::new(EdgeProxy::new(decider.clone()), server_conf.clone());
    proxy.handle_init_modules();
    let mut options = pingora_core::apps::HttpServerOptions::default();
    // An HTTP/2 connection with no request for this long is closed: with no stream accepted,
    // a head sent slowly in CONTINUATION frames is held at most this long in all (HTTP/1
    // heads have the same deadline in the fast path). Set at start: a reload keeps it.
    options.h2_idle_timeout = Some(decider.routing().head_timeout);
    proxy.server_options = Some(options);
    let origins = origin::OriginPool::new(server_conf);
    let mut service = Service::new(
        "dcv-proxy edge".to_owned(),
        FastPath::new(proxy, decider, inflight, origins),
    );
    for addr in http {
        service.add_listener(
            ListenerConfig::tcp(addr.to_string())
                .tcp_socket_options(socket_options(addr))
                .l4_buffer(l4_buffers()),
        );
    }
    let ticketer = tls::ticketer(https.tls13_tickets)?;
    for addr in &https.listen {
        let settings = tls::tls_settings(resolver.clone(), https.tls13_tickets, ticketer.clone())?;
        service.add_listener(
            ListenerConfig::tcp(addr.to_string())
                .tcp_socket_options(socket_options(addr))
                .l4_buffer(l4_buffers())
                .tls(settings),
        );
    }
    // Only TLS listeners run pre-TLS hooks: TLS-ALPN-01 validations are answered there.
    service.endpoints().set_pre_tls_callback(alpn);
    Ok(service)
}

/// No buffers under the HTTP readers and writers (the fast path, pingora's session and rustls
/// each read into a buffer of their own, and the fast path writes whole responses): pingora's
/// default read buffer is 64 KiB per connection, allocated and zeroed at accept — most of the
/// memory of an idle keep-alive connection, and a memset per handshake.
fn l4_buffers() -> L4BufferSettings {
    L4BufferSettings::unbuffered()
}

/// IPv6 listeners are bound IPv6-only, so `0.0.0.0:80` and `[::]:80` can both be configured.
fn socket_options(addr: &SocketAddr) -> TcpSocketOptions {
    let mut options = TcpSocketOptions::default();
    if addr.is_ipv6() {
        options.ipv6_only = Some(true);
    }
    options
}
