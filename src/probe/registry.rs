//! TXT records registered at run time through the admin API (`PUT /v1/probe/txt/<name>`), in
//! addition to the `[[probe.txt]]` entries of the configuration: an ACME client or an operator
//! doing DNS validation says what it published, and the probe checks it is live (D9, D10).
//!
//! Kept in `<state_dir>/probe-txt.json` so a restart keeps checking them.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::RwLock;

use crate::config::{ExpectedTxt, RecordName};
use crate::state::write_atomic;

/// The registered records: owner name → expected values.
pub struct TxtRegistry {
    path: Option<PathBuf>,
    records: RwLock<BTreeMap<RecordName, Vec<String>>>,
}

/// Why the registry could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The file is not what this module writes.
    #[error("{path}: not a TXT registry: {reason}")]
    Corrupt { path: String, reason: String },
}

impl TxtRegistry {
    /// A registry kept only in memory (tests, `check`).
    pub fn in_memory() -> Self {
        Self {
            path: None,
            records: RwLock::new(BTreeMap::new()),
        }
    }

    /// The registry persisted at `path`, loaded when the file exists.
    pub fn open(path: PathBuf) -> Result<Self, RegistryError> {
        let records = match std::fs::read(&path) {
            Ok(bytes) => {
                let raw: BTreeMap<String, Vec<String>> =
                    serde_json::from_slice(&bytes).map_err(|e| RegistryError::Corrupt {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                let mut records = BTreeMap::new();
                for (name, values) in raw {
                    let name = name.parse().map_err(|reason| RegistryError::Corrupt {
                        path: path.display().to_string(),
                        reason,
                    })?;
                    records.insert(name, values);
                }
                records
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(RegistryError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        Ok(Self {
            path: Some(path),
            records: RwLock::new(records),
        })
    }

    /// Every registered record, one entry per value.
    pub fn list(&self) -> Vec<ExpectedTxt> {
        self.read()
            .iter()
            .flat_map(|(name, values)| {
                values.iter().map(move |value| ExpectedTxt {
                    name: name.clone(),
                    value: value.clone(),
                })
            })
            .collect()
    }

    /// Replaces the expected values of `name`; persisted before it is visible.
    pub fn put(&self, name: RecordName, values: Vec<String>) -> Result<(), RegistryError> {
        let mut records = self.write();
        let mut next = records.clone();
        next.insert(name, values);
        self.persist(&next)?;
        *records = next;
        Ok(())
    }

    /// Forgets `name`; returns whether it was registered.
    pub fn remove(&self, name: &RecordName) -> Result<bool, RegistryError> {
        let mut records = self.write();
        if !records.contains_key(name) {
            return Ok(false);
        }
        let mut next = records.clone();
        next.remove(name);
        self.persist(&next)?;
        *records = next;
        Ok(true)
    }

    fn persist(&self, records: &BTreeMap<RecordName, Vec<String>>) -> Result<(), RegistryError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let raw: BTreeMap<&str, &Vec<String>> =
            records.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let bytes = serde_json::to_vec_pretty(&raw).map_err(|e| RegistryError::Corrupt {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        write_atomic(path, &bytes, 0o644).map_err(|source| RegistryError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<RecordName, Vec<String>>> {
        self.records.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<RecordName, Vec<String>>> {
        self.records.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn records_survive_a_restart_and_can_be_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe-txt.json");
        let name: RecordName = "_dnsauth.shop.dcvcheck.com".parse().unwrap();
        let registry = TxtRegistry::open(path.clone()).unwrap();
        registry
            .put(name.clone(), vec!["a".into(), "b".into()])
            .unwrap();
        let again = TxtRegistry::open(path.clone()).unwrap();
        assert_eq!(again.list().len(), 2);
        assert!(again.remove(&name).unwrap());
        assert!(!again.remove(&name).unwrap());
        assert!(TxtRegistry::open(path).unwrap().list().is_empty());
    }
}
