//! Fleet mode: state shared through etcd, so that every node answers what any node was given
//! (a CA validating from several places lands on several nodes, catalogue H6).
//!
//! - [`FleetBackend`] is the [`Backend`] of a fleet node: a write goes to etcd first (so it
//!   fails loudly when etcd cannot take it), then to the local state directory, then is
//!   published. Private keys are sealed with the fleet key ([`seal`]).
//! - [`FleetFollower`] keeps the node in step: it loads everything under the prefix, then
//!   follows one watch from that revision; it registers the node under a kept-alive lease, and
//!   reconnects with backoff, resuming from the last revision (or reloading after compaction).
//!   While etcd is away the node serves what it has (the local snapshot) and says so in
//!   `dcv_fleet_connected` and `/v1/status`.
//! - [`FleetHandle`] is the read side for status, metrics and the self-probe: connection state,
//!   revision and the live members with their public addresses.
//! - Locks ([`lock`]) keep ACME orders to one node at a time; they hang on a lease, so a node
//!   that dies holding one loses it after `lease_ttl`.
//! - The account's budget of new orders ([`budget`]) is counted once for the whole fleet.

mod apply;
mod budget;
mod counters;
mod follow;
mod layout;
mod lock;
mod records;
mod seal;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use etcd_client::{Client, ConnectOptions, PutOptions};
use prometheus::core::Collector;

pub use follow::FleetFollower;
pub use records::Member;
pub use seal::{FleetKey, SealError};

use self::apply::{pki_record, Applier, Kv};
use self::counters::FleetCounters;
use self::layout::Layout;
use self::records::{AlpnRecord, CertRecord, Dns01Record, SecretRecord};
use super::backend::{Backend, BackendError, HeldLock, OrderSlot};
use super::certs::{CertId, CertStore, ValidCert};
use super::challenge::{AcmeAnswer, ChallengeStore, PkiFile};
use super::local::{unix, LocalBackend};
use crate::config::FleetConfig;

/// Why the fleet could not be set up or reached.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The fleet key is missing or unusable; a fleet node does not start without it.
    #[error("{0}")]
    Key(#[from] SealError),
    /// A TLS file for etcd cannot be read.
    #[error("fleet TLS file {path}: {source}")]
    TlsFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// etcd refused or could not be reached.
    #[error("etcd: {0}")]
    Etcd(String),
    /// etcd did not answer in time.
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
}

/// What this node publishes about itself.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub http_port: Option<u16>,
    pub https_port: Option<u16>,
    /// Where its DNS listener answers the validation zones (published as [`Member::dns`]).
    pub dns: Vec<std::net::SocketAddr>,
}

/// Everything the backend, the follower and the handle share.
pub(crate) struct Shared {
    pub(crate) config: FleetConfig,
    pub(crate) layout: Layout,
    pub(crate) applier: Applier,
    pub(crate) writes: Arc<tokio::sync::Mutex<()>>,
    pub(crate) counters: FleetCounters,
    pub(crate) me: Member,
    connect: ConnectOptions,
    client: Mutex<Option<Client>>,
    connected: AtomicBool,
    revision: AtomicI64,
    last_error: Mutex<Option<(SystemTime, String)>>,
}

/// Sets up fleet mode: reads the fleet key (refusing to go on without it) and returns the
/// backend for [`super::State`], the follower to run in the background and the read handle.
pub fn start(
    config: &FleetConfig,
    node: NodeInfo,
    challenges: Arc<ChallengeStore>,
    certs: Arc<CertStore>,
    local: LocalBackend,
    writes: Arc<tokio::sync::Mutex<()>>,
) -> Result<(FleetBackend, FleetFollower, FleetHandle), FleetError> {
    let key = FleetKey::load(&config.key_file)?;
    let connect = connect_options(config)?;
    let layout = Layout::new(&config.prefix);
    let counters = FleetCounters::new();
    let me = Member {
        node_id: config.node_id.clone(),
        public_addresses: config.public_addresses.clone(),
        http_port: node.http_port,
        https_port: node.https_port,
        dns: node.dns,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_unix: unix(SystemTime::now()),
    };
    let shared = Arc::new(Shared {
        config: config.clone(),
        layout: layout.clone(),
        applier: Applier::new(
            challenges,
            certs,
            local.clone(),
            key,
            layout,
            counters.clone(),
        ),
        writes,
        counters,
        me,
        connect,
        client: Mutex::new(None),
        connected: AtomicBool::new(false),
        revision: AtomicI64::new(0),
        last_error: Mutex::new(None),
    });
    Ok((
        FleetBackend {
            shared: shared.clone(),
            local,
        },
        FleetFollower::new(shared.clone()),
        FleetHandle { shared },
    ))
}

