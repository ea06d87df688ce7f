//! The certificate store: every certificate the node may present, by name, behind one arc-swap
//! snapshot that the TLS resolver loads per handshake.
//!
//! A certificate enters only as a [`ValidCert`] (see [`check`]), is written to disk atomically,
//! and only then published. A refused certificate changes nothing: the one being served keeps
//! being served. Open connections keep the key they negotiated; the next handshake sees the new
//! snapshot.
//!
//! # Which certificate serves a name
//!
//! Several certificates may carry the same name (an upload beside an ACME certificate, a
//! renewal stored under a new id, a wildcard beside an exact name). For the name a client asks
//! for (SNI), the handshake presents, in this order:
//!
//! 1. a certificate whose subjectAltName has the name exactly;
//! 2. else one with the wildcard `*.<parent>` (one label: `*.example.com` covers
//!    `www.example.com`, not `a.b.example.com` nor `example.com`);
//! 3. else the `default` certificate (also without SNI).
//!
//! Among the certificates carrying the same entry, the one that **expires last** wins; equal
//! expiry: the one published last; then the greater id. Expiry first because it is a property
//! of the certificates themselves: every node of a fleet and every restart picks the same one,
//! whatever order they were loaded in, and a renewal under another id takes over at once. The
//! others stay stored and take over when the winner is removed. [`CertSnapshot::precedence`]
//! says who serves each entry and why the others do not, for the admin API and `certs list`.

mod check;
/// Public for the fuzz target `certificate`.
pub mod pem;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use prometheus::{IntCounterVec, Opts};
use rustls::sign::CertifiedKey;

pub(crate) use check::hex;
pub use check::{name_covers, validate, CertRefusal, ValidCert};

use super::fsio;
pub use crate::config::CertId;

/// The id of the certificate presented when no other covers the requested name (or no SNI was
/// sent). A self-signed one is made at first start so that :443 answers from the first minute.
pub const DEFAULT_ID: &str = crate::config::DEFAULT_CERT_ID;

/// Where a certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertSource {
    /// Made by dcv-proxy at first start.
    SelfSigned,
    /// Read from the state directory at start.
    Disk,
    /// Uploaded through the admin API.
    Upload,
    /// Issued over ACME by this node.
    Acme,
    /// Received from the fleet.
    Fleet,
}

impl CertSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CertSource::SelfSigned => "self-signed",
            CertSource::Disk => "disk",
            CertSource::Upload => "upload",
            CertSource::Acme => "acme",
            CertSource::Fleet => "fleet",
        }
    }
}

/// A published certificate.
#[derive(Debug)]
pub struct CertEntry {
    pub id: CertId,
    pub cert: ValidCert,
    pub source: CertSource,
    pub published: SystemTime,
}

/// One consistent view: the name index and every entry.
#[derive(Clone)]
pub struct CertSnapshot {
    exact: HashMap<Arc<str>, Arc<CertifiedKey>>,
    /// `*.parent` certificates, keyed by `parent`.
    wildcard: HashMap<Arc<str>, Arc<CertifiedKey>>,
    /// Certificates for IP addresses (iPAddress SANs, RFC 8738), presented to a handshake
    /// without SNI that arrives at that local address (a client connecting to an address
    /// sends no SNI: RFC 6066 §3 allows host names only).
    by_address: HashMap<std::net::IpAddr, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
    entries: BTreeMap<CertId, Arc<CertEntry>>,
    /// SAN (as written, `*.x` included) → ids of the entries carrying it.
    owners: HashMap<Arc<str>, Vec<CertId>>,
}

/// Why an install did not happen.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The certificate failed a check; nothing changed.
    #[error("certificate refused: {0}")]
    Refused(#[from] CertRefusal),
    /// Writing it to the state directory failed; nothing changed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The self-signed default certificate could not be made.
    #[error("cannot make the self-signed default certificate: {0}")]
    SelfSigned(String),
    /// The default certificate can be replaced but not removed.
    #[error("the default certificate cannot be removed, only replaced")]
    RemoveDefault,
    /// The fleet store could not take the change; nothing changed on this node.
    #[error("cannot share with the fleet: {0}")]
    Shared(String),
}

