//! The HTTP/1.1 fast path's request-head reader (`serve::fastpath::read_head`) and the
//! decision made on what it read (`serve::decide`), over an empty challenge store and a
//! routing with a site, a default origin and the redirect on.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use dcv_proxy::config::Config;
use dcv_proxy::serve::counters::Scheme;
use dcv_proxy::serve::decide::{Decider, Decision, RequestView};
use dcv_proxy::serve::fastpath::{read_head, HeadRead, MAX_HEADERS};
use dcv_proxy::serve::fastproxy::upstream_head;
use dcv_proxy::serve::{Routing, ServeCounters};
use dcv_proxy::state::ChallengeStore;
use libfuzzer_sys::fuzz_target;

fn decider() -> &'static Decider {
    static DECIDER: OnceLock<Decider> = OnceLock::new();
    DECIDER.get_or_init(|| {
        let config = Config::parse(
            Path::new("fuzz.toml"),
            "[http]\nredirect_to_https = true\n[proxy]\ndefault_origin = \"127.0.0.1:9\"\n\
             [[site]]\nnames = [\"a.test\", \"*.b.test\"]\norigin = \"127.0.0.1:8\"\n",
        )
        .expect("the fuzz configuration parses");
        let nowhere = PathBuf::from("/nonexistent/dcv-proxy-fuzz");
        Decider::new(
            Arc::new(ChallengeStore::new(
                nowhere.join("acme"),
                nowhere.join("pki"),
            )),
            Arc::new(ArcSwap::from_pointee(Routing::from_config(&config))),
            ServeCounters::new(),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let HeadRead::Head(head) = read_head(data, &mut headers) else {
        return;
    };
    assert!(head.len <= data.len());
    assert!(head.target.starts_with('/'));
    assert!(head.target.starts_with(head.path));
    if let Some(host) = &head.host {
        assert!(!host.bytes().any(|b| b.is_ascii_uppercase()));
    }
    for scheme in [Scheme::Http, Scheme::Https] {
        let view = RequestView {
            scheme,
            get_or_head: head.get_or_head,
            path: head.path,
            host: head.host.as_deref(),
            target: head.target,
        };
        let (decision, _) = decider().decide(&view);
        match decision {
            // The store is empty: nothing may be answered from it.
            Decision::Answer(_) => panic!("an answer from an empty store"),
            Decision::Redirect { location, .. } => {
                assert_eq!(scheme, Scheme::Http);
                assert!(location.starts_with("https://"));
                assert!(!location.contains(['\r', '\n']), "{location:?}");
            }
            Decision::Proxy(_) => {
                // What goes to the origin is one well-formed head and nothing after it.
                let client = Some(std::net::Ipv4Addr::LOCALHOST.into());
                let up = upstream_head(
                    head.method,
                    head.target,
                    head.headers,
                    client,
                    scheme.as_str(),
                );
                let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS + 8];
                let mut req = httparse::Request::new(&mut lines);
                match req.parse(&up) {
                    Ok(httparse::Status::Complete(n)) => assert_eq!(n, up.len()),
                    other => panic!(
                        "upstream head {other:?}: {:?}",
                        String::from_utf8_lossy(&up)
                    ),
                }
            }
            Decision::Fixed(_) => {}
        }
    }
});
