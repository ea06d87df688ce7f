//! Self-test of the DNS lab (tests/common/dnslab.rs): real zone cuts on loopback, asked through
//! unbound the way a CA's resolver asks, and the authoritative servers asked directly.

mod common;

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use common::dnslab::{query, query_tcp, query_with, DnsLab, RecordType, ResponseCode, Zone};

const WWW: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
const EDGE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 7);

/// `test.` (signed) delegating to `customer.test.` and `cdn.test.` on servers of their own; a
/// shop name of the customer is a CNAME into the CDN.
async fn cdn_world() -> DnsLab {
    DnsLab::builder()
        .zone(Zone::new("test.").signed())
        .zone(
            Zone::new("customer.test.")
                .a("www", WWW)
                .cname("shop", "edge.cdn.test.")
                .caa("@", 0, "issue", "pebble.letsencrypt.org")
                .caa("@", 0, "issuewild", ";")
                .caa("@", 128, "tbs", "unknown critical tag"),
        )
        .zone(
            Zone::new("cdn.test.")
                .a("edge", EDGE)
                .aaaa("edge", Ipv6Addr::LOCALHOST)
                .txt("edge", "served by the cdn"),
        )
        .start()
        .await
}

#[tokio::test]
async fn names_resolve_through_the_zone_cuts() {
    let started = Instant::now();
    let lab = cdn_world().await;
    eprintln!("lab of 4 servers started in {:?}", started.elapsed());

    let www = lab.resolve("www.customer.test.", RecordType::A).await;
    assert_eq!(www.rcode, ResponseCode::NoError, "{www:?}");
    assert_eq!(www.ips(), vec![IpAddr::V4(WWW)]);
    // Unsigned below a signed parent: insecure, not bogus.
    assert!(!www.authentic, "customer.test. has no DS: {www:?}");

    // The root only refers to test., test. only to customer.test.: the cuts are real.
    let root = query(lab.server("."), "www.customer.test.", RecordType::A)
        .await
        .expect("the root answers");
    assert!(!root.authoritative && root.answers.is_empty(), "{root:?}");
    assert!(
        root.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::NS && r.name.to_ascii() == "test."),
        "a referral to test.: {root:?}"
    );
    let tld = query(lab.server("test."), "www.customer.test.", RecordType::A)
        .await
        .expect("test. answers");
    assert!(!tld.authoritative && tld.answers.is_empty(), "{tld:?}");
    let own = query(
        lab.server("customer.test."),
        "www.customer.test.",
        RecordType::A,
    )
    .await
    .expect("customer.test. answers");
    assert!(own.authoritative, "{own:?}");
    assert_eq!(own.ips(), vec![IpAddr::V4(WWW)]);

    // The CNAME points into a zone on another server; unbound follows it to the address.
    let shop = lab.resolve("shop.customer.test.", RecordType::A).await;
    assert_eq!(shop.data(RecordType::CNAME), vec!["edge.cdn.test."]);
    assert_eq!(shop.ips(), vec![IpAddr::V4(EDGE)]);
    let shop6 = lab.resolve("shop.customer.test.", RecordType::AAAA).await;
    assert_eq!(shop6.ips(), vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
    let direct = query(
        lab.server("customer.test."),
        "shop.customer.test.",
        RecordType::A,
    )
    .await
    .expect("customer.test. answers");
    assert!(
        direct.ips().is_empty(),
        "the customer's server does not know the CDN: {direct:?}"
    );
    let txt = lab.resolve("shop.customer.test.", RecordType::TXT).await;
    assert_eq!(txt.txt(), vec!["served by the cdn"]);

    let caa = lab.resolve("customer.test.", RecordType::CAA).await;
    let mut caa = caa.data(RecordType::CAA);
    caa.sort();
    assert_eq!(caa.len(), 3, "{caa:?}");
    assert!(
        caa.iter()
            .any(|c| c.contains("issue") && c.contains("pebble.letsencrypt.org")),
        "{caa:?}"
    );
    assert!(caa.iter().any(|c| c.starts_with("128 tbs")), "{caa:?}");
    assert!(caa.iter().any(|c| c.contains("issuewild")), "{caa:?}");

    // unbound answers over TCP too.
    let tcp = query_tcp(lab.resolver(), "shop.customer.test.", RecordType::A)
        .await
        .expect("unbound answers over TCP");
    assert_eq!(tcp.ips(), vec![IpAddr::V4(EDGE)]);

    // Nothing outside the lab: the lab root denies the real world's names, and proves it.
    let com = lab.resolve("example.com.", RecordType::A).await;
    assert_eq!(com.rcode, ResponseCode::NXDomain, "{com:?}");
    assert!(
        com.authentic,
        "the signed lab root's denial validates: {com:?}"
    );
}

