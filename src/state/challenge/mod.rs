//! The challenge store: every answer the node gives to a domain-control validation request.
//!
//! - ACME HTTP-01 key authorizations by token (RFC 8555 §8.3), optionally bound to the one
//!   identifier they were issued for, so a token is not answered for a foreign host that points
//!   its DNS at this node (DNS-rebinding guard).
//! - CA validation files (`/.well-known/pki-validation/<file>`) by host. A file put for
//!   `example.com` answers on `www.example.com` too and the other way round, because CAs check
//!   both (catalogue H8): entries are keyed by the host without its `www.` label.
//! - TLS-ALPN-01 certificates by name (RFC 8737), handed to the TLS resolver.
//! - DNS-01 TXT values by name and token (RFC 8555 §8.4), answered by the DNS listener at
//!   `<name>.<zone>` in every validation zone; a name may hold several at once (a wildcard and
//!   its apex are validated at the same `_acme-challenge` name).
//! - The webroot directory, read at request time so that a file an ACME client just wrote answers
//!   the very next request.
//!
//! Readers load one `Arc` snapshot; writers copy, change and publish it under a mutex.

mod webroot;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use bytes::Bytes;
use rustls::sign::CertifiedKey;

use super::names::apex_of;
use webroot::Webroot;

/// An ACME HTTP-01 answer.
#[derive(Clone)]
pub struct AcmeAnswer {
    /// `token.thumbprint`, served as the body, byte for byte.
    pub key_authorization: Bytes,
    /// Answer only when the request's host is this name; `None` answers on every host.
    pub identifier: Option<Arc<str>>,
    /// After this instant the token is no longer answered (and is swept from disk).
    pub expires: Option<SystemTime>,
    pub created: SystemTime,
}

/// A CA validation file.
#[derive(Clone)]
pub struct PkiFile {
    pub body: Bytes,
    pub created: SystemTime,
}

/// A `200 text/plain` answer rendered once, when it is stored: the whole HTTP/1.1 response and
/// where its body starts. Serving it costs no formatting and no allocation (the `Bytes` are
/// shared), which is what keeps validation answers cheaper than proxying.
#[derive(Clone)]
pub struct Reply {
    response: Bytes,
    head_len: usize,
}

impl Reply {
    /// Renders `200 OK`, `Content-Type: text/plain`, `Content-Length` and `body`.
    pub fn text(body: &[u8]) -> Reply {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut response = Vec::with_capacity(head.len() + body.len());
        response.extend_from_slice(head.as_bytes());
        response.extend_from_slice(body);
        Reply {
            head_len: head.len(),
            response: Bytes::from(response),
        }
    }

    /// The body alone.
    pub fn body(&self) -> Bytes {
        self.response.slice(self.head_len..)
    }

    /// Status line, headers and body, for an HTTP/1.1 connection.
    pub fn response(&self) -> &Bytes {
        &self.response
    }

    /// Status line and headers only (the answer to `HEAD`).
    pub fn head(&self) -> Bytes {
        self.response.slice(..self.head_len)
    }
}

impl std::ops::Deref for Reply {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.response[self.head_len..]
    }
}

/// A DNS-01 TXT record in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxtChallenge {
    /// The TXT value: base64url of SHA-256 of the key authorization (RFC 8555 §8.4).
    pub value: Arc<str>,
    /// After this instant it is no longer answered (and is swept).
    pub expires: SystemTime,
}

/// A stored ACME answer and its rendered reply.
#[derive(Clone)]
struct StoredAcme {
    answer: AcmeAnswer,
    reply: Reply,
}

/// A stored validation file and its rendered reply.
#[derive(Clone)]
struct StoredPki {
    file: PkiFile,
    reply: Reply,
}

/// One consistent view of every answer.
#[derive(Default, Clone)]
pub struct ChallengeSnapshot {
    acme: HashMap<Arc<str>, StoredAcme>,
    /// Host without `www.` → file name → file; nested so a lookup borrows, never allocates.
    pki: HashMap<Arc<str>, HashMap<Arc<str>, StoredPki>>,
    alpn: HashMap<Arc<str>, Arc<CertifiedKey>>,
    stateless: Option<Arc<Stateless>>,
    /// Name (lowercase, without `_acme-challenge.`) → token → TXT value (DNS-01).
    dns01: HashMap<Arc<str>, std::collections::BTreeMap<Arc<str>, TxtChallenge>>,
    /// Every name of `dns01` and each of its parents: a parent is an empty non-terminal, which
    /// the DNS listener answers NODATA, not NXDOMAIN (RFC 8020 §2).
    dns01_names: std::collections::HashSet<Arc<str>>,
}

