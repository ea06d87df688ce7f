//! What the node knows: challenge answers and certificates, as lock-free snapshots for the
//! serving path, and their durable (and, in a fleet, shared) copies.
//!
//! Writers (admin API, ACME, fleet) validate, persist, then publish a new snapshot; readers on the
//! request and handshake paths only ever load an `Arc` (arc-swap), so a write never makes a request
//! wait. Writes are serialised with the fleet follower's applies (one async mutex), so a change
//! that another node made a moment later is never overwritten by a slower local publish.

mod alpn;
mod backend;
pub mod certs;
mod challenge;
pub mod fleet;
mod fsio;
mod layout;
mod local;
mod names;
mod token_record;
mod webroot;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use alpn::challenge_certificate;
pub use backend::{Backend, BackendError, HeldLock, LockRelease, OrderSlot};
pub use certs::{CertRefusal, CertStore};
pub use challenge::{AcmeAnswer, AnswerSource, ChallengeStore, PkiFile, Reply, TxtChallenge};
pub use fleet::FleetHandle;
pub use fsio::{remove_durable, write_atomic};
pub use layout::StateDir;
pub(crate) use local::unix;
pub use local::LocalBackend;
pub use names::{apex_of, is_file_name, is_token, MAX_TOKEN_LEN};
pub use webroot::WebrootSync;

use certs::{CertEntry, CertId, CertSource, InstallError};

/// The stores and the backend that makes their writes durable.
#[derive(Clone)]
pub struct State {
    pub dir: StateDir,
    pub challenges: Arc<ChallengeStore>,
    pub certs: Arc<CertStore>,
    backend: Arc<dyn Backend>,
    writes: Arc<tokio::sync::Mutex<()>>,
    fleet: Option<FleetHandle>,
}

impl State {
    /// A node on its own (no fleet).
    pub fn new(
        dir: StateDir,
        challenges: Arc<ChallengeStore>,
        certs: Arc<CertStore>,
        backend: Arc<dyn Backend>,
    ) -> Self {
        Self::with_fleet(
            dir,
            challenges,
            certs,
            backend,
            Arc::new(tokio::sync::Mutex::new(())),
            None,
        )
    }

    /// A node whose `backend` shares state with a fleet; `writes` is the mutex the fleet
    /// follower also takes to apply what other nodes wrote.
    pub fn with_fleet(
        dir: StateDir,
        challenges: Arc<ChallengeStore>,
        certs: Arc<CertStore>,
        backend: Arc<dyn Backend>,
        writes: Arc<tokio::sync::Mutex<()>>,
        fleet: Option<FleetHandle>,
    ) -> Self {
        Self {
            dir,
            challenges,
            certs,
            backend,
            writes,
            fleet,
        }
    }

    /// The fleet this node belongs to (members, connection state), if any.
    pub fn fleet(&self) -> Option<&FleetHandle> {
        self.fleet.as_ref()
    }

    /// Persists, then publishes, an ACME answer.
    pub async fn put_token(&self, token: &str, answer: AcmeAnswer) -> Result<(), BackendError> {
        let _w = self.writes.lock().await;
        self.backend.put_token(token, &answer).await?;
        self.challenges.put_acme(token, answer);
        Ok(())
    }

    /// Withdraws an ACME answer; returns whether it was published.
    pub async fn remove_token(&self, token: &str) -> Result<bool, BackendError> {
        let _w = self.writes.lock().await;
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
        let _w = self.writes.lock().await;
        self.backend.put_pki(host, file, &entry).await?;
        self.challenges.put_pki(host, file, entry);
        Ok(())
    }

    /// Withdraws a pki-validation file; returns whether it was published.
    pub async fn remove_pki(&self, host: &str, file: &str) -> Result<bool, BackendError> {
        let _w = self.writes.lock().await;
        self.backend.remove_pki(host, file).await?;
        Ok(self.challenges.remove_pki(host, file))
    }

    /// Checks a certificate, shares it, writes it and publishes it. On any error nothing
    /// changes on this node.
    pub async fn install_cert(
        &self,
        id: &CertId,
        chain_pem: &[u8],
        key_pem: &[u8],
        required_names: &[String],
        source: CertSource,
    ) -> Result<Arc<CertEntry>, InstallError> {
        let cert = self.certs.check(chain_pem, key_pem, required_names)?;
        let _w = self.writes.lock().await;
        self.backend
            .put_cert(id, &cert)
            .await
            .map_err(|e| InstallError::Shared(e.to_string()))?;
        self.certs.install(id, cert, source)
    }

