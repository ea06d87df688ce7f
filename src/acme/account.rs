//! The ACME account: created once per directory, persisted (mode 0600 in the state directory, or
//! sealed in the fleet store), and reused on every start, so a restart never makes a new account
//! (rate limits count them) and a fleet orders with one account.

use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};
use serde::{Deserialize, Serialize};

use super::client::AcmeHttp;
use super::AcmeError;
use crate::config::{AcmeConfig, CaConfig};
use crate::state::State;

/// The persisted form: the credentials instant-acme needs, plus what an operator wants to see.
#[derive(Serialize, Deserialize)]
struct AccountFile {
    directory: String,
    contact: Vec<String>,
    created: String,
    credentials: AccountCredentials,
}

/// The name of the account record for `directory` (one per directory URL): kept as
/// `<state_dir>/acme/<name>.json` on a node alone, sealed under `<prefix>/secrets/<name>` in a
/// fleet, so every node orders with the same account.
pub(super) fn account_name(directory: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, directory.as_bytes());
    let hex = crate::state::certs::hex(&digest.as_ref()[..8]);
    format!("account-{hex}")
}

/// Moves the stored account aside, so the next load creates a new one: used when the CA says
/// the account does not exist (a wiped test CA, a deactivated account).
pub(super) async fn forget(state: &State, directory: &str) -> Result<(), AcmeError> {
    state
        .forget_secret(&account_name(directory))
        .await
        .map_err(|e| AcmeError::Storage(e.to_string()))
}

/// Loads the account at `ca`, or creates and persists it. Returns the account and whether it
/// was just created. One account per CA directory: a fallback CA has its own.
///
/// In a fleet the caller holds the `account` lock, so two nodes starting together do not both
/// create one.
pub(super) async fn load_or_create(
    config: &AcmeConfig,
    ca: &CaConfig,
    http: &AcmeHttp,
    state: &State,
) -> Result<(Account, bool), AcmeError> {
    let name = account_name(&ca.directory);
    let stored = state
        .load_secret(&name)
        .await
        .map_err(|e| AcmeError::Storage(e.to_string()))?;
    match stored {
        Some(bytes) => {
            let file: AccountFile = serde_json::from_slice(&bytes)
                .map_err(|e| AcmeError::Storage(format!("{name}: {e}")))?;
            let account = Account::builder_with_http(Box::new(http.clone()))
                .from_credentials(file.credentials)
                .await?;
            Ok((account, false))
        }
        None => {
            let contact: Vec<&str> = ca.contact.iter().map(String::as_str).collect();
            let eab = ca
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
                    ca.directory.clone(),
                    eab.as_ref(),
                )
                .await?;
            let file = AccountFile {
                directory: ca.directory.clone(),
                contact: ca.contact.clone(),
                created: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string(),
                credentials,
            };
            let json =
                serde_json::to_vec_pretty(&file).map_err(|e| AcmeError::Storage(e.to_string()))?;
            state
                .store_secret(&name, &json)
                .await
                .map_err(|e| AcmeError::Storage(e.to_string()))?;
            Ok((account, true))
        }
    }
}
