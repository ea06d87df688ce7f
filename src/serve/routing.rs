//! The part of the configuration the request path reads, behind an arc-swap so a reload
//! (SIGHUP) replaces it between two requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pingora_core::upstreams::peer::HttpPeer;

use super::origin;
use crate::config::{Config, OriginAddr, Sites, UnknownToken};

/// Routing decisions for one configuration generation.
#[derive(Debug, Clone)]
pub struct Routing {
    pub sites: Sites,
    pub unknown_token: UnknownToken,
    pub redirect_to_https: bool,
    pub redirect_status: u16,
    /// `:port` suffix for redirect targets, empty for 443.
    redirect_port: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// `proxy.fast_path`: off, every request goes to pingora's engine.
    pub fast_path: bool,
    /// `server.head_timeout`: a request head's whole time from its first byte.
    pub head_timeout: Duration,
    /// The pingora peer of every origin of `sites`, made once per generation rather than per
    /// request (a peer is a few hundred bytes of options the fast path's proxy only reads).
    /// Keyed by the origin's address in memory: `sites` holds each origin, so a key stays
    /// unique while this generation lives.
    peers: Arc<HashMap<usize, Arc<HttpPeer>>>,
}

impl Routing {
    pub fn from_config(config: &Config) -> Self {
        let connect_timeout = config.server.origin_connect_timeout;
        let read_timeout = config.server.origin_read_timeout;
        let peers = config
            .sites
            .sites
            .iter()
            .map(|site| &site.origin)
            .chain(config.sites.default_origin.as_ref())
            .map(|o| {
                let peer = origin::peer(o, connect_timeout, read_timeout);
                (Arc::as_ptr(o) as usize, Arc::new(peer))
            })
            .collect();
        Self {
            sites: config.sites.clone(),
            unknown_token: config.challenge.unknown_token,
            redirect_to_https: config.http.redirect_to_https,
            redirect_status: config.http.redirect_status,
            redirect_port: config
                .http
                .redirect_port
                .map(|p| format!(":{p}"))
                .unwrap_or_default(),
            connect_timeout: config.server.origin_connect_timeout,
            read_timeout: config.server.origin_read_timeout,
            fast_path: config.server.fast_path,
            head_timeout: config.server.head_timeout,
            peers: Arc::new(peers),
        }
    }

    /// The peer for `origin`, one of this generation's.
    pub fn peer(&self, origin: &Arc<OriginAddr>) -> Arc<HttpPeer> {
        match self.peers.get(&(Arc::as_ptr(origin) as usize)) {
            Some(peer) => peer.clone(),
            // Not one of `sites`' origins (never seen): made for this request.
            None => Arc::new(origin::peer(
                origin,
                self.connect_timeout,
                self.read_timeout,
            )),
        }
    }

    /// `https://<host>[:port]<path>[?query]` for a request on `host` (already normalised, so it
    /// cannot inject anything into the header) with request target `target`.
    pub fn redirect_location(&self, host: &str, target: &str) -> String {
        // Origin-form targets only: `OPTIONS *` and other forms redirect to the site's root.
        let target = if target.starts_with('/') { target } else { "/" };
        let host_part = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        format!("https://{host_part}{}{target}", self.redirect_port)
    }
}
