#![allow(clippy::unwrap_used)]
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use super::redirect::{reserved_block, resolve_location};
use super::verdict::trim_right_space;
use super::*;
use crate::probe::dns::Dns;
use crate::probe::Status;

const KA: &str = "tok.thumbprint";

fn current() -> Url {
    Url {
        https: false,
        host: "shop.dcvcheck.com".into(),
        port: 80,
        path: "/.well-known/acme-challenge/tok".into(),
    }
}

fn follow(location: &str) -> Result<Url, String> {
    resolve_location(&current(), location, 80, 443)
}

#[test]
fn redirect_targets_the_ca_follows() {
    let u = follow("https://www.dcvcheck.com/.well-known/acme-challenge/tok").unwrap();
    assert_eq!(
        (u.https, u.port, u.host.as_str()),
        (true, 443, "www.dcvcheck.com")
    );
    let u = follow("/moved/tok").unwrap();
    assert_eq!(
        (u.host.as_str(), u.path.as_str()),
        ("shop.dcvcheck.com", "/moved/tok")
    );
    let u = follow("other").unwrap();
    assert_eq!(u.path, "/.well-known/acme-challenge/other");
    let u = follow("../x/./y?q=1#frag").unwrap();
    assert_eq!(u.path, "/.well-known/x/y?q=1");
    let u = follow("?v=2").unwrap();
    assert_eq!(u.path, "/.well-known/acme-challenge/tok?v=2");
    // Either port with either scheme, as Boulder compares the port alone.
    let u = follow("//cdn.dcvcheck.com:443/x").unwrap();
    assert_eq!((u.https, u.port), (false, 443));
    let u = follow("HTTPS://WWW.DcvCheck.COM:80").unwrap();
    assert_eq!(
        (u.https, u.port, u.host.as_str(), u.path.as_str()),
        (true, 80, "www.dcvcheck.com", "/")
    );
    // A private suffix is looked through to its ICANN TLD.
    assert!(follow("https://someone.github.io/x").is_ok());
    // A public IP literal is followed (Boulder allows IP redirect targets that are not
    // reserved).
    let u = follow("http://8.8.8.8/x").unwrap();
    assert_eq!(
        (u.host.as_str(), u.ip()),
        ("8.8.8.8", Some("8.8.8.8".parse().unwrap()))
    );
    let u = follow("http://[2606:4700:4700::1111]/x").unwrap();
    assert_eq!(u.host, "[2606:4700:4700::1111]");
    // Test ports stand in for 80 and 443.
    let u = resolve_location(&current(), "https://a.dcvcheck.com/x", 8080, 8443).unwrap();
    assert_eq!(u.port, 8443);
}

#[test]
fn redirect_targets_the_ca_refuses_in_its_words() {
    for (location, says) in [
        (
            "http://shop.dcvcheck.com:8080/x",
            "Invalid port in redirect target. Only ports 80 and 443 are supported, not 8080",
        ),
        ("https://shop.dcvcheck.com:99999/x", "not 99999"),
        (
            "ftp://shop.dcvcheck.com/x",
            "Invalid protocol scheme in redirect target. Only \"http\" and \"https\" protocol schemes are supported, not \"ftp\"",
        ),
        ("gopher:whatever", "not \"gopher\""),
        ("http:///x", "Invalid empty host in redirect target"),
        (
            "https://shop.dcvcheck.com.well-known/acme-challenge/tok",
            "Check webserver config for missing '/' in redirect target.",
        ),
        (
            "http://127.0.0.1/x",
            "Invalid host in redirect target: IP address is in a reserved address block: [RFC1122], Section 3.2.1.3: Loopback",
        ),
        (
            "http://[::1]/x",
            "Invalid host in redirect target: IP address is in a reserved address block: [RFC4291]: Loopback Address",
        ),
        ("http://10.1.2.3/x", "[RFC1918]: Private-Use"),
        ("http://192.0.0.9/x", "[RFC7723]: Port Control Protocol Anycast"),
        ("http://[2001:db8::1]/x", "[RFC3849]: Documentation"),
        (
            "http://[fe80::1%25eth0]/x",
            "Invalid host in redirect target: contains scope zone",
        ),
        (
            "http://shop.notasuffixzz/x",
            "Invalid host in redirect target, must end in IANA registered TLD",
        ),
        ("http://localhost/x", "must end in IANA registered TLD"),
    ] {
        let e = follow(location).unwrap_err();
        assert!(e.contains(says), "{location}: {e}");
    }
}

