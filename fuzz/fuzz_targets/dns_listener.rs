//! The DNS listener's request handling (`serve::dns::Responder`, the code behind both its UDP
//! and TCP loops), on any bytes: the first byte picks the transport (bit 0: TCP) and the
//! source network (bits 1–2), the rest is the message. The zone holds two DNS-01 values at
//! `shop.example.dcv.cdn.test` and an in-zone name server.
//!
//! Asserts, besides "no panic, no sanitizer report":
//! - what is sent parses as a DNS message, is a response (QR), carries the query's id, and
//!   never offers recursion (RA);
//! - over UDP it fits 512 bytes, or 1232 when the query has an OPT record (RFC 1035 §4.2.1,
//!   RFC 9715): no amplification beyond that;
//! - a REFUSED answer holds no record and is not authoritative; an authoritative answer's
//!   records are only SOA, NS, A, AAAA, TXT or the RFC 8482 HINFO, owned inside the zone;
//! - messages shorter than a header, and responses, get no answer.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use dcv_proxy::serve::dns::{Responder, Transport, Zones};
use dcv_proxy::state::TxtChallenge;
use dcv_proxy::state::ChallengeStore;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"
[dns]
listen = ["127.0.0.1:53"]
rate_limit = 0
[[dns.zone]]
name = "dcv.cdn.test"
name_servers = ["ns1.dcv.cdn.test", "ns2.cdn.test"]
addresses = { "ns1.dcv.cdn.test" = ["192.0.2.53", "2001:db8::53"] }
"#;

fn responder() -> &'static Responder {
    static RESPONDER: OnceLock<Responder> = OnceLock::new();
    RESPONDER.get_or_init(|| {
        let config = dcv_proxy::config::Config::parse(std::path::Path::new("fuzz.toml"), CONFIG)
            .expect("the fuzz configuration parses");
        let zones = Zones::new(config.dns.as_ref().expect("[dns]")).expect("the zones build");
        // The webroots are never read: the DNS listener only looks at DNS-01 values.
        let store = Arc::new(ChallengeStore::new(
            "/nonexistent/a".into(),
            "/nonexistent/p".into(),
        ));
        for (token, value) in [("t1", "apex-value"), ("t2", "wildcard-value")] {
            store.put_dns01(
                "shop.example",
                token,
                TxtChallenge {
                    value: value.into(),
                    expires: SystemTime::now() + Duration::from_secs(365 * 86_400),
                },
            );
        }
        Responder::new(zones, store, 0)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, message)) = data.split_first() else {
        return;
    };
    let transport = if selector & 1 == 1 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let sources = [
        "192.0.2.1:5353",
        "198.51.100.7:53",
        "[2001:db8::1]:1053",
        "127.0.0.1:40000",
    ];
    let source: SocketAddr = sources[usize::from((selector >> 1) & 3)]
        .parse()
        .expect("a constant address");
    let Some(reply) = responder().respond(message, source, transport) else {
        return;
    };
    assert!(
        message.len() >= 12,
        "a message shorter than a header was answered"
    );
    assert_ne!(message[2] & 0x80, 0x80, "a response was answered");
    let parsed = Message::from_vec(&reply).expect("the answer parses");
    assert_eq!(parsed.metadata.message_type, MessageType::Response);
    assert_eq!(
        &reply[..2],
        &message[..2],
        "the answer carries the query's id"
    );
    assert!(!parsed.metadata.recursion_available, "not a resolver");
    if transport == Transport::Udp {
        // Without an OPT record 512; with one (or a query that only hickory-server's more
        // lenient request parser reads) 1232.
        let limit = match Message::from_vec(message) {
            Ok(q) if q.edns.is_none() => 512,
            _ => 1232,
        };
        assert!(
            reply.len() <= limit,
            "{} bytes over UDP (limit {limit})",
            reply.len()
        );
    }
    if parsed.metadata.response_code == ResponseCode::Refused {
        assert!(parsed.answers.is_empty() && parsed.authorities.is_empty());
        assert!(!parsed.metadata.authoritative);
    }
    if parsed.metadata.authoritative {
        let zone = Name::from_ascii("dcv.cdn.test.").expect("a constant name");
        for record in parsed.answers.iter().chain(&parsed.authorities) {
            assert!(
                matches!(
                    record.record_type(),
                    RecordType::SOA
                        | RecordType::NS
                        | RecordType::A
                        | RecordType::AAAA
                        | RecordType::TXT
                        | RecordType::HINFO
                ),
                "{record:?}"
            );
            assert!(zone.zone_of(&record.name), "{record:?} is outside the zone");
        }
    }
});
