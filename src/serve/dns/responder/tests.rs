#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Name, RData, RecordType};

use super::*;
use crate::state::TxtChallenge;

const CONFIG: &str = r#"
[dns]
listen = ["127.0.0.1:53"]
ttl = "7s"
rate_limit = 0

[[dns.zone]]
name = "dcv.cdn.test"
name_servers = ["ns1.dcv.cdn.test", "ns2.cdn.test"]
addresses = { "ns1.dcv.cdn.test" = ["192.0.2.53", "2001:db8::53"] }
"#;

fn responder(rate: u32) -> (tempfile::TempDir, Arc<ChallengeStore>, Responder) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ChallengeStore::new(
        dir.path().join("a"),
        dir.path().join("p"),
    ));
    let config = crate::config::Config::parse(std::path::Path::new("t.toml"), CONFIG).unwrap();
    let zones = Zones::new(config.dns.as_ref().unwrap()).unwrap();
    let responder = Responder::new(zones, store.clone(), rate);
    (dir, store, responder)
}

fn publish(store: &ChallengeStore, name: &str, token: &str, value: &str) {
    store.put_dns01(
        name,
        token,
        TxtChallenge {
            value: value.into(),
            expires: SystemTime::now() + Duration::from_secs(60),
        },
    );
}

fn query(name: &str, rtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut msg = Message::query();
    msg.metadata.id = 0x1234;
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.set_edns(e);
    }
    msg.to_vec().unwrap()
}

const SOURCE: &str = "127.0.0.1:5353";

fn ask(r: &Responder, wire: &[u8], transport: Transport) -> Option<Message> {
    r.respond(wire, SOURCE.parse().unwrap(), transport)
        .map(|w| Message::from_vec(&w).unwrap())
}

