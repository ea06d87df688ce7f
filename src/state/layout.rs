//! Where each kind of state lives under the state directory. One place, so that the admin API,
//! ACME, the fleet snapshot and the docs agree.
//!
//! ```text
//! <state_dir>/certs/<id>.pem          certificate chain followed by its private key (0600)
//! <state_dir>/tokens/<token>.json     ACME key authorizations put through the admin API
//! <state_dir>/pki/<host>/<file>       CA validation files put through the admin API
//! <state_dir>/webroot/.well-known/…   written by certbot --webroot, acme.sh -w, lego --http.webroot
//! <state_dir>/admin.token             bearer token of the admin API (0600), unless configured
//! ```

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The state directory and its sub-directories.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Creates every sub-directory (mode 0700: keys live here).
    pub fn create(&self) -> io::Result<()> {
        for dir in [
            self.root.clone(),
            self.certs(),
            self.tokens(),
            self.pki(),
            self.acme_webroot(),
            self.pki_webroot(),
        ] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn certs(&self) -> PathBuf {
        self.root.join("certs")
    }
    pub fn tokens(&self) -> PathBuf {
        self.root.join("tokens")
    }
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }
    pub fn webroot(&self) -> PathBuf {
        self.root.join("webroot")
    }
    /// `webroot/.well-known/acme-challenge`, where webroot ACME clients write tokens.
    pub fn acme_webroot(&self) -> PathBuf {
        self.webroot().join(".well-known").join("acme-challenge")
    }
    /// `webroot/.well-known/pki-validation`, for CA files dropped by hand.
    pub fn pki_webroot(&self) -> PathBuf {
        self.webroot().join(".well-known").join("pki-validation")
    }
}
