//! Why the probe could not ask a node (its admin API, or the state behind it): the error of
//! [`super::node::Node`] and of [`super::fleet::Members`], in a leaf both use.

use crate::api::ClientError;
use crate::state::BackendError;

/// Why the node could not be asked: the probe itself cannot run (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The admin API could not be reached, refused, or answered something it does not document.
    #[error(transparent)]
    Admin(#[from] ClientError),
    /// The state backend refused a write.
    #[error("challenge store: {0}")]
    Store(#[from] BackendError),
}
