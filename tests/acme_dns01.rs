//! Wildcards by delegated DNS validation, end to end on real DNS: the DNS lab's nsd servers
//! hold the customer's zone, whose `_acme-challenge` CNAME points into the CDN's validation
//! zone, and the CDN's zone, which delegates the validation zone to the dcv-proxy nodes' own
//! DNS listeners (glue on the lab's loopback block); unbound is the CA's resolver, Pebble
//! validates dns-01 through it, and the node's gate and probe ask it too. Loopback only.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use common::dnslab::{
    listening, query, query_with, DnsLab, LabBuilder, RecordType, ResponseCode, Zone,
};
use common::etcd::Etcd;
use common::pebble::{Pebble, PebbleConfig};
use common::{eventually, free_addr, Node};

const ZONE: &str = "dcv.cdn.test";
const NAME: &str = "shop.customer.test";

/// The root (signed), `test.` (signed), the customer's zone with the delegation CNAME (and a
/// `_validation-persist` record), and the CDN's zone (signed), which delegates the validation
/// zone to `listeners` servers of the test.
fn lab(listeners: u8) -> LabBuilder {
    DnsLab::builder()
        .zone(Zone::new("test.").signed())
        .zone(
            Zone::new("customer.test.")
                .ttl(2)
                .cname("_acme-challenge.shop", &format!("{NAME}.{ZONE}."))
                .txt("_acme-challenge.direct", "a value published by hand")
                .cname(
                    "_acme-challenge.elsewhere",
                    "elsewhere.customer.test.other-cdn.test.",
                )
                .txt(
                    "_validation-persist.shop",
                    "pebble.letsencrypt.org; accounturi=https://acme.test/acct/1; policy=wildcard",
                ),
        )
        .zone(Zone::new("cdn.test.").signed())
        .delegate(ZONE, listeners)
}

/// The lab root's keys as the probe's trust anchor (DNSSEC checked from the lab's root).
async fn anchor_file(lab: &DnsLab) -> PathBuf {
    let keys = query(lab.server("."), ".", RecordType::DNSKEY)
        .await
        .unwrap();
    let anchor: String = keys
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::DNSKEY)
        .map(|r| format!(". 3600 IN DNSKEY {}\n", r.data))
        .collect();
    let file = lab.dir().join("probe-anchor.keys");
    std::fs::write(&file, anchor).unwrap();
    file
}

/// `[probe]` through the lab's unbound, `[dns]` on `listen` for the validation zone as the lab
/// delegates it (the same on every node of a fleet), and `extra`.
async fn node_config(lab: &DnsLab, listen: SocketAddr, probe_extra: &str, extra: &str) -> String {
    let ns: Vec<String> = lab
        .ns_names(ZONE)
        .iter()
        .map(|n| n.trim_end_matches('.').to_owned())
        .collect();
    let addresses: Vec<String> = ns
        .iter()
        .zip(lab.delegated(ZONE))
        .map(|(n, a)| format!("{n:?} = [\"{}\"]", a.ip()))
        .collect();
    format!(
        "\n[probe]\nresolvers = [\"{}\"]\ntimeout = \"2s\"\ndeadline = \"30s\"\ninterval = \"0s\"\ntrust_anchor = {:?}\n{probe_extra}\n\
         [dns]\nlisten = [\"{listen}\"]\nttl = \"1s\"\n\n[[dns.zone]]\nname = \"{ZONE}\"\nname_servers = [{}]\naddresses = {{ {} }}\n{extra}",
        lab.resolver(),
        anchor_file(lab).await.display().to_string(),
        ns.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", "),
        addresses.join(", "),
    )
}

/// Pebble validating through the lab's resolver, and the `[acme]` section for it (its own
/// `[probe]` section left out: the node's is [`node_config`]'s).
async fn pebble_for(lab: &DnsLab, http: SocketAddr, https: SocketAddr) -> (Pebble, String) {
    let mut config = PebbleConfig::for_node(http, https);
    config.resolver = Some(lab.resolver());
    let pebble = Pebble::start(config).await;
    let acme = pebble.acme_config();
    let (_, acme) = acme.split_once("[acme]").unwrap();
    let acme = format!("\n[acme]{acme}").replace(
        "self_check_timeout = \"10s\"",
        "self_check_timeout = \"40s\"",
    );
    (pebble, acme)
}