/// Stateless HTTP-01 (RFC 8555 §8.1): the key authorization is `token.<account thumbprint>`, so
/// a node can answer any token of its account without having seen the order — for the names it
/// is configured for only.
struct Stateless {
    /// `.<thumbprint>`, ready to append.
    suffix: String,
    names: std::collections::HashSet<String>,
}

/// The store shared by the serving path and every writer.
pub struct ChallengeStore {
    snapshot: ArcSwap<ChallengeSnapshot>,
    writer: Mutex<()>,
    /// The webroot directories, read at request time.
    webroot: Webroot,
}

/// Where an answer came from (for metrics and status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerSource {
    Store,
    Webroot,
}

impl ChallengeStore {
    /// A store with no answers whose webroot lookups read `acme_webroot` and `pki_webroot`.
    pub fn new(acme_webroot: PathBuf, pki_webroot: PathBuf) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(ChallengeSnapshot::default()),
            writer: Mutex::new(()),
            webroot: Webroot::new(acme_webroot, pki_webroot),
        }
    }

    /// Starts following the webroot directories with inotify on a thread of its own, so misses
    /// stop touching the file system. Returns an error (and keeps opening files per request)
    /// when inotify is not available.
    pub fn watch_webroot(&self) -> std::io::Result<()> {
        self.webroot.watch()
    }

    /// The key authorization for `token` requested on `host`, if any.
    ///
    /// `token` must already be a well-formed token ([`is_token`]); it is used as a
    /// file name in the webroot.
    pub fn acme_answer(&self, token: &str, host: &str) -> Option<(Reply, AnswerSource)> {
        let snapshot = self.snapshot.load();
        if let Some(stored) = snapshot.acme.get(token) {
            let answer = &stored.answer;
            let host_ok = answer.identifier.as_deref().is_none_or(|id| id == host);
            let fresh = answer.expires.is_none_or(|t| SystemTime::now() < t);
            if host_ok && fresh {
                return Some((stored.reply.clone(), AnswerSource::Store));
            }
            return None;
        }
        if let Some(found) = self.webroot.acme(token) {
            return Some((Reply::text(&found), AnswerSource::Webroot));
        }
        let stateless = snapshot.stateless.as_ref()?;
        if !stateless.names.contains(host) {
            return None;
        }
        let mut body = String::with_capacity(token.len() + stateless.suffix.len());
        body.push_str(token);
        body.push_str(&stateless.suffix);
        Some((Reply::text(body.as_bytes()), AnswerSource::Store))
    }

    /// Turns stateless HTTP-01 on for `names` with the account `thumbprint`, or off with `None`.
    pub fn set_stateless(&self, config: Option<(String, Vec<String>)>) {
        self.update(|s| {
            s.stateless = config.map(|(thumbprint, names)| {
                Arc::new(Stateless {
                    suffix: format!(".{thumbprint}"),
                    names: names.into_iter().collect(),
                })
            })
        });
    }

    /// The pki-validation file `file` requested on `host`, if any.
    pub fn pki_answer(&self, host: &str, file: &str) -> Option<(Reply, AnswerSource)> {
        let snapshot = self.snapshot.load();
        if let Some(found) = snapshot.pki.get(apex_of(host)).and_then(|f| f.get(file)) {
            return Some((found.reply.clone(), AnswerSource::Store));
        }
        self.webroot
            .pki(file)
            .map(|b| (Reply::text(&b), AnswerSource::Webroot))
    }

    /// The TLS-ALPN-01 certificate for `name`, if a challenge is pending.
    ///
    /// For an IP identifier the CA's SNI is the address's reverse-DNS name (RFC 8738 §6,
    /// `1.0.0.127.in-addr.arpa`); the challenge is stored under the address, so such a name is
    /// mapped back to it.
    pub fn alpn_certificate(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.snapshot.load();
        if let Some(key) = snapshot.alpn.get(name) {
            return Some(key.clone());
        }
        let ip = crate::config::ip_of_reverse_name(name)?;
        snapshot.alpn.get(ip.to_string().as_str()).cloned()
    }

    /// Whether any TLS-ALPN-01 challenge is pending (lets the TLS path skip work when none is).
    pub fn has_alpn_challenges(&self) -> bool {
        !self.snapshot.load().alpn.is_empty()
    }

    /// The current snapshot, for listing.
    pub fn snapshot(&self) -> Arc<ChallengeSnapshot> {
        self.snapshot.load_full()
    }

    pub fn put_acme(&self, token: &str, answer: AcmeAnswer) {
        let reply = Reply::text(&answer.key_authorization);
        self.update(|s| {
            s.acme.insert(token.into(), StoredAcme { answer, reply });
        });
    }

    /// Removes `token`; returns whether it was there.
    pub fn remove_acme(&self, token: &str) -> bool {
        let mut found = false;
        self.update(|s| found = s.acme.remove(token).is_some());
        found
    }

    pub fn put_pki(&self, host: &str, file: &str, entry: PkiFile) {
        let reply = Reply::text(&entry.body);
        let entry = StoredPki { file: entry, reply };
        self.update(|s| {
            s.pki
                .entry(apex_of(host).into())
                .or_default()
                .insert(file.into(), entry);
        });
    }

    /// Removes a pki-validation file; returns whether it was there.
    pub fn remove_pki(&self, host: &str, file: &str) -> bool {
        let mut found = false;
        self.update(|s| {
            let apex = apex_of(host);
            if let Some(files) = s.pki.get_mut(apex) {
                found = files.remove(file).is_some();
                if files.is_empty() {
                    s.pki.remove(apex);
                }
            }
        });
        found
    }

    pub fn put_alpn(&self, name: &str, key: Arc<CertifiedKey>) {
        self.update(|s| {
            s.alpn.insert(name.into(), key);
        });
    }

    pub fn remove_alpn(&self, name: &str) {
        self.update(|s| {
            s.alpn.remove(name);
        });
    }

    /// Publishes the DNS-01 TXT value of `token` for `name` (lowercase, no trailing dot).
    pub fn put_dns01(&self, name: &str, token: &str, challenge: TxtChallenge) {
        self.update(|s| {
            s.dns01
                .entry(name.into())
                .or_default()
                .insert(token.into(), challenge);
            s.index_dns01();
        });
    }

    /// Withdraws the DNS-01 TXT value of `token` for `name`; returns whether it was there.
    pub fn remove_dns01(&self, name: &str, token: &str) -> bool {
        let mut found = false;
        self.update(|s| {
            if let Some(values) = s.dns01.get_mut(name) {
                found = values.remove(token).is_some();
                if values.is_empty() {
                    s.dns01.remove(name);
                }
            }
            s.index_dns01();
        });
        found
    }

    /// Drops expired ACME answers; returns the tokens dropped so their files can go too.
    pub fn sweep_expired(&self, now: SystemTime) -> Vec<Arc<str>> {
        let mut gone = Vec::new();
        self.update(|s| {
            // DNS-01 values live in memory (and etcd) only: nothing to remove elsewhere.
            let before = s.dns01.len();
            for values in s.dns01.values_mut() {
                values.retain(|_, c| now < c.expires);
            }
            s.dns01.retain(|_, values| !values.is_empty());
            if s.dns01.len() != before {
                s.index_dns01();
            }
            s.acme.retain(|token, stored| {
                let keep = stored.answer.expires.is_none_or(|t| now < t);
                if !keep {
                    gone.push(token.clone());
                }
                keep
            })
        });
        gone
    }

    fn update(&self, change: impl FnOnce(&mut ChallengeSnapshot)) {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = ChallengeSnapshot::clone(&self.snapshot.load());
        change(&mut next);
        self.snapshot.store(Arc::new(next));
    }
}

