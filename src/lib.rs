//! dcv-proxy: an edge sidecar that answers domain-control validation itself, proxies everything
//! else to the origin, and keeps its certificates issued.
//!
//! Data flows one way: [`config`] → [`state`] → [`serve`] and [`probe`] (and the lifecycle modules) →
//! [`metrics`] and [`admin`]; [`app`] is the composition root that wires them and [`cli`] the
//! command line on top. [`catalogue`] (the causes of validation failures and how a CA's words map
//! to them) is a leaf every one of them may use, and so is [`inflight`] (the work in flight that serving
//! and the admin API count and a graceful stop waits for), and `http1` (one HTTP/1.1 exchange, for
//! the probe, the ACME self-check and the admin client). [`api`] (the admin API's documents and
//! its client) sits on [`state`], below the probe and the admin API that both use it.

pub mod acme;
pub mod admin;
pub mod api;
pub mod app;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod crypto;
mod http1;
pub mod inflight;
pub mod metrics;
pub mod probe;
pub mod serve;
pub mod state;
#[cfg(any(test, feature = "testkit"))]
#[doc(hidden)]
pub mod testkit;