    /// Removes certificate `id` here and from the fleet; returns whether it existed.
    pub async fn remove_cert(&self, id: &CertId) -> Result<bool, InstallError> {
        if id.as_str() == certs::DEFAULT_ID {
            return Err(InstallError::RemoveDefault);
        }
        let _w = self.writes.lock().await;
        self.backend
            .remove_cert(id)
            .await
            .map_err(|e| InstallError::Shared(e.to_string()))?;
        self.certs.remove(id)
    }

    /// Makes and publishes the TLS-ALPN-01 certificate for `name` (shared as its key
    /// authorization for `lifetime`, so every node of a fleet answers the CA).
    pub async fn put_alpn(
        &self,
        name: &str,
        key_authorization: &str,
        lifetime: Duration,
    ) -> Result<(), BackendError> {
        let key =
            alpn::challenge_certificate(name, key_authorization).map_err(BackendError::Encode)?;
        let _w = self.writes.lock().await;
        self.backend
            .put_alpn(name, key_authorization, SystemTime::now() + lifetime)
            .await?;
        self.challenges.put_alpn(name, key);
        Ok(())
    }

    /// Withdraws the TLS-ALPN-01 certificate for `name`.
    pub async fn remove_alpn(&self, name: &str) -> Result<(), BackendError> {
        let _w = self.writes.lock().await;
        self.challenges.remove_alpn(name);
        self.backend.remove_alpn(name).await
    }

    /// Publishes the DNS-01 TXT value of `token` for `name` (shared for `lifetime`, so the DNS
    /// listener of every node of a fleet answers it in its validation zones at once).
    pub async fn put_dns01(
        &self,
        name: &str,
        token: &str,
        value: &str,
        lifetime: Duration,
    ) -> Result<(), BackendError> {
        let expires = SystemTime::now() + lifetime;
        let _w = self.writes.lock().await;
        self.backend.put_dns01(name, token, value, expires).await?;
        self.challenges.put_dns01(
            name,
            token,
            challenge::TxtChallenge {
                value: value.into(),
                expires,
            },
        );
        Ok(())
    }

    /// Withdraws the DNS-01 TXT value of `token` for `name`.
    pub async fn remove_dns01(&self, name: &str, token: &str) -> Result<(), BackendError> {
        let _w = self.writes.lock().await;
        self.challenges.remove_dns01(name, token);
        self.backend.remove_dns01(name, token).await
    }

    /// A secret record (the ACME account) by name.
    pub async fn load_secret(&self, name: &str) -> Result<Option<Vec<u8>>, BackendError> {
        self.backend.load_secret(name).await
    }

    /// Stores a secret record.
    pub async fn store_secret(&self, name: &str, bytes: &[u8]) -> Result<(), BackendError> {
        self.backend.store_secret(name, bytes).await
    }

    /// Moves a secret record aside.
    pub async fn forget_secret(&self, name: &str) -> Result<(), BackendError> {
        self.backend.forget_secret(name).await
    }

    /// Takes the fleet-wide lock `name` (waiting for it); `None` for a node on its own.
    pub async fn lock(&self, name: &str) -> Result<Option<HeldLock>, BackendError> {
        self.backend.lock(name).await
    }

    /// Takes one of the account's `max` new orders per `window` across the fleet (`None` for a
    /// node on its own, which counts its own).
    pub async fn take_order_slot(
        &self,
        max: u32,
        window: Duration,
    ) -> Result<Option<OrderSlot>, BackendError> {
        self.backend.take_order_slot(max, window).await
    }

    /// Brings certificate `id` up to date from the fleet (no-op for a node on its own).
    pub async fn refresh_cert(&self, id: &CertId) -> Result<(), BackendError> {
        self.backend.refresh_cert(id).await
    }

    /// Drops expired tokens from memory and from the backend.
    pub async fn sweep_expired(&self) {
        for token in self.challenges.sweep_expired(SystemTime::now()) {
            let _w = self.writes.lock().await;
            if let Err(e) = self.backend.remove_token(&token).await {
                tracing::warn!(%token, error = %e, "cannot remove expired token");
            }
        }
    }
}