impl ChallengeSnapshot {
    pub fn acme(&self) -> impl Iterator<Item = (&str, &AcmeAnswer)> {
        self.acme.iter().map(|(k, v)| (&**k, &v.answer))
    }
    /// `(host, file, entry)`, the host being the apex form under which it is stored.
    pub fn pki(&self) -> impl Iterator<Item = (&str, &str, &PkiFile)> {
        self.pki
            .iter()
            .flat_map(|(h, files)| files.iter().map(move |(f, v)| (&**h, &**f, &v.file)))
    }
    pub fn alpn_names(&self) -> impl Iterator<Item = &str> {
        self.alpn.keys().map(|k| &**k)
    }
    pub fn acme_count(&self) -> usize {
        self.acme.len()
    }
    pub fn pki_count(&self) -> usize {
        self.pki.values().map(HashMap::len).sum()
    }

    /// The DNS-01 TXT values answered for `name` at `now`, in token order.
    pub fn dns01_values(&self, name: &str, now: SystemTime) -> impl Iterator<Item = &str> {
        self.dns01
            .get(name)
            .into_iter()
            .flat_map(|values| values.values())
            .filter(move |c| now < c.expires)
            .map(|c| &*c.value)
    }

    /// Whether `name` holds DNS-01 values or is a parent of a name that does.
    pub fn dns01_name_exists(&self, name: &str) -> bool {
        self.dns01_names.contains(name)
    }

