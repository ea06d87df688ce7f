//! ACME problem documents (RFC 8555 §6.7, RFC 7807) kept in a form that can be shown in
//! `/v1/status` and counted by type, and their diagnosis: the catalogue cause and remedy of the
//! problem and of each subproblem, which is what `/v1/status`, `certs list`, the log and the
//! `dcv_acme_order_failures_total` metric show for a failed order.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::catalogue::{diagnose_acme_problem, Cause, ACME_ERROR_PREFIX};

/// A problem document with its subproblems.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProblemDoc {
    /// `urn:ietf:params:acme:error:…`
    #[serde(rename = "type")]
    pub kind: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The identifier the problem is about, when it is a failed challenge's `error` (RFC 8555
    /// §7.1.4: the challenge belongs to one authorization, hence one identifier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subproblems: Vec<SubproblemDoc>,
}

/// A subproblem about one identifier (RFC 8555 §6.7.1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SubproblemDoc {
    #[serde(rename = "type")]
    pub kind: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
}

/// ACME error namespace prefix.
pub(super) const ACME_ERROR: &str = ACME_ERROR_PREFIX;

impl ProblemDoc {
    /// The short type (`rateLimited`) without the URN prefix.
    pub fn short_type(&self) -> &str {
        short(&self.kind)
    }

    /// Whether the CA said to slow down (P4).
    pub fn is_rate_limited(&self) -> bool {
        self.short_type() == "rateLimited"
    }

    /// The failed challenge's `error` of the authorization for `identifier`: the problem
    /// document with the validation's detail (`Fetching http://…: Timeout during connect`).
    pub fn for_challenge(problem: &instant_acme::Problem, identifier: &str) -> Self {
        let mut doc = ProblemDoc::from(problem);
        doc.identifier = Some(identifier.to_owned());
        doc
    }

    /// The problem of a failed order: the order's own `error` when the CA set one, with the
    /// errors of the failed challenges added as subproblems for the identifiers it does not
    /// already cover (RFC 8555 §6.7.1: one subproblem per identifier) — or, when the order's
    /// error is one challenge's error copied, that challenge's identifier; without an order
    /// error, the first failed challenge's error, the others as its subproblems. `None` when
    /// there is neither.
    pub fn for_failed_order(
        order: Option<&instant_acme::Problem>,
        challenges: Vec<Self>,
    ) -> Option<Self> {
        let mut challenges = challenges.into_iter();
        let mut doc = match order {
            Some(problem) => ProblemDoc::from(problem),
            None => challenges.next()?,
        };
        for challenge in challenges {
            // Pebble copies the failed challenge's error into the order's: the same problem,
            // which then gets its identifier rather than a duplicate subproblem.
            if doc.identifier.is_none()
                && doc.subproblems.is_empty()
                && doc.kind == challenge.kind
                && doc.detail == challenge.detail
            {
                doc.identifier = challenge.identifier;
                continue;
            }
            let covered = doc.identifier.is_some() && doc.identifier == challenge.identifier
                || doc
                    .subproblems
                    .iter()
                    .any(|s| s.identifier.is_some() && s.identifier == challenge.identifier);
            if !covered {
                doc.subproblems.push(SubproblemDoc {
                    kind: challenge.kind,
                    detail: challenge.detail,
                    identifier: challenge.identifier,
                });
            }
        }
        Some(doc)
    }

    /// The catalogue's reading of this problem and of each subproblem.
    ///
    /// For a compound problem the top-level cause is the first subproblem's that has one: the
    /// subproblems say what went wrong for each identifier, the top-level type only sums them
    /// up (RFC 8555 §6.7.1; Let's Encrypt: `rejectedIdentifier` "Cannot issue for 2
    /// identifiers" over a `malformed` "does not end in a public suffix"). A problem that is
    /// itself about one identifier (a failed challenge's `error`) keeps its own cause first.
    pub fn diagnose(&self) -> Diagnosis {
        let subproblems: Vec<Diagnosis> = self
            .subproblems
            .iter()
            .map(|s| {
                Diagnosis::new(
                    FailureKind::Problem,
                    diagnose_acme_problem(&s.kind, &s.detail),
                    s.detail.clone(),
                    Some(short(&s.kind).to_owned()),
                    s.identifier.clone(),
                )
            })
            .collect();
        let own = diagnose_acme_problem(&self.kind, &self.detail);
        let first_sub = subproblems.iter().find_map(|s| s.cause);
        // A problem about one identifier (a failed challenge's error) speaks for itself.
        let cause = match self.identifier {
            Some(_) => own.or(first_sub),
            None => first_sub.or(own),
        };
        let mut diagnosis = Diagnosis::new(
            FailureKind::Problem,
            cause,
            self.detail.clone(),
            Some(self.short_type().to_owned()),
            self.identifier.clone(),
        );
        diagnosis.subproblems = subproblems;
        diagnosis
    }
}

