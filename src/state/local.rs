//! The embedded default backend: challenge answers as files in the state directory, so a node
//! alone needs nothing else and a restart answers what it answered before.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use super::backend::{Backend, BackendError};
use super::challenge::{AcmeAnswer, ChallengeStore, PkiFile};
use super::fsio;
use super::layout::StateDir;
use super::names::apex_of;
use super::token_record::TokenRecord;

/// Files under `tokens/`, `pki/` and `acme/`.
#[derive(Clone)]
pub struct LocalBackend {
    dir: StateDir,
}

impl LocalBackend {
    pub fn new(dir: StateDir) -> Self {
        Self { dir }
    }

    /// Loads every token and pki file into `store`; returns how many of each, and the files that
    /// could not be read (reported, skipped).
    pub fn load_into(&self, store: &ChallengeStore) -> (usize, usize, Vec<(PathBuf, String)>) {
        let mut problems = Vec::new();
        let mut tokens = 0;
        let now = SystemTime::now();
        for path in list_files(&self.dir.tokens()) {
            let Some(token) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|t| super::names::is_token(t))
                .map(str::to_owned)
            else {
                continue;
            };
            match read_token(&path) {
                Ok(answer) if answer.expires.is_some_and(|t| t <= now) => {
                    let _ = fsio::remove_durable(&path);
                }
                Ok(answer) => {
                    store.put_acme(&token, answer);
                    tokens += 1;
                }
                Err(e) => problems.push((path, e)),
            }
        }
        let mut files = 0;
        for host_dir in list_dirs(&self.dir.pki()) {
            let Some(host) = host_dir
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
            else {
                continue;
            };
            for path in list_files(&host_dir) {
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if !super::names::is_file_name(name) {
                    continue;
                }
                match std::fs::read(&path) {
                    Ok(body) => {
                        let created = std::fs::metadata(&path)
                            .and_then(|m| m.modified())
                            .unwrap_or(now);
                        store.put_pki(
                            &host,
                            name,
                            PkiFile {
                                body: Bytes::from(body),
                                created,
                            },
                        );
                        files += 1;
                    }
                    Err(e) => problems.push((path.clone(), e.to_string())),
                }
            }
        }
        (tokens, files, problems)
    }

    /// Writes a token file (also the fleet's local snapshot of a shared token).
    pub(crate) fn write_token(&self, token: &str, answer: &AcmeAnswer) -> Result<(), BackendError> {
        let json = serde_json::to_vec(&TokenRecord::of(answer))
            .map_err(|e| BackendError::Encode(e.to_string()))?;
        let path = self.token_path(token);
        fsio::write_atomic(&path, &json, 0o600).map_err(|e| BackendError::io(&path, e))
    }

    pub(crate) fn remove_token_file(&self, token: &str) -> Result<(), BackendError> {
        let path = self.token_path(token);
        fsio::remove_durable(&path).map_err(|e| BackendError::io(&path, e))
    }

    pub(crate) fn write_pki(
        &self,
        host: &str,
        file: &str,
        entry: &PkiFile,
    ) -> Result<(), BackendError> {
        let path = self.pki_path(host, file);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| BackendError::io(dir, e))?;
        }
        fsio::write_atomic(&path, &entry.body, 0o644).map_err(|e| BackendError::io(&path, e))
    }

    pub(crate) fn remove_pki_file(&self, host: &str, file: &str) -> Result<(), BackendError> {
        let path = self.pki_path(host, file);
        fsio::remove_durable(&path).map_err(|e| BackendError::io(&path, e))?;
        if let Some(dir) = path.parent() {
            // Only succeeds when empty, which is the point.
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    }

    pub(crate) fn write_secret(&self, name: &str, bytes: &[u8]) -> Result<(), BackendError> {
        let path = self.secret_path(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| BackendError::io(dir, e))?;
        }
        fsio::write_atomic(&path, bytes, 0o600).map_err(|e| BackendError::io(&path, e))
    }

    /// `acme/<name>.json`: where the ACME account has always been kept.
    fn secret_path(&self, name: &str) -> PathBuf {
        self.dir.root().join("acme").join(format!("{name}.json"))
    }

    fn token_path(&self, token: &str) -> PathBuf {
        self.dir.tokens().join(format!("{token}.json"))
    }

    fn pki_path(&self, host: &str, file: &str) -> PathBuf {
        self.dir.pki().join(apex_of(host)).join(file)
    }
}

