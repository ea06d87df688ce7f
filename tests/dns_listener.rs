//! The node's authoritative DNS listener for the validation zones (`[dns]`, src/serve/dns) on
//! real UDP and TCP sockets: what it answers and what it refuses, bad input (other zones, ANY,
//! oversize and malformed messages, floods), its metrics, and three fleet nodes on etcd
//! answering one DNS-01 TXT value that was written once.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::dnslab::{
    free_dns_port as dns_port, listening, query_with, RecordType, Reply, ResponseCode,
};
use common::etcd::Etcd;
use common::{eventually, Node};
use hickory_resolver::proto::op::{Message, MessageType, Query};
use hickory_resolver::proto::rr::{Name, RData};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ZONE: &str = "dcv.cdn.test";
const PREFIX: &str = "/dcv-dns-test";

/// `[dns]` listening on `listen`, one zone with an in-zone and an out-of-zone name server.
fn dns_section(listen: &[SocketAddr], extra: &str) -> String {
    let listen: Vec<String> = listen
        .iter()
        .map(|a| format!("{:?}", a.to_string()))
        .collect();
    format!(
        "\n[dns]\nlisten = [{}]\nttl = \"5s\"\n{extra}\n[[dns.zone]]\nname = \"{ZONE}\"\nname_servers = [\"ns1.{ZONE}\", \"ns2.cdn.test\"]\naddresses = {{ \"ns1.{ZONE}\" = [\"192.0.2.53\"] }}\n",
        listen.join(", ")
    )
}

async fn ask(server: SocketAddr, name: &str, rtype: RecordType, tcp: bool) -> Reply {
    query_with(server, name, rtype, tcp, Duration::from_secs(2))
        .await
        .unwrap_or_else(|e| panic!("{server} did not answer {name} {rtype}: {e}"))
}

/// One raw UDP exchange: what came back within `wait`, if anything.
async fn udp_raw(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0; 65_535];
    match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

fn message(name: &str, rtype: RecordType, id: u16) -> Message {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m
}

#[tokio::test]
async fn the_listener_answers_its_zone_and_refuses_every_other_name() {
    let listen = SocketAddr::new(
        Ipv4Addr::LOCALHOST.into(),
        dns_port(&[Ipv4Addr::LOCALHOST.into()]),
    );
    let node = Node::builder()
        .extra_config(&dns_section(&[listen], "rate_limit = 0"))
        .start()
        .await;
    listening(listen, ZONE).await;

    let soa = ask(listen, ZONE, RecordType::SOA, false).await;
    assert_eq!(soa.rcode, ResponseCode::NoError);
    assert!(soa.authoritative, "{soa:?}");
    assert_eq!(soa.data(RecordType::SOA).len(), 1);
    let ns = ask(listen, ZONE, RecordType::NS, true).await;
    assert_eq!(
        ns.data(RecordType::NS),
        [format!("ns1.{ZONE}."), "ns2.cdn.test.".to_owned()]
    );
    let glue = ask(listen, &format!("ns1.{ZONE}"), RecordType::A, false).await;
    assert_eq!(glue.ips(), [IpAddr::from([192, 0, 2, 53])]);

    // Not a resolver: every name outside the zone is REFUSED, RD or not, with nothing in it.
    for name in ["example.com", "cdn.test", "xdcv.cdn.test", "localhost"] {
        let r = ask(listen, name, RecordType::A, false).await;
        assert_eq!(r.rcode, ResponseCode::Refused, "{name}: {r:?}");
        assert!(r.answers.is_empty() && r.authorities.is_empty() && !r.authoritative);
    }
    // ANY: one HINFO (RFC 8482), not the zone.
    let any = ask(listen, ZONE, RecordType::ANY, false).await;
    assert_eq!(any.answers.len(), 1, "{any:?}");
    assert!(matches!(any.answers[0].data, RData::HINFO(_)));
    // No transfers.
    let axfr = ask(listen, ZONE, RecordType::AXFR, true).await;
    assert_eq!(axfr.rcode, ResponseCode::Refused);
    // Nothing in flight: NXDOMAIN with the SOA for negative caching.
    let none = ask(
        listen,
        &format!("shop.customer.test.{ZONE}"),
        RecordType::TXT,
        false,
    )
    .await;
    assert_eq!(none.rcode, ResponseCode::NXDomain);
    assert!(none.serial().is_some(), "{none:?}");

    let m = node.metrics().await;
    assert!(
        m.count(
            "dcv_dns_queries_total",
            &[("zone", ZONE), ("type", "SOA"), ("rcode", "NOERROR")]
        ) >= 2.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.count(
            "dcv_dns_queries_total",
            &[("zone", "none"), ("type", "A"), ("rcode", "REFUSED")]
        ),
        4.0
    );
    assert_eq!(
        m.count("dcv_dns_queries_total", &[("zone", ZONE), ("type", "ANY")]),
        1.0
    );
}