#[test]
fn redirect_paths_are_limited_to_2000_bytes_decoded() {
    let at = |n: usize| format!("/{}", "a".repeat(n - 1));
    assert!(follow(&at(MAX_PATH_SIZE)).is_ok());
    assert_eq!(
        follow(&at(MAX_PATH_SIZE + 1)).unwrap_err(),
        "Redirect target too long"
    );
    // Go limits `URL.Path`, the decoded path: 700 escapes are 700 bytes, not 2100.
    let encoded = format!("/{}", "%41".repeat(700));
    assert!(follow(&encoded).is_ok());
    // The query does not count.
    assert!(follow(&format!("/x?{}", "q".repeat(3000))).is_ok());
}

#[test]
fn trailing_unicode_white_space_is_trimmed_like_go() {
    for (body, trimmed) in [
        (&b"tok.thumb\r\n\t "[..], &b"tok.thumb"[..]),
        (b"tok.thumb\x0b\x0c", b"tok.thumb"),
        (
            "tok.thumb\u{a0}\u{85}\u{2028}\u{3000}".as_bytes(),
            b"tok.thumb",
        ),
        (b" tok.thumb", b" tok.thumb"),
        (b"tok.thumb\x00", b"tok.thumb\x00"),
        (b"tok.thumb \xff ", b"tok.thumb \xff"),
        (b"", b""),
    ] {
        assert_eq!(trim_right_space(body), trimmed, "{body:?}");
    }
}