const CERTIFICATE: &str =
    "\n[[certificate]]\nnames = [\"*.shop.customer.test\", \"shop.customer.test\"]\nchallenge = \"dns-01\"\n";

/// `(check, target, status, cause)` of every check of `dcv-proxy check NAME --json`.
async fn findings(node: &Node, name: &str) -> (Option<i32>, Vec<(String, String, String, String)>) {
    let (code, out) = node.check(&[name, "--json"]).await;
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    let checks = doc["reports"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap_or("").to_owned(),
                c["target"].as_str().unwrap_or("").to_owned(),
                c["status"].as_str().unwrap_or("").to_owned(),
                c["cause"]["id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    (code, checks)
}

fn of<'a>(
    all: &'a [(String, String, String, String)],
    check: &str,
) -> Vec<&'a (String, String, String, String)> {
    all.iter().filter(|(c, ..)| c == check).collect()
}

#[tokio::test]
async fn a_wildcard_and_its_apex_are_issued_over_dns01_through_the_delegation() {
    let lab = lab(1).start().await;
    let listen = lab.delegated(ZONE)[0];
    let (http, https) = (free_addr(), free_addr());
    let (pebble, acme) = pebble_for(&lab, http, https).await;
    let node = Node::builder()
        .listen(http, https)
        .extra_config(&format!(
            "{}{acme}{CERTIFICATE}",
            node_config(&lab, listen, "", "").await
        ))
        .start()
        .await;
    let cert = eventually("the wildcard certificate issued over dns-01", || async {
        let rsp = node
            .admin_get("/v1/certificates/wildcard.shop.customer.test")
            .await;
        let cert = rsp.json();
        (rsp.status == 200 && cert["source"] == "acme").then_some(cert)
    })
    .await;
    assert_eq!(
        cert["names"],
        serde_json::json!(["*.shop.customer.test", "shop.customer.test"])
    );
    let log = node.log();
    // The gate judged it through the lab (the CNAME, the delegation, the value at unbound and
    // at the listener) and never held it back.
    assert!(!log.contains("self-check failed"), "{log}");
    assert!(log.contains("DNS-01 TXT value published"), "{log}");
    // Pebble asked the fleet's listener, through unbound, for both values.
    let m = node.metrics().await;
    assert!(
        m.count("dcv_dns_challenge_txt_served_total", &[("zone", ZONE)]) >= 2.0,
        "{}",
        m.text
    );
    // Withdrawn after the order: the listener has nothing left for the name.
    let left = query_with(
        listen,
        &format!("{NAME}.{ZONE}"),
        RecordType::TXT,
        false,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert_eq!(left.rcode, ResponseCode::NXDomain, "{left:?}");
    drop(pebble);
}

#[tokio::test]
async fn the_probe_names_a_missing_cname_a_broken_delegation_and_a_silent_listener() {
    // Two name servers delegated; the node answers as the first, the second is its own public
    // address too (probe.public_addresses) but nothing listens there: a silent listener (D15).
    let lab = lab(2).start().await;
    let [first, second] = lab.delegated(ZONE)[..] else {
        panic!("two delegated servers")
    };
    let node = Node::builder()
        .extra_config(&format!(
            "{}\n",
            node_config(
                &lab,
                first,
                &format!(
                    "public_addresses = [\"{}\"]\naccount_uri = \"https://acme.test/acct/1\"\nca_identities = [\"pebble.letsencrypt.org\"]\n",
                    second.ip()
                ),
                "",
            )
            .await
        ))
        .start()
        .await;
    listening(first, ZONE).await;

    let (code, all) = findings(&node, "*.shop.customer.test").await;
    let cname = of(&all, "dns.delegation_cname");
    assert_eq!(cname.len(), 1, "{all:#?}");
    // A wildcard is judged as DNS-01 on a node with validation zones, whatever
    // probe.validation_method says of the other names.
    assert_eq!(of(&all, "lint.syntax")[0].2, "pass", "{all:#?}");
    assert_eq!(cname[0].2, "pass", "{all:#?}");
    let zone = of(&all, "dns.validation_zone");
    assert!(
        zone.iter()
            .any(|(_, t, s, _)| t.starts_with("NS dcv.cdn.test at") && s == "pass"),
        "{all:#?}"
    );
    let first_ip = first.ip().to_string();
    let second_ip = second.ip().to_string();
    assert!(
        zone.iter()
            .any(|(_, t, s, _)| t.contains(&first_ip) && s == "pass"),
        "{all:#?}"
    );
    assert!(
        zone.iter()
            .any(|(_, t, s, c)| t.contains(&second_ip) && s == "warn" && c == "D15"),
        "the silent listener is a fleet address that does not answer: {all:#?}"
    );
    let members = of(&all, "fleet.dns");
    assert!(members.iter().all(|(_, _, s, _)| s == "pass"), "{all:#?}");
    // dns-persist-01 prepared for Pebble's issuer domain, this account, wildcards.
    let persist = of(&all, "dns.persist");
    assert_eq!(persist.len(), 1);
    assert_eq!(
        (persist[0].2.as_str(), persist[0].3.as_str()),
        ("pass", ""),
        "{all:#?}"
    );
    // Nothing fails but the lint of `.test`, which is no public suffix (P1).
    let failing: Vec<_> = all
        .iter()
        .filter(|(c, _, s, _)| s == "fail" && c != "lint.public_suffix")
        .collect();
    assert!(failing.is_empty(), "{all:#?}");
    assert_eq!(code, Some(1));

    // No CNAME but TXT by hand, a CNAME elsewhere, nothing at all: D13, and the check fails.
    for (name, word) in [
        ("*.direct.customer.test", "published at"),
        ("*.elsewhere.customer.test", "not to the validation zone"),
        ("*.nothing.customer.test", "no CNAME"),
    ] {
        let (code, all) = findings(&node, name).await;
        let cname = of(&all, "dns.delegation_cname");
        assert!(
            cname.iter().all(|(_, _, s, c)| s == "fail" && c == "D13"),
            "{name}: {all:#?}"
        );
        assert_eq!(code, Some(1), "{name}");
        assert!(!cname.is_empty(), "{name}: {all:#?}");
        let (_, text) = node.check(&[name]).await;
        assert!(
            text.contains(word) && text.contains("D13"),
            "{name}: {text}"
        );
        // No dns-persist-01 record there: nothing to judge.
        assert_eq!(of(&all, "dns.persist")[0].2, "skip", "{name}: {all:#?}");
    }
}

#[tokio::test]
async fn a_validation_zone_its_parent_does_not_delegate_is_d14() {
    let lab = lab(1).start().await;
    let listen = lab.delegated(ZONE)[0];
    // The node claims a second zone nobody delegated to it.
    let node = Node::builder()
        .extra_config(&format!(
            "{}[[dns.zone]]\nname = \"undelegated.cdn.test\"\nname_servers = [\"ns1.dcv.cdn.test\"]\n",
            node_config(&lab, listen, "", "").await
        ))
        .start()
        .await;
    listening(listen, ZONE).await;
    let (code, all) = findings(&node, "*.shop.customer.test").await;
    let zone = of(&all, "dns.validation_zone");
    assert!(
        zone.iter()
            .any(|(_, t, s, c)| t.starts_with("NS undelegated.cdn.test at")
                && s == "fail"
                && c == "D14"),
        "{all:#?}"
    );
    assert_eq!(code, Some(1));
    let (_, text) = node.check(&["*.shop.customer.test"]).await;
    assert!(
        text.contains("does not delegate the validation zone"),
        "{text}"
    );
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A TCP port free on 127.0.0.2–4 (the nodes' HTTP and HTTPS listeners).
fn shared_port(taken: &[u16]) -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind((ip(2), 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        if taken.contains(&port) {
            continue;
        }
        if [3, 4]
            .iter()
            .all(|h| TcpListener::bind((ip(*h), port)).is_ok())
        {
            return port;
        }
    }
    panic!("no port free on 127.0.0.2-4");
}

#[tokio::test]
async fn three_fleet_nodes_answer_the_challenge_and_the_wildcard_is_issued_once() {
    let lab = lab(3).start().await;
    let listeners = lab.delegated(ZONE);
    let etcd = Etcd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("fleet.key");
    let secret: [u8; 32] = rand::random();
    std::fs::write(
        &key,
        format!(
            "{}\n",
            base64::engine::general_purpose::STANDARD.encode(secret)
        ),
    )
    .unwrap();
    let http = shared_port(&[]);
    let https = shared_port(&[http]);
    let (pebble, acme) = pebble_for(
        &lab,
        SocketAddr::new(ip(2), http),
        SocketAddr::new(ip(2), https),
    )
    .await;
    let mut nodes = Vec::new();
    for (i, n) in [2u8, 3, 4].into_iter().enumerate() {
        let fleet = format!(
            "\n[fleet]\nbackend = \"etcd\"\nendpoints = [{:?}]\nprefix = \"/dcv-dns01\"\nnode_id = \"node-{n}\"\npublic_addresses = [\"{}\"]\nkey_file = {:?}\nlease_ttl = \"2s\"\nrequest_timeout = \"2s\"\n",
            etcd.endpoint(),
            ip(n),
            key.display().to_string()
        );
        let node = Node::builder()
            .listen(SocketAddr::new(ip(n), http), SocketAddr::new(ip(n), https))
            .extra_config(&format!(
                "{}{fleet}{acme}",
                node_config(&lab, listeners[i], "", "").await
            ))
            .start()
            .await;
        nodes.push(node);
    }
    for listen in &listeners {
        listening(*listen, ZONE).await;
    }
    for node in &nodes {
        eventually("every node sees the three members", || async {
            let fleet = node.admin_get("/v1/status").await.json()["fleet"].clone();
            let n = fleet["members"].as_array().map_or(0, Vec::len);
            (fleet["connected"] == true && n == 3).then_some(())
        })
        .await;
    }
    // The certificate comes with a reload on every node (the same `[[certificate]]` everywhere),
    // once the fleet is whole: the gate of the one node that orders asks all three listeners.
    for node in &nodes {
        node.write_config(&format!("{}{CERTIFICATE}", node.config_text()));
        node.signal("HUP");
    }
    // Every node gets the certificate: ordered once, shared through etcd.
    for node in &nodes {
        eventually("the wildcard certificate on every node", || async {
            let rsp = node
                .admin_get("/v1/certificates/wildcard.shop.customer.test")
                .await;
            let source = rsp.json()["source"].clone();
            (rsp.status == 200 && (source == "acme" || source == "fleet")).then_some(())
        })
        .await;
    }
    let ordered: Vec<usize> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.log().contains("DNS-01 TXT value published"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ordered.len(), 1, "one order for the fleet");
    let orderer = &nodes[ordered[0]];
    assert!(
        !orderer.log().contains("self-check failed"),
        "{}",
        orderer.log()
    );
    // The value reached every listener: each served challenge TXT records (the gate asked
    // every member, Pebble's resolver whichever name server it picked).
    for node in &nodes {
        let m = node.metrics().await;
        assert!(
            m.count("dcv_dns_challenge_txt_served_total", &[("zone", ZONE)]) >= 1.0,
            "{}",
            m.text
        );
    }
    // The probe of a member sees every member's listener answer.
    let (_, all) = findings(&nodes[1], "*.shop.customer.test").await;
    let members = of(&all, "fleet.dns");
    assert_eq!(members.len(), 3, "{all:#?}");
    assert!(members.iter().all(|(_, _, s, _)| s == "pass"), "{all:#?}");
    drop(pebble);
}