#[tokio::test]
async fn bad_input_gets_no_answer_or_formerr_and_the_listener_keeps_answering() {
    let listen = SocketAddr::new(
        Ipv4Addr::LOCALHOST.into(),
        dns_port(&[Ipv4Addr::LOCALHOST.into()]),
    );
    let node = Node::builder()
        .extra_config(&dns_section(
            &[listen],
            "rate_limit = 0\ntcp_connections = 2",
        ))
        .start()
        .await;
    listening(listen, ZONE).await;
    let quiet = Duration::from_millis(300);

    // Shorter than a header.
    assert!(udp_raw(listen, &[0xab, 0xcd, 0x01], quiet).await.is_none());
    // A response: never answered (reflection).
    let mut response = message(&format!("{ZONE}."), RecordType::SOA, 9);
    response.metadata.message_type = MessageType::Response;
    assert!(udp_raw(listen, &response.to_vec().unwrap(), quiet)
        .await
        .is_none());
    // Oversize: a 5000-byte datagram.
    let mut big = message(&format!("{ZONE}."), RecordType::SOA, 10)
        .to_vec()
        .unwrap();
    big.resize(5000, 0);
    assert!(udp_raw(listen, &big, quiet).await.is_none());
    // A header, then garbage: FORMERR with the same id.
    let mut junk = message(&format!("{ZONE}."), RecordType::SOA, 0x4242)
        .to_vec()
        .unwrap();
    junk.truncate(14);
    let reply = udp_raw(listen, &junk, Duration::from_secs(2))
        .await
        .expect("FORMERR");
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(
        (reply.metadata.id, reply.metadata.response_code),
        (0x4242, ResponseCode::FormErr)
    );
    // A question name that is a compression loop.
    let mut looped = message(&format!("{ZONE}."), RecordType::SOA, 0x4343)
        .to_vec()
        .unwrap();
    looped.truncate(12);
    looped.extend_from_slice(&[0xc0, 0x0c, 0, 6, 0, 1]);
    let reply = udp_raw(listen, &looped, Duration::from_secs(2))
        .await
        .expect("FORMERR");
    assert_eq!(
        Message::from_vec(&reply).unwrap().metadata.response_code,
        ResponseCode::FormErr
    );

    // TCP: a frame announcing 65 535 bytes of which 100 come, then the connection is closed.
    let mut tcp = tokio::net::TcpStream::connect(listen).await.unwrap();
    tcp.write_all(&[0xff, 0xff]).await.unwrap();
    tcp.write_all(&[0u8; 100]).await.unwrap();
    drop(tcp);
    // An oversize frame gets no answer; the connection stays usable for a good query.
    let mut tcp = tokio::net::TcpStream::connect(listen).await.unwrap();
    let frame = vec![0u8; 5000];
    tcp.write_all(&(frame.len() as u16).to_be_bytes())
        .await
        .unwrap();
    tcp.write_all(&frame).await.unwrap();
    let good = message(&format!("{ZONE}."), RecordType::SOA, 0x5151)
        .to_vec()
        .unwrap();
    tcp.write_all(&(good.len() as u16).to_be_bytes())
        .await
        .unwrap();
    tcp.write_all(&good).await.unwrap();
    let len = tokio::time::timeout(Duration::from_secs(2), tcp.read_u16())
        .await
        .expect("an answer to the good query")
        .unwrap();
    let mut buf = vec![0; usize::from(len)];
    tcp.read_exact(&mut buf).await.unwrap();
    let reply = Message::from_vec(&buf).unwrap();
    assert_eq!(
        reply.metadata.id, 0x5151,
        "the oversize frame was not answered"
    );
    assert!(reply.metadata.authoritative);
    drop(tcp);

    // dns.tcp_connections = 2: with two held, a third connection is closed at once.
    let open = |n: f64| {
        let node = &node;
        async move {
            eventually("the listener's open TCP connections", || async {
                let m = node.metrics().await;
                (m.count("dcv_dns_tcp_connections", &[]) == n).then_some(())
            })
            .await
        }
    };
    open(0.0).await;
    let held: Vec<_> =
        futures_util::future::join_all((0..2).map(|_| tokio::net::TcpStream::connect(listen)))
            .await;
    open(2.0).await;
    let mut third = tokio::net::TcpStream::connect(listen).await.unwrap();
    let mut one = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(2), third.read(&mut one)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    drop(held);

    // Still answering, over both transports.
    listening(listen, ZONE).await;
    let r = ask(listen, ZONE, RecordType::SOA, true).await;
    assert!(r.authoritative);
    let m = eventually("the counters", || async {
        let m = node.metrics().await;
        (m.count("dcv_dns_tcp_refused_total", &[]) >= 1.0).then_some(m)
    })
    .await;
    for (reason, at_least) in [("malformed", 1.0), ("response", 1.0), ("oversize", 2.0)] {
        assert!(
            m.count("dcv_dns_dropped_total", &[("reason", reason)]) >= at_least,
            "{reason}\n{}",
            m.text
        );
    }
    assert!(
        m.count(
            "dcv_dns_queries_total",
            &[("zone", "none"), ("rcode", "FORMERR")]
        ) >= 2.0,
        "{}",
        m.text
    );
}

