//! Applying what the fleet store holds to this node: the stores that serve, and the local state
//! directory as the snapshot a restart without etcd serves from.
//!
//! Every apply is idempotent: a node's own write comes back through the watch and changes
//! nothing. Own writes are remembered by revision until the watch has passed them, so an older
//! event never overwrites a newer local write. Callers hold the state's write mutex.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::Engine;
use bytes::Bytes;

use super::counters::FleetCounters;
use super::layout::{Entry, Layout};
use super::records::{AlpnRecord, CertRecord, Dns01Record, Member, PkiRecord, TokenRecord};
use super::seal::FleetKey;
use crate::state::apex_of;
use crate::state::certs::{validate, CertSource, CertStore, DEFAULT_ID};
use crate::state::challenge::{ChallengeStore, PkiFile, TxtChallenge};
use crate::state::local::{from_unix, unix, LocalBackend};

/// One key and value as read from etcd.
pub(crate) struct Kv {
    pub(crate) key: String,
    pub(crate) value: Vec<u8>,
    pub(crate) revision: i64,
}

/// Applies fleet changes to the stores.
pub(crate) struct Applier {
    pub(crate) challenges: Arc<ChallengeStore>,
    pub(crate) certs: Arc<CertStore>,
    pub(crate) local: LocalBackend,
    pub(crate) key: FleetKey,
    pub(crate) layout: Layout,
    pub(crate) counters: FleetCounters,
    pub(crate) members: Mutex<BTreeMap<String, Member>>,
    /// Own writes (key → revision) the watch has not delivered yet.
    pending: Mutex<HashMap<String, i64>>,
}

