//! From a CA's error to a catalogue cause: an ACME problem document (RFC 8555 §6.7, type
//! `urn:ietf:params:acme:error:*` plus `detail`) or a CA console's message is mapped to the
//! cause id, whose remedy then tells the operator what to do. The detail strings are those the
//! catalogue quotes (Let's Encrypt's, Pebble's, Tencent Cloud's and Aliyun's wording).
//!
//! The caller is the ACME order code (`acme::ProblemDoc::diagnose`), which applies this
//! to a problem and to each of its subproblems (RFC 8555 §6.7.1) and to the `error` of every
//! failed challenge (RFC 8555 §7.1.4), where the CA puts the validation's detail. A problem that
//! is not a validation or policy failure (`badNonce`, `serverInternal`, …) gets no cause rather
//! than a wrong one: it is shown with its ACME type alone.

use super::Cause;

/// The ACME error namespace (RFC 8555 §6.7).
pub const ACME_ERROR_PREFIX: &str = "urn:ietf:params:acme:error:";

/// ACME error types that are about the protocol, the account or the CA itself, never about the
/// name being validated (RFC 8555 §6.7): the catalogue has no cause for them, and their detail
/// is not searched for a console message either.
const NOT_CATALOGUE_TYPES: &[&str] = &[
    "accountDoesNotExist",
    "alreadyReplaced",
    "alreadyRevoked",
    "badNonce",
    "badPublicKey",
    "badRevocationReason",
    "badSignatureAlgorithm",
    "externalAccountRequired",
    "invalidContact",
    "invalidProfile",
    "orderNotReady",
    "serverInternal",
    "unsupportedContact",
    "unsupportedIdentifier",
    "userActionRequired",
];

