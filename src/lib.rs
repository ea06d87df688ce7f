//! dcv-proxy: an edge sidecar that answers domain-control validation itself, proxies everything
//! else to the origin, and keeps its certificates issued.
//!
//! Data flows one way: [`config`] → [`state`] → serving and lifecycle → observability; `app` is
//! the composition root that wires them.

pub mod config;
pub mod state;
#[doc(hidden)]
pub mod testkit;
