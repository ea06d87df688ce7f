//! The admin bearer token: read from its file, or created there (mode 0600) at first start.

use std::io;
use std::path::Path;

use base64::Engine;

use crate::state::write_atomic;

/// The secret every state-changing admin request must present.
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    /// Reads the token at `path`, or writes a new random one there; returns whether it was made.
    pub fn load_or_create(path: &Path) -> io::Result<(Self, bool)> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let token = text.trim().to_owned();
                if token.len() < 16 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: the admin token must be at least 16 characters",
                            path.display()
                        ),
                    ));
                }
                Ok((AdminToken(token), false))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let bytes: [u8; 32] = rand::random();
                let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                write_atomic(path, format!("{token}\n").as_bytes(), 0o600)?;
                Ok((AdminToken(token), true))
            }
            Err(e) => Err(e),
        }
    }

    /// A token read by a client (the CLI) to present, not to check.
    pub fn from_secret(secret: String) -> Self {
        AdminToken(secret)
    }

    /// Compares in constant time, so the token cannot be guessed byte by byte from timings.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.trim().as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn created_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let (a, made) = AdminToken::load_or_create(&path).unwrap();
        assert!(made);
        let (b, made) = AdminToken::load_or_create(&path).unwrap();
        assert!(!made);
        assert!(b.matches(a.as_str()));
        assert!(!b.matches("wrong"));
        assert!(!b.matches(""));
    }

    #[test]
    fn short_token_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        std::fs::write(&path, "short\n").unwrap();
        assert!(AdminToken::load_or_create(&path).is_err());
    }
}