#[tokio::test]
async fn secondaries_that_disagree() {
    let lab = DnsLab::builder()
        .zone(
            Zone::new("split.test.")
                .serial(7)
                .txt("www", "fresh")
                .a("www", WWW),
        )
        .zone(
            Zone::new("split.test.")
                .serial(6)
                .txt("www", "stale")
                .a("www", EDGE),
        )
        .start()
        .await;
    let servers = lab.servers("split.test.");
    assert_eq!(servers.len(), 2);
    let mut seen = Vec::new();
    for server in &servers {
        let soa = query(*server, "split.test.", RecordType::SOA)
            .await
            .expect("SOA");
        let txt = query(*server, "www.split.test.", RecordType::TXT)
            .await
            .expect("TXT");
        let a = query(*server, "www.split.test.", RecordType::A)
            .await
            .expect("A");
        assert!(soa.authoritative && txt.authoritative, "{soa:?} {txt:?}");
        seen.push((soa.serial(), txt.txt(), a.ips()));
    }
    assert_eq!(
        seen[0],
        (Some(7), vec!["fresh".to_owned()], vec![IpAddr::V4(WWW)])
    );
    assert_eq!(
        seen[1],
        (Some(6), vec!["stale".to_owned()], vec![IpAddr::V4(EDGE)])
    );

    // The resolver gets one of the two stories.
    let txt = lab.resolve("www.split.test.", RecordType::TXT).await;
    assert!(
        txt.txt() == ["fresh"] || txt.txt() == ["stale"],
        "{:?}",
        txt.txt()
    );
}

#[tokio::test]
async fn lame_and_silent_servers() {
    let lab = DnsLab::builder()
        .zone(Zone::new("customer.test.").a("www", WWW))
        .silent("customer.test.")
        .lame("lame.test.")
        .silent("dead.test.")
        .start()
        .await;

    // Asked directly: the lame server refuses, the silent one never answers (a timeout, not a
    // quick ICMP refusal), on UDP and on TCP.
    let refused = query(lab.lame_server(), "www.lame.test.", RecordType::A)
        .await
        .expect("the lame server answers");
    assert_eq!(refused.rcode, ResponseCode::Refused, "{refused:?}");
    let silent_server = lab.silent_server();
    let silent = |tcp| async move {
        let start = Instant::now();
        let wait = Duration::from_millis(700);
        let err = query_with(silent_server, "www.dead.test.", RecordType::A, tcp, wait)
            .await
            .expect_err("the silent server never answers");
        assert_eq!(err.kind(), ErrorKind::TimedOut, "tcp={tcp}: {err}");
        assert!(start.elapsed() >= wait, "tcp={tcp}");
    };

    // Through unbound: a lame delegation fails at once, a silent one after unbound's retries;
    // a zone with one good server and one silent one resolves (at once, or after a timeout on
    // the silent server when unbound tries it first).
    let patient = Duration::from_secs(10);
    let (_, _, lame, www, dead) = tokio::join!(
        silent(false),
        silent(true),
        lab.resolve("www.lame.test.", RecordType::A),
        query_with(
            lab.resolver(),
            "www.customer.test.",
            RecordType::A,
            false,
            patient
        ),
        query_with(
            lab.resolver(),
            "www.dead.test.",
            RecordType::A,
            false,
            patient
        ),
    );
    assert_eq!(lame.rcode, ResponseCode::ServFail, "{lame:?}");
    let www = www.expect("unbound answers despite the silent server");
    assert_eq!(www.ips(), vec![IpAddr::V4(WWW)], "{www:?}");
    let dead = dead.expect("unbound gives up on the silent server");
    assert_eq!(dead.rcode, ResponseCode::ServFail, "{dead:?}");
}

#[tokio::test]
async fn dnssec_good_bogus_and_insecure() {
    let lab = DnsLab::builder()
        .zone(Zone::new("test.").signed())
        .zone(
            Zone::new("good.test.")
                .signed()
                .a("www", WWW)
                .txt("www", "signed"),
        )
        .zone(
            Zone::new("expired.test.")
                .expired_signatures()
                .a("www", WWW),
        )
        .zone(
            Zone::new("forged.test.")
                .signed()
                .a("www", WWW)
                .txt("www", "intact")
                .forged("www", "A", &EDGE.to_string()),
        )
        .zone(Zone::new("plain.test.").a("www", WWW))
        .start()
        .await;
    let anchor = lab.trust_anchor().expect("the root is signed");
    assert!(anchor.contains("DS"), "{anchor}");

    let good = lab.resolve("www.good.test.", RecordType::A).await;
    assert_eq!(good.rcode, ResponseCode::NoError, "{good:?}");
    assert!(good.authentic, "validated down from the lab root: {good:?}");
    assert_eq!(good.ips(), vec![IpAddr::V4(WWW)]);
    let missing = lab.resolve("nothing.good.test.", RecordType::A).await;
    assert_eq!(missing.rcode, ResponseCode::NXDomain, "{missing:?}");
    assert!(missing.authentic, "a validated denial: {missing:?}");

    let expired = lab.resolve("www.expired.test.", RecordType::A).await;
    assert_eq!(expired.rcode, ResponseCode::ServFail, "{expired:?}");
    // The server itself serves the data: only the signatures are wrong.
    let direct = query(
        lab.server("expired.test."),
        "www.expired.test.",
        RecordType::A,
    )
    .await
    .expect("expired.test. answers");
    assert_eq!(direct.ips(), vec![IpAddr::V4(WWW)]);

    let forged = lab.resolve("www.forged.test.", RecordType::A).await;
    assert_eq!(forged.rcode, ResponseCode::ServFail, "{forged:?}");
    let direct = query(
        lab.server("forged.test."),
        "www.forged.test.",
        RecordType::A,
    )
    .await
    .expect("forged.test. answers");
    assert_eq!(
        direct.ips(),
        vec![IpAddr::V4(EDGE)],
        "the forged record is served"
    );
    let intact = lab.resolve("www.forged.test.", RecordType::TXT).await;
    assert!(
        intact.authentic,
        "the other RRsets still validate: {intact:?}"
    );

    let plain = lab.resolve("www.plain.test.", RecordType::A).await;
    assert_eq!(plain.rcode, ResponseCode::NoError, "{plain:?}");
    assert!(
        !plain.authentic,
        "insecure below the signed test.: {plain:?}"
    );
    assert_eq!(plain.ips(), vec![IpAddr::V4(WWW)]);
}