fn connect_options(config: &FleetConfig) -> Result<ConnectOptions, FleetError> {
    let ttl = config.lease_ttl;
    // HTTP/2 pings notice a vanished etcd well within a lease TTL.
    let mut options = ConnectOptions::new()
        .with_connect_timeout(config.request_timeout)
        .with_keep_alive(ttl / 4, ttl / 4)
        .with_keep_alive_while_idle(true);
    if let Some((user, password)) = &config.user {
        options = options.with_user(user.clone(), password.clone());
    }
    if let Some(tls) = &config.tls {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|source| FleetError::TlsFile {
                path: path.display().to_string(),
                source,
            })
        };
        let mut t = etcd_client::TlsOptions::new();
        if let Some(ca) = &tls.ca_file {
            t = t.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
        }
        if let Some((cert, key)) = &tls.client {
            t = t.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(t);
    }
    Ok(options)
}

impl Shared {
    /// The follower's client, waiting up to `request_timeout` for the first connection (a
    /// node that just started, or etcd coming back), so that the renewer's first account load
    /// and an early admin write do not fail for a connection that is a moment away.
    pub(crate) async fn client(&self) -> Result<Client, BackendError> {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        loop {
            if let Some(c) = self
                .client
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                return Ok(c);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BackendError::Remote(
                    "not connected to etcd; the change was not made (see fleet in /v1/status)"
                        .into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn set_client(&self, client: Option<Client>) {
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = client;
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::SeqCst);
        self.counters.connected.set(i64::from(connected));
    }

    pub(crate) fn set_revision(&self, revision: i64) {
        self.revision.store(revision, Ordering::SeqCst);
        self.counters.revision.set(revision);
    }

    pub(crate) fn record_error(&self, stage: &str, error: &str) {
        self.counters.error(stage);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((SystemTime::now(), format!("{stage}: {error}")));
    }

    /// Runs one etcd request with the configured time limit.
    pub(crate) async fn timed<T, F>(&self, request: F) -> Result<T, FleetError>
    where
        F: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let limit = self.config.request_timeout;
        match tokio::time::timeout(limit, request).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(FleetError::Etcd(e.to_string())),
            Err(_) => Err(FleetError::Timeout(limit)),
        }
    }

    /// A write that failed: counted, remembered for the status, returned to the caller.
    fn write_error(&self, what: &str, e: FleetError) -> BackendError {
        self.record_error("write", &format!("{what}: {e}"));
        BackendError::Remote(format!("{what}: {e}"))
    }

    /// Puts `value` at `key` (under a fresh lease of `ttl` when given); returns the revision.
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<i64, BackendError> {
        let mut client = self.client().await?;
        let options = match ttl {
            Some(ttl) => {
                // etcd grants at least 2 s (its minimum TTL) whatever is asked.
                let secs = i64::try_from(ttl.as_secs().max(2)).unwrap_or(i64::MAX);
                let lease = self
                    .timed(client.lease_grant(secs, None))
                    .await
                    .map_err(|e| self.write_error(key, e))?;
                Some(PutOptions::new().with_lease(lease.id()))
            }
            None => None,
        };
        let rsp = self
            .timed(client.put(key, value, options))
            .await
            .map_err(|e| self.write_error(key, e))?;
        Ok(rsp.header().map_or(0, |h| h.revision()))
    }

    /// Deletes `key`; returns the revision.
    async fn delete(&self, key: &str) -> Result<i64, BackendError> {
        let mut client = self.client().await?;
        let rsp = self
            .timed(client.delete(key, None))
            .await
            .map_err(|e| self.write_error(key, e))?;
        Ok(rsp.header().map_or(0, |h| h.revision()))
    }

