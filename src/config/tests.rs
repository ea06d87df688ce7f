#![allow(clippy::unwrap_used)]

use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/dcv/test.toml"), text)
}

fn invalid(text: &str) -> (usize, usize, String, String) {
    match parse(text).unwrap_err() {
        ConfigError::Invalid {
            place,
            key,
            message,
        } => (place.line, place.column, key, message),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn empty_file_gives_documented_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.http.listen, vec!["0.0.0.0:80".parse().unwrap()]);
    assert_eq!(c.https.listen, vec!["0.0.0.0:443".parse().unwrap()]);
    assert_eq!(c.admin.listen, "127.0.0.1:9180".parse().unwrap());
    assert_eq!(c.challenge.unknown_token, UnknownToken::NotFound);
    assert!(!c.http.redirect_to_https);
    assert_eq!(c.state_dir, Path::new("/var/lib/dcv-proxy"));
    assert_eq!(
        c.admin.token_file,
        Path::new("/var/lib/dcv-proxy/admin.token")
    );
}

#[test]
fn shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_PATH);
    Config::load(&path).unwrap();
}

#[test]
fn unknown_key_names_line_column_and_key() {
    let (line, col, key, msg) = invalid("[http]\nlisten = [\"127.0.0.1:80\"]\nredirect = true\n");
    assert_eq!((line, col), (3, 1));
    assert!(key.starts_with("http"), "{key}");
    assert!(msg.contains("unknown field `redirect`"), "{msg}");
}

#[test]
fn bad_address_names_its_index() {
    let (line, col, key, msg) = invalid("[https]\nlisten = [\"127.0.0.1:443\", \"localhost\"]\n");
    assert_eq!((line, col), (2, 28));
    assert_eq!(key, "https.listen[1]");
    assert!(msg.contains("invalid socket address"), "{msg}");
}

#[test]
fn relative_state_dir_is_relative_to_the_file() {
    let c = parse("state_dir = \"state\"\n").unwrap();
    assert_eq!(c.state_dir, Path::new("/etc/dcv/state"));
}

#[test]
fn duplicate_site_name_is_refused() {
    let text = r#"
[[site]]
names = ["example.com"]
origin = "127.0.0.1:8080"

[[site]]
names = ["www.example.com", "Example.com"]
origin = "127.0.0.1:8081"
"#;
    let (line, _, key, msg) = invalid(text);
    assert_eq!(line, 7);
    assert_eq!(key, "site[1].names[1]");
    assert!(msg.contains("site[0]"), "{msg}");
}

#[test]
fn bad_name_and_bad_origin_are_refused() {
    let (_, _, key, msg) =
        invalid("[[site]]\nnames = [\"exa mple.com\"]\norigin = \"127.0.0.1:1\"\n");
    assert_eq!(key, "site[0].names[0]");
    assert!(msg.contains("not allowed"), "{msg}");
    let (_, _, key, _) = invalid("[[site]]\nnames = [\"a.test\"]\norigin = \"ftp://x:1\"\n");
    assert_eq!(key, "site[0].origin");
}

#[test]
fn redirect_status_and_threads_are_range_checked() {
    let (line, _, key, _) = invalid("[http]\nredirect_status = 200\n");
    assert_eq!((line, key.as_str()), (2, "http.redirect_status"));
    let (_, _, key, _) = invalid("[server]\nthreads = 0\n");
    assert_eq!(key, "server.threads");
    let (line, _, key, msg) = invalid("[https]\n\ntls13_tickets = 9\n");
    assert_eq!((line, key.as_str()), (3, "https.tls13_tickets"));
    assert!(msg.contains("0 to 8"), "{msg}");
    assert_eq!(parse("").unwrap().https.tls13_tickets, 1);
    let none = parse("[https]\ntls13_tickets = 0\n").unwrap();
    assert_eq!(none.https.tls13_tickets, 0);
}

