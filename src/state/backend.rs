//! The storage seam: where answers, certificates and the ACME account are made durable (and, in
//! a fleet, shared) before they are published to the in-memory stores.
//!
//! Two backends: [`super::local::LocalBackend`] (files in the state directory, one node, the
//! default) and [`super::fleet::FleetBackend`] (etcd, every node answers what any node was
//! given). Defaults here are the single-node behaviour, so the local backend only implements
//! what it stores.

use std::path::Path;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::certs::{CertId, ValidCert};
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

/// A lock held in the shared store (one ACME order at a time across the fleet). Released with
/// [`HeldLock::release`]; a node that dies holding it loses it when its lease expires.
pub struct HeldLock {
    release: Option<Box<dyn LockRelease>>,
}

/// How a backend lets go of one of its locks.
#[async_trait]
pub trait LockRelease: Send {
    async fn release(self: Box<Self>);
}

impl HeldLock {
    pub fn new(release: Box<dyn LockRelease>) -> Self {
        Self {
            release: Some(release),
        }
    }

    /// Lets the lock go now, so the next node waiting gets it without waiting for the lease.
    pub async fn release(mut self) {
        if let Some(r) = self.release.take() {
            r.release().await;
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        // Dropped without `release` (a cancelled task): let go in the background if a runtime
        // is there; otherwise the lease expires on its own.
        if let Some(r) = self.release.take() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(r.release());
            }
        }
    }
}

/// The answer of [`Backend::take_order_slot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderSlot {
    /// Counted: the order may be placed.
    Taken,
    /// The budget is spent: `used` orders in the window, the next slot frees at `next_free`.
    Full { used: usize, next_free: SystemTime },
}

/// Durable (and possibly shared) storage behind [`super::State`].
#[async_trait]
pub trait Backend: Send + Sync {
    async fn put_token(&self, token: &str, answer: &AcmeAnswer) -> Result<(), BackendError>;
    async fn remove_token(&self, token: &str) -> Result<(), BackendError>;
    async fn put_pki(&self, host: &str, file: &str, entry: &PkiFile) -> Result<(), BackendError>;
    async fn remove_pki(&self, host: &str, file: &str) -> Result<(), BackendError>;

    /// Shares a validated certificate. The local copy is written by the certificate store.
    async fn put_cert(&self, _id: &CertId, _cert: &ValidCert) -> Result<(), BackendError> {
        Ok(())
    }
    /// Withdraws a certificate from the other nodes.
    async fn remove_cert(&self, _id: &CertId) -> Result<(), BackendError> {
        Ok(())
    }
    /// Shares a TLS-ALPN-01 challenge (its key authorization; each node makes its own
    /// certificate from it, RFC 8737 §3). A single node keeps it in memory only.
    async fn put_alpn(
        &self,
        _name: &str,
        _key_authorization: &str,
        _expires: SystemTime,
    ) -> Result<(), BackendError> {
        Ok(())
    }
    async fn remove_alpn(&self, _name: &str) -> Result<(), BackendError> {
        Ok(())
    }
    /// Shares a DNS-01 TXT value (RFC 8555 §8.4), so that every node's DNS listener answers
    /// it. A single node keeps it in memory only, like a TLS-ALPN-01 challenge.
    async fn put_dns01(
        &self,
        _name: &str,
        _token: &str,
        _value: &str,
        _expires: SystemTime,
    ) -> Result<(), BackendError> {
        Ok(())
    }
    async fn remove_dns01(&self, _name: &str, _token: &str) -> Result<(), BackendError> {
        Ok(())
    }

    /// A secret record (the ACME account) by name, if stored.
    async fn load_secret(&self, name: &str) -> Result<Option<Vec<u8>>, BackendError>;
    /// Stores a secret record (mode 0600 on disk, sealed in a shared store).
    async fn store_secret(&self, name: &str, bytes: &[u8]) -> Result<(), BackendError>;
    /// Moves a secret record aside, so that the next load finds none.
    async fn forget_secret(&self, name: &str) -> Result<(), BackendError>;

    /// Takes the lock `name`, waiting for it; `None` when there is nobody to exclude.
    async fn lock(&self, _name: &str) -> Result<Option<HeldLock>, BackendError> {
        Ok(None)
    }
    /// Takes one of the account's `max` new orders for `window`, counted across every node that
    /// shares this store: a CA counts new orders per account (Let's Encrypt: 300 per 3 hours)
    /// and a fleet shares its accounts. `None`: nothing is shared, the node counts its own.
    async fn take_order_slot(
        &self,
        _max: u32,
        _window: Duration,
    ) -> Result<Option<OrderSlot>, BackendError> {
        Ok(None)
    }
    /// Brings certificate `id` up to date from the shared store (after taking its lock, so a
    /// renewal another node just finished is seen before deciding to order).
    async fn refresh_cert(&self, _id: &CertId) -> Result<(), BackendError> {
        Ok(())
    }
}