#[test]
fn bodies_are_quoted_like_go() {
    assert_eq!(go_quote(b"a\"b\\c\n\t"), r#""a\"b\\c\n\t""#);
    assert_eq!(go_quote(b"\x00\x7f\xff"), r#""\x00\x7f\xff""#);
    assert_eq!(go_quote("é\u{a0}".as_bytes()), "\"é\\u00a0\"");
}

fn response(status: u16, body: &[u8], hops: usize) -> Fetched {
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    Fetched {
        hops: (0..hops)
            .map(|_| Hop {
                url: current(),
                address: ip,
                status: 301,
                location: "https://x/".into(),
            })
            .collect(),
        outcome: Ok(Response {
            status,
            body: Bytes::copy_from_slice(body),
        }),
        address: ip,
        url: current(),
        trail: Trail::default(),
    }
}

fn judged(f: &Fetched) -> (Status, Option<Cause>, String) {
    let c = judge(
        CheckKind::HttpToken,
        "t",
        f,
        Expected::Body(KA.as_bytes()),
        Cause::H2,
    );
    (c.status, c.cause, c.detail)
}

#[test]
fn only_status_200_passes() {
    assert_eq!(
        judged(&response(200, b"tok.thumbprint\n", 0)).0,
        Status::Pass
    );
    for status in [201, 202, 203, 204, 206] {
        let (s, c, d) = judged(&response(status, KA.as_bytes(), 0));
        assert_eq!((s, c), (Status::Fail, Some(Cause::H3)), "{status}");
        assert_eq!(
            d,
            format!(
                "192.0.2.1: Invalid response from http://shop.dcvcheck.com/.well-known/acme-challenge/tok: {status}"
            )
        );
    }
    assert_eq!(judged(&response(404, b"", 0)).1, Some(Cause::H2));
    assert_eq!(judged(&response(410, b"", 0)).1, Some(Cause::H2));
    assert_eq!(judged(&response(403, b"", 0)).1, Some(Cause::H3));
    assert_eq!(judged(&response(500, b"", 0)).1, Some(Cause::H3));
    // A redirect that was not followed (no Location, or a 3xx Go does not follow).
    assert_eq!(judged(&response(301, b"", 0)).1, Some(Cause::H4));
    assert_eq!(judged(&response(304, b"", 0)).1, Some(Cause::H4));
}

#[test]
fn content_is_compared_after_trimming_and_under_128_bytes() {
    let (s, c, d) = judged(&response(200, b"tok.thumbprint", 1));
    assert_eq!((s, c), (Status::Warn, Some(Cause::H4)), "{d}");
    let (s, c, d) = judged(&response(200, b"old.value", 0));
    assert_eq!((s, c), (Status::Fail, Some(Cause::H7)));
    assert_eq!(
        d,
        "The key authorization file from the server did not match this challenge. Expected \"tok.thumbprint\" (got \"old.value\")"
    );
    // 127 bytes pass (white space padding included), 128 fail whatever they hold.
    let padded = |n: usize| format!("{KA}{}", " ".repeat(n - KA.len()));
    assert_eq!(
        judged(&response(200, padded(127).as_bytes(), 0)).0,
        Status::Pass
    );
    let (s, c, d) = judged(&response(200, padded(128).as_bytes(), 0));
    assert_eq!((s, c), (Status::Fail, Some(Cause::H7)), "{d}");
    assert!(
        d.starts_with("192.0.2.1: Invalid response from http://shop.dcvcheck.com/"),
        "{d}"
    );
    // The same limit for a key authorization that long itself.
    let long = "k".repeat(127);
    let c = judge(
        CheckKind::HttpToken,
        "t",
        &response(200, long.as_bytes(), 0),
        Expected::Body(long.as_bytes()),
        Cause::H2,
    );
    assert_eq!(c.status, Status::Pass, "{}", c.detail);
    let longer = "k".repeat(128);
    let c = judge(
        CheckKind::HttpToken,
        "t",
        &response(200, longer.as_bytes(), 0),
        Expected::Body(longer.as_bytes()),
        Cause::H2,
    );
    assert_eq!(c.status, Status::Fail, "{}", c.detail);
    // Leading white space is not trimmed.
    assert_eq!(
        judged(&response(200, b" tok.thumbprint", 0)).1,
        Some(Cause::H7)
    );
}

#[test]
fn the_ca_falls_back_to_the_first_a_only_after_a_dial_error_on_the_aaaa() {
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    let v6b: IpAddr = "2001:db8::2".parse().unwrap();
    let v4: IpAddr = "192.0.2.1".parse().unwrap();
    use Attempt::*;
    // A refusing AAAA with a working A: the CA falls back and validates.
    let all = [(v6, FallsBack), (v4, Validates)];
    assert!(ca_tolerates(v6, FallsBack, &all, true).is_some());
    // ... unless the A fails too.
    let all = [(v6, FallsBack), (v4, Fails)];
    assert!(ca_tolerates(v6, FallsBack, &all, false).is_none());
    assert!(ca_tolerates(v4, Fails, &all, false).is_none());
    // No A to fall back to.
    let all = [(v6, FallsBack)];
    assert!(ca_tolerates(v6, FallsBack, &all, true).is_none());
    // An AAAA that answered (404, wrong content…): no fallback.
    let all = [(v6, Fails), (v4, Validates)];
    assert!(ca_tolerates(v6, Fails, &all, true).is_none());
    // An A that fails while every AAAA connects: the CA never reaches it.
    let all = [(v6, Validates), (v4, Fails)];
    assert!(ca_tolerates(v4, Fails, &all, false).is_some());
    let all = [(v6, Fails), (v4, FallsBack)];
    assert!(ca_tolerates(v4, FallsBack, &all, false).is_some());
    // ... but any AAAA that falls back may lead the CA to it.
    let all = [(v6, Validates), (v6b, FallsBack), (v4, Fails)];
    assert!(ca_tolerates(v4, Fails, &all, false).is_none());
    // IPv4 only: every address may be the first.
    let all = [(v4, Fails)];
    assert!(ca_tolerates(v4, Fails, &all, false).is_none());
}

#[test]
fn only_dial_errors_fall_back() {
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    let with = |outcome| Fetched {
        hops: vec![],
        outcome,
        address: ip,
        url: current(),
        trail: Trail::default(),
    };
    let dial = with(Err(FetchError::Connect {
        url: current(),
        reason: "Connection refused".into(),
    }));
    assert_eq!(dial.dial_error(), Some(0));
    let judged = judge(
        CheckKind::HttpToken,
        "t",
        &dial,
        Expected::Body(b"x"),
        Cause::H2,
    );
    assert_eq!(judged.cause, Some(Cause::H1));
    assert_eq!(
        judged.detail,
        "192.0.2.1: Fetching http://shop.dcvcheck.com/.well-known/acme-challenge/tok: Connection refused"
    );
    assert_eq!(attempt_of(&dial, &judged), Attempt::FallsBack);
    for outcome in [
        Err(FetchError::Tls {
            url: current(),
            reason: "remote error: tls: handshake failure".into(),
        }),
        Err(FetchError::Exchange {
            url: current(),
            reason: "Timeout after connect (your server may be slow or overloaded)".into(),
        }),
        Ok(Response {
            status: 404,
            body: Bytes::new(),
        }),
    ] {
        let fetched = with(outcome);
        let judged = judge(
            CheckKind::HttpToken,
            "t",
            &fetched,
            Expected::Body(b"x"),
            Cause::H2,
        );
        assert_eq!(
            attempt_of(&fetched, &judged),
            Attempt::Fails,
            "{}",
            judged.detail
        );
    }
}

#[test]
fn reserved_blocks_are_the_most_specific() {
    let r = |ip: &str| reserved_block(ip.parse().unwrap());
    assert_eq!(
        r("0.0.0.0").unwrap(),
        "IP address is in a reserved address block: [RFC1122], Section 3.2.1.3: \"This host on this network\""
    );
    assert!(r("192.0.0.1")
        .unwrap()
        .ends_with("IPv4 Service Continuity Prefix"));
    assert!(r("192.0.0.200")
        .unwrap()
        .ends_with("IETF Protocol Assignments"));
    assert!(r("2001:1::2")
        .unwrap()
        .ends_with("Traversal Using Relays around NAT Anycast"));
    assert!(r("::ffff:127.0.0.1")
        .unwrap()
        .ends_with("IPv4-mapped Address"));
    for public in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "11.0.0.1"] {
        assert_eq!(r(public), None, "{public}");
    }
}

// --- fetches against loopback servers and a loopback DNS -------------------------------

/// A DNS server on loopback answering A and AAAA from a map (NODATA otherwise).
pub(crate) async fn dns_server(
    records: HashMap<&'static str, (Vec<Ipv4Addr>, Vec<Ipv6Addr>)>,
) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            if let Some(reply) = dns_reply(&buf[..n], &records) {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    });
    addr
}

