//! The storage seam: where challenge answers are made durable (and, in a fleet, shared) before
//! they are published to the in-memory stores.

use std::path::Path;

use async_trait::async_trait;

use super::challenge::{AcmeAnswer, PkiFile};

/// Why a write to the backend failed. The in-memory stores are not changed when it does.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A file operation in the state directory failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("cannot encode record: {0}")]
    Encode(String),
    /// The shared store (fleet) refused or could not be reached.
    #[error("fleet store: {0}")]
    Remote(String),
}

impl BackendError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        BackendError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Durable storage of challenge answers.
#[async_trait]
pub trait Backend: Send + Sync {
    async fn put_token(&self, token: &str, answer: &AcmeAnswer) -> Result<(), BackendError>;
    async fn remove_token(&self, token: &str) -> Result<(), BackendError>;
    async fn put_pki(&self, host: &str, file: &str, entry: &PkiFile) -> Result<(), BackendError>;
    async fn remove_pki(&self, host: &str, file: &str) -> Result<(), BackendError>;
}
