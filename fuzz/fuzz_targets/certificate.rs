//! PEM and certificate input (`state::certs::pem::parse`, `state::certs::check::validate`):
//! any bytes as a chain file, and split in two as a chain and a key, with required names.
//! A refusal is an answer; a panic is a bug.
#![no_main]

use std::time::SystemTime;

use dcv_proxy::state::certs::{pem, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(blocks) = pem::parse(data) {
        for block in &blocks {
            assert!(!block.label.is_empty());
        }
    }
    let now = SystemTime::now();
    if let Ok(cert) = validate(data, b"", &[], now) {
        // Whatever passes is servable: it has names (C6) and is valid now.
        assert!(!cert.names.is_empty());
        assert!(cert.not_before <= now && now <= cert.not_after);
    }
    // The first byte says where the chain ends and the key starts.
    if let Some((&cut, rest)) = data.split_first() {
        let cut = (cut as usize * rest.len()) / 255;
        let (chain, key) = rest.split_at(cut.min(rest.len()));
        let names = ["a.test".to_owned(), "*.b.test".to_owned()];
        let _ = validate(chain, key, &names, now);
    }
});
