//! Certificates over ACME (RFC 8555) with instant-acme: the account, the order flow, TLS-ALPN-01
//! certificates, and the renewer that keeps every configured certificate valid.
//!
//! ACME writes into `state` (tokens bound to their identifier, TLS-ALPN-01 keys, certificates)
//! and never touches serving directly: the proxy and the TLS resolver read the same stores.

mod account;
mod backup;
mod client;
mod dns01;
mod keys;
mod order;
mod problem;
mod progress;
mod renewer;
/// Public for `benches/renewal_sim.rs`, which runs these rules on virtual time.
pub mod schedule;
mod selfcheck;
mod tlsalpn;

pub use backup::{backup_due, must_replace_early, Backup, SwapReason};
pub use dns01::txt_value;
pub use problem::{Diagnosis, FailureKind, ProblemDoc, SubproblemDoc};
pub use progress::{short_duration, Progress, Step};
pub use renewer::{
    AccountState, AccountStatus, AcmeStatus, BackupState, BackupStatus, CaSkip, CaState, CertState,
    CertStatus, CertificateChanges, OrderRecord, OrderResult, Renewer, RenewerHandle, SkipReason,
    SwapRecord,
};
pub use selfcheck::{gate_address, LocalSelfCheck, SelfCheck};

/// Why an ACME operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The `[acme]` settings cannot be used (CA bundle unreadable, …).
    #[error("ACME configuration: {0}")]
    Config(String),
    /// The CA answered with a problem document.
    #[error("the CA refused: {0}")]
    Problem(ProblemDoc),
    /// The CA could not be reached or answered something unusable.
    #[error("ACME transport: {0}")]
    Transport(String),
    /// A key or CSR could not be made.
    #[error("key generation: {0}")]
    Key(String),
    /// Account or certificate could not be stored.
    #[error("storage: {0}")]
    Storage(String),
    /// The fleet store (etcd) could not be asked for a lock or the order count.
    #[error("fleet store: {0}")]
    Fleet(String),
    /// The node's own check of a challenge failed, so the CA was not asked.
    #[error("self-check failed for {name}: {cause}")]
    SelfCheck { name: String, cause: String },
    /// The issued certificate failed the store's checks; the old one keeps serving.
    #[error("issued certificate refused: {0}")]
    Refused(String),
    /// The order did not complete in time.
    #[error("order timed out: {0}")]
    Timeout(String),
}

impl AcmeError {
    /// The problem document, when the CA sent one.
    pub fn problem(&self) -> Option<&ProblemDoc> {
        match self {
            AcmeError::Problem(p) => Some(p),
            _ => None,
        }
    }

    /// The failure read through the catalogue: the problem document's cause (and each
    /// subproblem's), or the cause a self-check failure names; no cause for what the catalogue
    /// does not describe (the CA unreachable, a storage error).
    pub fn diagnose(&self) -> Diagnosis {
        let plain = |kind: FailureKind, detail: &str| {
            Diagnosis::new(kind, None, detail.to_owned(), None, None)
        };
        match self {
            AcmeError::Problem(p) => p.diagnose(),
            AcmeError::SelfCheck { name, cause } => self_check_diagnosis(name, cause),
            AcmeError::Config(d) => plain(FailureKind::Config, d),
            AcmeError::Transport(d) => plain(FailureKind::Transport, d),
            AcmeError::Key(d) => plain(FailureKind::Key, d),
            AcmeError::Storage(d) => plain(FailureKind::Storage, d),
            AcmeError::Fleet(d) => plain(FailureKind::Fleet, d),
            AcmeError::Refused(d) => plain(FailureKind::Refused, d),
            AcmeError::Timeout(d) => plain(FailureKind::Timeout, d),
        }
    }
}

/// A self-check failure: the first cause its sentence names, and each further one as a
/// subproblem with its part of the sentence (`"H1 (…) at 127.0.0.99:80"`), so that every cause
/// the check saw comes with its remedy.
fn self_check_diagnosis(name: &str, sentence: &str) -> Diagnosis {
    let named = crate::catalogue::Cause::all_named_in(sentence);
    let mut top = Diagnosis::new(
        FailureKind::SelfCheck,
        named.first().map(|(_, c)| *c),
        sentence.to_owned(),
        None,
        Some(name.to_owned()),
    );
    for (at, cause) in named.into_iter().skip(1) {
        let part = &sentence[at..];
        let part = part.split_once("; ").map_or(part, |(p, _)| p);
        top.subproblems.push(Diagnosis::new(
            FailureKind::SelfCheck,
            Some(cause),
            part.to_owned(),
            None,
            Some(name.to_owned()),
        ));
    }
    top
}

impl From<instant_acme::Error> for AcmeError {
    fn from(e: instant_acme::Error) -> Self {
        match e {
            instant_acme::Error::Api(problem) => AcmeError::Problem(ProblemDoc::from(&problem)),
            instant_acme::Error::Timeout(_) => {
                AcmeError::Timeout("the CA kept the order pending".into())
            }
            other => AcmeError::Transport(error_chain(&other)),
        }
    }
}

/// `error: cause: cause…`: hyper's "client error (Connect)" alone does not say what failed.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Cause;

    #[test]
    fn a_self_check_failure_gets_every_cause_it_names() {
        let e = AcmeError::SelfCheck {
            name: "a.test".into(),
            cause: "self-check of a.test failed 5 time(s) in 3.8s: D8 (a CAA record forbids the CA from issuing for the name) at 127.0.0.1:53; H1 (port 80 or 443 cannot be reached) at 127.0.0.99:80".into(),
        };
        let d = e.diagnose();
        assert_eq!(d.kind, FailureKind::SelfCheck);
        assert_eq!(d.cause, Some(Cause::D8));
        assert_eq!(d.remedy.as_deref(), Some(Cause::D8.remedy()));
        assert_eq!(d.identifier.as_deref(), Some("a.test"));
        assert_eq!(d.type_label(), "self-check");
        assert_eq!(d.subproblems.len(), 1);
        assert_eq!(d.subproblems[0].cause, Some(Cause::H1));
        assert_eq!(
            d.subproblems[0].detail,
            "H1 (port 80 or 443 cannot be reached) at 127.0.0.99:80"
        );
        let local = AcmeError::SelfCheck {
            name: "a.test".into(),
            cause: "cannot connect to 127.0.0.1:80: Connection refused (os error 111) (H1)".into(),
        };
        assert_eq!(local.diagnose().cause, Some(Cause::H1));
        let plain = AcmeError::Transport("error trying to connect".into()).diagnose();
        assert_eq!((plain.cause, plain.type_label()), (None, "transport"));
    }
}
