//! What the node knows: challenge answers and certificates, as lock-free snapshots for the
//! serving path, and their durable copies.
//!
//! Writers (admin API, ACME, fleet) validate, persist, then publish a new snapshot; readers on the
//! request and handshake paths only ever load an `Arc` (arc-swap), so a write never makes a request
//! wait.

pub mod backend;
pub mod certs;
pub mod challenge;
pub mod fsio;
pub mod layout;
pub mod local;

use std::sync::Arc;

pub use backend::{Backend, BackendError};
pub use certs::{CertRefusal, CertStore};
pub use challenge::ChallengeStore;
pub use layout::StateDir;

use challenge::{AcmeAnswer, PkiFile};

/// The stores and the backend that makes their writes durable.
#[derive(Clone)]
pub struct State {
    pub dir: StateDir,
    pub challenges: Arc<ChallengeStore>,
    pub certs: Arc<CertStore>,
    backend: Arc<dyn Backend>,
}

impl State {
    pub fn new(
        dir: StateDir,
        challenges: Arc<ChallengeStore>,
        certs: Arc<CertStore>,
        backend: Arc<dyn Backend>,
    ) -> Self {
        Self {
            dir,
            challenges,
            certs,
            backend,
        }
    }

    /// Persists, then publishes, an ACME answer.
    pub async fn put_token(&self, token: &str, answer: AcmeAnswer) -> Result<(), BackendError> {
        self.backend.put_token(token, &answer).await?;
        self.challenges.put_acme(token, answer);
        Ok(())
    }

    /// Withdraws an ACME answer; returns whether it was published.
    pub async fn remove_token(&self, token: &str) -> Result<bool, BackendError> {
        self.backend.remove_token(token).await?;
        Ok(self.challenges.remove_acme(token))
    }

    /// Persists, then publishes, a pki-validation file.
    pub async fn put_pki(
        &self,
        host: &str,
        file: &str,
        entry: PkiFile,
    ) -> Result<(), BackendError> {
        self.backend.put_pki(host, file, &entry).await?;
        self.challenges.put_pki(host, file, entry);
        Ok(())
    }

    /// Withdraws a pki-validation file; returns whether it was published.
    pub async fn remove_pki(&self, host: &str, file: &str) -> Result<bool, BackendError> {
        self.backend.remove_pki(host, file).await?;
        Ok(self.challenges.remove_pki(host, file))
    }

    /// Drops expired tokens from memory and from the backend.
    pub async fn sweep_expired(&self) {
        for token in self.challenges.sweep_expired(std::time::SystemTime::now()) {
            if let Err(e) = self.backend.remove_token(&token).await {
                tracing::warn!(%token, error = %e, "cannot remove expired token");
            }
        }
    }
}