fn txt(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(String::from_utf8_lossy(&t.txt_data[0]).into_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_apex_answers_soa_and_ns_with_in_zone_glue() {
    let (_d, _s, r) = responder(0);
    let m = ask(
        &r,
        &query("dcv.cdn.test.", RecordType::SOA, None),
        Transport::Udp,
    )
    .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative && !m.metadata.recursion_available);
    let RData::SOA(soa) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(soa.mname.to_ascii(), "ns1.dcv.cdn.test.");
    assert_eq!(soa.rname.to_ascii(), "hostmaster.dcv.cdn.test.");
    assert_eq!(soa.minimum, 7);
    let m = ask(
        &r,
        &query("dcv.cdn.test.", RecordType::NS, None),
        Transport::Udp,
    )
    .unwrap();
    let ns: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(ns, ["ns1.dcv.cdn.test.", "ns2.cdn.test."]);
    // Glue for the in-zone name server only (ns2.cdn.test is its own zone's business).
    assert_eq!(m.additionals.len(), 2, "{m:?}");
    let m = ask(
        &r,
        &query("ns1.dcv.cdn.test.", RecordType::AAAA, None),
        Transport::Udp,
    )
    .unwrap();
    assert_eq!(m.answers[0].data.to_string(), "2001:db8::53");
    let m = ask(
        &r,
        &query("ns1.dcv.cdn.test.", RecordType::TXT, None),
        Transport::Udp,
    )
    .unwrap();
    assert_eq!(
        (m.metadata.response_code, m.answers.len()),
        (ResponseCode::NoError, 0)
    );
}

#[test]
fn challenge_values_are_answered_at_the_delegated_name_in_the_clients_case() {
    let (_d, store, r) = responder(0);
    publish(&store, "shop.example", "t1", "apex-value");
    publish(&store, "shop.example", "t2", "wildcard-value");
    let m = ask(
        &r,
        &query("ShOp.ExAmple.dcv.CDN.test.", RecordType::TXT, Some(1232)),
        Transport::Udp,
    )
    .unwrap();
    assert!(m.metadata.authoritative);
    assert_eq!(txt(&m), ["apex-value", "wildcard-value"]);
    assert_eq!(m.answers[0].name.to_ascii(), "ShOp.ExAmple.dcv.CDN.test.");
    assert_eq!(m.answers[0].ttl, 7);
    assert!(m.edns.is_some(), "an OPT answers an OPT");
    // Another type at the name: NODATA with the SOA.
    let m = ask(
        &r,
        &query("shop.example.dcv.cdn.test.", RecordType::A, None),
        Transport::Udp,
    )
    .unwrap();
    assert_eq!(
        (m.metadata.response_code, m.answers.len()),
        (ResponseCode::NoError, 0)
    );
    assert!(matches!(m.authorities[0].data, RData::SOA(_)));
    // Withdrawn: gone at once.
    store.remove_dns01("shop.example", "t1");
    store.remove_dns01("shop.example", "t2");
    let m = ask(
        &r,
        &query("shop.example.dcv.cdn.test.", RecordType::TXT, None),
        Transport::Udp,
    )
    .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn unknown_names_are_nxdomain_and_empty_non_terminals_nodata() {
    let (_d, store, r) = responder(0);
    publish(&store, "shop.example", "t1", "v");
    let m = ask(
        &r,
        &query("other.dcv.cdn.test.", RecordType::TXT, None),
        Transport::Udp,
    )
    .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    let RData::SOA(_) = &m.authorities[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(
        m.authorities[0].ttl, 7,
        "negative caching is bounded (RFC 2308 §5)"
    );
    let m = ask(
        &r,
        &query("example.dcv.cdn.test.", RecordType::TXT, None),
        Transport::Udp,
    )
    .unwrap();
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "RFC 8020: an ENT is not NXDOMAIN"
    );
    // Labels no stored name has: NXDOMAIN, never a match.
    let m = ask(
        &r,
        &query("sh\\.op.dcv.cdn.test.", RecordType::TXT, None),
        Transport::Udp,
    )
    .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn names_outside_the_zones_are_refused_without_records() {
    let (_d, _s, r) = responder(0);
    for name in ["example.com.", "cdn.test.", "xdcv.cdn.test.", "."] {
        let m = ask(&r, &query(name, RecordType::A, None), Transport::Udp).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{name}");
        assert!(!m.metadata.authoritative && !m.metadata.recursion_available);
        assert!(m.answers.is_empty() && m.authorities.is_empty());
    }
    let mut chaos = Message::query();
    chaos.add_query({
        let mut q = Query::query(Name::from_ascii("version.bind.").unwrap(), RecordType::TXT);
        q.set_query_class(DNSClass::CH);
        q
    });
    let m = ask(&r, &chaos.to_vec().unwrap(), Transport::Udp).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn any_gets_one_hinfo_and_transfers_are_refused() {
    let (_d, store, r) = responder(0);
    publish(&store, "shop.example", "t1", "v");
    for name in ["dcv.cdn.test.", "shop.example.dcv.cdn.test."] {
        let m = ask(&r, &query(name, RecordType::ANY, None), Transport::Udp).unwrap();
        assert_eq!(m.answers.len(), 1, "{name}: RFC 8482, no expansion");
        let RData::HINFO(hinfo) = &m.answers[0].data else {
            panic!("{m:?}")
        };
        assert_eq!(&hinfo.cpu[..], b"RFC8482");
    }
    for rtype in [RecordType::AXFR, RecordType::IXFR] {
        let m = ask(&r, &query("dcv.cdn.test.", rtype, None), Transport::Tcp).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    }
}

#[test]
fn bad_input_is_dropped_or_refused_by_the_rules() {
    let (_d, _s, r) = responder(0);
    let source: SocketAddr = SOURCE.parse().unwrap();
    // Shorter than a header: nothing.
    assert!(r
        .respond(&[0x12, 0x34, 0], source, Transport::Udp)
        .is_none());
    // A response: nothing (no reflection loops).
    let mut response = Message::query();
    response.metadata.message_type = MessageType::Response;
    response.add_query(Query::query(
        Name::from_ascii("dcv.cdn.test.").unwrap(),
        RecordType::SOA,
    ));
    assert!(r
        .respond(&response.to_vec().unwrap(), source, Transport::Udp)
        .is_none());
    // A header and garbage: FORMERR with the id, no question.
    let mut junk = query("dcv.cdn.test.", RecordType::SOA, None);
    junk.truncate(16);
    let m = ask(&r, &junk, Transport::Udp).unwrap();
    assert_eq!(
        (m.metadata.id, m.metadata.response_code),
        (0x1234, ResponseCode::FormErr)
    );
    assert!(m.queries.is_empty());
    // A compression pointer to itself.
    let mut looped = query("dcv.cdn.test.", RecordType::SOA, None);
    looped.truncate(12);
    looped.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    let m = ask(&r, &looped, Transport::Udp).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // Oversize: nothing.
    let mut big = query("dcv.cdn.test.", RecordType::SOA, None);
    big.resize(MAX_QUERY + 1, 0);
    assert!(r.respond(&big, source, Transport::Tcp).is_none());
    // No question: FORMERR (RFC 9619).
    let mut none = Message::query();
    none.metadata.id = 7;
    let m = ask(&r, &none.to_vec().unwrap(), Transport::Udp).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // NOTIFY and UPDATE: NOTIMP.
    let mut notify = Message::query();
    notify.metadata.op_code = OpCode::Notify;
    notify.add_query(Query::query(
        Name::from_ascii("dcv.cdn.test.").unwrap(),
        RecordType::SOA,
    ));
    let m = ask(&r, &notify.to_vec().unwrap(), Transport::Udp).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    // EDNS version 1: BADVERS, with an OPT of version 0 (RFC 6891 §6.1.3).
    let mut v1 = Message::query();
    v1.add_query(Query::query(
        Name::from_ascii("dcv.cdn.test.").unwrap(),
        RecordType::SOA,
    ));
    let mut e = Edns::new();
    e.set_version(1);
    v1.set_edns(e);
    let m = ask(&r, &v1.to_vec().unwrap(), Transport::Udp).unwrap();
    // 16 is BADVERS in an OPT-carrying response (BADSIG is its TSIG reading).
    assert_eq!(u16::from(m.metadata.response_code), 16);
    assert_eq!(m.edns.as_ref().map(Edns::version), Some(0));
}

#[test]
fn a_udp_answer_that_does_not_fit_is_sent_empty_with_tc_and_whole_over_tcp() {
    let (_d, store, r) = responder(0);
    for i in 0..40 {
        publish(&store, "shop.example", &format!("t{i:02}"), &"v".repeat(43));
    }
    let name = "shop.example.dcv.cdn.test.";
    let wire = r
        .respond(
            &query(name, RecordType::TXT, None),
            SOURCE.parse().unwrap(),
            Transport::Udp,
        )
        .unwrap();
    assert!(wire.len() <= 512);
    let m = Message::from_vec(&wire).unwrap();
    assert!(m.metadata.truncation && m.answers.is_empty(), "{m:?}");
    // A client offering 4096 bytes gets at most 1232 (RFC 9715).
    let wire = r
        .respond(
            &query(name, RecordType::TXT, Some(4096)),
            SOURCE.parse().unwrap(),
            Transport::Udp,
        )
        .unwrap();
    assert!(wire.len() <= usize::from(MAX_UDP_PAYLOAD));
    assert!(Message::from_vec(&wire).unwrap().metadata.truncation);
    let m = ask(&r, &query(name, RecordType::TXT, None), Transport::Tcp).unwrap();
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 40);
}

#[test]
fn the_rate_limit_slips_then_drops_over_udp_only() {
    let (_d, _s, r) = responder(2);
    let wire = query("dcv.cdn.test.", RecordType::SOA, None);
    let now = Instant::now();
    let source: SocketAddr = SOURCE.parse().unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(
            r.respond_at(&wire, source, Transport::Udp, now)
                .map(|w| Message::from_vec(&w).unwrap().metadata.truncation),
        );
    }
    assert_eq!(got, [Some(false), Some(false), Some(true), None]);
    // TCP sources cannot be forged: not limited.
    assert!(r.respond_at(&wire, source, Transport::Tcp, now).is_some());
}

/// The fuzz target's invariants (fuzz/fuzz_targets/dns_listener.rs) on mutated queries, so that
/// every test run looks at a few thousand odd messages too.
#[test]
fn mutated_queries_keep_the_answers_small_and_well_formed() {
    let (_d, store, r) = responder(0);
    publish(&store, "shop.example", "t1", "apex-value");
    publish(&store, "shop.example", "t2", "wildcard-value");
    let seeds = [
        query("shop.example.dcv.cdn.test.", RecordType::TXT, None),
        query("dcv.cdn.test.", RecordType::NS, Some(4096)),
        query("dcv.cdn.test.", RecordType::ANY, Some(512)),
        query("example.com.", RecordType::A, None),
    ];
    let mut rng = rand::rng();
    let source: SocketAddr = SOURCE.parse().unwrap();
    for i in 0..20_000 {
        let mut wire = seeds[i % seeds.len()].clone();
        for _ in 0..rand::Rng::random_range(&mut rng, 1..6) {
            let at = rand::Rng::random_range(&mut rng, 0..wire.len());
            match rand::Rng::random_range(&mut rng, 0..3) {
                0 => wire[at] = rand::random(),
                1 => wire.truncate(at.max(1)),
                _ => wire.insert(at, rand::random()),
            }
        }
        let transport = if i % 3 == 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let Some(reply) = r.respond(&wire, source, transport) else {
            continue;
        };
        assert!(wire.len() >= 12 && wire[2] & 0x80 == 0, "{wire:?}");
        let m = Message::from_vec(&reply).unwrap_or_else(|e| panic!("{e}: {wire:?}"));
        assert_eq!(reply[..2], wire[..2]);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(!m.metadata.recursion_available);
        if transport == Transport::Udp {
            // Without an OPT record, 512; with one (or a query only hickory-server reads), 1232.
            let limit = match Message::from_vec(&wire) {
                Ok(q) if q.edns.is_none() => 512,
                _ => usize::from(MAX_UDP_PAYLOAD),
            };
            assert!(reply.len() <= limit, "{} > {limit}: {wire:?}", reply.len());
        }
        if m.metadata.response_code == ResponseCode::Refused {
            assert!(m.answers.is_empty() && !m.metadata.authoritative);
        }
    }
}

/// Found by the `dns_listener` fuzz target: a question whose name is a compression pointer into
/// the header (here at its flags byte, a one-byte label in the request) came back verbatim in
/// the response, where that byte is another and the name no longer parses. The response now
/// carries the question written out again, uncompressed.
#[test]
fn a_compressed_question_is_echoed_as_a_name_that_parses() {
    let (_d, _s, r) = responder(0);
    // Id 0x0082, flags 0x013b (a query), one question: the pointer 0xc002, then garbage.
    let wire = [
        0x00, 0x82, 0x01, 0x3b, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0x02, 0x02, 0x02, 0x02, 0x02,
        0x02, 0x02, 0x04, 0x13,
    ];
    let reply = r
        .respond(&wire, SOURCE.parse().unwrap(), Transport::Udp)
        .unwrap();
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(m.metadata.id, 0x0082);
    assert_eq!(m.queries.len(), 1);
    // The label is the flags byte 0x3b, ';' (escaped in presentation form).
    assert_eq!(m.queries[0].name().to_ascii(), "\\;.");
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
}