#[test]
fn sites_match_exact_then_wildcard_then_default() {
    let text = r#"
[proxy]
default_origin = "127.0.0.1:9000"
[[site]]
names = ["example.com", "*.example.com"]
origin = "127.0.0.1:9001"
[[site]]
names = ["api.example.com"]
origin = "127.0.0.1:9002"
"#;
    let c = parse(text).unwrap();
    let port = |h: &str| c.sites.origin_for(h).unwrap().addr.port();
    assert_eq!(port("example.com"), 9001);
    assert_eq!(port("www.example.com"), 9001);
    assert_eq!(port("api.example.com"), 9002);
    assert_eq!(port("a.b.example.com"), 9000);
    assert_eq!(port("other.test"), 9000);
}

#[test]
fn probe_defaults_are_those_of_a_production_node() {
    let c = parse("").unwrap();
    let p = &c.probe;
    assert!(p.resolvers.is_empty());
    assert_eq!((p.http_port, p.https_port), (80, 443));
    assert_eq!(p.interval, Some(std::time::Duration::from_secs(300)));
    assert_eq!(p.ca_identities[0].as_str(), "letsencrypt.org");
    assert_eq!(p.validation_method, "http-01");
    assert!(p.sensitive_words.iter().any(|w| w == "bank"));
}

#[test]
fn probe_section_is_parsed_and_checked() {
    let text = r#"
[probe]
resolvers = ["127.0.0.1:8053"]
interval = "0s"
public_addresses = ["192.0.2.1", "2001:db8::1"]
account_uri = "https://acme-v02.api.letsencrypt.org/acme/acct/1"
[[probe.txt]]
name = "_acme-challenge.Example.com."
value = "abc"
"#;
    let c = parse(text).unwrap();
    assert_eq!(c.probe.interval, None);
    assert_eq!(c.probe.txt[0].name.as_str(), "_acme-challenge.example.com");
    assert!(c.probe.txt[0].name.belongs_to("example.com"));
    assert!(!c.probe.txt[0].name.belongs_to("www.example.com"));

    let (line, _, key, msg) = invalid("[probe]\naccount_uri = \"acct/1\"\n");
    assert_eq!((line, key.as_str()), (2, "probe.account_uri"));
    assert!(msg.contains("https://"), "{msg}");
    let (_, _, key, _) = invalid("[probe]\nresolvers = [\"8.8.8.8\"]\n");
    assert_eq!(key, "probe.resolvers[0]");
    let (_, _, key, _) = invalid("[[probe.txt]]\nname = \"a b.com\"\nvalue = \"x\"\n");
    assert_eq!(key, "probe.txt[0].name");
    let (_, _, key, _) = invalid("[probe]\ntimeout = \"0s\"\n");
    assert_eq!(key, "probe.timeout");
}

#[test]
fn fleet_defaults_to_local_and_etcd_needs_its_keys() {
    assert!(parse("").unwrap().fleet.is_none());
    let (_, _, key, msg) = invalid("[fleet]\nbackend = \"etcd\"\n");
    assert_eq!(key, "fleet.endpoints");
    assert!(msg.contains("endpoint"), "{msg}");
    let (_, _, key, msg) = invalid(
        "[fleet]\nbackend = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\nnode_id = \"n1\"\n",
    );
    assert_eq!(key, "fleet.key_file");
    assert!(msg.contains("head -c 32 /dev/urandom"), "{msg}");
    let (line, _, key, _) = invalid(
        "[fleet]\nbackend = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\", \"127.0.0.1:2379\"]\n",
    );
    assert_eq!((line, key.as_str()), (3, "fleet.endpoints[1]"));
    let (_, _, key, _) = invalid(
        "[fleet]\nbackend = \"etcd\"\nendpoints = [\"http://e:2379\"]\nkey_file = \"k\"\nlease_ttl = \"1s\"\n",
    );
    assert_eq!(key, "fleet.lease_ttl");
}

