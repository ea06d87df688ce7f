//! The documents of the admin API: what each endpoint takes and answers. The routes write them,
//! the CLI, `dcv-proxy check` (the probe's node client) and the tests read them, so a field
//! renamed on one side is a compile error on the other, not a `null` read by a string key.
//!
//! Request bodies refuse unknown fields (a misspelt `ttl_secnds` is a 400 with serde's line and
//! column, not a silently ignored setting); answers accept them, so a client reads a node that
//! added fields. A value a client does not know (a state added later) is an error that says so;
//! `dcv-proxy certs list --json` shows any node's document as it is. Times are RFC 3339
//! strings, as everywhere in the API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalogue::Cause;
use crate::state::fleet::Member;

/// An enum as the documents spell it (`ordering`, `rate-limited`, `http-token`): its serde
/// name, so that a table or a page shows exactly the word the JSON has.
pub fn wire_name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "?".to_owned(),
    }
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// Every refusal: a 4xx or 5xx with why (and, for a refused certificate, the refusal's id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    /// The refusal's short name (`names-not-covered`, …), where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A `DELETE` that removed something: what it removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub removed: String,
}

// ---- ACME tokens (HTTP-01)

/// `PUT /v1/acme/tokens/<token>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenPut {
    /// `token.thumbprint` (RFC 8555 §8.1).
    pub key_authorization: String,
    /// The one name the token is answered for; none: every name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// How long it is answered; none: until removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// A published token. `token` and `key_authorization` are left out of a list read without the
/// bearer token: they are all it takes to fetch the answer from port 80.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_authorization: Option<String>,
    pub identifier: Option<String>,
    pub created: String,
    pub expires: Option<String>,
}

/// `GET /v1/acme/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenList {
    pub tokens: Vec<TokenEntry>,
    /// Set when the secrets were left out: how to see them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<String>,
}

// ---- pki-validation files

/// `PUT /v1/pki/<host>/<file>`: the file's content as text or as base64, one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkiPut {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_base64: Option<String>,
}

/// A registered validation file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkiFileView {
    pub host: String,
    /// The apex and www names this file answers on (H8).
    pub answers_on: [String; 2],
    pub file: String,
    pub size: usize,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    pub created: String,
}

/// `GET /v1/pki`, `GET /v1/pki/<host>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkiFiles {
    pub files: Vec<PkiFileView>,
}

// ---- certificates

/// `PUT /v1/certificates/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertPut {
    /// Leaf then intermediates (PEM); may also carry the key.
    pub certificate: String,
    /// PEM private key, unless it is in `certificate`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    /// Names the certificate must cover (C6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// A stored certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertView {
    pub id: String,
    pub names: Vec<String>,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub sha256_fingerprint: String,
    pub not_before: String,
    pub not_after: String,
    pub not_after_unix: u64,
    pub expires_in_seconds: u64,
    pub chain_length: usize,
    pub self_signed: bool,
    /// The certificate presented when no other covers the name.
    pub default: bool,
    /// `upload`, `acme`, `file`, …
    pub source: String,
    pub published: String,
    /// Names it covers for which another certificate is presented.
    pub not_served: Vec<NotServed>,
}

/// A name a certificate covers but is not presented for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotServed {
    pub name: String,
    pub served_by: String,
    pub reason: String,
}

/// `201` to a `PUT /v1/certificates/<id>`: the stored certificate, and a warning per name
/// another certificate keeps being presented for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInstalled {
    #[serde(flatten)]
    pub certificate: CertView,
    pub warnings: Vec<String>,
}

/// `GET /v1/certificates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertList {
    pub certificates: Vec<CertView>,
}

/// `GET /v1/certificates/<id>`: the stored certificate, with the renewer's view (`A`, the
/// ACME status of one certificate) when ACME manages it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertDetail<A> {
    #[serde(flatten)]
    pub certificate: CertView,
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub acme: Option<A>,
}

/// `GET /v1/certificates/<id>` of a certificate configured for ACME and not issued yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertNotIssued<A> {
    pub id: String,
    /// Always `false`.
    pub issued: bool,
    pub acme: A,
}

/// `202` to `POST /v1/certificates/<id>/renew`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewRequested {
    /// `requested`.
    pub renewal: String,
    pub id: String,
}

// ---- TXT records the probe expects (D9, D10)

/// `PUT /v1/probe/txt/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxtPut {
    pub values: Vec<String>,
}

