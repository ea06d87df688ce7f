//! The fleet key and the sealing of private keys stored in etcd (XChaCha20-Poly1305).
//!
//! Whoever can read etcd (a backup, a snapshot, a too-wide role) must not get a usable private
//! key: certificate keys and the ACME account are stored sealed with a key that lives only in a
//! file on the nodes. The etcd key is the associated data, so a sealed value copied under
//! another key (say, one certificate's key under another id) does not open.

use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Length of the fleet key in bytes.
pub(super) const KEY_LEN: usize = 32;
/// XChaCha20's nonce: 24 random bytes are safe to pick at random for every message.
const NONCE_LEN: usize = 24;
/// Marks the format, so a later change of algorithm can be told apart.
const VERSION: &str = "v1:";

/// Why the fleet key cannot be used or a value cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file cannot be read.
    #[error("fleet key file {path}: {source} (every node of a fleet needs the same key; make one with `head -c 32 /dev/urandom | base64 > {path}`, mode 0600)")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold 32 bytes in base64.
    #[error("fleet key file {path}: expected 32 bytes in base64 (e.g. `head -c 32 /dev/urandom | base64`), {found}")]
    Malformed { path: String, found: String },
    /// The value is not in the sealed format.
    #[error("sealed value is malformed: {0}")]
    Format(String),
    /// Authentication failed: another fleet key, another etcd key, or a tampered value.
    #[error("sealed value does not open with this fleet key (another key, moved or tampered)")]
    Open,
    /// Encryption failed (cannot happen with a valid key; reported rather than unwrapped).
    #[error("sealing failed")]
    Seal,
}

/// The fleet key. Its bytes never reach a log line (`Debug` is redacted).
#[derive(Clone)]
pub struct FleetKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for FleetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FleetKey(..)")
    }
}

impl FleetKey {
    /// Reads the key file: 32 bytes, base64 (standard or url-safe, padding optional).
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let text = std::fs::read_to_string(path).map_err(|source| SealError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(text.trim()).map_err(|found| SealError::Malformed {
            path: path.display().to_string(),
            found,
        })
    }

    /// The key from its base64 text; `Err` says what was found instead.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim_end_matches('=');
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
            .map_err(|e| format!("found text that is not base64 ({e})"))?;
        if bytes.len() != KEY_LEN {
            return Err(format!("found {} bytes", bytes.len()));
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| format!("found {} bytes", bytes.len()))?;
        Ok(Self { cipher })
    }

    /// Seals `plaintext` for storage under `etcd_key`: `v1:` + base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, etcd_key: &str, plaintext: &[u8]) -> Result<String, SealError> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: etcd_key.as_bytes(),
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        Ok(format!(
            "{VERSION}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// Opens a value sealed for `etcd_key`.
    pub fn open(&self, etcd_key: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let b64 = sealed
            .strip_prefix(VERSION)
            .ok_or_else(|| SealError::Format("unknown version".into()))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| SealError::Format(e.to_string()))?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(SealError::Format("too short".into()));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| SealError::Format("nonce".into()))?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: etcd_key.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(byte: u8) -> FleetKey {
        let text = base64::engine::general_purpose::STANDARD.encode([byte; KEY_LEN]);
        FleetKey::parse(&text).unwrap()
    }

    #[test]
    fn round_trip_and_fresh_nonce_every_time() {
        let k = key(1);
        let a = k.seal("/p/certs/a", b"secret").unwrap();
        let b = k.seal("/p/certs/a", b"secret").unwrap();
        assert_ne!(a, b);
        assert!(!a.contains("secret"));
        assert_eq!(k.open("/p/certs/a", &a).unwrap(), b"secret");
    }

    #[test]
    fn moved_value_or_other_key_does_not_open() {
        let sealed = key(1).seal("/p/certs/a", b"secret").unwrap();
        assert!(matches!(
            key(1).open("/p/certs/b", &sealed),
            Err(SealError::Open)
        ));
        assert!(matches!(
            key(2).open("/p/certs/a", &sealed),
            Err(SealError::Open)
        ));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(key(1).open("/p/certs/a", &tampered).is_err());
    }

    #[test]
    fn key_file_must_hold_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.key");
        assert!(matches!(FleetKey::load(&path), Err(SealError::Read { .. })));
        std::fs::write(&path, "c2hvcnQ=\n").unwrap();
        let e = FleetKey::load(&path).unwrap_err().to_string();
        assert!(e.contains("found 5 bytes"), "{e}");
        std::fs::write(
            &path,
            format!(
                "{}\n",
                base64::engine::general_purpose::STANDARD.encode([7u8; 32])
            ),
        )
        .unwrap();
        FleetKey::load(&path).unwrap();
    }
}
