//! The values stored in etcd, as JSON. Private keys are only ever present sealed.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// `<prefix>/tokens/<token>`: the record of the state directory's token files.
pub(crate) use crate::state::token_record::TokenRecord;

/// `<prefix>/pki/<host>/<file>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PkiRecord {
    pub(crate) content_base64: String,
    pub(crate) created_unix: u64,
}

/// `<prefix>/certs/<id>`: the chain in clear (it is public), the key sealed with the fleet key
/// (associated data: this etcd key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CertRecord {
    pub(crate) chain_pem: String,
    pub(crate) key_sealed: String,
    /// SHA-256 of the leaf, so a node can tell it already serves this one without opening it.
    pub(crate) fingerprint: String,
    /// The node that put it.
    pub(crate) node: String,
}

/// `<prefix>/alpn/<name>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AlpnRecord {
    pub(crate) key_authorization: String,
    pub(crate) expires_unix: u64,
}

/// `<prefix>/dns01/<name>/<token>`: a DNS-01 TXT value (RFC 8555 §8.4), public once published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Dns01Record {
    pub(crate) value: String,
    pub(crate) expires_unix: u64,
}

/// `<prefix>/secrets/<name>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SecretRecord {
    pub(crate) sealed: String,
}

/// `<prefix>/budget/<n>`: one new order counted against the account's budget, under a lease
/// of the budget's window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BudgetSlotRecord {
    /// The node that placed the order.
    pub(crate) node: String,
    /// When, in seconds since the epoch.
    pub(crate) placed: u64,
}

/// `<prefix>/members/<node id>`: what the other nodes (and a probe) need to reach this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node_id: String,
    /// Where the world reaches this node (`fleet.public_addresses`).
    pub public_addresses: Vec<IpAddr>,
    /// Port of its first HTTP listener (where HTTP-01 and pki-validation are answered).
    pub http_port: Option<u16>,
    /// Port of its first HTTPS listener.
    pub https_port: Option<u16>,
    /// Where its DNS listener answers the validation zones (`[dns]`): the listen addresses,
    /// a wildcard one given as each public address. Empty without `[dns]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<std::net::SocketAddr>,
    pub version: String,
    pub started_unix: u64,
}