#[tokio::test]
async fn a_flood_from_one_network_is_truncated_then_dropped_and_tcp_still_answers() {
    let listen = SocketAddr::new(
        Ipv4Addr::LOCALHOST.into(),
        dns_port(&[Ipv4Addr::LOCALHOST.into()]),
    );
    let node = Node::builder()
        .extra_config(&dns_section(&[listen], "rate_limit = 5"))
        .start()
        .await;
    // Let the bucket fill after the readiness queries.
    listening(listen, ZONE).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let wire = message(&format!("{ZONE}."), RecordType::SOA, 1)
        .to_vec()
        .unwrap();
    for _ in 0..40 {
        socket.send_to(&wire, listen).await.unwrap();
    }
    let (mut full, mut truncated) = (0, 0);
    let mut buf = vec![0; 4096];
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(500), socket.recv_from(&mut buf)).await
    {
        let m = Message::from_vec(&buf[..n]).unwrap();
        if m.metadata.truncation {
            assert!(m.answers.is_empty());
            truncated += 1;
        } else {
            full += 1;
        }
    }
    assert!(
        (5..=7).contains(&full),
        "{full} full answers to a burst of 40 at 5/s"
    );
    assert!(truncated >= 10, "{truncated} slips");
    assert!(full + truncated < 40, "some were dropped");
    // The truncated answer sends a real resolver to TCP, which is not limited.
    let r = ask(listen, ZONE, RecordType::SOA, true).await;
    assert!(r.authoritative);
    let m = node.metrics().await;
    assert!(m.count("dcv_dns_dropped_total", &[("reason", "rate_limited")]) >= 10.0);
    assert!(m.count("dcv_dns_truncated_total", &[("reason", "rate_limited")]) >= 10.0);
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Puts `value` at `key` through etcd's JSON gateway (as another node's write would arrive).
fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn three_fleet_nodes_answer_a_txt_value_written_once() {
    let etcd = Etcd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("fleet.key");
    std::fs::write(&key, format!("{}\n", b64(&rand::random::<[u8; 32]>()))).unwrap();
    let hosts = [2u8, 3, 4];
    let port = dns_port(&hosts.map(ip));
    let mut nodes = Vec::new();
    for n in hosts {
        let listen = SocketAddr::new(ip(n), port);
        let fleet = format!(
            "[fleet]\nbackend = \"etcd\"\nendpoints = [{:?}]\nprefix = {PREFIX:?}\nnode_id = \"node-{n}\"\npublic_addresses = [\"{}\"]\nkey_file = {:?}\nlease_ttl = \"2s\"\nrequest_timeout = \"2s\"\n",
            etcd.endpoint(),
            ip(n),
            key.display().to_string()
        );
        let node = Node::builder()
            .extra_config(&format!(
                "{fleet}{}",
                dns_section(&[listen], "rate_limit = 0")
            ))
            .start()
            .await;
        listening(listen, ZONE).await;
        nodes.push((node, listen));
    }
    // Each member publishes where its listener answers (the probe asks there, D15).
    let status = eventually("three members with their DNS listeners", || async {
        let fleet = nodes[0].0.admin_get("/v1/status").await.json()["fleet"].clone();
        let members = fleet["members"].as_array().cloned().unwrap_or_default();
        (members.len() == 3
            && members
                .iter()
                .all(|m| m["dns"].as_array().is_some_and(|d| d.len() == 1)))
        .then_some(members)
    })
    .await;
    assert!(
        status
            .iter()
            .any(|m| m["dns"][0] == format!("{}:{port}", ip(3))),
        "{status:?}"
    );

    // One write, as the ordering node makes it; under a lease in real life.
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let record = serde_json::json!({ "value": "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0", "expires_unix": expires });
    let etcd_key = format!("{PREFIX}/dns01/shop.customer.test/tok-1");
    etcd.put(&etcd_key, record.to_string().as_bytes()).await;
    let name = format!("shop.customer.test.{ZONE}");
    for (node, listen) in &nodes {
        let reply = eventually("every node answers the value", || async {
            let r = ask(*listen, &name, RecordType::TXT, false).await;
            (!r.txt().is_empty()).then_some(r)
        })
        .await;
        assert_eq!(reply.txt(), ["LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"]);
        assert!(reply.authoritative);
        let m = node.metrics().await;
        assert!(m.count("dcv_dns_challenge_txt_served_total", &[("zone", ZONE)]) >= 1.0);
        assert_eq!(m.count("dcv_challenge_answers", &[("kind", "dns-01")]), 1.0);
    }
    // A second value at the same name (a wildcard and its apex): both, on every node.
    let record2 = serde_json::json!({ "value": "second-value", "expires_unix": expires });
    etcd.put(
        &format!("{PREFIX}/dns01/shop.customer.test/tok-2"),
        record2.to_string().as_bytes(),
    )
    .await;
    for (_, listen) in &nodes {
        eventually("both values everywhere", || async {
            let mut txt = ask(*listen, &name, RecordType::TXT, true).await.txt();
            txt.sort();
            (txt.len() == 2).then_some(())
        })
        .await;
    }
    // Withdrawn once: gone everywhere.
    etcd.delete(&etcd_key).await;
    etcd.delete(&format!("{PREFIX}/dns01/shop.customer.test/tok-2"))
        .await;
    for (_, listen) in &nodes {
        eventually("the values are withdrawn everywhere", || async {
            let r = ask(*listen, &name, RecordType::TXT, false).await;
            (r.rcode == ResponseCode::NXDomain).then_some(())
        })
        .await;
    }
}
