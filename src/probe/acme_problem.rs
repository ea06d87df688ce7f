//! From a CA's error to a catalogue cause: an ACME problem document (RFC 8555 §6.7, type
//! `urn:ietf:params:acme:error:*` plus `detail`) or a CA console's message is mapped to the
//! cause id, whose remedy then tells the operator what to do. The detail strings are those the
//! catalogue quotes (Let's Encrypt's, Tencent Cloud's and Aliyun's wording).

use super::causes::Cause;

/// The ACME error namespace (RFC 8555 §6.7).
const ACME_ERROR_PREFIX: &str = "urn:ietf:params:acme:error:";

/// The cause of an ACME problem with type `problem_type` (full URN or the short name) and
/// `detail`; `None` when the problem is not a validation or policy failure of the catalogue
/// (e.g. `badNonce`, which the client retries).
pub fn diagnose(problem_type: &str, detail: &str) -> Option<Cause> {
    let kind = problem_type
        .strip_prefix(ACME_ERROR_PREFIX)
        .unwrap_or(problem_type);
    let d = detail.to_ascii_lowercase();
    let has = |needle: &str| d.contains(needle);
    let by_type = match kind {
        "dns" => Some(if has("caa") && (has("servfail") || has("refused")) {
            Cause::D3
        } else if has("nxdomain") {
            Cause::D1
        } else if has("timed out") || has("timeout") {
            Cause::D4
        } else if has("no valid ip") {
            Cause::D5
        } else {
            Cause::D2
        }),
        "caa" => Some(if has("servfail") {
            Cause::D3
        } else {
            Cause::D8
        }),
        "unknownHost" => Some(Cause::D5),
        "connection" => Some(if has("redirect") {
            Cause::H4
        } else if has("could not resolve") || has("no valid ip") {
            Cause::D5
        } else {
            Cause::H1
        }),
        "incorrectResponse" => Some(Cause::H7),
        "unauthorized" => {
            if has("unsafe domain") || has("safe browsing") {
                Some(Cause::P3)
            } else if has("policy forbids") {
                Some(Cause::P2)
            } else {
                http_failure(&d)
            }
        }
        "rejectedIdentifier" => Some(if has("public suffix") {
            Cause::P1
        } else {
            Cause::P2
        }),
        "rateLimited" => Some(if has("too frequent") {
            Cause::P9
        } else {
            Cause::P4
        }),
        "malformed" if has("public suffix") => Some(Cause::P1),
        "badCSR" if has("already used") || has("reuse") || has("same key") => Some(Cause::P7),
        "badCSR" => Some(Cause::P6),
        "tls" => Some(if has("certificate") {
            Cause::H10
        } else {
            Cause::C5
        }),
        _ => None,
    };
    by_type.or_else(|| console_message(&d))
}

/// Reads a problem document (JSON) and diagnoses it; for a compound problem the first
/// subproblem with a known cause wins (RFC 8555 §6.7.1).
pub fn diagnose_document(document: &[u8]) -> Option<Cause> {
    let value: serde_json::Value = serde_json::from_slice(document).ok()?;
    let text = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let top = diagnose(&text(&value, "type"), &text(&value, "detail"));
    let sub = value
        .get("subproblems")
        .and_then(serde_json::Value::as_array)
        .and_then(|subs| {
            subs.iter()
                .find_map(|s| diagnose(&text(s, "type"), &text(s, "detail")))
        });
    sub.or(top)
}

/// The status or body failures of an HTTP fetch, as Let's Encrypt words them.
fn http_failure(d: &str) -> Option<Cause> {
    let has = |needle: &str| d.contains(needle);
    if has("key authorization") && has("did not match") {
        Some(Cause::H7)
    } else if has("redirect") {
        Some(Cause::H4)
    } else if has("invalid response") && (has("404") || has("410")) {
        Some(Cause::H2)
    } else if has("invalid response") {
        Some(Cause::H3)
    } else if has("timeout") || has("connection refused") {
        Some(Cause::H1)
    } else {
        None
    }
}