    /// `(name, token, challenge)` of every DNS-01 value held.
    pub fn dns01(&self) -> impl Iterator<Item = (&str, &str, &TxtChallenge)> {
        self.dns01
            .iter()
            .flat_map(|(name, values)| values.iter().map(move |(token, c)| (&**name, &**token, c)))
    }

    pub fn dns01_count(&self) -> usize {
        self.dns01
            .values()
            .map(std::collections::BTreeMap::len)
            .sum()
    }

    fn index_dns01(&mut self) {
        let mut names = std::collections::HashSet::new();
        for name in self.dns01.keys() {
            let mut rest: &str = name;
            loop {
                names.insert(Arc::from(rest));
                match rest.split_once('.') {
                    Some((_, parent)) if !parent.is_empty() => rest = parent,
                    _ => break,
                }
            }
        }
        self.dns01_names = names;
    }
}

impl fmt::Debug for AcmeAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcmeAnswer")
            .field("identifier", &self.identifier)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn store() -> (tempfile::TempDir, ChallengeStore) {
        let dir = tempfile::tempdir().unwrap();
        let acme = dir.path().join("acme");
        let pki = dir.path().join("pki");
        std::fs::create_dir_all(&acme).unwrap();
        std::fs::create_dir_all(&pki).unwrap();
        (dir, ChallengeStore::new(acme, pki))
    }

    fn answer(body: &str, identifier: Option<&str>) -> AcmeAnswer {
        AcmeAnswer {
            key_authorization: Bytes::copy_from_slice(body.as_bytes()),
            identifier: identifier.map(Into::into),
            expires: None,
            created: SystemTime::now(),
        }
    }

    #[test]
    fn bound_token_answers_only_its_identifier() {
        let (_d, s) = store();
        s.put_acme("tok", answer("tok.x", Some("a.example")));
        assert!(s.acme_answer("tok", "a.example").is_some());
        assert!(s.acme_answer("tok", "evil.example").is_none());
    }

    #[test]
    fn unbound_token_answers_every_host() {
        let (_d, s) = store();
        s.put_acme("tok", answer("tok.x", None));
        assert_eq!(
            &s.acme_answer("tok", "any.example").unwrap().0[..],
            b"tok.x"
        );
    }

    #[test]
    fn expired_token_is_not_answered_and_is_swept() {
        let (_d, s) = store();
        let mut a = answer("tok.x", None);
        a.expires = Some(SystemTime::now() - std::time::Duration::from_secs(1));
        s.put_acme("tok", a);
        assert!(s.acme_answer("tok", "h").is_none());
        assert_eq!(s.sweep_expired(SystemTime::now()).len(), 1);
        assert_eq!(s.snapshot().acme_count(), 0);
    }

    #[test]
    fn pki_file_answers_on_apex_and_www() {
        let (_d, s) = store();
        let f = PkiFile {
            body: Bytes::from_static(b"abc"),
            created: SystemTime::now(),
        };
        s.put_pki("www.example.com", "fileauth.txt", f);
        assert!(s.pki_answer("example.com", "fileauth.txt").is_some());
        assert!(s.pki_answer("www.example.com", "fileauth.txt").is_some());
        assert!(s.pki_answer("other.example.com", "fileauth.txt").is_none());
        assert!(s.remove_pki("example.com", "fileauth.txt"));
        assert!(s.pki_answer("www.example.com", "fileauth.txt").is_none());
    }

    #[test]
    fn webroot_file_is_read_at_request_time() {
        let (d, s) = store();
        assert!(s.acme_answer("late", "h").is_none());
        std::fs::write(d.path().join("acme").join("late"), b"late.key").unwrap();
        assert_eq!(&s.acme_answer("late", "h").unwrap().0[..], b"late.key");
    }

    #[test]
    fn webroot_skips_directories_and_large_files() {
        let (d, s) = store();
        std::fs::create_dir(d.path().join("acme").join("dir")).unwrap();
        assert!(s.acme_answer("dir", "h").is_none());
        let big = vec![b'a'; (webroot::MAX_WEBROOT_FILE + 1) as usize];
        std::fs::write(d.path().join("acme").join("big"), big).unwrap();
        assert!(s.acme_answer("big", "h").is_none());
    }

    #[test]
    fn stateless_answers_configured_names_only() {
        let (_d, s) = store();
        assert!(s.acme_answer("anytoken", "a.test").is_none());
        s.set_stateless(Some(("THUMB".into(), vec!["a.test".into()])));
        assert_eq!(
            &s.acme_answer("anytoken", "a.test").unwrap().0[..],
            b"anytoken.THUMB"
        );
        assert!(s.acme_answer("anytoken", "b.test").is_none());
        s.set_stateless(None);
        assert!(s.acme_answer("anytoken", "a.test").is_none());
    }

    #[test]
    fn watched_webroot_sees_new_and_removed_files() {
        let (d, s) = store();
        std::fs::write(d.path().join("acme").join("before"), b"before.x").unwrap();
        s.watch_webroot().unwrap();
        assert!(s.acme_answer("before", "h").is_some());
        assert!(s.acme_answer("nothing", "h").is_none());
        std::fs::write(d.path().join("acme").join("after"), b"after.x").unwrap();
        std::fs::write(d.path().join("pki").join("f.txt"), b"pki").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while s.acme_answer("after", "h").is_none() || s.pki_answer("a.test", "f.txt").is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the watch never saw the new files"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::fs::remove_file(d.path().join("acme").join("after")).unwrap();
        while s.webroot.index_may_hold(false, "after") {
            assert!(
                std::time::Instant::now() < deadline,
                "the watch never saw the removal"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(s.acme_answer("after", "h").is_none());
    }

    #[test]
    fn webroot_never_follows_symlinks() {
        let (d, s) = store();
        std::fs::write(d.path().join("secret"), b"secret").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), d.path().join("acme").join("link"))
            .unwrap();
        assert!(s.acme_answer("link", "h").is_none());
    }

    #[test]
    fn dns01_values_are_kept_per_token_and_parents_exist() {
        let (_d, s) = store();
        let later = SystemTime::now() + std::time::Duration::from_secs(60);
        let txt = |v: &str, expires| TxtChallenge {
            value: v.into(),
            expires,
        };
        s.put_dns01("shop.example", "t1", txt("apex", later));
        s.put_dns01("shop.example", "t2", txt("wild", later));
        let snap = s.snapshot();
        let now = SystemTime::now();
        let values: Vec<&str> = snap.dns01_values("shop.example", now).collect();
        assert_eq!(values, ["apex", "wild"]);
        assert!(snap.dns01_name_exists("example"));
        assert!(!snap.dns01_name_exists("other"));
        assert!(s.remove_dns01("shop.example", "t1"));
        assert!(!s.remove_dns01("shop.example", "t1"));
        s.put_dns01(
            "old.example",
            "t3",
            txt("gone", now - std::time::Duration::from_secs(1)),
        );
        assert_eq!(s.snapshot().dns01_values("old.example", now).count(), 0);
        s.sweep_expired(now);
        let snap = s.snapshot();
        assert_eq!(snap.dns01_count(), 1);
        assert!(!snap.dns01_name_exists("old.example"));
        assert!(s.remove_dns01("shop.example", "t2"));
        assert!(!s.snapshot().dns01_name_exists("example"));
    }

    #[test]
    fn apex_of_keeps_bare_www_labels() {
        assert_eq!(apex_of("www.example.com"), "example.com");
        assert_eq!(apex_of("example.com"), "example.com");
        assert_eq!(apex_of("www.com"), "www.com");
    }
}