impl Applier {
    pub(crate) fn new(
        challenges: Arc<ChallengeStore>,
        certs: Arc<CertStore>,
        local: LocalBackend,
        key: FleetKey,
        layout: Layout,
        counters: FleetCounters,
    ) -> Self {
        Self {
            challenges,
            certs,
            local,
            key,
            layout,
            counters,
            members: Mutex::new(BTreeMap::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Records that this node wrote `key` at `revision` (and already published it).
    pub(crate) fn note_own(&self, key: &str, revision: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let slot = pending.entry(key.to_owned()).or_insert(revision);
        *slot = (*slot).max(revision);
    }

    /// Whether an event at `revision` for `key` is older than (or is) this node's own write.
    fn superseded(&self, key: &str, revision: i64) -> bool {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.get(key).is_some_and(|&own| own >= revision)
    }

    /// Forgets own writes the watch has passed: later events are newer than all of them.
    pub(crate) fn progress(&self, revision: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, own| *own > revision);
    }

    /// A put seen in the watch (or a full load).
    pub(crate) fn put(&self, kv: &Kv) {
        if self.superseded(&kv.key, kv.revision) {
            return;
        }
        let entry = self.layout.parse(&kv.key);
        let result = match &entry {
            Entry::Token(token) => self.put_token(token, &kv.value),
            Entry::Pki { host, file } => self.put_pki(host, file, &kv.value),
            Entry::Cert(id) => self.put_cert(id, &kv.key, &kv.value),
            Entry::Alpn(name) => self.put_alpn(name, &kv.value),
            Entry::Dns01 { name, token } => self.put_dns01(name, token, &kv.value),
            Entry::Member(id) => self.put_member(id, &kv.value),
            // Read when needed (the account); nothing is served from it.
            Entry::Secret(_) => Ok(Applied::Changed),
            Entry::Other => return,
        };
        self.count(&entry, "put", &kv.key, result);
    }

    /// A delete seen in the watch (a removal, or a lease that expired).
    pub(crate) fn delete(&self, key: &str, revision: i64) {
        if self.superseded(key, revision) {
            return;
        }
        let entry = self.layout.parse(key);
        let result = self.remove(&entry);
        self.count(&entry, "delete", key, result);
    }

    /// Makes this node hold exactly what `kvs` (everything under the prefix at `revision`)
    /// holds: after a start or a compaction, when the events in between are not available.
    /// The default certificate is kept: it is the node's own unless one was shared.
    pub(crate) fn snapshot(&self, kvs: &[Kv], revision: i64) {
        let mut present = HashSet::new();
        for kv in kvs {
            present.insert(kv.key.clone());
            self.put(kv);
        }
        let own_newer = |key: &str| self.superseded(key, revision + 1);
        let snapshot = self.challenges.snapshot();
        let mut gone = Vec::new();
        for (token, _) in snapshot.acme() {
            gone.push(Entry::Token(token.to_owned()));
        }
        for (host, file, _) in snapshot.pki() {
            gone.push(Entry::Pki {
                host: host.to_owned(),
                file: file.to_owned(),
            });
        }
        for name in snapshot.alpn_names() {
            gone.push(Entry::Alpn(name.to_owned()));
        }
        for (name, token, _) in snapshot.dns01() {
            gone.push(Entry::Dns01 {
                name: name.to_owned(),
                token: token.to_owned(),
            });
        }
        for entry in self.certs.snapshot().entries() {
            if entry.id.as_str() != DEFAULT_ID {
                gone.push(Entry::Cert(entry.id.clone()));
            }
        }
        let members: Vec<String> = self
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        gone.extend(members.into_iter().map(Entry::Member));
        for entry in gone {
            let key = self.key_of(&entry);
            if present.contains(&key) || own_newer(&key) {
                continue;
            }
            let result = self.remove(&entry);
            self.count(&entry, "delete", &key, result);
        }
        self.progress(revision);
    }

    fn key_of(&self, entry: &Entry) -> String {
        match entry {
            Entry::Token(t) => self.layout.token(t),
            Entry::Pki { host, file } => self.layout.pki(host, file),
            Entry::Cert(id) => self.layout.cert(id),
            Entry::Alpn(n) => self.layout.alpn(n),
            Entry::Dns01 { name, token } => self.layout.dns01(name, token),
            Entry::Secret(n) => self.layout.secret(n),
            Entry::Member(m) => self.layout.member(m),
            Entry::Other => String::new(),
        }
    }

    fn count(&self, entry: &Entry, op: &str, key: &str, result: Result<Applied, String>) {
        match result {
            Ok(Applied::Changed) => {
                self.counters
                    .events
                    .with_label_values(&[entry.kind(), op])
                    .inc();
                tracing::debug!(%key, op, "fleet change applied");
            }
            Ok(Applied::Same) => {}
            Err(error) => {
                let stage = if matches!(entry, Entry::Cert(_)) && error.starts_with("refused") {
                    "refused"
                } else if error.starts_with("unseal") {
                    "unseal"
                } else {
                    "apply"
                };
                self.counters.error(stage);
                tracing::warn!(%key, op, %error, "fleet change not applied; the node keeps what it had");
            }
        }
    }

    fn remove(&self, entry: &Entry) -> Result<Applied, String> {
        match entry {
            Entry::Token(token) => {
                let was = self.challenges.remove_acme(token);
                self.local
                    .remove_token_file(token)
                    .map_err(|e| e.to_string())?;
                Ok(changed(was))
            }
            Entry::Pki { host, file } => {
                let was = self.challenges.remove_pki(host, file);
                self.local
                    .remove_pki_file(host, file)
                    .map_err(|e| e.to_string())?;
                Ok(changed(was))
            }
            Entry::Cert(id) if id.as_str() == DEFAULT_ID => Ok(Applied::Same),
            Entry::Cert(id) => self
                .certs
                .remove(id)
                .map(changed)
                .map_err(|e| e.to_string()),
            Entry::Alpn(name) => {
                let was = self.challenges.alpn_certificate(name).is_some();
                self.challenges.remove_alpn(name);
                Ok(changed(was))
            }
            Entry::Dns01 { name, token } => Ok(changed(self.challenges.remove_dns01(name, token))),
            Entry::Member(id) => {
                let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
                let was = members.remove(id).is_some();
                self.counters.members.set(members.len() as i64);
                Ok(changed(was))
            }
            Entry::Secret(_) => Ok(Applied::Changed),
            Entry::Other => Ok(Applied::Same),
        }
    }

    fn put_token(&self, token: &str, value: &[u8]) -> Result<Applied, String> {
        let record: TokenRecord = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        let current = self
            .challenges
            .snapshot()
            .acme()
            .find(|(t, _)| *t == token)
            .map(|(_, a)| TokenRecord::of(a));
        if current.as_ref() == Some(&record) {
            return Ok(Applied::Same);
        }
        let answer = record.into_answer();
        if answer.expires.is_some_and(|t| t <= SystemTime::now()) {
            return Ok(Applied::Same);
        }
        self.local
            .write_token(token, &answer)
            .map_err(|e| e.to_string())?;
        self.challenges.put_acme(token, answer);
        Ok(Applied::Changed)
    }

    fn put_pki(&self, host: &str, file: &str, value: &[u8]) -> Result<Applied, String> {
        let record: PkiRecord = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        let body = base64::engine::general_purpose::STANDARD
            .decode(record.content_base64)
            .map_err(|e| e.to_string())?;
        let same = self
            .challenges
            .snapshot()
            .pki()
            .any(|(h, f, e)| h == apex_of(host) && f == file && e.body[..] == body[..]);
        if same {
            return Ok(Applied::Same);
        }
        let entry = PkiFile {
            body: Bytes::from(body),
            created: from_unix(record.created_unix),
        };
        self.local
            .write_pki(host, file, &entry)
            .map_err(|e| e.to_string())?;
        self.challenges.put_pki(host, file, entry);
        Ok(Applied::Changed)
    }

    fn put_cert(
        &self,
        id: &crate::state::certs::CertId,
        etcd_key: &str,
        value: &[u8],
    ) -> Result<Applied, String> {
        let record: CertRecord = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        let served = self
            .certs
            .snapshot()
            .entry(id)
            .map(|e| e.cert.fingerprint.clone());
        if served.as_deref() == Some(record.fingerprint.as_str()) {
            return Ok(Applied::Same);
        }
        let key_pem = self
            .key
            .open(etcd_key, &record.key_sealed)
            .map_err(|e| format!("unseal: {e}"))?;
        // Checked like any upload: a certificate from the fleet is never served unchecked.
        let cert = validate(
            record.chain_pem.as_bytes(),
            &key_pem,
            &[],
            SystemTime::now(),
        )
        .map_err(|e| {
            self.certs.count_refusal(&e);
            format!("refused: {e}")
        })?;
        if served.as_deref() == Some(cert.fingerprint.as_str()) {
            return Ok(Applied::Same);
        }
        self.certs
            .install(id, cert, CertSource::Fleet)
            .map_err(|e| e.to_string())?;
        Ok(Applied::Changed)
    }

    fn put_alpn(&self, name: &str, value: &[u8]) -> Result<Applied, String> {
        let record: AlpnRecord = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        if from_unix(record.expires_unix) <= SystemTime::now() {
            return Ok(Applied::Same);
        }
        let key = crate::state::alpn::challenge_certificate(name, &record.key_authorization)?;
        self.challenges.put_alpn(name, key);
        Ok(Applied::Changed)
    }

    fn put_dns01(&self, name: &str, token: &str, value: &[u8]) -> Result<Applied, String> {
        let record: Dns01Record = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        let challenge = TxtChallenge {
            value: record.value.into(),
            expires: from_unix(record.expires_unix),
        };
        if challenge.expires <= SystemTime::now() {
            return Ok(Applied::Same);
        }
        let same = self
            .challenges
            .snapshot()
            .dns01()
            .any(|(n, t, c)| n == name && t == token && *c == challenge);
        if same {
            return Ok(Applied::Same);
        }
        self.challenges.put_dns01(name, token, challenge);
        Ok(Applied::Changed)
    }

    fn put_member(&self, id: &str, value: &[u8]) -> Result<Applied, String> {
        let member: Member = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        if members.get(id) == Some(&member) {
            return Ok(Applied::Same);
        }
        members.insert(id.to_owned(), member);
        self.counters.members.set(members.len() as i64);
        Ok(Applied::Changed)
    }
}

/// Whether an apply changed what the node serves (counted) or found it already there.
enum Applied {
    Changed,
    Same,
}

fn changed(was: bool) -> Applied {
    if was {
        Applied::Changed
    } else {
        Applied::Same
    }
}

/// The record form of a validation file.
pub(crate) fn pki_record(entry: &PkiFile) -> PkiRecord {
    PkiRecord {
        content_base64: base64::engine::general_purpose::STANDARD.encode(&entry.body),
        created_unix: unix(entry.created),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::path::Path;

    use crate::state::layout::StateDir;

    fn applier(dir: &Path) -> Applier {
        let state = StateDir::new(dir);
        state.create().unwrap();
        let challenges = Arc::new(ChallengeStore::new(
            state.acme_webroot(),
            state.pki_webroot(),
        ));
        let (certs, _) = CertStore::open(&state.certs()).unwrap();
        let key =
            FleetKey::parse(&base64::engine::general_purpose::STANDARD.encode([3u8; 32])).unwrap();
        Applier::new(
            challenges,
            Arc::new(certs),
            LocalBackend::new(state),
            key,
            Layout::new("/t"),
            FleetCounters::new(),
        )
    }

    fn token_kv(a: &Applier, token: &str, body: &str, revision: i64) -> Kv {
        let record = TokenRecord {
            key_authorization: body.into(),
            identifier: None,
            expires_unix: None,
            created_unix: 1,
        };
        Kv {
            key: a.layout.token(token),
            value: serde_json::to_vec(&record).unwrap(),
            revision,
        }
    }

    fn puts(a: &Applier, kind: &str) -> u64 {
        a.counters.events.with_label_values(&[kind, "put"]).get()
    }

    #[test]
    fn applying_twice_changes_nothing_and_own_newer_writes_win() {
        let dir = tempfile::tempdir().unwrap();
        let a = applier(dir.path());
        a.put(&token_kv(&a, "tok", "tok.one", 5));
        a.put(&token_kv(&a, "tok", "tok.one", 5));
        assert_eq!(puts(&a, "token"), 1);
        assert!(dir.path().join("tokens").join("tok.json").exists());

        // This node wrote revision 10; an older event must not overwrite it.
        a.note_own(&a.layout.token("tok"), 10);
        a.put(&token_kv(&a, "tok", "tok.stale", 9));
        assert_eq!(
            &a.challenges.acme_answer("tok", "h").unwrap().0[..],
            b"tok.one"
        );
        a.progress(10);
        a.put(&token_kv(&a, "tok", "tok.two", 11));
        assert_eq!(
            &a.challenges.acme_answer("tok", "h").unwrap().0[..],
            b"tok.two"
        );

        a.delete(&a.layout.token("tok"), 12);
        assert!(a.challenges.acme_answer("tok", "h").is_none());
        assert!(!dir.path().join("tokens").join("tok.json").exists());
    }

    #[test]
    fn a_dns01_value_from_the_fleet_is_answered_and_withdrawn() {
        let dir = tempfile::tempdir().unwrap();
        let a = applier(dir.path());
        let record = Dns01Record {
            value: "digest".into(),
            expires_unix: unix(SystemTime::now()) + 600,
        };
        let key = a.layout.dns01("shop.a.test", "tok");
        a.put(&Kv {
            key: key.clone(),
            value: serde_json::to_vec(&record).unwrap(),
            revision: 3,
        });
        let now = SystemTime::now();
        let snap = a.challenges.snapshot();
        assert_eq!(
            snap.dns01_values("shop.a.test", now).collect::<Vec<_>>(),
            ["digest"]
        );
        assert_eq!(puts(&a, "dns-01"), 1);
        a.delete(&key, 4);
        assert_eq!(a.challenges.snapshot().dns01_count(), 0);
    }

    #[test]
    fn full_load_removes_what_etcd_no_longer_holds() {
        let dir = tempfile::tempdir().unwrap();
        let a = applier(dir.path());
        a.put(&token_kv(&a, "gone", "gone.x", 1));
        a.put(&token_kv(&a, "kept", "kept.x", 2));
        a.snapshot(&[token_kv(&a, "kept", "kept.x", 2)], 30);
        assert!(a.challenges.acme_answer("gone", "h").is_none());
        assert!(a.challenges.acme_answer("kept", "h").is_some());
    }

    #[test]
    fn certificate_sealed_with_another_key_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let a = applier(dir.path());
        let ca = crate::testkit::TestCa::new("t").unwrap();
        let leaf = ca
            .leaf(&["a.test"], std::time::Duration::from_secs(3600))
            .unwrap();
        let id = crate::state::certs::CertId::parse("a.test").unwrap();
        let key = a.layout.cert(&id);
        let other =
            FleetKey::parse(&base64::engine::general_purpose::STANDARD.encode([9u8; 32])).unwrap();
        let record = |sealed: String| CertRecord {
            chain_pem: leaf.chain_pem.clone(),
            key_sealed: sealed,
            fingerprint: "x".into(),
            node: "n".into(),
        };
        let bad = record(other.seal(&key, leaf.key_pem.as_bytes()).unwrap());
        a.put(&Kv {
            key: key.clone(),
            value: serde_json::to_vec(&bad).unwrap(),
            revision: 1,
        });
        assert!(a.certs.covering("a.test").is_none());
        assert_eq!(a.counters.errors.with_label_values(&["unseal"]).get(), 1);

        let good = record(a.key.seal(&key, leaf.key_pem.as_bytes()).unwrap());
        a.put(&Kv {
            key,
            value: serde_json::to_vec(&good).unwrap(),
            revision: 2,
        });
        assert!(a.certs.covering("a.test").is_some());
        assert!(dir.path().join("certs").join("a.test.pem").exists());
    }
}
