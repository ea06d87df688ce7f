//! The HTTP/1.1 fast path's request-head reader (`serve::fastpath::read_head`), the decision
//! made on what it read (`serve::decide`), over an empty challenge store and a routing with a
//! site, a default origin and the redirect on, and the request the forwarding rules make of it
//! for the origin (`serve::forwarding::upstream_request`), as pingora's client writes it.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use dcv_proxy::config::Config;
use dcv_proxy::serve::{
    read_head, upstream_request, Decider, Decision, HeadRead, RequestView, Scheme, MAX_HEADERS,
};
use pingora_core::protocols::http::v1::client::http_req_header_to_wire;
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
                // What goes to the origin is one well-formed head and nothing after it, with
                // none of the hop-by-hop headers and exactly one of each forwarding header.
                let client = Some(std::net::Ipv4Addr::LOCALHOST.into());
                let Some(req) =
                    upstream_request(head.method, head.target, head.headers, client, scheme)
                else {
                    continue; // refused with 400, as pingora refuses it
                };
                let up = http_req_header_to_wire(&req).expect("a request pingora can write");
                let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS + 8];
                let mut parsed = httparse::Request::new(&mut lines);
                match parsed.parse(&up) {
                    Ok(httparse::Status::Complete(n)) => assert_eq!(n, up.len()),
                    other => panic!(
                        "upstream head {other:?}: {:?}",
                        String::from_utf8_lossy(&up)
                    ),
                }
                let count = |name: &str| {
                    parsed
                        .headers
                        .iter()
                        .filter(|h| h.name.eq_ignore_ascii_case(name))
                        .count()
                };
                for hop in ["connection", "keep-alive", "proxy-authorization", "te", "upgrade"] {
                    assert_eq!(count(hop), 0, "{hop} forwarded");
                }
                for set in ["x-forwarded-for", "x-forwarded-proto"] {
                    assert_eq!(count(set), 1, "{set}");
                }
            }
            Decision::Fixed(_) => {}
        }
    }
});
