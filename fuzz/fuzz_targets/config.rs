//! The configuration parser (`Config::parse`): any text is a configuration or a refusal that
//! names a place in the file; never a panic. (Built with `--cfg fuzzing`, origins that are
//! names are not resolved: no DNS query per input.)
#![no_main]

use std::path::Path;

use dcv_proxy::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(Path::new("/etc/dcv-proxy/fuzz.toml"), text) {
        Ok(config) => {
            assert!(config.server.threads >= 1);
            assert!([301, 302, 307, 308].contains(&config.http.redirect_status));
        }
        Err(ConfigError::Invalid { place, key, .. }) => {
            assert!(place.line >= 1 && place.column >= 1);
            assert!(
                place.line <= text.lines().count().max(1) + 1,
                "{place} {key}"
            );
            assert!(!key.is_empty());
        }
        Err(ConfigError::Read { .. }) => unreachable!("parse reads no file"),
    }
});