/// A certificate file that could not be loaded at start.
#[derive(Debug)]
pub struct LoadFailure {
    pub path: PathBuf,
    pub error: String,
}

/// The store.
pub struct CertStore {
    snapshot: ArcSwap<CertSnapshot>,
    writer: Mutex<()>,
    dir: PathBuf,
    loads: IntCounterVec,
}

impl CertStore {
    /// Loads every `<id>.pem` under `dir`; files that fail a check are reported and skipped, the
    /// rest load. Makes and persists a self-signed default certificate when there is none.
    pub fn open(dir: &Path) -> Result<(Self, Vec<LoadFailure>), InstallError> {
        let loads = IntCounterVec::new(
            Opts::new(
                "dcv_certificate_loads_total",
                "Certificates offered to the store, by result (ok or the refusal reason)",
            ),
            &["result"],
        )
        .expect("metric name and labels are constant and valid");
        loads.with_label_values(&["ok"]);
        for reason in CertRefusal::REASONS {
            loads.with_label_values(&[reason]);
        }

        let mut failures = Vec::new();
        let mut loaded = Vec::new();
        let read_dir = std::fs::read_dir(dir).map_err(|source| InstallError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = read_dir.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        let now = SystemTime::now();
        for path in paths {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if fsio::is_temp_name(name) {
                // A write interrupted before its rename: never a served file.
                if fsio::is_stale_temp(name) {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let Some(stem) = name.strip_suffix(".pem") else {
                continue;
            };
            let id = match CertId::parse(stem) {
                Ok(id) => id,
                Err(e) => {
                    failures.push(LoadFailure { path, error: e });
                    continue;
                }
            };
            let result = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    validate(&bytes, b"", &[], now).map_err(|e| {
                        loads.with_label_values(&[e.reason()]).inc();
                        e.to_string()
                    })
                });
            match result {
                Ok(cert) => {
                    loads.with_label_values(&["ok"]).inc();
                    loaded.push((id, cert));
                }
                Err(error) => failures.push(LoadFailure { path, error }),
            }
        }

        let default_path = dir.join(format!("{DEFAULT_ID}.pem"));
        let has_default = loaded.iter().any(|(id, _)| id.as_str() == DEFAULT_ID);
        let mut default_source = CertSource::Disk;
        if !has_default {
            if default_path.exists() {
                // It exists but was refused (e.g. expired): move it aside, never delete it.
                let aside = dir.join(format!("{DEFAULT_ID}.pem.refused"));
                let _ = std::fs::rename(&default_path, aside);
            }
            let cert = make_self_signed_default()?;
            fsio::write_atomic(&default_path, &cert.pem, 0o600).map_err(|source| {
                InstallError::Write {
                    path: default_path.clone(),
                    source,
                }
            })?;
            loaded.push((
                CertId::parse(DEFAULT_ID).expect("the default id is valid"),
                cert,
            ));
            default_source = CertSource::SelfSigned;
        }

        let mut entries = BTreeMap::new();
        for (id, cert) in loaded {
            let source = if id.as_str() == DEFAULT_ID {
                default_source
            } else {
                CertSource::Disk
            };
            entries.insert(
                id.clone(),
                Arc::new(CertEntry {
                    id,
                    cert,
                    source,
                    published: now,
                }),
            );
        }
        let snapshot = CertSnapshot::build(entries)
            .ok_or_else(|| InstallError::SelfSigned("no default certificate was loaded".into()))?;
        Ok((
            Self {
                snapshot: ArcSwap::from_pointee(snapshot),
                writer: Mutex::new(()),
                dir: dir.to_path_buf(),
                loads,
            },
            failures,
        ))
    }

    /// The key to present for `server_name` (SNI): exact name, then wildcard, then the default.
    pub fn resolve(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let snapshot = self.snapshot.load();
        snapshot
            .lookup(server_name)
            .unwrap_or(&snapshot.default)
            .clone()
    }

    /// The key to present to a handshake without SNI that arrived at the local address `local`:
    /// the certificate for that address (RFC 8738), else the default.
    pub fn resolve_for_address(&self, local: std::net::IpAddr) -> Arc<CertifiedKey> {
        let snapshot = self.snapshot.load();
        snapshot
            .by_address
            .get(&local.to_canonical())
            .unwrap_or(&snapshot.default)
            .clone()
    }

    /// Whether any certificate is for an IP address: only then does a handshake's local
    /// address matter.
    pub fn has_addresses(&self) -> bool {
        !self.snapshot.load().by_address.is_empty()
    }

    /// The key for `server_name` if a certificate covers it (no fallback to the default).
    pub fn covering(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        self.snapshot.load().lookup(Some(server_name)).cloned()
    }

    /// The current snapshot, for listing and metrics.
    pub fn snapshot(&self) -> Arc<CertSnapshot> {
        self.snapshot.load_full()
    }

    /// Counter of offered certificates by result; registered by the metrics module.
    pub fn load_counter(&self) -> &IntCounterVec {
        &self.loads
    }

    /// Counts a refused certificate under its reason.
    pub fn count_refusal(&self, refusal: &CertRefusal) {
        self.loads.with_label_values(&[refusal.reason()]).inc();
    }

    /// Checks PEM input now, counting a refusal under its reason.
    pub fn check(
        &self,
        chain_pem: &[u8],
        key_pem: &[u8],
        required_names: &[String],
    ) -> Result<ValidCert, CertRefusal> {
        validate(chain_pem, key_pem, required_names, SystemTime::now()).inspect_err(|e| {
            self.count_refusal(e);
        })
    }

    /// Writes an already validated certificate and publishes it.
    pub fn install(
        &self,
        id: &CertId,
        cert: ValidCert,
        source: CertSource,
    ) -> Result<Arc<CertEntry>, InstallError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.path_of(id);
        fsio::write_atomic(&path, &cert.pem, 0o600)
            .map_err(|source| InstallError::Write { path, source })?;
        self.loads.with_label_values(&["ok"]).inc();
        Ok(self.publish_locked(id, cert, source))
    }

