//! Backup certificates (`[[certificate]] backup = true`): a second certificate for the same
//! names from another CA, with a key of its own, kept valid and never served, and swapped in
//! at once when the served one must be replaced early — the way Cloudflare keeps a backup
//! certificate from a second CA for every edge certificate, so that a mass revocation at one CA
//! (Let's Encrypt's 2026 drill moved the ARI windows of the certificates to be revoked into the
//! past, RFC 9773 §4.2) never leaves a name without a valid certificate while a new one is
//! ordered.
//!
//! The backup lives in the secret store (mode 0600 in the state directory, sealed in the fleet
//! store), not in the certificate store: whatever is in the certificate store may be presented.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::AcmeError;
use crate::config::CertId;
use crate::state::certs::ValidCert;
use crate::state::State;

/// The secret record of `id`'s backup.
pub(super) fn secret_name(id: &CertId) -> String {
    format!("backup-{id}")
}

/// The persisted form.
#[derive(Serialize, Deserialize)]
struct BackupFile {
    /// The `[[acme.ca]]` name of the CA that issued it.
    ca: String,
    created: String,
    /// Chain then key, PEM.
    pem: String,
}

/// A backup certificate that passed the store's checks.
#[derive(Clone)]
pub struct Backup {
    pub ca: String,
    pub cert: ValidCert,
}

/// Keeps `cert`, issued by `ca`, as the backup of `id`.
pub(super) async fn store(
    state: &State,
    id: &CertId,
    ca: &str,
    cert: &ValidCert,
) -> Result<(), AcmeError> {
    let file = BackupFile {
        ca: ca.to_owned(),
        created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        pem: String::from_utf8_lossy(&cert.pem).into_owned(),
    };
    let json = serde_json::to_vec(&file).map_err(|e| AcmeError::Storage(e.to_string()))?;
    state
        .store_secret(&secret_name(id), &json)
        .await
        .map_err(|e| AcmeError::Storage(e.to_string()))
}

/// The backup of `id`, checked again now (C1–C6 against `names`); `None` when there is none or
/// it no longer passes (expired, say): a backup that cannot be served is no backup.
pub(super) async fn load(
    state: &State,
    id: &CertId,
    names: &[String],
) -> Result<Option<Backup>, AcmeError> {
    let Some(bytes) = state
        .load_secret(&secret_name(id))
        .await
        .map_err(|e| AcmeError::Storage(e.to_string()))?
    else {
        return Ok(None);
    };
    let file: BackupFile = serde_json::from_slice(&bytes)
        .map_err(|e| AcmeError::Storage(format!("{}: {e}", secret_name(id))))?;
    match crate::state::certs::validate(file.pem.as_bytes(), b"", names, SystemTime::now()) {
        Ok(cert) => Ok(Some(Backup { ca: file.ca, cert })),
        Err(refusal) => {
            tracing::warn!(certificate = %id, error = %refusal, "the backup certificate no longer passes the checks; a new one is ordered");
            Ok(None)
        }
    }
}

/// Drops the backup of `id` (it was swapped in, or is to be replaced).
pub(super) async fn discard(state: &State, id: &CertId) -> Result<(), AcmeError> {
    state
        .forget_secret(&secret_name(id))
        .await
        .map_err(|e| AcmeError::Storage(e.to_string()))
}

/// Why the served certificate must be replaced at once by the backup, if it must: the CA's ARI
/// window ends in the past (the CA wants it replaced now: it is about to be revoked, RFC 9773
/// §4.2), or its renewal keeps failing with less than a tenth of its lifetime left.
pub fn must_replace_early(
    ari_window_end: Option<SystemTime>,
    consecutive_failures: u32,
    not_before: SystemTime,
    not_after: SystemTime,
    now: SystemTime,
) -> Option<SwapReason> {
    if ari_window_end.is_some_and(|end| end <= now) {
        return Some(SwapReason::AriPast);
    }
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let left = not_after.duration_since(now).unwrap_or_default();
    if consecutive_failures > 0 && left < lifetime / 10 {
        return Some(SwapReason::FailingNearExpiry);
    }
    None
}

/// Why a backup was swapped in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwapReason {
    /// The CA's ARI window for the served certificate ends in the past.
    #[serde(rename = "ari-window-past")]
    AriPast,
    /// The served certificate's renewal failed with under a tenth of its lifetime left.
    FailingNearExpiry,
}

impl SwapReason {
    /// The `reason` label of `dcv_acme_backup_swaps_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            SwapReason::AriPast => "ari-window-past",
            SwapReason::FailingNearExpiry => "failing-near-expiry",
        }
    }
}

/// Whether a new backup is to be ordered: none is kept, or the one kept has less than a third
/// of its lifetime left (half for lifetimes under 10 days, as for renewals,
/// [`super::schedule::SHORT_LIFETIME`]), so a backup is always good for a while when needed.
pub fn backup_due(backup: Option<&ValidCert>, now: SystemTime) -> bool {
    let Some(cert) = backup else { return true };
    let lifetime = cert
        .not_after
        .duration_since(cert.not_before)
        .unwrap_or_default();
    let share = if lifetime < super::schedule::SHORT_LIFETIME {
        0.5
    } else {
        2.0 / 3.0
    };
    now >= cert.not_before + lifetime.mul_f64(share)
}

/// Shortest remaining life for a backup to be swapped in: less is no rescue.
pub(super) const MIN_BACKUP_LIFE: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_backup_is_renewed_with_a_third_of_its_life_left_or_half_when_short() {
        let ca = crate::testkit::TestCa::new("b").unwrap();
        let now = SystemTime::now();
        let cert = |from: SystemTime, to: SystemTime| {
            let leaf = ca.leaf_valid_between(&["b.test"], from, to).unwrap();
            crate::state::certs::validate(
                leaf.chain_pem.as_bytes(),
                leaf.key_pem.as_bytes(),
                &[],
                now,
            )
            .unwrap()
        };
        assert!(backup_due(None, now));
        // 90 days, 50 in: kept; 70 in (20 left, under a third): due.
        assert!(!backup_due(
            Some(&cert(now - 50 * DAY, now + 40 * DAY)),
            now
        ));
        assert!(backup_due(Some(&cert(now - 70 * DAY, now + 20 * DAY)), now));
        // 6 days, 2 in: kept; 4 in (past half): due.
        assert!(!backup_due(Some(&cert(now - 2 * DAY, now + 4 * DAY)), now));
        assert!(backup_due(Some(&cert(now - 4 * DAY, now + 2 * DAY)), now));
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn the_served_certificate_is_replaced_early_only_when_it_must() {
        let now = SystemTime::now();
        let (nb, na) = (now - 80 * DAY, now + 10 * DAY);
        // ARI window in the past: now, whatever is left.
        assert_eq!(
            must_replace_early(Some(now - DAY), 0, nb, na, now),
            Some(SwapReason::AriPast)
        );
        // A window to come, no failure: no.
        assert_eq!(must_replace_early(Some(now + DAY), 0, nb, na, now), None);
        // Failing with 10 of 90 days left (over a tenth): not yet; with 8, yes.
        assert_eq!(must_replace_early(None, 3, nb, na, now), None);
        assert_eq!(
            must_replace_early(None, 3, now - 82 * DAY, now + 8 * DAY, now),
            Some(SwapReason::FailingNearExpiry)
        );
        // Near its end but renewing fine: the renewal takes care of it.
        assert_eq!(
            must_replace_early(None, 0, now - 82 * DAY, now + 8 * DAY, now),
            None
        );
    }
}
