//! Request classification: is this a validation request, and for what?
//!
//! This runs first on every request, on HTTP and HTTPS alike, so it is a pure function over the
//! raw path that never allocates. Anything that is not exactly a well-formed token or file name
//! under the two validation prefixes never matches a stored answer: no decoding, no
//! normalisation, so `..`, `%2e%2e`, `%2f` or a second segment cannot reach a file or another
//! host's entry.

use std::borrow::Cow;

pub(super) use crate::state::{is_file_name, is_token};

const ACME_PREFIX: &str = "/.well-known/acme-challenge/";
const PKI_PREFIX: &str = "/.well-known/pki-validation/";

/// What a request path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/.well-known/acme-challenge/<token>` with a well-formed token.
    AcmeChallenge(&'a str),
    /// `/.well-known/pki-validation/<file>` with a well-formed file name.
    PkiValidation(&'a str),
    /// Under a validation prefix, but malformed: answered like an unknown token, never matched.
    Malformed(ChallengeKind),
    /// Not a validation request.
    Other,
}

/// The two kinds of HTTP validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    Acme,
    Pki,
}

/// Classifies `path` (the request target's path, without query).
pub fn classify(path: &str) -> Route<'_> {
    // One cheap test keeps the common case (a page, an asset) to a byte compare.
    if !path.starts_with("/.well-known/") {
        return Route::Other;
    }
    if let Some(token) = path.strip_prefix(ACME_PREFIX) {
        return if is_token(token) {
            Route::AcmeChallenge(token)
        } else {
            Route::Malformed(ChallengeKind::Acme)
        };
    }
    if let Some(file) = path.strip_prefix(PKI_PREFIX) {
        return if is_file_name(file) {
            Route::PkiValidation(file)
        } else {
            Route::Malformed(ChallengeKind::Pki)
        };
    }
    Route::Other
}

/// The host a request is for, lowercase, without port or trailing dot; `None` when it is not a
/// plausible hostname or IP literal (such requests never match a host-bound answer).
///
/// `authority` is the URI authority (HTTP/2 `:authority`, HTTP/1.1 absolute-form), which wins
/// over the `Host` header as RFC 9112 §3.2.2 says.
pub fn request_host<'a>(
    authority: Option<&'a str>,
    host_header: Option<&'a [u8]>,
) -> Option<Cow<'a, str>> {
    let raw = match authority {
        Some(a) => a,
        None => std::str::from_utf8(host_header?).ok()?,
    };
    normalize_host(raw)
}

/// Lowercases `raw`, strips `:port` (and the brackets of an IPv6 literal) and one trailing dot;
/// `None` for an empty label (`a..b`, `.a`, `a..`), which no registered name has.
pub fn normalize_host(raw: &str) -> Option<Cow<'_, str>> {
    let raw = raw.trim_matches([' ', '\t']);
    let host = if let Some(rest) = raw.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        // Only a real IPv6 address (`[3..]` is hex digits, colons and dots, and no address).
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return None;
        }
        v6
    } else {
        let host = match raw.rsplit_once(':') {
            Some((h, port)) if is_port(port) => h,
            Some(_) => return None,
            None => raw,
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.starts_with('.') || host.ends_with('.') || host.contains("..") {
            return None;
        }
        host
    };
    if host.is_empty()
        || host.len() > 253
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
    {
        return None;
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MAX_TOKEN_LEN;

    #[test]
    fn well_formed_requests_match() {
        assert_eq!(
            classify("/.well-known/acme-challenge/abc-DEF_123"),
            Route::AcmeChallenge("abc-DEF_123")
        );
        assert_eq!(
            classify("/.well-known/pki-validation/fileauth.txt"),
            Route::PkiValidation("fileauth.txt")
        );
        assert_eq!(
            classify("/.well-known/pki-validation/0123456789ABCDEF0123456789ABCDEF.txt"),
            Route::PkiValidation("0123456789ABCDEF0123456789ABCDEF.txt")
        );
    }

    #[test]
    fn traversal_and_encodings_never_match() {
        for path in [
            "/.well-known/acme-challenge/",
            "/.well-known/acme-challenge/../../etc/passwd",
            "/.well-known/acme-challenge/a/b",
            "/.well-known/acme-challenge/a%2Fb",
            "/.well-known/acme-challenge/tok=",
            "/.well-known/acme-challenge/a.b",
            "/.well-known/pki-validation/..",
            "/.well-known/pki-validation/.",
            "/.well-known/pki-validation/.htaccess",
            "/.well-known/pki-validation/%2e%2e",
            "/.well-known/pki-validation/a/fileauth.txt",
            "/.well-known/pki-validation/file auth.txt",
            "/.well-known/pki-validation/",
        ] {
            assert!(
                matches!(classify(path), Route::Malformed(_)),
                "{path} must be malformed"
            );
        }
        let long = format!(
            "/.well-known/acme-challenge/{}",
            "a".repeat(MAX_TOKEN_LEN + 1)
        );
        assert_eq!(classify(&long), Route::Malformed(ChallengeKind::Acme));
        let max = format!("/.well-known/acme-challenge/{}", "a".repeat(MAX_TOKEN_LEN));
        assert!(matches!(classify(&max), Route::AcmeChallenge(_)));
    }

    #[test]
    fn other_paths_are_other() {
        for path in [
            "/",
            "/index.html",
            "/.well-known/security.txt",
            "/.well-known/acme-challenge",
            "/.WELL-KNOWN/acme-challenge/x",
            "//.well-known/acme-challenge/x",
            "/x/../.well-known/acme-challenge/x",
        ] {
            assert_eq!(classify(path), Route::Other, "{path}");
        }
    }

    #[test]
    fn hosts_are_normalised() {
        let h = |s: &str| normalize_host(s).map(|c| c.into_owned());
        assert_eq!(h("Example.COM:8080").as_deref(), Some("example.com"));
        assert_eq!(h("example.com.").as_deref(), Some("example.com"));
        assert_eq!(h("[::1]:443").as_deref(), Some("::1"));
        assert_eq!(h("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(h("a b"), None);
        assert_eq!(h("x:port"), None);
        assert_eq!(h("evil/..").as_deref(), None);
        assert_eq!(h(""), None);
        assert!(matches!(
            normalize_host("example.com"),
            Some(Cow::Borrowed(_))
        ));
    }

    /// Found by the `classify` fuzz target (crash-8aa39676…): two trailing dots left one, so
    /// `example.com..` became `example.com.`, a host no entry is registered under.
    #[test]
    fn fuzz_regression_empty_labels_are_not_hosts() {
        for raw in [
            "xtthu.hhhhhhhhhhhhhtwww.example.com..",
            "example.com..",
            "a..b",
            ".example.com",
            ".",
            "..",
            // Found next (crash-… " [3..]"): brackets around what is no IPv6 address.
            " [3..]",
            "[:::]",
            "[1.2.3.4]",
        ] {
            assert_eq!(normalize_host(raw), None, "{raw:?}");
        }
        assert_eq!(
            normalize_host("[::FFFF:1.2.3.4]:8443").as_deref(),
            Some("::ffff:1.2.3.4")
        );
        assert_eq!(
            normalize_host("example.com.:80").as_deref(),
            Some("example.com")
        );
    }

    #[test]
    fn authority_wins_over_host_header() {
        let got = request_host(Some("a.test"), Some(b"b.test"));
        assert_eq!(got.as_deref(), Some("a.test"));
        let got = request_host(None, Some(b"B.test:80"));
        assert_eq!(got.as_deref(), Some("b.test"));
    }
}
