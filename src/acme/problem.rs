//! ACME problem documents (RFC 8555 §6.7, RFC 7807) kept in a form that can be shown in
//! `/v1/status` and counted by type.

use serde::Serialize;

/// A problem document with its subproblems.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProblemDoc {
    /// `urn:ietf:params:acme:error:…`
    #[serde(rename = "type")]
    pub kind: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subproblems: Vec<SubproblemDoc>,
}

/// A subproblem about one identifier (RFC 8555 §6.7.1).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SubproblemDoc {
    #[serde(rename = "type")]
    pub kind: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
}

/// ACME error namespace prefix.
pub const ACME_ERROR: &str = "urn:ietf:params:acme:error:";

impl ProblemDoc {
    /// The short type (`rateLimited`) without the URN prefix.
    pub fn short_type(&self) -> &str {
        self.kind.strip_prefix(ACME_ERROR).unwrap_or(&self.kind)
    }

    /// Whether the CA said to slow down (P4).
    pub fn is_rate_limited(&self) -> bool {
        self.short_type() == "rateLimited"
    }
}

impl From<&instant_acme::Problem> for ProblemDoc {
    fn from(p: &instant_acme::Problem) -> Self {
        ProblemDoc {
            kind: p.r#type.clone().unwrap_or_else(|| "about:blank".into()),
            detail: p.detail.clone().unwrap_or_default(),
            status: p.status,
            subproblems: p
                .subproblems
                .iter()
                .map(|s| SubproblemDoc {
                    kind: s.r#type.clone().unwrap_or_default(),
                    detail: s.detail.clone().unwrap_or_default(),
                    identifier: s.identifier.as_ref().map(identifier_value),
                })
                .collect(),
        }
    }
}

fn identifier_value(id: &instant_acme::Identifier) -> String {
    match id {
        instant_acme::Identifier::Dns(v) => v.clone(),
        instant_acme::Identifier::Ip(ip) => ip.to_string(),
        other => format!("{other:?}"),
    }
}

impl std::fmt::Display for ProblemDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.short_type(), self.detail)?;
        for s in &self.subproblems {
            write!(f, "; {}", s.detail)?;
        }
        Ok(())
    }
}
