//! The admin API's request bodies and path parameters (`admin::input`), and for certificate
//! uploads that pass, the certificate checks behind them (`state::certs::validate`).
#![no_main]

use std::time::SystemTime;

use dcv_proxy::admin::input;
use dcv_proxy::state::certs::validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: the endpoint; up to the first newline: the path parameters (split on '/');
    // the rest: the body.
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let (param, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    let Ok(param) = std::str::from_utf8(param) else {
        return;
    };
    let now = SystemTime::now();
    match which % 4 {
        0 => {
            if let Ok(answer) = input::token_put(param, body, now) {
                assert!(answer.key_authorization.starts_with(param.as_bytes()));
                assert!(answer.expires.is_some_and(|e| e > now));
            }
        }
        1 => {
            let (host, file) = param.split_once('/').unwrap_or((param, ""));
            if let Ok((host, bytes)) = input::pki_put(host, file, body) {
                assert!(!bytes.is_empty() && bytes.len() <= input::MAX_PKI_FILE);
                assert!(!host.as_str().contains('/'));
                assert!(!file.contains('/') && !file.starts_with('.'));
            }
        }
        2 => {
            if let Ok(upload) = input::cert_put(param, body) {
                let _ = validate(
                    upload.certificate.as_bytes(),
                    upload.private_key.as_bytes(),
                    &upload.names,
                    now,
                );
            }
        }
        _ => {
            if let Ok((_, values)) = input::txt_put(param, body) {
                assert!(!values.is_empty());
            }
        }
    }
});