    /// The value at `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Kv>, BackendError> {
        let mut client = self.client().await?;
        let rsp = self
            .timed(client.get(key, None))
            .await
            .map_err(|e| self.write_error(key, e))?;
        Ok(rsp.kvs().first().map(|kv| Kv {
            key: key.to_owned(),
            value: kv.value().to_vec(),
            revision: kv.mod_revision(),
        }))
    }
}

/// The [`Backend`] of a fleet node.
pub struct FleetBackend {
    shared: Arc<Shared>,
    local: LocalBackend,
}

fn encode<T: serde::Serialize>(record: &T) -> Result<Vec<u8>, BackendError> {
    serde_json::to_vec(record).map_err(|e| BackendError::Encode(e.to_string()))
}

#[async_trait]
impl Backend for FleetBackend {
    async fn put_token(&self, token: &str, answer: &AcmeAnswer) -> Result<(), BackendError> {
        let key = self.shared.layout.token(token);
        // A lease as long as the token lives: a forgotten token expires everywhere.
        let ttl = answer
            .expires
            .map(|t| t.duration_since(SystemTime::now()).unwrap_or_default());
        let revision = self
            .shared
            .put(&key, encode(&records::TokenRecord::of(answer))?, ttl)
            .await?;
        self.shared.applier.note_own(&key, revision);
        self.local.write_token(token, answer)
    }

    async fn remove_token(&self, token: &str) -> Result<(), BackendError> {
        let key = self.shared.layout.token(token);
        let revision = self.shared.delete(&key).await?;
        self.shared.applier.note_own(&key, revision);
        self.local.remove_token_file(token)
    }

    async fn put_pki(&self, host: &str, file: &str, entry: &PkiFile) -> Result<(), BackendError> {
        let key = self.shared.layout.pki(host, file);
        let revision = self
            .shared
            .put(&key, encode(&pki_record(entry))?, None)
            .await?;
        self.shared.applier.note_own(&key, revision);
        self.local.write_pki(host, file, entry)
    }

    async fn remove_pki(&self, host: &str, file: &str) -> Result<(), BackendError> {
        let key = self.shared.layout.pki(host, file);
        let revision = self.shared.delete(&key).await?;
        self.shared.applier.note_own(&key, revision);
        self.local.remove_pki_file(host, file)
    }

    async fn put_cert(&self, id: &CertId, cert: &ValidCert) -> Result<(), BackendError> {
        let key = self.shared.layout.cert(id);
        let (chain, private_key) = cert.chain_and_key_pem();
        let key_sealed = self
            .shared
            .applier
            .key
            .seal(&key, private_key)
            .map_err(|e| BackendError::Encode(e.to_string()))?;
        let record = CertRecord {
            chain_pem: String::from_utf8_lossy(chain).into_owned(),
            key_sealed,
            fingerprint: cert.fingerprint.clone(),
            node: self.shared.me.node_id.clone(),
        };
        let revision = self.shared.put(&key, encode(&record)?, None).await?;
        self.shared.applier.note_own(&key, revision);
        Ok(())
    }

    async fn remove_cert(&self, id: &CertId) -> Result<(), BackendError> {
        let key = self.shared.layout.cert(id);
        let revision = self.shared.delete(&key).await?;
        self.shared.applier.note_own(&key, revision);
        Ok(())
    }

    async fn put_alpn(
        &self,
        name: &str,
        key_authorization: &str,
        expires: SystemTime,
    ) -> Result<(), BackendError> {
        let key = self.shared.layout.alpn(name);
        let record = AlpnRecord {
            key_authorization: key_authorization.to_owned(),
            expires_unix: unix(expires),
        };
        let ttl = expires
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let revision = self.shared.put(&key, encode(&record)?, Some(ttl)).await?;
        self.shared.applier.note_own(&key, revision);
        Ok(())
    }

    async fn remove_alpn(&self, name: &str) -> Result<(), BackendError> {
        let key = self.shared.layout.alpn(name);
        let revision = self.shared.delete(&key).await?;
        self.shared.applier.note_own(&key, revision);
        Ok(())
    }