fn short(kind: &str) -> &str {
    kind.strip_prefix(ACME_ERROR).unwrap_or(kind)
}

impl From<&instant_acme::Problem> for ProblemDoc {
    fn from(p: &instant_acme::Problem) -> Self {
        ProblemDoc {
            kind: p.r#type.clone().unwrap_or_else(|| "about:blank".into()),
            detail: p.detail.clone().unwrap_or_default(),
            status: p.status,
            identifier: None,
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

/// The identifier's value as it is written in a certificate request (`a.example`, `192.0.2.1`).
pub(super) fn identifier_value(id: &instant_acme::Identifier) -> String {
    match id {
        instant_acme::Identifier::Dns(v) => v.clone(),
        instant_acme::Identifier::Ip(ip) => ip.to_string(),
        other => format!("{other:?}"),
    }
}

impl std::fmt::Display for ProblemDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.short_type())?;
        if let Some(identifier) = &self.identifier {
            write!(f, "{identifier}: ")?;
        }
        f.write_str(&self.detail)?;
        for s in &self.subproblems {
            match &s.identifier {
                Some(identifier) => write!(f, "; {identifier}: {}", s.detail)?,
                None => write!(f, "; {}", s.detail)?,
            }
        }
        Ok(())
    }
}

/// What kind of failure an order (or the account) met: a problem document from the CA, or one
/// of the node's own reasons. The `type` label of `dcv_acme_order_failures_total` when there
/// is no ACME type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The CA answered with a problem document (RFC 8555 §6.7).
    Problem,
    /// The node's own check of its answer failed; the CA was not asked.
    SelfCheck,
    /// The CA could not be reached or answered something unusable.
    Transport,
    /// The CA kept the order pending past `acme.order_timeout`.
    Timeout,
    /// The issued certificate failed the store's checks.
    Refused,
    /// The account or the certificate could not be stored.
    Storage,
    /// The fleet store (etcd) could not be asked for a lock or the order count.
    Fleet,
    /// A key or CSR could not be made.
    Key,
    /// The `[acme]` settings cannot be used.
    Config,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Problem => "problem",
            FailureKind::SelfCheck => "self-check",
            FailureKind::Transport => "transport",
            FailureKind::Timeout => "timeout",
            FailureKind::Refused => "refused",
            FailureKind::Storage => "storage",
            FailureKind::Fleet => "fleet",
            FailureKind::Key => "key",
            FailureKind::Config => "config",
        }
    }
}

/// A failure read through the catalogue: `last_error` in `/v1/status`.
///
/// `cause`, `summary` and `remedy` are null when the catalogue has no cause for it (a
/// `badNonce`, a `serverInternal`, the CA unreachable): such a failure is shown by its ACME
/// type (`ca_type`) or its `kind` and detail, never forced into a cause that does not fit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Diagnosis {
    pub kind: FailureKind,
    /// The catalogue id (`H1`).
    pub cause: Option<Cause>,
    pub summary: Option<Cow<'static, str>>,
    pub remedy: Option<Cow<'static, str>>,
    /// What the CA (or the node) said.
    pub detail: String,
    /// The ACME error type without the URN prefix, when the CA sent a problem document.
    pub ca_type: Option<String>,
    /// The identifier the failure is about, when one is known.
    pub identifier: Option<String>,
    /// One per subproblem (RFC 8555 §6.7.1), each with its own cause.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subproblems: Vec<Diagnosis>,
}