#[test]
fn fleet_etcd_is_typed() {
    let c = parse(
        r#"
[fleet]
backend = "etcd"
endpoints = ["https://etcd-1:2379/"]
prefix = "/edge/"
node_id = "edge-1"
public_addresses = ["203.0.113.10", "2001:db8::10"]
key_file = "fleet.key"
tls_ca_file = "ca.pem"
username = "dcv"
password = "secret"
lease_ttl = "5s"
"#,
    )
    .unwrap();
    let f = c.fleet.unwrap();
    assert_eq!(f.endpoints, vec!["https://etcd-1:2379".to_owned()]);
    assert_eq!(f.prefix, "/edge");
    assert_eq!(f.node_id, "edge-1");
    assert_eq!(f.public_addresses.len(), 2);
    assert_eq!(f.key_file, Path::new("/etc/dcv/fleet.key"));
    assert_eq!(
        f.tls.unwrap().ca_file.unwrap(),
        Path::new("/etc/dcv/ca.pem")
    );
    assert_eq!(f.user.unwrap().0, "dcv");
    assert_eq!(f.lease_ttl, std::time::Duration::from_secs(5));
}

#[test]
fn retries_follow_a_schedule_and_the_old_keys_point_at_it() {
    let c = parse("").unwrap();
    let m = std::time::Duration::from_secs(60);
    assert_eq!(
        c.acme.retry_schedule,
        vec![m, 10 * m, 100 * m, std::time::Duration::from_secs(86_400)]
    );
    assert_eq!(
        (c.acme.max_new_orders, c.acme.new_orders_window),
        (300, 180 * m)
    );
    let (line, _, key, message) = invalid("[acme]\nretry_min = \"1m\"\n");
    assert_eq!((line, key.as_str()), (2, "acme.retry_min"));
    assert!(message.contains("acme.retry_schedule"), "{message}");
    let (_, _, key, _) = invalid("[acme]\nretry_schedule = []\n");
    assert_eq!(key, "acme.retry_schedule");
}

#[test]
fn a_certificate_asks_for_its_own_profile_or_the_accounts() {
    let c = parse(
        "[acme]\nterms_agreed = true\nprofile = \"tlsserver\"\n\
         [[certificate]]\nnames = [\"a.test\"]\n\
         [[certificate]]\nnames = [\"b.test\"]\nprofile = \"shortlived\"\n",
    )
    .unwrap();
    let profiles: Vec<Option<&str>> = c
        .certificates
        .iter()
        .map(|c| c.profile.as_deref())
        .collect();
    assert_eq!(profiles, [Some("tlsserver"), Some("shortlived")]);
}

#[test]
fn certificate_addresses_are_canonical_and_checked_against_challenge_and_ca() {
    let base = "[acme]\ndirectory = \"https://ca.example.test/dir\"\nterms_agreed = true\n";
    let c = parse(&format!(
        "{base}[[certificate]]\nnames = [\"2001:DB8::1\", \"192.0.2.1\", \"a.example.test\"]\n"
    ))
    .unwrap();
    let cert = &c.certificates[0];
    assert_eq!(cert.id.as_str(), "ip6-2001-db8--1");
    assert_eq!(
        cert.names.iter().map(CertName::text).collect::<Vec<_>>(),
        ["2001:db8::1", "192.0.2.1", "a.example.test"]
    );
    assert_eq!(cert.names[1].ip(), Some("192.0.2.1".parse().unwrap()));

    let (line, col, key, msg) = invalid(&format!(
        "{base}[[certificate]]\nnames = [\"a.example.test\", \"10.0.0.256\"]\n"
    ));
    assert_eq!(
        (line, col, key.as_str()),
        (5, 28, "certificate[0].names[1]")
    );
    assert!(msg.contains("neither an IP address"), "{msg}");

    let (line, _, key, msg) = invalid(&format!(
        "[dns]\nlisten = [\"127.0.0.1:53\"]\n[[dns.zone]]\nname = \"dcv.cdn.test\"\nname_servers = [\"ns1.cdn.test\"]\n{base}[[certificate]]\nnames = [\"192.0.2.1\"]\nchallenge = \"dns-01\"\n"
    ));
    assert_eq!(
        (line, key.as_str()),
        (10, "certificate[0].names[0]"),
        "{msg}"
    );
    assert!(msg.contains("RFC 8738"), "{msg}");

    // Let's Encrypt: addresses under `shortlived` only.
    let le = "[acme]\ndirectory = \"letsencrypt\"\nterms_agreed = true\n";
    let (line, _, key, msg) = invalid(&format!("{le}[[certificate]]\nnames = [\"192.0.2.1\"]\n"));
    assert_eq!((line, key.as_str()), (5, "certificate[0].profile"));
    assert!(msg.contains("\"shortlived\""), "{msg}");
    let ok = parse(&format!(
        "{le}[[certificate]]\nnames = [\"192.0.2.1\"]\nprofile = \"shortlived\"\n"
    ))
    .unwrap();
    assert_eq!(ok.certificates[0].profile.as_deref(), Some("shortlived"));
}