    async fn put_dns01(
        &self,
        name: &str,
        token: &str,
        value: &str,
        expires: SystemTime,
    ) -> Result<(), BackendError> {
        let key = self.shared.layout.dns01(name, token);
        let record = Dns01Record {
            value: value.to_owned(),
            expires_unix: unix(expires),
        };
        // Under a lease as long as the challenge lives: a crashed order's value expires
        // everywhere on its own.
        let ttl = expires
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let revision = self.shared.put(&key, encode(&record)?, Some(ttl)).await?;
        self.shared.applier.note_own(&key, revision);
        Ok(())
    }

    async fn remove_dns01(&self, name: &str, token: &str) -> Result<(), BackendError> {
        let key = self.shared.layout.dns01(name, token);
        let revision = self.shared.delete(&key).await?;
        self.shared.applier.note_own(&key, revision);
        Ok(())
    }

    async fn load_secret(&self, name: &str) -> Result<Option<Vec<u8>>, BackendError> {
        let key = self.shared.layout.secret(name);
        let Some(kv) = self.shared.get(&key).await? else {
            return Ok(None);
        };
        let record: SecretRecord = serde_json::from_slice(&kv.value)
            .map_err(|e| BackendError::Remote(format!("{key}: {e}")))?;
        let plain = self
            .shared
            .applier
            .key
            .open(&key, &record.sealed)
            .map_err(|e| {
                self.shared.record_error("unseal", &format!("{key}: {e}"));
                BackendError::Remote(format!("{key}: {e}"))
            })?;
        Ok(Some(plain))
    }

    async fn store_secret(&self, name: &str, bytes: &[u8]) -> Result<(), BackendError> {
        let key = self.shared.layout.secret(name);
        let sealed = self
            .shared
            .applier
            .key
            .seal(&key, bytes)
            .map_err(|e| BackendError::Encode(e.to_string()))?;
        self.shared
            .put(&key, encode(&SecretRecord { sealed })?, None)
            .await?;
        Ok(())
    }

    async fn forget_secret(&self, name: &str) -> Result<(), BackendError> {
        self.shared.delete(&self.shared.layout.secret(name)).await?;
        Ok(())
    }

    async fn lock(&self, name: &str) -> Result<Option<HeldLock>, BackendError> {
        lock::acquire(&self.shared, name).await.map(Some)
    }

    async fn take_order_slot(
        &self,
        max: u32,
        window: Duration,
    ) -> Result<Option<OrderSlot>, BackendError> {
        if max == 0 {
            return Ok(None);
        }
        budget::take(&self.shared, max, window).await.map(Some)
    }

    async fn refresh_cert(&self, id: &CertId) -> Result<(), BackendError> {
        let key = self.shared.layout.cert(id);
        if let Some(kv) = self.shared.get(&key).await? {
            let _w = self.shared.writes.lock().await;
            self.shared.applier.put(&kv);
        }
        Ok(())
    }
}

/// The read side of fleet mode: connection, revision, members.
#[derive(Clone)]
pub struct FleetHandle {
    shared: Arc<Shared>,
}

impl FleetHandle {
    /// This node's id in the fleet.
    pub fn node_id(&self) -> &str {
        &self.shared.me.node_id
    }

    /// Whether the node currently follows etcd (else it serves its local snapshot).
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// The last etcd revision applied.
    pub fn revision(&self) -> i64 {
        self.shared.revision.load(Ordering::SeqCst)
    }

    /// The live members (their membership lease is kept alive), this node included once it has
    /// registered, by node id. Each has the public addresses it was configured with and the
    /// ports of its first HTTP and HTTPS listeners: what a probe needs to ask every node.
    pub fn members(&self) -> Vec<Member> {
        self.shared
            .applier
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The etcd endpoints this node talks to (`fleet.endpoints`).
    pub fn endpoints(&self) -> &[String] {
        &self.shared.config.endpoints
    }

    /// The key prefix of this fleet (`fleet.prefix`).
    pub fn prefix(&self) -> &str {
        &self.shared.config.prefix
    }

    /// The last error talking to etcd, and when (cleared by nothing: it is history).
    pub fn last_error(&self) -> Option<(SystemTime, String)> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The fleet's collectors, for the metrics registry.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        self.shared.counters.collectors()
    }
}