impl Diagnosis {
    pub fn new(
        kind: FailureKind,
        cause: Option<Cause>,
        detail: String,
        ca_type: Option<String>,
        identifier: Option<String>,
    ) -> Self {
        Diagnosis {
            kind,
            cause,
            summary: cause.map(|c| c.summary().into()),
            remedy: cause.map(|c| c.remedy().into()),
            detail,
            ca_type,
            identifier,
            subproblems: Vec::new(),
        }
    }

    /// What to do: the cause's remedy, or for a failure the catalogue has no cause for, the
    /// remedy of its ACME type or kind (the CA unreachable, a stale nonce, a full disk).
    pub fn what_to_do(&self) -> &'static str {
        self.cause.map(Cause::remedy).unwrap_or_else(|| {
            crate::catalogue::remedy_without_cause(self.ca_type.as_deref(), self.kind.as_str())
        })
    }

    /// The catalogue id, or `none`: the `cause` label of `dcv_acme_order_failures_total`.
    pub fn cause_label(&self) -> &'static str {
        self.cause.map_or("none", Cause::id)
    }

    /// The ACME type, or the kind of failure: the `type` label of
    /// `dcv_acme_order_failures_total`.
    pub fn type_label(&self) -> &str {
        self.ca_type.as_deref().unwrap_or(self.kind.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn problem(json: &str) -> instant_acme::Problem {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn compound_problem_each_subproblem_gets_its_cause() {
        let doc = ProblemDoc::from(&problem(
            r#"{
            "type": "urn:ietf:params:acme:error:rejectedIdentifier",
            "detail": "Error creating new order :: Cannot issue for 2 identifiers",
            "status": 400,
            "subproblems": [
                {"type": "urn:ietf:params:acme:error:malformed",
                 "detail": "Error creating new order :: Name does not end in a public suffix",
                 "identifier": {"type": "dns", "value": "intranet.corp"}},
                {"type": "urn:ietf:params:acme:error:rejectedIdentifier",
                 "detail": "Error creating new order :: Policy forbids issuing for name",
                 "identifier": {"type": "dns", "value": "blocked.example"}},
                {"type": "urn:ietf:params:acme:error:serverInternal",
                 "detail": "something broke",
                 "identifier": {"type": "dns", "value": "other.example"}}
            ]
        }"#,
        ));
        let d = doc.diagnose();
        // The top takes the first subproblem's cause, not its own summary type's (P2).
        assert_eq!(d.cause, Some(Cause::P1));
        assert_eq!(d.ca_type.as_deref(), Some("rejectedIdentifier"));
        assert_eq!(d.remedy.as_deref(), Some(Cause::P1.remedy()));
        let subs: Vec<_> = d
            .subproblems
            .iter()
            .map(|s| {
                (
                    s.identifier.as_deref().unwrap(),
                    s.cause,
                    s.ca_type.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            subs,
            vec![
                ("intranet.corp", Some(Cause::P1), Some("malformed")),
                (
                    "blocked.example",
                    Some(Cause::P2),
                    Some("rejectedIdentifier")
                ),
                ("other.example", None, Some("serverInternal")),
            ]
        );
        assert_eq!(d.cause_label(), "P1");
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["cause"], "P1");
        assert_eq!(json["subproblems"][2]["cause"], serde_json::Value::Null);
        assert_eq!(json["subproblems"][2]["remedy"], serde_json::Value::Null);
        // What the log says to do: the cause's remedy, else the one of the CA's type.
        assert_eq!(d.what_to_do(), Cause::P1.remedy());
        assert!(d.subproblems[2]
            .what_to_do()
            .contains("the CA failed on its side"));
    }

    #[test]
    fn a_failure_without_a_cause_still_says_what_to_do() {
        let d = Diagnosis::new(
            FailureKind::Transport,
            None,
            "connection refused".into(),
            None,
            None,
        );
        assert!(
            d.what_to_do().contains("cannot reach the CA"),
            "{}",
            d.what_to_do()
        );
    }

    #[test]
    fn failed_challenges_become_subproblems_of_the_order_error() {
        let h1 = ProblemDoc::for_challenge(
            &problem(
                r#"{"type": "urn:ietf:params:acme:error:connection",
                    "detail": "127.0.0.99: Fetching http://a.test/.well-known/acme-challenge/x: Timeout during connect (likely firewall problem)",
                    "status": 400}"#,
            ),
            "a.test",
        );
        let h2 = ProblemDoc::for_challenge(
            &problem(
                r#"{"type": "urn:ietf:params:acme:error:unauthorized",
                    "detail": "Invalid response from http://www.a.test/.well-known/acme-challenge/y: 404"}"#,
            ),
            "www.a.test",
        );
        // No order error: the first challenge's is the top, the second a subproblem.
        let doc = ProblemDoc::for_failed_order(None, vec![h1.clone(), h2.clone()]).unwrap();
        assert_eq!(doc.identifier.as_deref(), Some("a.test"));
        assert_eq!(doc.subproblems.len(), 1);
        let d = doc.diagnose();
        // The top is about a.test and keeps its own cause; the subproblem has its own.
        assert_eq!(d.cause, Some(Cause::H1));
        assert_eq!(d.subproblems[0].cause, Some(Cause::H2));
        assert!(d.detail.contains("Timeout during connect"));
        assert_eq!(
            doc.to_string(),
            "connection: a.test: 127.0.0.99: Fetching http://a.test/.well-known/acme-challenge/x: Timeout during connect (likely firewall problem); www.a.test: Invalid response from http://www.a.test/.well-known/acme-challenge/y: 404"
        );

        // A single failed challenge: its cause is the order's.
        let doc = ProblemDoc::for_failed_order(None, vec![h1.clone()]).unwrap();
        let d = doc.diagnose();
        assert_eq!(d.cause, Some(Cause::H1));
        assert_eq!(d.identifier.as_deref(), Some("a.test"));
        assert_eq!(d.ca_type.as_deref(), Some("connection"));

        // With the order's own error (Pebble sets it): kept as the top, the challenges'
        // details added per identifier.
        let order = problem(
            r#"{"type": "urn:ietf:params:acme:error:connection", "detail": "validation failed"}"#,
        );
        let doc = ProblemDoc::for_failed_order(Some(&order), vec![h1, h2]).unwrap();
        assert_eq!(doc.detail, "validation failed");
        assert_eq!(doc.subproblems.len(), 2);
        let d = doc.diagnose();
        assert_eq!(d.cause, Some(Cause::H1));
        assert_eq!(d.subproblems[1].cause, Some(Cause::H2));
        assert!(ProblemDoc::for_failed_order(None, Vec::new()).is_none());

        // Pebble: the order's error is the failed challenge's, copied without its identifier.
        let copied = problem(
            r#"{"type": "urn:ietf:params:acme:error:connection",
                "detail": "127.0.0.99: Fetching http://a.test/.well-known/acme-challenge/x: Timeout during connect (likely firewall problem)",
                "status": 400}"#,
        );
        let h1 = ProblemDoc::for_challenge(&copied, "a.test");
        let doc = ProblemDoc::for_failed_order(Some(&copied), vec![h1]).unwrap();
        assert_eq!(doc.identifier.as_deref(), Some("a.test"));
        assert!(doc.subproblems.is_empty());
        assert_eq!(doc.diagnose().cause, Some(Cause::H1));
    }

    #[test]
    fn problems_outside_the_catalogue_keep_their_type_and_no_cause() {
        for (kind, detail) in [
            ("badNonce", "JWS has an invalid anti-replay nonce"),
            ("serverInternal", "the CA is having a bad day"),
            ("accountDoesNotExist", "no account for this key"),
        ] {
            let doc = ProblemDoc::from(&problem(&format!(
                r#"{{"type": "urn:ietf:params:acme:error:{kind}", "detail": "{detail}"}}"#
            )));
            let d = doc.diagnose();
            assert_eq!(d.cause, None, "{kind}");
            assert_eq!(d.summary, None);
            assert_eq!(d.ca_type.as_deref(), Some(kind));
            assert_eq!(d.cause_label(), "none");
            assert_eq!(d.type_label(), kind);
        }
        let rate = ProblemDoc::from(&problem(
            r#"{"type": "urn:ietf:params:acme:error:rateLimited", "detail": "too many certificates already issued for exact set of domains"}"#,
        ));
        assert_eq!(rate.diagnose().cause, Some(Cause::P4));
    }
}
