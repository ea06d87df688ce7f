//! The probe's DNS verdicts judged on real DNS (tests/common/dnslab.rs): nsd authoritative
//! servers with real zone cuts below a lab root, unbound as the CA's validating resolver. What
//! pebble-challtestsrv cannot show — a CNAME into a zone on another provider's servers,
//! secondaries that disagree, lame and silent servers, DNSSEC — is shown here.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;

use common::dnslab::{query, DnsLab, RecordType, Zone};
use common::Node;

const EDGE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 7);

/// A node whose probe asks `lab`'s unbound and validates DNSSEC from the lab root's key.
async fn node_for(lab: &DnsLab, method: &str) -> Node {
    let keys = query(lab.server("."), ".", RecordType::DNSKEY)
        .await
        .expect("the lab root serves its keys");
    let anchor: String = keys
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::DNSKEY)
        .map(|r| format!(". 3600 IN DNSKEY {}\n", r.data))
        .collect();
    assert!(!anchor.is_empty(), "no DNSKEY at the lab root: {keys:?}");
    let anchor_file = lab.dir().join("probe-anchor.keys");
    std::fs::write(&anchor_file, anchor).unwrap();
    Node::builder()
        .extra_config(&format!(
            "\n[probe]\nresolvers = [\"{}\"]\ntimeout = \"2s\"\ndeadline = \"30s\"\ninterval = \"0s\"\n\
             trust_anchor = {:?}\nvalidation_method = \"{method}\"\nca_identities = [\"pebble.letsencrypt.org\"]\n",
            lab.resolver(),
            anchor_file.display().to_string(),
        ))
        .start()
        .await
}

/// `(check, target, status, cause)` of every check of `dcv-proxy check NAME --json`.
async fn findings(node: &Node, name: &str) -> Vec<(String, String, String, String)> {
    let (_, out) = node.check(&[name, "--json"]).await;
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    doc["reports"][0]["checks"]
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
        .collect()
}

fn only<'a>(
    all: &'a [(String, String, String, String)],
    check: &str,
) -> Vec<&'a (String, String, String, String)> {
    all.iter().filter(|(c, ..)| c == check).collect()
}

#[tokio::test]
async fn a_cname_into_the_cdn_zone_is_answered_by_each_zones_own_servers() {
    let lab = DnsLab::builder()
        .zone(Zone::new("test.").signed())
        .zone(Zone::new("customer.test.").cname("shop", "edge.cdn.test."))
        .zone(Zone::new("customer.test.").cname("shop", "edge.cdn.test."))
        .zone(Zone::new("cdn.test.").a("edge", EDGE))
        .start()
        .await;
    let node = node_for(&lab, "http-01").await;
    let all = findings(&node, "shop.customer.test").await;
    let auth = only(&all, "dns.authoritative");
    // Both customer servers for the name (a CNAME), the CDN's server for the target.
    assert_eq!(auth.len(), 3, "{all:#?}");
    for (_, target, status, cause) in &auth {
        assert_eq!(
            (status.as_str(), cause.as_str()),
            ("pass", ""),
            "{target}: {all:#?}"
        );
    }
    assert!(
        auth.iter().any(|(_, t, ..)| t.ends_with(": edge.cdn.test")),
        "{auth:#?}"
    );
    for (check, target, status, cause) in &all {
        if check.starts_with("dns.") && check != "dns.points_here" {
            assert!(
                status == "pass" || status == "skip",
                "{check} {target}: {status} {cause}\n{all:#?}"
            );
        }
    }
}

#[tokio::test]
async fn secondaries_that_disagree_are_d11_and_a_lagging_serial_warns() {
    let lab = DnsLab::builder()
        .zone(Zone::new("test."))
        .zone(Zone::new("moved.test.").serial(7).a("www", EDGE))
        .zone(
            Zone::new("moved.test.")
                .serial(6)
                .a("www", Ipv4Addr::new(127, 0, 0, 8)),
        )
        .zone(Zone::new("lag.test.").serial(9).a("www", EDGE))
        .zone(Zone::new("lag.test.").serial(8).a("www", EDGE))
        .start()
        .await;
    let node = node_for(&lab, "http-01").await;
    let all = findings(&node, "www.moved.test").await;
    let agree = only(&all, "dns.authoritative_agree");
    assert!(
        agree
            .iter()
            .any(|(_, t, s, c)| t == "www.moved.test" && s == "fail" && c == "D11"),
        "{all:#?}"
    );
    let all = findings(&node, "www.lag.test").await;
    let agree = only(&all, "dns.authoritative_agree");
    assert!(
        agree
            .iter()
            .any(|(_, t, s, c)| t == "www.lag.test" && s == "warn" && c == "D11"),
        "{all:#?}"
    );
}

