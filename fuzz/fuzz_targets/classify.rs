//! Request classification and host normalisation (`serve::classify`): whatever the path and
//! the Host, a validation route only ever carries a well-formed token or one file-name
//! segment, and a normalised host is lowercase, without port, without anything that could
//! name another host's entry or a path.
#![no_main]

use dcv_proxy::serve::{classify, normalize_host, request_host, Route};
use dcv_proxy::state::{is_file_name, is_token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First line: the path; the rest: a Host header value (any bytes).
    let (path, host) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    if let Ok(path) = std::str::from_utf8(path) {
        match classify(path) {
            Route::AcmeChallenge(token) => {
                assert!(is_token(token));
                assert!(!token.contains(['/', '.', '%', '\\']));
                assert!(path.ends_with(token));
            }
            Route::PkiValidation(file) => {
                assert!(is_file_name(file));
                assert!(!file.contains(['/', '%', '\\']) && !file.starts_with('.'));
                assert!(path.ends_with(file));
            }
            Route::Malformed(_) => assert!(path.starts_with("/.well-known/")),
            Route::Other => {}
        }
        if let Some(h) = normalize_host(path) {
            check_host(&h);
        }
    }
    if let Some(h) = request_host(None, Some(host)) {
        check_host(&h);
    }
});

fn check_host(h: &str) {
    assert!(!h.is_empty() && h.len() <= 253, "{h:?}");
    assert!(!h.bytes().any(|b| b.is_ascii_uppercase()), "{h:?}");
    assert!(!h.contains(['/', '\\', ' ', '%', '[', ']', '\0']), "{h:?}");
    assert!(!h.ends_with('.'), "{h:?}");
}
