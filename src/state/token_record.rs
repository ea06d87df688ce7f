//! One record for an HTTP-01 answer wherever it is stored: `tokens/<token>.json` in the state
//! directory and `<prefix>/tokens/<token>` in etcd hold the same JSON, so a fleet node's local
//! snapshot of a shared token is the file a node on its own would have written.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::challenge::AcmeAnswer;
use super::local::{from_unix, unix};

/// A token's answer as stored (times to the second).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    pub(crate) key_authorization: String,
    pub(crate) identifier: Option<String>,
    pub(crate) expires_unix: Option<u64>,
    pub(crate) created_unix: u64,
}

impl TokenRecord {
    pub(crate) fn of(answer: &AcmeAnswer) -> Self {
        Self {
            key_authorization: String::from_utf8_lossy(&answer.key_authorization).into_owned(),
            identifier: answer.identifier.as_deref().map(str::to_owned),
            expires_unix: answer.expires.map(unix),
            created_unix: unix(answer.created),
        }
    }

    pub(crate) fn into_answer(self) -> AcmeAnswer {
        AcmeAnswer {
            key_authorization: Bytes::from(self.key_authorization),
            identifier: self.identifier.map(Into::into),
            expires: self.expires_unix.map(from_unix),
            created: from_unix(self.created_unix),
        }
    }
}