#[tokio::test]
async fn a_lame_or_silent_server_is_named_and_warns_while_another_answers() {
    let lab = DnsLab::builder()
        .zone(Zone::new("test."))
        .zone(Zone::new("shaky.test.").a("www", EDGE))
        .lame("shaky.test.")
        .silent("shaky.test.")
        .start()
        .await;
    let node = node_for(&lab, "http-01").await;
    let all = findings(&node, "www.shaky.test").await;
    let auth = only(&all, "dns.authoritative");
    let lame = lab.lame_server().ip().to_string();
    let silent = lab.silent_server().ip().to_string();
    assert!(
        auth.iter()
            .any(|(_, t, s, c)| t.contains(&lame) && s == "warn" && c == "D2"),
        "{all:#?}"
    );
    assert!(
        auth.iter()
            .any(|(_, t, s, c)| t.contains(&silent) && s == "warn" && c == "D4"),
        "{all:#?}"
    );
    assert!(
        auth.iter().any(|(_, _, s, _)| s == "pass"),
        "the good server: {all:#?}"
    );
}

#[tokio::test]
async fn dnssec_bogus_and_expired_fail_with_d12_and_unsigned_passes() {
    let lab = DnsLab::builder()
        .zone(Zone::new("test.").signed())
        .zone(Zone::new("good.test.").signed().a("www", EDGE))
        .zone(Zone::new("stale.test.").expired_signatures().a("www", EDGE))
        .zone(
            Zone::new("forged.test.")
                .signed()
                .a("www", EDGE)
                .forged("www", "A", "127.0.0.66"),
        )
        .zone(Zone::new("plain.test.").a("www", EDGE))
        .start()
        .await;
    let node = node_for(&lab, "http-01").await;
    for (name, status, cause, word) in [
        ("www.good.test", "pass", "", "signed"),
        ("www.plain.test", "pass", "", "not signed"),
        ("www.stale.test", "fail", "D12", ""),
        ("www.forged.test", "fail", "D12", ""),
    ] {
        let all = findings(&node, name).await;
        let dnssec = only(&all, "dns.dnssec");
        assert_eq!(dnssec.len(), 1, "{name}: {all:#?}");
        let (_, _, s, c) = dnssec[0];
        assert_eq!(
            (s.as_str(), c.as_str()),
            (status, cause),
            "{name}: {all:#?}"
        );
        let (_, out) = node.check(&[name]).await;
        assert!(out.contains(word), "{name}: {out}");
    }
}

#[tokio::test]
async fn a_txt_record_missing_on_one_secondary_is_d11_not_d10() {
    let mut lab = DnsLab::builder()
        .zone(Zone::new("test."))
        .zone(Zone::new("txt.test.").a("www", EDGE))
        .zone(Zone::new("txt.test.").a("www", EDGE))
        .start()
        .await;
    let first = lab.servers("txt.test.")[0];
    lab.set_records_on(
        first,
        "_acme-challenge.www.txt.test.",
        "TXT",
        &["\"value-from-the-ca\""],
    )
    .await;
    let node = node_for(&lab, "http-01").await;
    let status = node
        .admin_put(
            "/v1/probe/txt/_acme-challenge.www.txt.test",
            &serde_json::json!({"values": ["value-from-the-ca"]}),
        )
        .await;
    assert!(status.status < 300, "{}", status.text());
    let all = findings(&node, "www.txt.test").await;
    let txt = only(&all, "dns.txt");
    let second = lab.servers("txt.test.")[1].ip().to_string();
    assert!(
        txt.iter()
            .any(|(_, t, s, c)| t.contains(&second) && s == "fail" && c == "D11"),
        "{all:#?}"
    );
    assert!(
        !txt.iter().any(|(_, _, _, c)| c == "D10"),
        "a secondary out of sync is not a wrong value: {all:#?}"
    );
}

#[tokio::test]
async fn wildcards_are_judged_for_dns_01_with_issuewild() {
    let lab = DnsLab::builder()
        .zone(Zone::new("test."))
        .zone(
            Zone::new("wild.test.")
                .a("shop", EDGE)
                .caa("@", 0, "issue", "pebble.letsencrypt.org")
                .caa("@", 0, "issuewild", ";")
                // Ignored by CAs, critical or not (Boulder: only issue and issuewild count).
                .caa("@", 128, "issuemail", "mail.example"),
        )
        .start()
        .await;
    let http = node_for(&lab, "http-01").await;
    let all = findings(&http, "*.shop.wild.test").await;
    let lint = only(&all, "lint.syntax");
    assert_eq!(lint[0].2, "fail", "{all:#?}");
    assert_eq!(lint[0].3, "P6");
    let (_, text) = http.check(&["*.shop.wild.test"]).await;
    assert!(text.contains("DNS-01"), "{text}");

    let dns = node_for(&lab, "dns-01").await;
    let all = findings(&dns, "*.shop.wild.test").await;
    let caa = only(&all, "dns.caa");
    assert_eq!(
        (caa[0].2.as_str(), caa[0].3.as_str()),
        ("fail", "D8"),
        "{all:#?}"
    );
    // The exact name is allowed by `issue`: issuemail, even critical, does not forbid it.
    let all = findings(&dns, "shop.wild.test").await;
    let caa = only(&all, "dns.caa");
    assert_eq!(caa[0].2, "pass", "{all:#?}");
    // No address is fetched for a wildcard.
    assert!(only(&findings(&dns, "*.shop.wild.test").await, "tcp.connect").is_empty());
}