    /// Publishes a validated certificate without writing it (it is already durable elsewhere,
    /// e.g. in the fleet store).
    pub fn publish(&self, id: &CertId, cert: ValidCert, source: CertSource) -> Arc<CertEntry> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.publish_locked(id, cert, source)
    }

    /// Swaps in a snapshot holding `cert`; the caller holds the writer lock.
    fn publish_locked(&self, id: &CertId, cert: ValidCert, source: CertSource) -> Arc<CertEntry> {
        let entry = Arc::new(CertEntry {
            id: id.clone(),
            cert,
            source,
            published: SystemTime::now(),
        });
        let mut next = CertSnapshot::clone(&self.snapshot.load());
        next.put(entry.clone());
        self.snapshot.store(Arc::new(next));
        entry
    }

    /// Removes certificate `id` from disk and from serving; returns whether it existed.
    pub fn remove(&self, id: &CertId) -> Result<bool, InstallError> {
        if id.as_str() == DEFAULT_ID {
            return Err(InstallError::RemoveDefault);
        }
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.path_of(id);
        fsio::remove_durable(&path).map_err(|source| InstallError::Write { path, source })?;
        let current = self.snapshot.load();
        if !current.entries.contains_key(id) {
            return Ok(false);
        }
        let mut next = CertSnapshot::clone(&current);
        next.remove(id);
        self.snapshot.store(Arc::new(next));
        Ok(true)
    }

    fn path_of(&self, id: &CertId) -> PathBuf {
        self.dir.join(format!("{id}.pem"))
    }
}

impl CertSnapshot {
    /// Builds the index from scratch; `None` without a default entry.
    fn build(entries: BTreeMap<CertId, Arc<CertEntry>>) -> Option<Self> {
        let default = entries
            .get(&CertId::parse(DEFAULT_ID).expect("the default id is valid"))?
            .cert
            .key
            .clone();
        let mut snapshot = CertSnapshot {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            by_address: HashMap::new(),
            default,
            entries: BTreeMap::new(),
            owners: HashMap::new(),
        };
        for entry in entries.into_values() {
            snapshot.put(entry);
        }
        Some(snapshot)
    }

    fn lookup(&self, server_name: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let name = server_name?;
        if let Some(key) = self.exact.get(name) {
            return Some(key);
        }
        // An address as the name (rustls drops one sent as SNI; other callers may ask).
        if !self.by_address.is_empty() {
            if let Ok(ip) = name.parse::<std::net::IpAddr>() {
                return self.by_address.get(&ip.to_canonical());
            }
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent)
    }

