//! The ACME account: created once per directory, persisted (mode 0600) in the state directory,
//! and reused on every start, so a restart never makes a new account (rate limits count them).

use std::path::{Path, PathBuf};

use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};
use serde::{Deserialize, Serialize};

use super::client::AcmeHttp;
use super::AcmeError;
use crate::config::AcmeConfig;
use crate::state::fsio;

/// The persisted form: the credentials instant-acme needs, plus what an operator wants to see.
#[derive(Serialize, Deserialize)]
struct AccountFile {
    directory: String,
    contact: Vec<String>,
    created: String,
    credentials: AccountCredentials,
}

/// Where the account for `directory` is kept: one file per directory URL.
pub fn account_path(acme_dir: &Path, directory: &str) -> PathBuf {
    let digest = ring::digest::digest(&ring::digest::SHA256, directory.as_bytes());
    let hex = crate::state::certs::check::hex(&digest.as_ref()[..8]);
    acme_dir.join(format!("account-{hex}.json"))
}

/// Moves the stored account aside (`.json.gone`), so the next load creates a new one: used
/// when the CA says the account does not exist (a wiped test CA, a deactivated account).
pub fn forget(acme_dir: &Path, directory: &str) -> std::io::Result<()> {
    let path = account_path(acme_dir, directory);
    std::fs::rename(&path, path.with_extension("json.gone"))
}

/// Loads the account for the configured directory, or creates and persists it.
/// Returns the account and whether it was just created.
pub async fn load_or_create(
    config: &AcmeConfig,
    http: &AcmeHttp,
    acme_dir: &Path,
) -> Result<(Account, bool), AcmeError> {
    let path = account_path(acme_dir, &config.directory);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let file: AccountFile = serde_json::from_slice(&bytes)
                .map_err(|e| AcmeError::Storage(format!("{}: {e}", path.display())))?;
            let account = Account::builder_with_http(Box::new(http.clone()))
                .from_credentials(file.credentials)
                .await?;
            Ok((account, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
            let eab = config
                .eab
                .as_ref()
                .map(|e| ExternalAccountKey::new(e.key_id.clone(), &e.hmac_key));
            let (account, credentials) = Account::builder_with_http(Box::new(http.clone()))
                .create(
                    &NewAccount {
                        contact: &contact,
                        terms_of_service_agreed: config.terms_agreed,
                        only_return_existing: false,
                    },
                    config.directory.clone(),
                    eab.as_ref(),
                )
                .await?;
            let file = AccountFile {
                directory: config.directory.clone(),
                contact: config.contact.clone(),
                created: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string(),
                credentials,
            };
            let json =
                serde_json::to_vec_pretty(&file).map_err(|e| AcmeError::Storage(e.to_string()))?;
            std::fs::create_dir_all(acme_dir)
                .map_err(|e| AcmeError::Storage(format!("{}: {e}", acme_dir.display())))?;
            fsio::write_atomic(&path, &json, 0o600)
                .map_err(|e| AcmeError::Storage(format!("{}: {e}", path.display())))?;
            Ok((account, true))
        }
        Err(e) => Err(AcmeError::Storage(format!("{}: {e}", path.display()))),
    }
}