/// Messages of CA consoles without an ACME type (Tencent Cloud, Aliyun and the like).
fn console_message(d: &str) -> Option<Cause> {
    let has = |needle: &str| d.contains(needle);
    let cause = if has("record not detected") {
        Cause::D9
    } else if has("record value wrong") || has("old txt") {
        Cause::D10
    } else if has("file not detected") {
        Cause::H2
    } else if has("file content incorrect") || has("content incorrect") {
        Cause::H7
    } else if has("not readable") || has("permission") {
        Cause::H3
    } else if has("timestamp expired") {
        Cause::H9
    } else if has("sensitive") {
        Cause::P5
    } else if has("cn invalid") || has("longer than 64") {
        Cause::P6
    } else if has("csr already used") || has("already used in an earlier order") {
        Cause::P7
    } else if has("whitelist") || has("allowlist") {
        Cause::P8
    } else if has("too frequent") {
        Cause::P9
    } else if has("parse failed") {
        Cause::C1
    } else if has("public suffix") {
        Cause::P1
    } else if has("did not match") && has("key authorization") {
        Cause::H7
    } else if has("nxdomain") {
        Cause::D1
    } else if has("no valid ip addresses") {
        Cause::D5
    } else {
        return None;
    };
    Some(cause)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn acme(kind: &str, detail: &str) -> Option<Cause> {
        diagnose(&format!("{ACME_ERROR_PREFIX}{kind}"), detail)
    }

    #[test]
    fn dns_problems_of_the_catalogue() {
        let name = "shop.dcvcheck.com";
        assert_eq!(
            acme("dns", &format!("DNS problem: NXDOMAIN looking up A for {name} - check that a DNS record exists for this domain")),
            Some(Cause::D1)
        );
        assert_eq!(
            acme("dns", &format!("DNS problem: SERVFAIL looking up A for {name} - the domain's nameservers may be malfunctioning")),
            Some(Cause::D2)
        );
        assert_eq!(
            acme("dns", &format!("DNS problem: SERVFAIL looking up CAA for {name} - the domain's nameservers may be malfunctioning")),
            Some(Cause::D3)
        );
        assert_eq!(
            acme(
                "dns",
                &format!("DNS problem: query timed out looking up A for {name}")
            ),
            Some(Cause::D4)
        );
        assert_eq!(
            acme(
                "unknownHost",
                &format!("No valid IP addresses found for {name}")
            ),
            Some(Cause::D5)
        );
        assert_eq!(
            acme("caa", &format!("CAA record for {name} prevents issuance")),
            Some(Cause::D8)
        );
        assert_eq!(
            diagnose("", "DNS TXT validation: record not detected"),
            Some(Cause::D9)
        );
        assert_eq!(
            diagnose("", "DNS TXT validation: record value wrong"),
            Some(Cause::D10)
        );
    }

    #[test]
    fn http_problems_of_the_catalogue() {
        let url = "http://shop.dcvcheck.com/.well-known/acme-challenge/tok";
        assert_eq!(
            acme(
                "connection",
                &format!("Fetching {url}: Timeout during connect (likely firewall problem)")
            ),
            Some(Cause::H1)
        );
        assert_eq!(
            acme("connection", &format!("Fetching {url}: Connection refused")),
            Some(Cause::H1)
        );
        assert_eq!(
            acme("unauthorized", &format!("Invalid response from {url}: 404")),
            Some(Cause::H2)
        );
        assert_eq!(
            acme("unauthorized", &format!("Invalid response from {url}: 403")),
            Some(Cause::H3)
        );
        assert_eq!(
            acme("connection", &format!("Fetching {url}: Too many redirects")),
            Some(Cause::H4)
        );
        assert_eq!(
            acme(
                "unauthorized",
                "The key authorization file from the server did not match this challenge"
            ),
            Some(Cause::H7)
        );
        assert_eq!(
            acme(
                "incorrectResponse",
                "The key authorization file from the server did not match this challenge"
            ),
            Some(Cause::H7)
        );
        assert_eq!(diagnose("", "file not detected"), Some(Cause::H2));
        assert_eq!(diagnose("", "file content incorrect"), Some(Cause::H7));
        assert_eq!(
            diagnose("", "validation file timestamp expired"),
            Some(Cause::H9)
        );
    }

    #[test]
    fn policy_problems_of_the_catalogue() {
        assert_eq!(
            acme("malformed", "Name does not end in a public suffix"),
            Some(Cause::P1)
        );
        assert_eq!(
            acme("rejectedIdentifier", "Policy forbids issuing for name"),
            Some(Cause::P2)
        );
        assert_eq!(
            acme(
                "unauthorized",
                "shop.dcvcheck.com is considered an unsafe domain by a third-party API"
            ),
            Some(Cause::P3)
        );
        assert_eq!(
            acme(
                "rateLimited",
                "too many certificates already issued for exact set of domains"
            ),
            Some(Cause::P4)
        );
        assert_eq!(
            diagnose("", "DV review failed: name contains sensitive words"),
            Some(Cause::P5)
        );
        assert_eq!(
            diagnose("", "CN invalid: longer than 64 characters"),
            Some(Cause::P6)
        );
        assert_eq!(
            acme("badCSR", "CSR already used in an earlier order"),
            Some(Cause::P7)
        );
        assert_eq!(
            diagnose("", "please whitelist the CA's validation IPs"),
            Some(Cause::P8)
        );
        assert_eq!(
            diagnose("", "too frequent, wait 5 minutes"),
            Some(Cause::P9)
        );
        assert_eq!(diagnose("", "certificate parse failed"), Some(Cause::C1));
        assert_eq!(
            acme("badNonce", "JWS has an invalid anti-replay nonce"),
            None
        );
    }

    #[test]
    fn compound_problems_use_the_subproblem() {
        let doc = br#"{
            "type": "urn:ietf:params:acme:error:rejectedIdentifier",
            "detail": "Error creating new order :: Cannot issue for 2 identifiers",
            "subproblems": [
                {"type": "urn:ietf:params:acme:error:malformed",
                 "detail": "Error creating new order :: Name does not end in a public suffix",
                 "identifier": {"type": "dns", "value": "intranet.corp"}}
            ]
        }"#;
        assert_eq!(diagnose_document(doc), Some(Cause::P1));
        assert_eq!(diagnose_document(b"not json"), None);
    }
}