fn dns_reply(
    query: &[u8],
    records: &HashMap<&'static str, (Vec<Ipv4Addr>, Vec<Ipv6Addr>)>,
) -> Option<Vec<u8>> {
    let mut end = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(end)? as usize;
        end += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(end..end + len)?).to_ascii_lowercase());
        end += len;
    }
    let qtype = u16::from_be_bytes([*query.get(end)?, *query.get(end + 1)?]);
    end += 4;
    let name = labels.join(".");
    let (v4, v6) = records.get(name.as_str()).cloned().unwrap_or_default();
    let rdata: Vec<Vec<u8>> = match qtype {
        1 => v4.iter().map(|a| a.octets().to_vec()).collect(),
        28 => v6.iter().map(|a| a.octets().to_vec()).collect(),
        _ => Vec::new(),
    };
    let mut reply = query.get(..end)?.to_vec();
    reply[2] = 0x84 | (query[2] & 0x01);
    reply[3] = 0x80;
    reply[4..6].copy_from_slice(&[0, 1]);
    reply[6..8].copy_from_slice(&(rdata.len() as u16).to_be_bytes());
    reply[8..12].copy_from_slice(&[0; 4]);
    for data in rdata {
        reply.extend_from_slice(&[0xc0, 0x0c]);
        reply.extend_from_slice(&qtype.to_be_bytes());
        reply.extend_from_slice(&[0, 1, 0, 0, 0, 0]);
        reply.extend_from_slice(&(data.len() as u16).to_be_bytes());
        reply.extend_from_slice(&data);
    }
    Some(reply)
}