/// The values expected at one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxtRecord {
    pub name: String,
    pub values: Vec<String>,
}

/// `GET /v1/probe/txt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxtRecords {
    pub records: Vec<TxtRecord>,
}

// ---- status

/// `GET /v1/status`, which the status page renders too. `A` is the renewer's document (the
/// ACME status, `acme::AcmeStatus`); a reader that does not need it reads
/// `Status<serde::de::IgnoredAny>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status<A> {
    pub version: String,
    pub started: String,
    /// The node's clock: the renewer's `next_poll` and `next_attempt` are read against it.
    pub now: String,
    pub certificates: Vec<CertView>,
    /// Which certificate each name is presented with (README, "Certificate precedence").
    pub names: Vec<NameOwnerView>,
    pub challenges: ChallengeCounts,
    /// The renewer's state; none without `[[certificate]]` for ACME.
    #[serde(default = "none")]
    pub acme: Option<A>,
    /// The last self-probe result per name (`GET /v1/probe`); none: the probe is off.
    #[serde(default)]
    pub probe: Option<BTreeMap<String, ProbeSummary>>,
    pub fleet: FleetStatus,
}

/// The last probe of one name: its verdict, the causes of what failed or warned, and those
/// checks. Only `verdict` (null) for a name not probed yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSummary {
    /// `pass`, `warn`, `fail` or `error`; none: not probed yet.
    pub verdict: Option<String>,
    /// The causes of the checks that did not pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causes: Option<Vec<Cause>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The failing, warning and erring checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<Vec<ProbeFinding>>,
}

/// A check of a probe that did not pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeFinding {
    /// The check's kind (`http-token`, `dns-resolve`, …).
    pub check: String,
    pub target: String,
    /// `warn`, `fail` or `error`.
    pub status: String,
    /// The cause the check names, if any.
    pub cause: Option<Cause>,
    pub detail: String,
}

fn none<A>() -> Option<A> {
    None
}

/// Which certificate a name is presented with, and those passed over for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameOwnerView {
    pub name: String,
    pub served_by: String,
    pub not_served_by: Vec<PassedOver>,
}

/// A certificate passed over for a name, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassedOver {
    pub certificate: String,
    pub reason: String,
}

/// How many answers the challenge store holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeCounts {
    pub acme_tokens: usize,
    pub pki_files: usize,
    pub tls_alpn: usize,
}

/// The state backend: `local` (one node, a directory: `{"backend": "local"}` and nothing
/// else) or `etcd` (a fleet, with [`EtcdFleet`]'s fields beside `backend`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetStatus {
    pub backend: String,
    #[serde(flatten, default)]
    pub etcd: Option<EtcdFleet>,
}

impl FleetStatus {
    /// A node on its own.
    pub fn local() -> Self {
        Self {
            backend: "local".into(),
            etcd: None,
        }
    }
}

/// A node's view of its fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdFleet {
    pub node_id: String,
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub connected: bool,
    /// The last etcd revision this node applied.
    pub revision: i64,
    /// The live members, this node included, by node id.
    pub members: Vec<Member>,
    /// Null until the node first fails to reach etcd.
    pub last_error: Option<FleetError>,
}

/// The fleet store's last error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetError {
    pub at: String,
    pub error: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A node on its own says only `backend`; a fleet node every field, `last_error` null
    /// and `members` empty included, as readers of the JSON have always seen it.
    #[test]
    fn the_fleet_document_has_the_same_fields_as_before() {
        let local = serde_json::to_value(FleetStatus::local()).unwrap();
        assert_eq!(local, serde_json::json!({"backend": "local"}));
        let etcd = FleetStatus {
            backend: "etcd".into(),
            etcd: Some(EtcdFleet {
                node_id: "n1".into(),
                endpoints: vec!["http://127.0.0.1:2379".into()],
                prefix: "/dcv".into(),
                connected: true,
                revision: 7,
                members: Vec::new(),
                last_error: None,
            }),
        };
        let json = serde_json::to_value(&etcd).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "backend": "etcd", "node_id": "n1", "endpoints": ["http://127.0.0.1:2379"],
                "prefix": "/dcv", "connected": true, "revision": 7, "members": [],
                "last_error": null
            })
        );
        assert_eq!(serde_json::from_value::<FleetStatus>(json).unwrap(), etcd);
        let back: FleetStatus = serde_json::from_value(local).unwrap();
        assert_eq!(back, FleetStatus::local());
    }
}