    /// Adds or replaces `entry`, re-deciding only the names it touches.
    fn put(&mut self, entry: Arc<CertEntry>) {
        let mut touched: Vec<Arc<str>> = Vec::new();
        if let Some(old) = self.entries.remove(&entry.id) {
            self.forget_owner(&old, &mut touched);
        }
        for name in &entry.cert.names {
            let name: Arc<str> = name.as_str().into();
            self.owners
                .entry(name.clone())
                .or_default()
                .push(entry.id.clone());
            touched.push(name);
        }
        if entry.id.as_str() == DEFAULT_ID {
            self.default = entry.cert.key.clone();
        }
        self.entries.insert(entry.id.clone(), entry);
        self.redecide(touched);
    }

    fn remove(&mut self, id: &CertId) {
        let mut touched = Vec::new();
        if let Some(old) = self.entries.remove(id) {
            self.forget_owner(&old, &mut touched);
        }
        self.redecide(touched);
    }

    fn forget_owner(&mut self, old: &CertEntry, touched: &mut Vec<Arc<str>>) {
        for name in &old.cert.names {
            if let Some(ids) = self.owners.get_mut(name.as_str()) {
                ids.retain(|i| i != &old.id);
                if ids.is_empty() {
                    self.owners.remove(name.as_str());
                }
            }
            touched.push(name.as_str().into());
        }
    }

    /// For each touched SAN, the entry that lasts longest wins (a renewal replaces the old one
    /// before the old one is removed; an older upload never shadows a newer issuance).
    fn redecide(&mut self, touched: Vec<Arc<str>>) {
        for name in touched {
            let winner = self
                .ranked(&name)
                .into_iter()
                .next()
                .map(|e| e.cert.key.clone());
            if let Ok(ip) = name.parse::<std::net::IpAddr>() {
                match winner {
                    Some(k) => self.by_address.insert(ip, k),
                    None => self.by_address.remove(&ip),
                };
                continue;
            }
            let (map, key) = match name.strip_prefix("*.") {
                Some(parent) => (&mut self.wildcard, Arc::<str>::from(parent)),
                None => (&mut self.exact, name),
            };
            match winner {
                Some(k) => {
                    map.insert(key, k);
                }
                None => {
                    map.remove(&key);
                }
            }
        }
    }

    /// The entries carrying the subjectAltName entry `san` (as written, `*.x` for a wildcard),
    /// best first: the first one serves it (the rule is in the module documentation).
    fn ranked(&self, san: &str) -> Vec<&Arc<CertEntry>> {
        let mut ranked: Vec<&Arc<CertEntry>> = self
            .owners
            .get(san)
            .into_iter()
            .flatten()
            .filter_map(|id| self.entries.get(id))
            .collect();
        ranked.sort_by(|a, b| rank(b).cmp(&rank(a)));
        ranked
    }