type Reply = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// An HTTP/1.1 server on `listener` answering each request with `reply(path)`, raw.
fn serve(listener: TcpListener, reply: Reply) {
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                let _ = stream.write_all(reply(&path).as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
}

fn answer(status: u16, location: Option<&str>, body: &str) -> String {
    let location = location
        .map(|l| format!("Location: {l}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {status} X\r\n{location}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A loopback port free on 127.0.0.1 and on ::1, with a listener on each family asked for.
async fn listeners(v4: bool, v6: bool) -> (u16, Option<TcpListener>, Option<TcpListener>) {
    loop {
        let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let four = match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(_) => continue,
        };
        let six = match TcpListener::bind(("::1", port)).await {
            Ok(l) => l,
            Err(_) => continue,
        };
        return (port, v4.then_some(four), v6.then_some(six));
    }
}

struct Lab {
    fetcher: Fetcher,
    dns: Dns,
    port: u16,
}

impl Lab {
    async fn new(
        port: u16,
        https_port: u16,
        records: HashMap<&'static str, (Vec<Ipv4Addr>, Vec<Ipv6Addr>)>,
    ) -> Self {
        let dns = dns_server(records).await;
        let text = format!("[probe]\nresolvers = [\"{dns}\"]\ntimeout = \"2s\"\n");
        let config = crate::config::Config::parse(std::path::Path::new("x.toml"), &text)
            .unwrap()
            .probe;
        Self {
            fetcher: Fetcher::new(Duration::from_secs(2), port, https_port).unwrap(),
            dns: Dns::from_config(&config).unwrap(),
            port,
        }
    }

    fn url(&self, path: &str) -> Url {
        Url {
            https: false,
            host: "shop.dcvcheck.com".into(),
            port: self.port,
            path: path.into(),
        }
    }

    async fn fetch(&self, path: &str, ip: &str) -> (Fetched, Check) {
        let fetched = self
            .fetcher
            .fetch_with(
                self.url(path),
                ip.parse().unwrap(),
                self.dns.primary(),
                MAX_RESPONSE_SIZE,
                Trail::default(),
            )
            .await;
        let check = judge(
            CheckKind::HttpToken,
            "t",
            &fetched,
            Expected::Body(KA.as_bytes()),
            Cause::H2,
        );
        (fetched, check)
    }
}

fn v4_only() -> HashMap<&'static str, (Vec<Ipv4Addr>, Vec<Ipv6Addr>)> {
    HashMap::from([("shop.dcvcheck.com", (vec![Ipv4Addr::LOCALHOST], vec![]))])
}

#[tokio::test]
async fn only_301_302_307_308_are_followed() {
    let (port, listener, _) = listeners(true, false).await;
    serve(
        listener.unwrap(),
        Arc::new(
            |path: &str| match path.trim_start_matches('/').parse::<u16>() {
                Ok(status) => answer(status, Some("/ok"), ""),
                Err(_) => answer(200, None, KA),
            },
        ),
    );
    let lab = Lab::new(port, 1, v4_only()).await;
    for status in [301, 302, 307, 308] {
        let (fetched, check) = lab.fetch(&format!("/{status}"), "127.0.0.1").await;
        assert_eq!(
            (check.status, check.cause),
            (Status::Warn, Some(Cause::H4)),
            "{status}: {}",
            check.detail
        );
        assert_eq!(fetched.hops.len(), 1);
    }
    let (_, check) = lab.fetch("/303", "127.0.0.1").await;
    assert_eq!((check.status, check.cause), (Status::Fail, Some(Cause::H4)));
    assert!(
        check
            .detail
            .starts_with("127.0.0.1: Fetching /ok: received disallowed redirect status code"),
        "{}",
        check.detail
    );
    // Not redirects for Go's client: the response itself, which is not 200.
    for status in [300, 304, 305] {
        let (_, check) = lab.fetch(&format!("/{status}"), "127.0.0.1").await;
        assert_eq!(
            (check.status, check.cause),
            (Status::Fail, Some(Cause::H4)),
            "{status}"
        );
        assert!(
            check.detail.contains(&format!(": {status}")),
            "{}",
            check.detail
        );
    }
}

#[tokio::test]
async fn eleven_redirects_are_followed_and_the_twelfth_refused() {
    let (port, listener, _) = listeners(true, false).await;
    // /chain/N/i redirects to /chain/N/i+1 until i = N, which answers.
    serve(
        listener.unwrap(),
        Arc::new(|path: &str| {
            let parts: Vec<usize> = path.split('/').filter_map(|p| p.parse().ok()).collect();
            match parts[..] {
                [n, i] if i < n => answer(301, Some(&format!("/chain/{n}/{}", i + 1)), ""),
                _ => answer(200, None, KA),
            }
        }),
    );
    let lab = Lab::new(port, 1, v4_only()).await;
    let (fetched, check) = lab.fetch("/chain/11/0", "127.0.0.1").await;
    assert_eq!(
        (check.status, check.cause),
        (Status::Warn, Some(Cause::H4)),
        "{}",
        check.detail
    );
    assert_eq!(fetched.hops.len(), 11);
    let (fetched, check) = lab.fetch("/chain/12/0", "127.0.0.1").await;
    assert_eq!((check.status, check.cause), (Status::Fail, Some(Cause::H4)));
    assert!(
        check
            .detail
            .starts_with("127.0.0.1: Fetching /chain/12/12: Too many redirects"),
        "{}",
        check.detail
    );
    assert_eq!(fetched.hops.len(), 12);
}

#[tokio::test]
async fn a_url_seen_twice_is_a_loop() {
    let (port, listener, _) = listeners(true, false).await;
    serve(
        listener.unwrap(),
        Arc::new(|path: &str| match path {
            "/a" => answer(302, Some("/b"), ""),
            "/b" => answer(307, Some("/a"), ""),
            _ => answer(301, Some(path), ""),
        }),
    );
    let lab = Lab::new(port, 1, v4_only()).await;
    let (fetched, check) = lab.fetch("/a", "127.0.0.1").await;
    assert_eq!((check.status, check.cause), (Status::Fail, Some(Cause::H4)));
    assert!(
        check
            .detail
            .starts_with("127.0.0.1: Fetching /a: Redirect loop detected"),
        "{}",
        check.detail
    );
    assert_eq!(fetched.hops.len(), 2);
    // A page redirecting to itself.
    let (_, check) = lab.fetch("/self", "127.0.0.1").await;
    assert!(
        check.detail.contains("Redirect loop detected"),
        "{}",
        check.detail
    );
}

#[tokio::test]
async fn redirects_to_other_ports_and_ip_addresses_are_refused() {
    let (port, listener, _) = listeners(true, false).await;
    serve(
        listener.unwrap(),
        Arc::new(move |path: &str| match path {
            "/port" => answer(301, Some("http://shop.dcvcheck.com:8080/x"), ""),
            "/ip" => answer(301, Some(&format!("http://127.0.0.1:{port}/x")), ""),
            _ => answer(200, None, KA),
        }),
    );
    let lab = Lab::new(port, 1, v4_only()).await;
    let (_, check) = lab.fetch("/port", "127.0.0.1").await;
    assert_eq!(check.cause, Some(Cause::H4));
    assert!(
        check
            .detail
            .contains(&format!("Only ports {port} and 1 are supported, not 8080")),
        "{}",
        check.detail
    );
    let (_, check) = lab.fetch("/ip", "127.0.0.1").await;
    assert_eq!(check.cause, Some(Cause::H4));
    assert!(
        check
            .detail
            .contains("Invalid host in redirect target: IP address is in a reserved address block"),
        "{}",
        check.detail
    );
}

#[tokio::test]
async fn bodies_are_read_up_to_128_bytes_only_for_a_200() {
    let (port, listener, _) = listeners(true, false).await;
    serve(
        listener.unwrap(),
        Arc::new(|path: &str| match path {
            "/127" => answer(
                200,
                None,
                &format!("{KA}\r\n\t{}", " ".repeat(127 - KA.len() - 3)),
            ),
            "/128" => answer(200, None, &format!("{KA}{}", " ".repeat(128 - KA.len()))),
            "/huge" => answer(200, None, &"a".repeat(100_000)),
            _ => answer(201, None, KA),
        }),
    );
    let lab = Lab::new(port, 1, v4_only()).await;
    let (_, check) = lab.fetch("/127", "127.0.0.1").await;
    assert_eq!(check.status, Status::Pass, "{}", check.detail);
    let (fetched, check) = lab.fetch("/128", "127.0.0.1").await;
    assert_eq!(
        (check.status, check.cause),
        (Status::Fail, Some(Cause::H7)),
        "{}",
        check.detail
    );
    assert_eq!(fetched.outcome.unwrap().body.len(), 128);
    let (fetched, check) = lab.fetch("/huge", "127.0.0.1").await;
    assert_eq!(check.cause, Some(Cause::H7));
    assert_eq!(fetched.outcome.unwrap().body.len(), 128);
    let (fetched, check) = lab.fetch("/created", "127.0.0.1").await;
    assert_eq!((check.status, check.cause), (Status::Fail, Some(Cause::H3)));
    assert!(fetched.outcome.unwrap().body.is_empty());
}

#[tokio::test]
async fn a_dial_error_on_a_redirect_hop_is_not_rescued_by_the_a_address() {
    // The AAAA answers HTTP and redirects to https on the same host; nothing listens for
    // HTTPS on the AAAA. Boulder resolves the hop afresh (its AAAA, no fallback), gets the
    // dial error, retries the validation on the first A with the same records, meets the
    // same redirect again and calls it a loop.
    let (port, v4, v6) = listeners(true, true).await;
    let (https_port, _, _) = listeners(false, false).await;
    let redirect: Reply = Arc::new(move |_: &str| {
        answer(
            301,
            Some(&format!("https://shop.dcvcheck.com:{https_port}/tok")),
            "",
        )
    });
    serve(v4.unwrap(), redirect.clone());
    serve(v6.unwrap(), redirect);
    let records = HashMap::from([(
        "shop.dcvcheck.com",
        (vec![Ipv4Addr::LOCALHOST], vec![Ipv6Addr::LOCALHOST]),
    )]);
    let lab = Lab::new(port, https_port, records).await;
    let (first, check) = lab.fetch("/tok", "::1").await;
    assert_eq!(first.dial_error(), Some(1), "{}", check.detail);
    assert!(
        check.detail.starts_with(&format!(
            "::1: Fetching https://shop.dcvcheck.com:{https_port}/tok: Connection refused"
        )),
        "{}",
        check.detail
    );
    assert_eq!(attempt_of(&first, &check), Attempt::FallsBack);
    let retry = lab
        .fetcher
        .fetch_with(
            lab.url("/tok"),
            "127.0.0.1".parse().unwrap(),
            lab.dns.primary(),
            MAX_RESPONSE_SIZE,
            first.trail.clone(),
        )
        .await;
    let check = judge(
        CheckKind::HttpToken,
        "t",
        &retry,
        Expected::Body(KA.as_bytes()),
        Cause::H2,
    );
    assert_eq!((check.status, check.cause), (Status::Fail, Some(Cause::H4)));
    assert!(
        check.detail.contains("Redirect loop detected"),
        "{}",
        check.detail
    );
}

#[tokio::test]
async fn a_refused_aaaa_falls_back_but_an_aaaa_that_answers_does_not() {
    let (port, v4, v6) = listeners(true, true).await;
    serve(v4.unwrap(), Arc::new(|_: &str| answer(200, None, KA)));
    // ::1 answers 404 on this port: an HTTP answer, no fallback.
    serve(v6.unwrap(), Arc::new(|_: &str| answer(404, None, "")));
    let lab = Lab::new(port, 1, v4_only()).await;
    let (f6, c6) = lab.fetch("/tok", "::1").await;
    let (f4, c4) = lab.fetch("/tok", "127.0.0.1").await;
    assert_eq!(attempt_of(&f6, &c6), Attempt::Fails);
    assert_eq!(attempt_of(&f4, &c4), Attempt::Validates);
    // Nothing on ::1 at another port: a dial error, which falls back.
    let (other, _, _) = listeners(false, false).await;
    let lab = Lab::new(other, 1, v4_only()).await;
    let (f6, c6) = lab.fetch("/tok", "::1").await;
    assert_eq!(f6.dial_error(), Some(0));
    assert_eq!(attempt_of(&f6, &c6), Attempt::FallsBack);
    assert!(c6.detail.ends_with("Connection refused"), "{}", c6.detail);
}

#[test]
fn certificates_must_cover_the_name() {
    let name: DnsName = "shop.dcvcheck.com".parse().unwrap();
    let ca = crate::testkit::TestCa::new("probe").unwrap();
    let der = |names: &[&str]| {
        let leaf = ca.leaf(names, Duration::from_secs(3600)).unwrap();
        let block = leaf
            .leaf_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(block)
            .unwrap()
    };
    let now = SystemTime::now();
    let c = certificate_check("t", &name, &der(&["*.dcvcheck.com"]), now);
    assert_eq!(c.status, Status::Pass, "{}", c.detail);
    let c = certificate_check("t", &name, &der(&["other-site.com"]), now);
    assert_eq!(c.cause, Some(Cause::H10));
    assert!(c.detail.contains("other-site.com"), "{}", c.detail);
    let c = certificate_check("t", &name, &der(&[DEFAULT_CERT_NAME]), now);
    assert_eq!(c.cause, Some(Cause::C6));
    let later = now + Duration::from_secs(2 * 3600);
    let c = certificate_check("t", &name, &der(&["shop.dcvcheck.com"]), later);
    assert_eq!(c.cause, Some(Cause::C4));
}