/// The cause of an ACME problem with type `problem_type` (full URN or the short name) and
/// `detail`; `None` when the problem is not a validation or policy failure of the catalogue
/// (e.g. `badNonce`, which the client retries, or `serverInternal`).
///
/// A problem without an ACME type (empty, `about:blank`, a CA console's message) is matched by
/// its wording alone.
pub fn diagnose(problem_type: &str, detail: &str) -> Option<Cause> {
    let kind = problem_type
        .strip_prefix(ACME_ERROR_PREFIX)
        .unwrap_or(problem_type);
    if NOT_CATALOGUE_TYPES.contains(&kind) {
        return None;
    }
    let d = detail.to_ascii_lowercase();
    let has = |needle: &str| d.contains(needle);
    let by_type = match kind {
        "dns" => dns_failure(&d),
        "caa" => Some(if has("servfail") || has("timed out") || has("refused") {
            Cause::D3
        } else {
            Cause::D8
        }),
        "unknownHost" => Some(Cause::D5),
        "connection" => Some(if has("redirect") {
            Cause::H4
        } else if has("could not resolve") || has("no valid ip") {
            Cause::D5
        } else if has("nxdomain") {
            Cause::D1
        } else {
            // Timeout during connect, connection refused, reset: the CA could not reach the
            // port (Let's Encrypt: "Timeout during connect (likely firewall problem)"; Pebble:
            // "dial tcp …: connect: connection refused").
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
        // Let's Encrypt's paused identifiers (2025): "… has been paused …, visit <portal> to
        // unpause"; a pause is lifted by hand only, unlike a rate limit.
        "rateLimited" => Some(if has("paused") || has("unpause") {
            Cause::P10
        } else if has("too frequent") {
            Cause::P9
        } else {
            Cause::P4
        }),
        "malformed" if has("public suffix") => Some(Cause::P1),
        "badCSR" if has("already used") || has("reuse") || has("same key") => Some(Cause::P7),
        "badCSR"
            if has("cn invalid")
                || has("common name")
                || has("64 characters")
                || has("longer than 64")
                || has("invalid character") =>
        {
            Some(Cause::P6)
        }
        "tls" => Some(if has("certificate") {
            Cause::H10
        } else {
            Cause::C5
        }),
        _ => None,
    };
    by_type.or_else(|| console_message(&d))
}

/// The `dns` type: which DNS failure the detail names; `None` when it names none of them.
fn dns_failure(d: &str) -> Option<Cause> {
    let has = |needle: &str| d.contains(needle);
    if has("caa") && (has("servfail") || has("refused") || has("timed out")) {
        Some(Cause::D3)
    } else if has("nxdomain") {
        Some(Cause::D1)
    } else if has("timed out") || has("timeout") || has("networking error") {
        Some(Cause::D4)
    } else if has("no valid ip") || has("no a or aaaa") {
        Some(Cause::D5)
    } else if has("servfail") || has("refused") {
        Some(Cause::D2)
    } else {
        None
    }
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
    } else if has("invalid response") && has(": \"") {
        // Boulder quotes the body it read (`Invalid response from <url>: "<body>"`): content
        // other than the key authorization, or 128 bytes and more (va/http.go).
        Some(Cause::H7)
    } else if has("invalid response") && ["301", "302", "303", "307", "308"].iter().any(|s| has(s))
    {
        // A redirect the CA did not follow (a status it refuses, 303).
        Some(Cause::H4)
    } else if has("invalid response") {
        Some(Cause::H3)
    } else if has("incorrect validation certificate") {
        // TLS-ALPN-01: the certificate presented is not the challenge's (va/tlsalpn.go).
        Some(Cause::H7)
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
    fn a_paused_name_is_not_a_rate_limit() {
        // Let's Encrypt's wording for a paused identifier (its "Automatically pausing
        // hostnames" announcement, 2024).
        assert_eq!(
            acme(
                "rateLimited",
                "Your account is temporarily prevented from requesting certificates for \
                 shop.dcvcheck.com and possibly others. Please visit: \
                 https://portal.letsencrypt.org/sfe/v1/unpause?jwt=x"
            ),
            Some(Cause::P10)
        );
        assert_eq!(
            acme(
                "rateLimited",
                "too many certificates (5) already issued for this exact set of identifiers"
            ),
            Some(Cause::P4)
        );
        assert_eq!(
            acme(
                "rateLimited",
                "Issuance for shop.dcvcheck.com has been paused due to repeated failed \
                 validation attempts; visit https://portal.letsencrypt.org/sfe/v1/unpause?jwt=x"
            ),
            Some(Cause::P10)
        );
    }

    #[test]
    fn boulder_http01_and_tls_alpn01_details_match_the_probes_causes() {
        let url = "http://shop.dcvcheck.com/.well-known/acme-challenge/tok";
        for (kind, detail, cause) in [
            (
                "unauthorized",
                format!("Invalid response from {url}: 404"),
                Cause::H2,
            ),
            (
                "unauthorized",
                format!("Invalid response from {url}: 301"),
                Cause::H4,
            ),
            (
                "unauthorized",
                format!("Invalid response from {url}: 403"),
                Cause::H3,
            ),
            (
                "unauthorized",
                format!("Invalid response from {url}: \"<html>a page far too long</html>\""),
                Cause::H7,
            ),
            (
                "unauthorized",
                "Incorrect validation certificate for tls-alpn-01 challenge. Requested \
                 shop.dcvcheck.com from 192.0.2.1:443. Received 1 certificate(s), first \
                 certificate had names \"other.example\""
                    .to_owned(),
                Cause::H7,
            ),
        ] {
            assert_eq!(acme(kind, &detail), Some(cause), "{detail}");
        }
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

    /// Every row of `docs/validation-failures.md` whose "what the CA reports" column quotes
    /// the CA, with the ACME type the CA sends it under (none for the CA consoles' messages).
    #[test]
    fn every_quote_of_the_catalogue_maps_to_its_cause() {
        let n = "shop.dcvcheck.com";
        let url = format!("http://{n}/.well-known/acme-challenge/t0k");
        let quotes: Vec<(&str, String, Cause)> = vec![
            (
                "dns",
                format!("DNS problem: NXDOMAIN looking up A for {n}"),
                Cause::D1,
            ),
            (
                "dns",
                format!("DNS problem: SERVFAIL looking up A for {n}"),
                Cause::D2,
            ),
            (
                "dns",
                format!("DNS problem: SERVFAIL looking up CAA for {n}"),
                Cause::D3,
            ),
            (
                "dns",
                "DNS problem: query timed out looking up A".into(),
                Cause::D4,
            ),
            (
                "unknownHost",
                format!("No valid IP addresses found for {n}"),
                Cause::D5,
            ),
            (
                "dns",
                format!("No valid IP addresses found for {n}"),
                Cause::D5,
            ),
            (
                "caa",
                format!("CAA record for {n} prevents issuance"),
                Cause::D8,
            ),
            (
                "",
                "DNS TXT validation: record not detected".into(),
                Cause::D9,
            ),
            (
                "",
                "DNS TXT validation: record value wrong".into(),
                Cause::D10,
            ),
            (
                "connection",
                format!("Fetching {url}: Timeout during connect (likely firewall problem)"),
                Cause::H1,
            ),
            (
                "connection",
                format!("Fetching {url}: Connection refused"),
                Cause::H1,
            ),
            (
                "unauthorized",
                format!("Invalid response from {url}: 404"),
                Cause::H2,
            ),
            ("", "file not detected".into(), Cause::H2),
            (
                "unauthorized",
                format!("Invalid response from {url}: 403"),
                Cause::H3,
            ),
            ("", "file not readable (permissions)".into(), Cause::H3),
            (
                "connection",
                format!("Fetching {url}: Too many redirects"),
                Cause::H4,
            ),
            (
                "unauthorized",
                "The key authorization file from the server did not match this challenge".into(),
                Cause::H7,
            ),
            ("", "file content incorrect".into(), Cause::H7),
            ("", "validation file timestamp expired".into(), Cause::H9),
            (
                "malformed",
                "Name does not end in a public suffix".into(),
                Cause::P1,
            ),
            (
                "rejectedIdentifier",
                "Policy forbids issuing for name".into(),
                Cause::P2,
            ),
            (
                "unauthorized",
                format!("{n} is considered an unsafe domain by a third-party API"),
                Cause::P3,
            ),
            (
                "rateLimited",
                "too many certificates already issued for exact set of domains".into(),
                Cause::P4,
            ),
            (
                "",
                "DV review failed: the name contains sensitive words".into(),
                Cause::P5,
            ),
            (
                "",
                "CN invalid: longer than 64 characters".into(),
                Cause::P6,
            ),
            (
                "badCSR",
                "CSR already used in an earlier order".into(),
                Cause::P7,
            ),
            (
                "",
                "please whitelist the CA's validation IPs".into(),
                Cause::P8,
            ),
            ("", "too frequent, wait 5 minutes".into(), Cause::P9),
            (
                "rateLimited",
                "status checks too frequent, wait 5 minutes".into(),
                Cause::P9,
            ),
            ("", "upload parse failed".into(), Cause::C1),
        ];
        for (kind, detail, cause) in quotes {
            let got = if kind.is_empty() {
                diagnose("", &detail)
            } else {
                acme(kind, &detail)
            };
            assert_eq!(got, Some(cause), "{kind}: {detail}");
        }
    }

    #[test]
    fn pebble_and_lets_encrypt_connection_failures_are_h1() {
        assert_eq!(
            acme(
                "connection",
                "127.0.0.99: Fetching http://h1.example.test:5002/.well-known/acme-challenge/tok: Connection refused"
            ),
            Some(Cause::H1)
        );
        assert_eq!(
            acme(
                "connection",
                r#"Get "http://h1.example.test:5002/.well-known/acme-challenge/tok": dial tcp 127.0.0.99:5002: connect: connection refused"#
            ),
            Some(Cause::H1)
        );
        assert_eq!(
            acme(
                "connection",
                "Fetching http://a.test/x: Could not resolve host"
            ),
            Some(Cause::D5)
        );
        assert_eq!(
            acme(
                "dns",
                "DNS problem: networking error looking up A for a.test"
            ),
            Some(Cause::D4)
        );
        assert_eq!(
            acme(
                "dns",
                "DNS problem: query timed out looking up CAA for a.test"
            ),
            Some(Cause::D3)
        );
        assert_eq!(
            acme("dns", "DNS problem: REFUSED looking up A for a.test"),
            Some(Cause::D2)
        );
    }

    #[test]
    fn problems_outside_the_catalogue_get_no_cause() {
        for kind in [
            "badNonce",
            "serverInternal",
            "accountDoesNotExist",
            "externalAccountRequired",
            "userActionRequired",
            "orderNotReady",
            "badSignatureAlgorithm",
        ] {
            // Even a detail with catalogue words in it: the type says what it is.
            assert_eq!(
                acme(kind, "the request was too frequent, NXDOMAIN"),
                None,
                "{kind}"
            );
        }
        assert_eq!(acme("serverInternal", "the CA is having a bad day"), None);
        assert_eq!(acme("someFutureType", "something new"), None);
        assert_eq!(diagnose("about:blank", "Bad Gateway"), None);
        assert_eq!(diagnose("", ""), None);
        // A DNS problem whose detail names none of the catalogue's DNS causes is not guessed.
        assert_eq!(acme("dns", "DNS problem: something unheard of"), None);
        // A CSR problem that is neither key reuse nor the CN rules.
        assert_eq!(acme("badCSR", "key too small"), None);
        assert_eq!(acme("malformed", "JWS verification error"), None);
    }

    #[test]
    fn short_and_full_types_are_the_same() {
        assert_eq!(
            diagnose("caa", "CAA record for a.test prevents issuance"),
            Some(Cause::D8)
        );
        assert_eq!(
            diagnose(
                "urn:ietf:params:acme:error:caa",
                "CAA record for a.test prevents issuance"
            ),
            Some(Cause::D8)
        );
    }
}