#[tokio::test]
async fn changes_during_a_test_are_seen_by_the_resolver() {
    let mut lab = DnsLab::builder()
        .zone(Zone::new("test.").signed())
        .zone(Zone::new("customer.test.").a("www", WWW))
        .zone(Zone::new("good.test.").signed().a("www", WWW))
        .zone(Zone::new("split.test.").a("www", WWW))
        .zone(Zone::new("split.test.").a("www", WWW))
        .start()
        .await;

    for zone in ["customer.test.", "good.test."] {
        let name = format!("_acme-challenge.www.{zone}");
        // Asked first: the negative answer is in unbound's cache (and, signed, its NSEC).
        let before = lab.resolve(&name, RecordType::TXT).await;
        assert_eq!(before.rcode, ResponseCode::NXDomain, "{before:?}");

        let started = Instant::now();
        lab.set_txt(&name, &["token-1"]).await;
        eprintln!("{zone}: TXT set and served in {:?}", started.elapsed());
        let after = lab.resolve(&name, RecordType::TXT).await;
        assert_eq!(after.txt(), vec!["token-1"], "{after:?}");
        assert_eq!(after.authentic, zone == "good.test.", "{after:?}");

        lab.set_txt(&name, &["token-2", "token-3"]).await;
        let mut both = lab.resolve(&name, RecordType::TXT).await.txt();
        both.sort();
        assert_eq!(both, vec!["token-2", "token-3"]);

        lab.set_txt(&name, &[]).await;
        let gone = lab.resolve(&name, RecordType::TXT).await;
        assert_eq!(gone.rcode, ResponseCode::NXDomain, "{gone:?}");
    }

    // Addresses, and one secondary only.
    lab.set_ips(
        "www.customer.test.",
        &[IpAddr::V4(EDGE), IpAddr::V6(Ipv6Addr::LOCALHOST)],
    )
    .await;
    let www = lab.resolve("www.customer.test.", RecordType::A).await;
    assert_eq!(www.ips(), vec![IpAddr::V4(EDGE)]);
    let www6 = lab.resolve("www.customer.test.", RecordType::AAAA).await;
    assert_eq!(www6.ips(), vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);

    let split = lab.servers("split.test.");
    lab.set_records_on(split[1], "www.split.test.", "A", &[&EDGE.to_string()])
        .await;
    let first = query(split[0], "www.split.test.", RecordType::A)
        .await
        .expect("A");
    let second = query(split[1], "www.split.test.", RecordType::A)
        .await
        .expect("A");
    assert_eq!(first.ips(), vec![IpAddr::V4(WWW)]);
    assert_eq!(second.ips(), vec![IpAddr::V4(EDGE)]);
    assert_eq!(
        query(split[0], "split.test.", RecordType::SOA)
            .await
            .expect("SOA")
            .serial(),
        Some(1)
    );
    assert_eq!(
        query(split[1], "split.test.", RecordType::SOA)
            .await
            .expect("SOA")
            .serial(),
        Some(2)
    );

    // A clean slate for the resolver: it asks again and still gets the current data.
    lab.flush_resolver().await;
    let www = lab.resolve("www.customer.test.", RecordType::A).await;
    assert_eq!(www.ips(), vec![IpAddr::V4(EDGE)]);
}

#[tokio::test]
async fn labs_started_together_do_not_collide() {
    let worlds = (1..=3u8).map(|i| async move {
        DnsLab::builder()
            .zone(Zone::new("customer.test.").a("www", Ipv4Addr::new(127, 0, 1, i)))
            .start()
            .await
    });
    let labs = futures_util::future::join_all(worlds).await;
    let mut blocks: Vec<u8> = labs.iter().map(DnsLab::block).collect();
    blocks.sort_unstable();
    blocks.dedup();
    assert_eq!(blocks.len(), 3, "{blocks:?}");
    for (i, lab) in (1..=3u8).zip(&labs) {
        let www = lab.resolve("www.customer.test.", RecordType::A).await;
        assert_eq!(www.ips(), vec![IpAddr::V4(Ipv4Addr::new(127, 0, 1, i))]);
    }
}