    /// Who serves each subjectAltName entry of every certificate, and why the others that
    /// carry it do not; sorted by name.
    pub fn precedence(&self) -> Vec<NameOwner> {
        let mut names: Vec<&Arc<str>> = self.owners.keys().collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|name| self.owner(name))
            .collect()
    }

    /// Who serves the subjectAltName entry `san` (`*.x` for a wildcard); `None` when no
    /// certificate carries it.
    pub fn owner(&self, san: &str) -> Option<NameOwner> {
        let ranked = self.ranked(san);
        let (winner, rest) = ranked.split_first()?;
        let mut passed_over: Vec<(CertId, PassedOver)> = rest
            .iter()
            .map(|e| {
                let why = if e.cert.not_after < winner.cert.not_after {
                    PassedOver::ExpiresEarlier
                } else if e.published < winner.published {
                    PassedOver::PublishedEarlier
                } else {
                    PassedOver::SmallerId
                };
                (e.id.clone(), why)
            })
            .collect();
        // An exact name also shadows the wildcards that would cover it (rule 1 before rule 2).
        if let Some((label, parent)) = san.split_once('.') {
            if label != "*" {
                for e in self.ranked(&format!("*.{parent}")) {
                    if e.id != winner.id && !passed_over.iter().any(|(id, _)| id == &e.id) {
                        passed_over.push((e.id.clone(), PassedOver::ExactNameWins));
                    }
                }
            }
        }
        Some(NameOwner {
            name: san.to_owned(),
            served_by: winner.id.clone(),
            passed_over,
        })
    }

    /// The names `id` carries (or, by a wildcard, covers) that another certificate serves,
    /// each with who serves it and why; empty when `id` is presented for every one.
    pub fn not_served(&self, id: &CertId) -> Vec<(String, CertId, PassedOver)> {
        let Some(entry) = self.entries.get(id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for name in &entry.cert.names {
            if let Some(owner) = self.owner(name) {
                if &owner.served_by != id {
                    let why = owner
                        .passed_over
                        .iter()
                        .find(|(other, _)| other == id)
                        .map_or(PassedOver::ExpiresEarlier, |(_, why)| *why);
                    out.push((name.clone(), owner.served_by, why));
                }
            }
        }
        // Names under this certificate's wildcards that another certificate has exactly.
        for parent in entry.cert.names.iter().filter_map(|n| n.strip_prefix("*.")) {
            for (san, ids) in &self.owners {
                let under = san
                    .split_once('.')
                    .is_some_and(|(label, rest)| label != "*" && rest == parent);
                if under && !ids.contains(id) {
                    if let Some(owner) = self.owner(san) {
                        out.push((san.to_string(), owner.served_by, PassedOver::ExactNameWins));
                    }
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn entries(&self) -> impl Iterator<Item = &Arc<CertEntry>> {
        self.entries.values()
    }

    pub fn entry(&self, id: &CertId) -> Option<&Arc<CertEntry>> {
        self.entries.get(id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The order of precedence among certificates carrying the same name: later expiry, then later
/// publication, then the greater id (so the choice never depends on iteration order).
fn rank(e: &CertEntry) -> (SystemTime, SystemTime, &CertId) {
    (e.cert.not_after, e.published, &e.id)
}

/// Who serves one subjectAltName entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameOwner {
    /// The entry as written in the certificates (`*.example.com` for a wildcard).
    pub name: String,
    /// The certificate presented for it.
    pub served_by: CertId,
    /// The other certificates that carry it (or, for an exact name, cover it by a wildcard),
    /// best first, each with why it is not presented.
    pub passed_over: Vec<(CertId, PassedOver)>,
}

/// Why a certificate that carries a name is not the one presented for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassedOver {
    /// The one presented expires later.
    ExpiresEarlier,
    /// Same expiry; the one presented was published later.
    PublishedEarlier,
    /// Same expiry and publication; the one presented has the greater id.
    SmallerId,
    /// This certificate covers the name by a wildcard; another has the exact name.
    ExactNameWins,
}

impl PassedOver {
    /// A stable token for JSON (`expires_earlier`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            PassedOver::ExpiresEarlier => "expires_earlier",
            PassedOver::PublishedEarlier => "published_earlier",
            PassedOver::SmallerId => "smaller_id",
            PassedOver::ExactNameWins => "exact_name_wins",
        }
    }

    /// The reason in words, for `certs list`, the status page and upload warnings.
    pub fn text(self) -> &'static str {
        match self {
            PassedOver::ExpiresEarlier => "it expires before the certificate presented",
            PassedOver::PublishedEarlier => {
                "same expiry as the certificate presented, which was published later"
            }
            PassedOver::SmallerId => {
                "same expiry and publication time as the certificate presented, whose id sorts after it"
            }
            PassedOver::ExactNameWins => {
                "it covers the name by a wildcard, and another certificate has the exact name"
            }
        }
    }
}

/// A self-signed ECDSA P-256 certificate for `dcv-proxy.invalid`, valid ten years.
fn make_self_signed_default() -> Result<ValidCert, InstallError> {
    let make = || -> Result<ValidCert, String> {
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = rcgen::CertificateParams::new(vec!["dcv-proxy.invalid".to_owned()])
            .map_err(|e| e.to_string())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "dcv-proxy default certificate");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        validate(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            &[],
            SystemTime::now(),
        )
        .map_err(|e| e.to_string())
    };
    make().map_err(InstallError::SelfSigned)
}

#[cfg(test)]
mod tests;
