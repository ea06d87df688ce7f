//! Certificates over ACME (RFC 8555) with instant-acme: the account, the order flow, TLS-ALPN-01
//! certificates, and the renewer that keeps every configured certificate valid.
//!
//! ACME writes into `state` (tokens bound to their identifier, TLS-ALPN-01 keys, certificates)
//! and never touches serving directly: the proxy and the TLS resolver read the same stores.

pub mod account;
pub mod client;
pub mod keys;
pub mod order;
pub mod problem;
pub mod renewer;
pub mod schedule;
pub mod selfcheck;
pub mod tlsalpn;

pub use problem::ProblemDoc;
pub use renewer::{Renewer, RenewerHandle};

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
