//! Why the probe could not ask a node (its admin API, or the state behind it): the error of
//! [`super::node::Node`] and of [`super::fleet::Members`], in a leaf both use.

use std::net::SocketAddr;

use crate::state::BackendError;

/// Why the node could not be asked: the probe itself cannot run (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The admin API could not be reached or did not answer.
    #[error("admin API at {addr}: {reason} (is dcv-proxy running with this configuration?)")]
    Unreachable { addr: SocketAddr, reason: String },
    /// The admin API answered with an error.
    #[error("admin API {method} {path}: {status}: {body}")]
    Refused {
        method: &'static str,
        path: String,
        status: u16,
        body: String,
    },
    /// The admin API answered something that is not what it documents.
    #[error("admin API {path}: unexpected answer: {reason}")]
    Unexpected { path: String, reason: String },
    /// The state backend refused a write.
    #[error("challenge store: {0}")]
    Store(#[from] BackendError),
}