#[test]
fn several_cas_are_an_ordered_list_and_the_single_ca_keys_still_work() {
    let single = parse(
        "[acme]\ndirectory = \"https://ca.example.test/dir\"\ncontact = [\"mailto:a@example.test\"]\nprofile = \"tlsserver\"\nterms_agreed = true\n",
    )
    .unwrap();
    assert_eq!(single.acme.cas.len(), 1);
    let ca = &single.acme.cas[0];
    assert_eq!(
        (
            ca.name.as_str(),
            ca.directory.as_str(),
            ca.profile.as_deref()
        ),
        (
            "ca.example.test",
            "https://ca.example.test/dir",
            Some("tlsserver")
        )
    );
    assert_eq!(parse("").unwrap().acme.cas[0].name, "letsencrypt");
    assert_eq!(single.acme.fallback_after, Duration::from_secs(3600));

    let two = parse(
        "[acme]\nterms_agreed = true\nfallback_after = \"10m\"\n\n[[acme.ca]]\ndirectory = \"letsencrypt\"\nprofile = \"shortlived\"\n\n[[acme.ca]]\nname = \"backup-ca\"\ndirectory = \"zerossl\"\neab_key_id = \"kid\"\neab_hmac_key = \"aGVsbG8\"\n\n[[certificate]]\nnames = [\"a.example.test\"]\n",
    )
    .unwrap();
    let names: Vec<&str> = two.acme.cas.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["letsencrypt", "backup-ca"]);
    assert_eq!(two.acme.fallback_after, Duration::from_secs(600));
    assert_eq!(two.acme.cas[1].eab.as_ref().unwrap().hmac_key, b"hello");
    // The first CA's profile, unless the certificate names its own.
    let cert = &two.certificates[0];
    assert_eq!(cert.profile.as_deref(), Some("shortlived"));
    assert_eq!(cert.profile_for(&two.acme.cas[1]), None);

    // Both forms at once: refused where the single-CA key is.
    let (line, col, key, msg) =
        invalid("[acme]\ndirectory = \"letsencrypt\"\n\n[[acme.ca]]\ndirectory = \"zerossl\"\n");
    assert_eq!((line, col, key.as_str()), (2, 13, "acme.directory"));
    assert!(msg.contains("[[acme.ca]]"), "{msg}");
    let (line, _, key, _) = invalid(
        "[acme]\n[[acme.ca]]\ndirectory = \"letsencrypt\"\n[[acme.ca]]\ndirectory = \"zerossl\"\ncontact = [\"ops@example.test\"]\n",
    );
    assert_eq!((line, key.as_str()), (6, "acme.ca[1].contact[0]"));
    let (_, _, key, msg) = invalid(
        "[acme]\n[[acme.ca]]\ndirectory = \"letsencrypt\"\n[[acme.ca]]\ndirectory = \"letsencrypt\"\n",
    );
    assert_eq!(key, "acme.ca[1].name", "{msg}");
}

#[test]
fn a_backup_needs_a_second_ca() {
    let (line, col, key, msg) = invalid(
        "[acme]\nterms_agreed = true\n[[certificate]]\nnames = [\"a.example.test\"]\nbackup = true\n",
    );
    assert_eq!((line, col, key.as_str()), (5, 10, "certificate[0].backup"));
    assert!(msg.contains("[[acme.ca]]"), "{msg}");
    let ok = parse(
        "[acme]\nterms_agreed = true\n[[acme.ca]]\ndirectory = \"letsencrypt\"\n[[acme.ca]]\ndirectory = \"zerossl\"\n[[certificate]]\nnames = [\"a.example.test\"]\nbackup = true\n",
    )
    .unwrap();
    assert!(ok.certificates[0].backup);
}