#[async_trait]
impl Backend for LocalBackend {
    async fn put_token(&self, token: &str, answer: &AcmeAnswer) -> Result<(), BackendError> {
        self.write_token(token, answer)
    }

    async fn remove_token(&self, token: &str) -> Result<(), BackendError> {
        self.remove_token_file(token)
    }

    async fn put_pki(&self, host: &str, file: &str, entry: &PkiFile) -> Result<(), BackendError> {
        self.write_pki(host, file, entry)
    }

    async fn remove_pki(&self, host: &str, file: &str) -> Result<(), BackendError> {
        self.remove_pki_file(host, file)
    }

    async fn load_secret(&self, name: &str) -> Result<Option<Vec<u8>>, BackendError> {
        let path = self.secret_path(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BackendError::io(&path, e)),
        }
    }

    async fn store_secret(&self, name: &str, bytes: &[u8]) -> Result<(), BackendError> {
        self.write_secret(name, bytes)
    }

    async fn forget_secret(&self, name: &str) -> Result<(), BackendError> {
        let path = self.secret_path(name);
        match std::fs::rename(&path, path.with_extension("json.gone")) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BackendError::io(&path, e)),
        }
    }
}

fn read_token(path: &Path) -> Result<AcmeAnswer, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let record: TokenRecord = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    Ok(record.into_answer())
}

fn list_files(dir: &Path) -> Vec<PathBuf> {
    list(dir, |t| t.is_file())
}

fn list_dirs(dir: &Path) -> Vec<PathBuf> {
    list(dir, |t| t.is_dir())
}

fn list(dir: &Path, keep: impl Fn(&std::fs::FileType) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| keep(&t)))
        .filter(|e| !fsio::is_temp_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub(crate) fn from_unix(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn tokens_and_files_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        state.create().unwrap();
        let backend = LocalBackend::new(state.clone());
        let answer = AcmeAnswer {
            key_authorization: Bytes::from_static(b"tok.thumb"),
            identifier: Some("a.test".into()),
            expires: Some(SystemTime::now() + Duration::from_secs(60)),
            created: SystemTime::now(),
        };
        backend.put_token("tok", &answer).await.unwrap();
        let stale = AcmeAnswer {
            expires: Some(SystemTime::now() - Duration::from_secs(60)),
            ..answer.clone()
        };
        backend.put_token("old", &stale).await.unwrap();
        let file = PkiFile {
            body: Bytes::from_static(b"content"),
            created: SystemTime::now(),
        };
        backend
            .put_pki("www.a.test", "fileauth.txt", &file)
            .await
            .unwrap();

        let store = ChallengeStore::new(state.acme_webroot(), state.pki_webroot());
        let (tokens, files, problems) = backend.load_into(&store);
        assert_eq!((tokens, files), (1, 1));
        assert!(problems.is_empty());
        assert_eq!(
            &store.acme_answer("tok", "a.test").unwrap().0[..],
            b"tok.thumb"
        );
        assert!(store.acme_answer("tok", "b.test").is_none());
        assert!(
            !state.tokens().join("old.json").exists(),
            "expired token swept at load"
        );
        assert_eq!(
            &store.pki_answer("a.test", "fileauth.txt").unwrap().0[..],
            b"content"
        );

        backend.remove_pki("a.test", "fileauth.txt").await.unwrap();
        assert!(!state.pki().join("a.test").exists());
    }
}
