//! The names the challenge store keys its answers by, checked the same way wherever they come
//! from (a request path, the admin API, a file in the state directory, a key in etcd): ACME
//! tokens, validation file names, and the apex a host shares its files with.

/// Longest ACME token accepted. RFC 8555 §8.3 asks for ≥128 bits of entropy (22+ characters);
/// CAs use 43. 256 leaves room without inviting abuse.
pub const MAX_TOKEN_LEN: usize = 256;
/// Longest pki-validation file name accepted (a file name on every common file system).
pub(super) const MAX_FILE_LEN: usize = 255;

/// An ACME token: 1–256 characters of the base64url alphabet, no padding (RFC 8555 §8.1).
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TOKEN_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A validation file name: one path segment of letters, digits, `.`, `-`, `_`, not starting with
/// a dot (so never `.`, `..` or a hidden file).
pub fn is_file_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_FILE_LEN
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// `host` without a leading `www.` label: apex and www share pki-validation files (H8).
pub fn apex_of(host: &str) -> &str {
    match host.strip_prefix("www.") {
        Some(apex) if apex.contains('.') => apex,
        _ => host,
    }
}
