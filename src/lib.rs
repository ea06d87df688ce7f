//! dcv-proxy: an edge sidecar that answers domain-control validation itself, proxies everything
//! else to the origin, and keeps its certificates issued.
//!
//! Data flows one way: [`config`] → [`state`] → [`serve`] and [`probe`] (and the lifecycle modules) →
//! [`metrics`] and [`admin`]; [`app`] is the composition root that wires them and [`cli`] the
//! command line on top. [`catalogue`] (the causes of validation failures and how a CA's words map
//! to them) is a leaf every one of them may use, and so is [`inflight`] (the work in flight that serving
//! and the admin API count and a graceful stop waits for).

pub mod acme;
pub mod admin;
pub mod app;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod inflight;
pub mod metrics;
pub mod probe;
pub mod serve;
pub mod state;
#[cfg(any(test, feature = "testkit"))]
#[doc(hidden)]
pub mod testkit;
