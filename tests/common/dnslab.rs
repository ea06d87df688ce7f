//! A DNS lab: a small world of real zone cuts on loopback, so tests judge DNS verdicts against
//! what a CA's resolver really sees rather than a mock that answers every name from one server.
//!
//! - Authoritative servers are Debian's `nsd`, one process per [`Zone`] given to the builder,
//!   each on its own address `127.53.N.k:53` (recursion to authoritative servers always uses
//!   port 53, so servers differ by address, not by port). A zone given twice is served by two
//!   servers with different content: secondaries that disagree.
//! - The lab root `.` delegates to the zones below it, with NS and glue generated from the
//!   servers (`ns1.<zone>`, `ns2.<zone>`, ... in declaration order), and DS records for the
//!   signed children.
//! - DNSSEC signing is offline with `ldns-keygen`/`ldns-signzone`: deterministic, one command per
//!   zone, and it can sign with inception and expiration in the past (a bogus zone) or have a
//!   record replaced after signing ([`Zone::forged`]).
//! - The recursive resolver is `unbound` on `127.53.N.2:53` (UDP and TCP), primed from the lab
//!   root's hints and validating from the lab root's DS as its trust anchor. It plays the CA's
//!   resolver (`pebble -dnsserver`) and the probe's `probe.resolvers`.
//! - A lame server (`nsd` without zones: REFUSED) and a silent one (a UDP socket and a TCP
//!   listener held by the test process that never answer: queries time out instead of being
//!   refused by ICMP) can be listed in a zone's NS set.
//!
//! ```ignore
//! let mut lab = DnsLab::builder()
//!     .zone(Zone::new("test.").signed())
//!     .zone(Zone::new("customer.test.").cname("shop", "edge.cdn.test."))
//!     .zone(Zone::new("cdn.test.").a("edge", Ipv4Addr::new(127, 0, 0, 7)))
//!     .start()
//!     .await;
//! // pebble -dnsserver {lab.resolver()}, probe.resolvers = ["{lab.resolver()}"]
//! lab.set_txt("_acme-challenge.shop.customer.test.", &["key-authorization digest"]).await;
//! ```
//!
//! unbound settings that matter (see `write_unbound_conf`): `root-hints` and `trust-anchor-file`
//! are the lab's (without them unbound uses the real root's compiled-in hints), and it only
//! sends from its own loopback address (`outgoing-interface`), so nothing leaves loopback;
//! `do-not-query-localhost: no` (else it never asks 127.0.0.0/8); `local-zone: ... nodefault`
//! for the lab's names (unbound answers `test.`, `invalid.`, `onion.`... itself by default);
//! `discard-timeout: 0` (Debian's 1.17.1 backports the 1.9 s after which unbound drops the
//! answer to a client, which a resolution that first tries a silent server exceeds) and
//! `infra-cache-max-rtt: 1000` (a delegation to silent servers only fails in about 2 s, not
//! after backing off towards 120 s). Caching stays on, as at a CA: every change made through
//! the lab flushes what it changed (`unbound-control flush_zone` and `flush_negative`) before
//! returning, so a test sees its change at once, and caching is still there to be seen.
//!
//! Labs never collide, in one test binary or across processes: each claims a block
//! `127.53.N.0/24` by binding UDP `127.53.N.1:53` and holding that socket for its lifetime (the
//! kernel refuses a second bind, whoever tries), then checks that every address it is going to
//! use is free (a daemon left behind by a killed run only costs its block). Every daemon runs in
//! the foreground as a child process, with its files in a temporary directory, and is stopped
//! by its pid when the lab is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_resolver::proto::op::{Edns, Message, Query};
use hickory_resolver::proto::rr::{Name, RData, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use hickory_resolver::proto::op::ResponseCode;
pub use hickory_resolver::proto::rr::RecordType;

/// How long the lab may take to start, or a zone change to be served, before the test fails.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// How long one readiness query waits for an answer.
const POLL_TIMEOUT: Duration = Duration::from_millis(250);
/// How long [`query`] waits for an answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Zone TTL unless [`Zone::ttl`] says otherwise. The lab flushes unbound's cache itself on every
/// change it makes, so TTLs only matter to tests that want to see caching.
const DEFAULT_TTL: u32 = 30;

// Host numbers inside a lab's block.
const LOCK_HOST: u8 = 1;
const UNBOUND_HOST: u8 = 2;
const LAME_HOST: u8 = 3;
const SILENT_HOST: u8 = 4;
const FIRST_SERVER_HOST: u8 = 10;
/// First host of the servers a test runs itself ([`LabBuilder::delegate`]).
const FIRST_EXTERNAL_HOST: u8 = 200;

// ---- zones

/// How a server signs its copy of a zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signing {
    Unsigned,
    /// Valid signatures (inception an hour ago, expiration in 30 days).
    Signed,
    /// Signatures that expired 30 days ago: the zone is bogus, unbound answers SERVFAIL.
    Expired,
}

#[derive(Clone, Debug)]
struct Rr {
    owner: String,
    rtype: String,
    rdata: String,
}

/// One server's copy of a zone: its records, serial and signing. Owners are relative to the
/// zone (`www`, `_acme-challenge.www`, `@` for the apex) or absolute (`www.customer.test.`).
/// SOA, the apex NS set, the `ns<k>` addresses, delegations with glue and DS are generated: do
/// not add them, and do not use the owners `ns1`, `ns2`, ... for anything else.
#[derive(Clone, Debug)]
pub struct Zone {
    name: String,
    serial: u32,
    ttl: u32,
    signing: Signing,
    records: Vec<Rr>,
    forged: Vec<Rr>,
}

impl Zone {
    /// An unsigned zone with serial 1 and no records of its own.
    pub fn new(name: &str) -> Self {
        Self {
            name: fqdn(name),
            serial: 1,
            ttl: DEFAULT_TTL,
            signing: Signing::Unsigned,
            records: Vec::new(),
            forged: Vec::new(),
        }
    }

    /// The SOA serial (two copies with different serials: a secondary that lags).
    pub fn serial(mut self, serial: u32) -> Self {
        self.serial = serial;
        self
    }

    /// The TTL of every record (and the negative TTL).
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = ttl;
        self
    }

    /// Signed with valid signatures; the parent gets the DS.
    pub fn signed(mut self) -> Self {
        self.signing = Signing::Signed;
        self
    }

    /// Signed, but every signature expired 30 days ago (the parent still has the right DS): the
    /// zone is bogus and a validating resolver answers SERVFAIL for names in it.
    pub fn expired_signatures(mut self) -> Self {
        self.signing = Signing::Expired;
        self
    }

    /// After signing, the RRset `owner`/`rtype` is replaced by this record while its RRSIG stays:
    /// a record changed after signing, bogus for a validating resolver. Needs a signed zone
    /// that has that RRset.
    pub fn forged(mut self, owner: &str, rtype: &str, rdata: &str) -> Self {
        let rr = self.rr(owner, rtype, rdata);
        self.forged.push(rr);
        self
    }

    /// Any record, in zone-file presentation (`rdata` names relative to the zone or absolute).
    pub fn record(mut self, owner: &str, rtype: &str, rdata: &str) -> Self {
        let rr = self.rr(owner, rtype, rdata);
        self.records.push(rr);
        self
    }

    pub fn a(self, owner: &str, ip: Ipv4Addr) -> Self {
        self.record(owner, "A", &ip.to_string())
    }

    pub fn aaaa(self, owner: &str, ip: Ipv6Addr) -> Self {
        self.record(owner, "AAAA", &ip.to_string())
    }

    /// An A or AAAA record, whichever `ip` is.
    pub fn ip(self, owner: &str, ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => self.a(owner, v4),
            IpAddr::V6(v6) => self.aaaa(owner, v6),
        }
    }

    /// `owner CNAME target` (`target` absolute, or relative to this zone).
    pub fn cname(self, owner: &str, target: &str) -> Self {
        self.record(owner, "CNAME", target)
    }

    /// One TXT record holding `text` (split into 255-byte strings when longer).
    pub fn txt(self, owner: &str, text: &str) -> Self {
        self.record(owner, "TXT", &txt_rdata(text))
    }

    /// `owner CAA flags tag "value"`: `caa("@", 0, "issue", "pebble.letsencrypt.org")`,
    /// `caa("@", 128, "tbs", "x")` (critical, unknown tag).
    pub fn caa(self, owner: &str, flags: u8, tag: &str, value: &str) -> Self {
        self.record(owner, "CAA", &format!("{flags} {tag} {}", quote(value)))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn rr(&self, owner: &str, rtype: &str, rdata: &str) -> Rr {
        let owner = owner_in(owner, &self.name);
        assert!(
            is_at_or_below(&owner, &self.name),
            "{owner} is not in the zone {}",
            self.name
        );
        Rr {
            owner,
            rtype: rtype.to_ascii_uppercase(),
            rdata: rdata.to_owned(),
        }
    }

    /// Replaces the RRset `owner`/`rtype` with `rdata` (nothing: removes it).
    fn set(&mut self, owner: &str, rtype: &str, rdata: &[String]) {
        let owner = owner_in(owner, &self.name);
        let rtype = rtype.to_ascii_uppercase();
        self.records
            .retain(|r| !(r.owner.eq_ignore_ascii_case(&owner) && r.rtype == rtype));
        for d in rdata {
            let rr = self.rr(&owner, &rtype, d);
            self.records.push(rr);
        }
    }
}

// ---- the builder

/// The world to start: zones (each [`Zone`] value is one server), and the lame and silent
/// entries of NS sets. The root `.` is added, signed, unless a `Zone::new(".")` is given.
#[derive(Default)]
pub struct LabBuilder {
    zones: Vec<Zone>,
    lame: Vec<String>,
    silent: Vec<String>,
    /// Zones served outside the lab, and how many servers each.
    external: Vec<(String, u8)>,
}

impl LabBuilder {
    /// One more server, serving `zone`. The zone's parent is the closest enclosing zone of the
    /// lab (the root when there is none); it delegates to every server of the zone.
    pub fn zone(mut self, zone: Zone) -> Self {
        self.zones.push(zone);
        self
    }

    /// Lists the lab's lame server (an `nsd` that has no zones and answers REFUSED) in the NS
    /// set of `zone`, after its real servers. With no `Zone` of that name, the delegation is lame
    /// altogether.
    pub fn lame(mut self, zone: &str) -> Self {
        self.lame.push(fqdn(zone));
        self
    }

    /// Lists the lab's silent server (nothing ever answers, on UDP or TCP) in the NS set of
    /// `zone`, after its real and lame servers.
    pub fn silent(mut self, zone: &str) -> Self {
        self.silent.push(fqdn(zone));
        self
    }

    /// `zone` is served by `servers` servers the test runs itself (the DNS listeners of
    /// dcv-proxy nodes, say), on addresses of the lab's block, port 53 ([`DnsLab::delegated`]
    /// gives them once the lab runs): the closest enclosing zone of the lab delegates to them
    /// as `ns1.<zone>`, `ns2.<zone>`, … with glue, unsigned (no DS). Nothing in the lab
    /// answers there until the test does.
    pub fn delegate(mut self, zone: &str, servers: u8) -> Self {
        self.external.push((fqdn(zone), servers));
        self
    }

    /// Starts every server and unbound, and returns once each one answers (unbound: the root
    /// SOA, validated when the root is signed).
    pub async fn start(mut self) -> DnsLab {
        if !self.zones.iter().any(|z| z.name == ".") {
            self.zones.insert(0, Zone::new(".").signed());
        }
        for z in &self.zones {
            assert!(
                z.forged.is_empty() || z.signing != Signing::Unsigned,
                "Zone::forged needs a signed zone ({})",
                z.name
            );
        }
        let n_servers = u8::try_from(self.zones.len())
            .ok()
            .filter(|n| *n <= 255 - FIRST_SERVER_HOST)
            .expect("at most 245 servers in one lab");
        let mut hosts = vec![UNBOUND_HOST];
        let needs_lame = !self.lame.is_empty();
        let needs_silent = !self.silent.is_empty();
        if needs_lame {
            hosts.push(LAME_HOST);
        }
        if needs_silent {
            hosts.push(SILENT_HOST);
        }
        hosts.extend((0..n_servers).map(|i| FIRST_SERVER_HOST + i));
        assert!(
            FIRST_SERVER_HOST + n_servers <= FIRST_EXTERNAL_HOST,
            "at most {} servers in a lab with delegated zones",
            FIRST_EXTERNAL_HOST - FIRST_SERVER_HOST
        );
        let mut external_hosts: Vec<(String, Vec<u8>)> = Vec::new();
        let mut next_external = FIRST_EXTERNAL_HOST;
        for (zone, servers) in &self.external {
            let mine: Vec<u8> = (0..*servers)
                .map(|k| {
                    next_external
                        .checked_add(k)
                        .expect("at most 55 delegated servers in one lab")
                })
                .collect();
            next_external = next_external
                .checked_add(*servers)
                .expect("at most 55 delegated servers in one lab");
            hosts.extend(&mine);
            external_hosts.push((zone.clone(), mine));
        }
        let (block, lock) = claim_block(&hosts);
        let ip = |host: u8| Ipv4Addr::new(127, 53, block, host);

        // The NS set of every zone name: real servers, then lame, then silent.
        let mut ns: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
        for (i, z) in self.zones.iter().enumerate() {
            let host = FIRST_SERVER_HOST + u8::try_from(i).expect("counted above");
            ns.entry(z.name.clone()).or_default().push(ip(host));
        }
        for name in &self.lame {
            ns.entry(name.clone()).or_default().push(ip(LAME_HOST));
        }
        for name in &self.silent {
            ns.entry(name.clone()).or_default().push(ip(SILENT_HOST));
        }
        for (zone, mine) in &external_hosts {
            ns.entry(zone.clone())
                .or_default()
                .extend(mine.iter().map(|h| ip(*h)));
        }

        let dir = tempfile::tempdir().expect("tempdir for the DNS lab");
        let keys_dir = dir.path().join("keys");
        std::fs::create_dir(&keys_dir).expect("create the keys directory");
        let mut keys = BTreeMap::new();
        for z in &self.zones {
            if z.signing != Signing::Unsigned && !keys.contains_key(&z.name) {
                keys.insert(z.name.clone(), Key::generate(&keys_dir, &z.name).await);
            }
        }

        let mut lab = DnsLab {
            block,
            resolver: SocketAddr::from((ip(UNBOUND_HOST), 53)),
            servers: Vec::new(),
            served: self.zones.iter().map(|z| z.name.clone()).collect(),
            ns,
            keys,
            lame: None,
            silent: None,
            unbound: None,
            dir,
            _lock: lock,
        };
        for (i, zone) in self.zones.into_iter().enumerate() {
            let host = FIRST_SERVER_HOST + u8::try_from(i).expect("counted above");
            let daemon = Daemon::new(lab.dir.path(), &format!("s{host}"), ip(host));
            let server = Server { zone, daemon };
            lab.write_zone(&server).await;
            write_nsd_conf(&server.daemon, Some(&server.zone.name));
            lab.servers.push(server);
        }
        for server in &mut lab.servers {
            server.daemon.spawn_nsd();
        }
        if needs_lame {
            let mut lame = Daemon::new(lab.dir.path(), "lame", ip(LAME_HOST));
            write_nsd_conf(&lame, None);
            lame.spawn_nsd();
            lab.lame = Some(lame);
        }
        if needs_silent {
            lab.silent = Some(Silent::bind(ip(SILENT_HOST)));
        }
        let mut unbound = Daemon::new(lab.dir.path(), "unbound", ip(UNBOUND_HOST));
        lab.write_unbound_conf(&unbound);
        unbound.spawn_unbound();
        lab.unbound = Some(unbound);
        lab.wait_ready().await;
        lab
    }
}

// ---- the running lab

/// A running DNS lab; every daemon is stopped when it is dropped (their logs printed when the
/// test is failing).
pub struct DnsLab {
    block: u8,
    resolver: SocketAddr,
    servers: Vec<Server>,
    /// Zone name to the addresses of its NS set (`ns1`, `ns2`, ...).
    ns: BTreeMap<String, Vec<Ipv4Addr>>,
    /// The zones some server serves (the others are only lame or silent delegations).
    served: BTreeSet<String>,
    /// Zone name to its signing key, for every zone that some server signs.
    keys: BTreeMap<String, Key>,
    lame: Option<Daemon>,
    silent: Option<Silent>,
    unbound: Option<Daemon>,
    dir: tempfile::TempDir,
    /// Held until the lab is gone: the claim on `127.53.<block>.0/24`.
    _lock: UdpSocket,
}

struct Server {
    zone: Zone,
    daemon: Daemon,
}

impl DnsLab {
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    /// unbound, the validating recursive resolver (UDP and TCP): the CA's resolver.
    pub fn resolver(&self) -> SocketAddr {
        self.resolver
    }

    /// `N` of the lab's block `127.53.N.0/24`.
    pub fn block(&self) -> u8 {
        self.block
    }

    /// The servers of `zone` (not the lame or silent ones), in the order the zones were given.
    pub fn servers(&self, zone: &str) -> Vec<SocketAddr> {
        let zone = fqdn(zone);
        let found: Vec<SocketAddr> = self
            .servers
            .iter()
            .filter(|s| s.zone.name == zone)
            .map(|s| s.daemon.addr)
            .collect();
        assert!(!found.is_empty(), "no server in the lab serves {zone}");
        found
    }

    /// The first server of `zone`.
    pub fn server(&self, zone: &str) -> SocketAddr {
        self.servers(zone)[0]
    }

    /// Where the servers of a zone given to [`LabBuilder::delegate`] must listen (UDP and TCP,
    /// port 53), in the order of its NS set (`ns1.<zone>` first).
    pub fn delegated(&self, zone: &str) -> Vec<SocketAddr> {
        let zone = fqdn(zone);
        assert!(
            !self.served.contains(&zone),
            "{zone} is served by the lab, not delegated"
        );
        let found: Vec<SocketAddr> = self
            .ns
            .get(&zone)
            .map(|addrs| addrs.iter().map(|ip| SocketAddr::from((*ip, 53))).collect())
            .unwrap_or_default();
        assert!(!found.is_empty(), "{zone} is not delegated in the lab");
        found
    }

    /// The NS names the lab gives `zone` (`ns1.<zone>.`, …), in order.
    pub fn ns_names(&self, zone: &str) -> Vec<String> {
        let zone = fqdn(zone);
        let n = self.ns.get(&zone).map_or(0, Vec::len);
        (1..=n).map(|k| ns_name(&zone, k)).collect()
    }

    /// The lame server: `nsd` without zones, REFUSED for every query.
    pub fn lame_server(&self) -> SocketAddr {
        self.lame
            .as_ref()
            .expect("the lab has no lame server: use LabBuilder::lame")
            .addr
    }

    /// The silent server: nothing ever answers there (UDP and TCP).
    pub fn silent_server(&self) -> SocketAddr {
        self.silent
            .as_ref()
            .expect("the lab has no silent server: use LabBuilder::silent")
            .addr
    }

    /// The lab root's DS record (unbound's trust anchor), when the root is signed.
    pub fn trust_anchor(&self) -> Option<String> {
        self.keys.get(".").map(|k| k.ds.clone())
    }

    /// Asks the lab's resolver (UDP, recursion desired, AD requested).
    pub async fn resolve(&self, name: &str, rtype: RecordType) -> Reply {
        query(self.resolver, name, rtype).await.unwrap_or_else(|e| {
            panic!("unbound did not answer {name} {rtype}: {e}\n{}", self.log())
        })
    }

    /// Replaces the RRset `owner`/`rtype` (absolute owner) in the closest enclosing zone of the
    /// lab, on every server of that zone; `rdata` empty removes it. Each server's serial goes
    /// up by one, its copy is signed again if it was signed, reloaded (`nsd-control reload`),
    /// and served before this returns; then unbound's cache for the zone and its negative
    /// cache are flushed, so the next resolution sees the change.
    pub async fn set_records(&mut self, owner: &str, rtype: &str, rdata: &[&str]) {
        self.change(None, owner, rtype, rdata).await;
    }

    /// [`Self::set_records`] on one server only (a secondary that has not caught up).
    pub async fn set_records_on(
        &mut self,
        server: SocketAddr,
        owner: &str,
        rtype: &str,
        rdata: &[&str],
    ) {
        self.change(Some(server), owner, rtype, rdata).await;
    }

    /// The TXT RRset of `owner`: one record per value (`&[]` removes it).
    pub async fn set_txt(&mut self, owner: &str, values: &[&str]) {
        let rdata: Vec<String> = values.iter().map(|v| txt_rdata(v)).collect();
        let rdata: Vec<&str> = rdata.iter().map(String::as_str).collect();
        self.set_records(owner, "TXT", &rdata).await;
    }

    /// The A and AAAA RRsets of `owner`: the addresses in `ips` of each family.
    pub async fn set_ips(&mut self, owner: &str, ips: &[IpAddr]) {
        let v4: Vec<String> = ips
            .iter()
            .filter(|i| i.is_ipv4())
            .map(IpAddr::to_string)
            .collect();
        let v6: Vec<String> = ips
            .iter()
            .filter(|i| i.is_ipv6())
            .map(IpAddr::to_string)
            .collect();
        let v4: Vec<&str> = v4.iter().map(String::as_str).collect();
        let v6: Vec<&str> = v6.iter().map(String::as_str).collect();
        self.set_records(owner, "A", &v4).await;
        self.set_records(owner, "AAAA", &v6).await;
    }

    /// Empties unbound's caches (answers, negative answers, keys, what it knows of servers).
    pub async fn flush_resolver(&self) {
        let commands: [&[&str]; 4] = [
            &["flush_zone", "."],
            &["flush_negative"],
            &["flush_bogus"],
            &["flush_infra", "all"],
        ];
        for cmd in commands {
            self.unbound_control(cmd).await;
        }
    }

    /// The lab's files: `keys/`, and per daemon its configuration, zone files and `log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The logs of every daemon, for failure messages.
    pub fn log(&self) -> String {
        let mut all = String::new();
        let daemons = self
            .servers
            .iter()
            .map(|s| &s.daemon)
            .chain(self.lame.as_ref())
            .chain(self.unbound.as_ref());
        for d in daemons {
            let _ = writeln!(all, "--- {} ({})\n{}", d.label, d.addr, tail(&d.log(), 30));
        }
        all
    }

    async fn change(&mut self, only: Option<SocketAddr>, owner: &str, rtype: &str, rdata: &[&str]) {
        let owner = fqdn(owner);
        let zone = closest_zone(&owner, &self.served);
        let rdata: Vec<String> = rdata.iter().map(|d| (*d).to_owned()).collect();
        let picked: Vec<usize> = (0..self.servers.len())
            .filter(|&i| self.servers[i].zone.name == zone)
            .filter(|&i| only.is_none_or(|a| a == self.servers[i].daemon.addr))
            .collect();
        assert!(
            !picked.is_empty(),
            "no server {} serves {zone}",
            only.map_or_else(String::new, |a| a.to_string())
        );
        for &i in &picked {
            let server = &mut self.servers[i];
            server.zone.set(&owner, rtype, &rdata);
            server.zone.serial += 1;
            let server = &self.servers[i];
            self.write_zone(server).await;
            let conf = server.daemon.dir.join("nsd.conf");
            run(
                tokio::process::Command::new("nsd-control")
                    .arg("-c")
                    .arg(&conf)
                    .args(["reload", &zone]),
                "nsd-control reload",
            )
            .await;
        }
        for &i in &picked {
            let server = &self.servers[i];
            let (addr, serial) = (server.daemon.addr, server.zone.serial);
            let start = Instant::now();
            loop {
                let now = query_with(addr, &zone, RecordType::SOA, false, POLL_TIMEOUT).await;
                if now.ok().and_then(|r| r.serial()) == Some(serial) {
                    break;
                }
                assert!(
                    start.elapsed() < READY_WITHIN,
                    "{addr} did not serve serial {serial} of {zone}\n{}",
                    self.log()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.unbound_control(&["flush_zone", &zone]).await;
        self.unbound_control(&["flush_negative"]).await;
    }

    async fn unbound_control(&self, args: &[&str]) {
        let unbound = self.unbound.as_ref().expect("unbound is running");
        run(
            tokio::process::Command::new("unbound-control")
                .arg("-c")
                .arg(unbound.dir.join("unbound.conf"))
                .args(args),
            "unbound-control",
        )
        .await;
    }

    /// Writes the server's copy of its zone to `<dir>/zone` (signed when the server signs).
    async fn write_zone(&self, server: &Server) {
        let text = self.zone_text(&server.zone);
        let d = &server.daemon.dir;
        std::fs::create_dir_all(d).expect("create a server directory");
        let zonefile = d.join("zone");
        let Some(key) = self.keys.get(&server.zone.name) else {
            std::fs::write(&zonefile, text).expect("write a zone file");
            return;
        };
        if server.zone.signing == Signing::Unsigned {
            std::fs::write(&zonefile, text).expect("write a zone file");
            return;
        }
        let source = d.join("zone.src");
        let signed = d.join("zone.signed");
        std::fs::write(&source, text).expect("write a zone file");
        let now = unix_now();
        let (inception, expiration) = match server.zone.signing {
            // Well past unbound's allowance for clock skew (`val-sig-skew-max`, one day).
            Signing::Expired => (now - 60 * 86_400, now - 30 * 86_400),
            _ => (now - 3_600, now + 30 * 86_400),
        };
        run(
            tokio::process::Command::new("ldns-signzone")
                .args(["-o", &server.zone.name])
                .args(["-i", &inception.to_string(), "-e", &expiration.to_string()])
                .arg("-f")
                .arg(&signed)
                .arg(&source)
                .arg(&key.base),
            "ldns-signzone",
        )
        .await;
        let mut text = std::fs::read_to_string(&signed).expect("read the signed zone");
        if !server.zone.forged.is_empty() {
            text = forge(&text, &server.zone.forged, server.zone.ttl);
        }
        std::fs::write(&zonefile, text).expect("write a zone file");
    }

    /// The zone file of one server's copy: SOA, apex NS with the `ns<k>` addresses, the
    /// records, and a delegation (NS, glue, DS when signed) for each child zone.
    fn zone_text(&self, zone: &Zone) -> String {
        let z = &zone.name;
        let ttl = zone.ttl;
        let mut t = String::new();
        let _ = writeln!(t, "$ORIGIN {z}\n$TTL {ttl}");
        let _ = writeln!(
            t,
            "{z} IN SOA {} {} {} 3600 600 86400 {ttl}",
            ns_name(z, 1),
            owner_in("hostmaster", z),
            zone.serial
        );
        let own_ns = self.ns.get(z).map(Vec::as_slice).unwrap_or_default();
        write_ns_set(&mut t, z, z, own_ns);
        for rr in &zone.records {
            let _ = writeln!(t, "{} IN {} {}", rr.owner, rr.rtype, rr.rdata);
        }
        for (child, addrs) in &self.ns {
            if child == z || !is_at_or_below(child, z) {
                continue;
            }
            let parent = closest_zone(&parent_name(child), &self.served);
            if &parent != z {
                continue;
            }
            write_ns_set(&mut t, child, child, addrs);
            if let Some(key) = self.keys.get(child) {
                let _ = writeln!(t, "{}", key.ds);
            }
        }
        t
    }

    fn write_unbound_conf(&self, unbound: &Daemon) {
        let d = &unbound.dir;
        std::fs::create_dir_all(d).expect("create unbound's directory");
        let root_ns = self.ns.get(".").expect("the root is always served");
        let mut hints = String::new();
        write_ns_set(&mut hints, ".", ".", root_ns);
        std::fs::write(d.join("root.hints"), hints).expect("write root.hints");
        let mut anchor = String::new();
        if let Some(ds) = self.trust_anchor() {
            std::fs::write(d.join("root.ds"), format!("{ds}\n")).expect("write the trust anchor");
            anchor = format!(
                "  trust-anchor-file: \"{}\"\n  module-config: \"validator iterator\"\n",
                d.join("root.ds").display()
            );
        } else {
            anchor.push_str("  module-config: \"iterator\"\n");
        }
        // unbound answers some names itself (RFC 6761 `test.`, `invalid.`, `onion.`, reverse
        // zones of private ranges...): turn that off for every lab zone and its ancestors.
        let mut nodefault = BTreeSet::new();
        for zone in self.ns.keys() {
            let mut name = zone.clone();
            while name != "." {
                nodefault.insert(name.clone());
                name = parent_name(&name);
            }
        }
        let mut local = String::new();
        for name in nodefault {
            let _ = writeln!(local, "  local-zone: \"{name}\" nodefault");
        }
        let ip = unbound.addr.ip();
        let conf = format!(
            r#"server:
  interface: {ip}@53
  outgoing-interface: {ip}
  interface-automatic: no
  do-ip4: yes
  do-ip6: no
  do-udp: yes
  do-tcp: yes
  so-reuseport: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{dir}"
  pidfile: "{dir}/unbound.pid"
  use-syslog: no
  logfile: ""
  log-time-ascii: yes
  log-servfail: yes
  verbosity: 1
  val-log-level: 2
  num-threads: 1
  outgoing-range: 256
  num-queries-per-thread: 128
  msg-cache-size: 1m
  rrset-cache-size: 2m
  key-cache-size: 1m
  neg-cache-size: 1m
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  root-hints: "{dir}/root.hints"
  discard-timeout: 0
  infra-cache-max-rtt: 1000
  trust-anchor-signaling: no
  root-key-sentinel: no
{anchor}{local}
remote-control:
  control-enable: yes
  control-interface: "{dir}/unbound.ctl"
  control-use-cert: no
"#,
            dir = d.display(),
        );
        std::fs::write(d.join("unbound.conf"), conf).expect("write unbound.conf");
    }

    /// Polls every daemon until it answers: each server its zone's SOA with the expected
    /// serial, the lame server anything, unbound the root SOA (with AD when the root is signed).
    async fn wait_ready(&mut self) {
        let start = Instant::now();
        for i in 0..self.servers.len() {
            let (addr, zone, serial) = {
                let s = &self.servers[i];
                (s.daemon.addr, s.zone.name.clone(), s.zone.serial)
            };
            self.poll(
                start,
                &format!("{addr} serving {zone}"),
                |r| {
                    r.rcode == ResponseCode::NoError
                        && r.authoritative
                        && r.serial() == Some(serial)
                },
                addr,
                &zone,
            )
            .await;
        }
        if let Some(lame) = &self.lame {
            let addr = lame.addr;
            self.poll(start, "the lame server", |_| true, addr, ".")
                .await;
        }
        let signed = self.keys.contains_key(".");
        let resolver = self.resolver;
        self.poll(
            start,
            "unbound resolving the lab root",
            |r| r.rcode == ResponseCode::NoError && (r.authentic || !signed),
            resolver,
            ".",
        )
        .await;
    }

    async fn poll(
        &mut self,
        start: Instant,
        what: &str,
        ok: impl Fn(&Reply) -> bool,
        addr: SocketAddr,
        name: &str,
    ) {
        loop {
            if let Ok(reply) = query_with(addr, name, RecordType::SOA, false, POLL_TIMEOUT).await {
                if ok(&reply) {
                    return;
                }
            }
            if let Some(dead) = self.exited() {
                panic!("{dead} exited while the DNS lab started\n{}", self.log());
            }
            assert!(
                start.elapsed() < READY_WITHIN,
                "timed out waiting for {what}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The label of a daemon that has exited, if any.
    fn exited(&mut self) -> Option<String> {
        let daemons = self
            .servers
            .iter_mut()
            .map(|s| &mut s.daemon)
            .chain(self.lame.as_mut())
            .chain(self.unbound.as_mut());
        for d in daemons {
            if let Some(child) = d.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Some(format!("{} ({status})", d.label));
                }
            }
        }
        None
    }
}

impl Drop for DnsLab {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        let log = if failing { self.log() } else { String::new() };
        let mut daemons: Vec<&mut Daemon> = self
            .servers
            .iter_mut()
            .map(|s| &mut s.daemon)
            .chain(self.lame.as_mut())
            .chain(self.unbound.as_mut())
            .collect();
        // SIGTERM to all at once: nsd's first process (xfrd) stops its server processes and
        // waits for them; unbound is one process.
        let pids: Vec<String> = daemons
            .iter()
            .filter_map(|d| d.child.as_ref())
            .map(|c| c.id().to_string())
            .collect();
        if !pids.is_empty() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .args(&pids)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for d in &mut daemons {
            if let Some(mut child) = d.child.take() {
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // The block is released with the lock; make sure no process of the lab still holds
        // an address of it by then.
        for d in &daemons {
            while UdpSocket::bind(d.addr).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if failing {
            eprintln!("--- DNS lab 127.53.{}.0/24\n{log}", self.block);
        }
    }
}

// ---- daemons

/// One child process (`nsd` or `unbound`) with its own directory.
struct Daemon {
    label: String,
    addr: SocketAddr,
    dir: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    fn new(lab_dir: &Path, label: &str, ip: Ipv4Addr) -> Self {
        let dir = lab_dir.join(label);
        std::fs::create_dir_all(&dir).expect("create a daemon directory");
        Self {
            label: label.to_owned(),
            addr: SocketAddr::from((ip, 53)),
            dir,
            child: None,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn log_file(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .expect("open a daemon log")
    }

    /// `nsd -d`: foreground, no fork into the background.
    fn spawn_nsd(&mut self) {
        let log = self.log_file();
        let child = Command::new("nsd")
            .arg("-d")
            .arg("-c")
            .arg(self.dir.join("nsd.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn()
            .expect("spawn nsd (Debian package `nsd`)");
        self.child = Some(child);
    }

    /// `unbound -d`: foreground; logs to stderr (`logfile: ""`, `use-syslog: no`).
    fn spawn_unbound(&mut self) {
        let log = self.log_file();
        let child = Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(self.dir.join("unbound.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn()
            .expect("spawn unbound (Debian package `unbound`)");
        self.child = Some(child);
    }
}

/// An `nsd.conf` with every file in the daemon's directory, no chroot, no user switch, no
/// database, one server process, and `nsd-control` over a unix socket (no TLS keys needed).
fn write_nsd_conf(daemon: &Daemon, zone: Option<&str>) {
    let d = daemon.dir.display();
    let mut conf = format!(
        r#"server:
  ip-address: {ip}
  port: 53
  do-ip4: yes
  do-ip6: no
  reuseport: no
  username: ""
  chroot: ""
  zonesdir: "{d}"
  database: ""
  pidfile: "{d}/nsd.pid"
  xfrdfile: "{d}/xfrd.state"
  xfrdir: "{d}"
  zonelistfile: "{d}/zone.list"
  cookie-secret-file: "{d}/cookies"
  logfile: "{d}/log"
  server-count: 1
  tcp-count: 16
  verbosity: 1
  hide-version: yes
remote-control:
  control-enable: yes
  control-interface: "{d}/nsd.ctl"
"#,
        ip = daemon.addr.ip(),
    );
    if let Some(zone) = zone {
        let _ = write!(
            conf,
            "zone:\n  name: \"{zone}\"\n  zonefile: \"{d}/zone\"\n"
        );
    }
    std::fs::write(daemon.dir.join("nsd.conf"), conf).expect("write nsd.conf");
}

/// Sockets that accept queries and never answer: the UDP socket is never read (no ICMP port
/// unreachable, so the query times out), and the TCP listener never accepts (the kernel
/// completes handshakes into its backlog, nothing is ever read).
struct Silent {
    addr: SocketAddr,
    _udp: UdpSocket,
    _tcp: TcpListener,
}

impl Silent {
    fn bind(ip: Ipv4Addr) -> Self {
        let addr = SocketAddr::from((ip, 53));
        Self {
            addr,
            _udp: UdpSocket::bind(addr).expect("bind the silent server (UDP)"),
            _tcp: TcpListener::bind(addr).expect("bind the silent server (TCP)"),
        }
    }
}

/// A zone's signing key: one ECDSA P-256 key with the SEP flag (257) that signs everything.
struct Key {
    /// `ldns-signzone` takes the key by its base name (`K<zone>+013+<tag>`).
    base: PathBuf,
    /// The DS record for the parent (SHA-256), one line of zone-file text.
    ds: String,
}

impl Key {
    async fn generate(dir: &Path, zone: &str) -> Self {
        let out = run(
            tokio::process::Command::new("ldns-keygen")
                .args(["-a", "ECDSAP256SHA256", "-k", "-r", "/dev/urandom", zone])
                .current_dir(dir),
            "ldns-keygen (Debian package `ldnsutils`)",
        )
        .await;
        let base = dir.join(out.trim());
        let ds_file = base.with_file_name(format!("{}.ds", out.trim()));
        let ds = std::fs::read_to_string(&ds_file).expect("read the DS ldns-keygen wrote");
        let ds = ds
            .lines()
            .find(|l| l.contains("\tDS\t") || l.contains(" DS "))
            .expect("a DS record")
            .to_owned();
        Self { base, ds }
    }
}

// ---- claiming a block

/// Claims `127.53.N.0/24` for one lab: binds UDP `127.53.N.1:53` (held by the lab: neither a
/// thread of this process nor another process can bind it while the lab lives), then checks
/// that UDP and TCP port 53 are free on every host the lab will use, so daemons left behind by
/// a killed test run only cost their block. Blocks are tried from a start that differs between
/// processes and calls.
fn claim_block(hosts: &[u8]) -> (u8, UdpSocket) {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id()
        .wrapping_mul(97)
        .wrapping_add(CALLS.fetch_add(1, Ordering::Relaxed).wrapping_mul(13));
    for i in 0..254 {
        let n = u8::try_from((start.wrapping_add(i)) % 254 + 1).expect("1..=254");
        let lock = match UdpSocket::bind((Ipv4Addr::new(127, 53, n, LOCK_HOST), 53)) {
            Ok(lock) => lock,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                panic!("the DNS lab binds port 53 on 127.53.0.0/16: run the tests as root ({e})")
            }
            Err(_) => continue,
        };
        let free = hosts.iter().all(|&h| {
            let addr = SocketAddr::from((Ipv4Addr::new(127, 53, n, h), 53));
            UdpSocket::bind(addr).is_ok() && TcpListener::bind(addr).is_ok()
        });
        if free {
            return (n, lock);
        }
    }
    panic!("no free block 127.53.N.0/24 for a DNS lab (is something bound to 0.0.0.0:53?)")
}

// ---- queries

/// One answer, as a client sees it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub rcode: ResponseCode,
    /// AA: the server is authoritative for the name.
    pub authoritative: bool,
    /// AD: the resolver validated the answer with DNSSEC.
    pub authentic: bool,
    pub truncated: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
}

impl Reply {
    fn from_message(m: Message) -> Self {
        Self {
            rcode: m.metadata.response_code,
            authoritative: m.metadata.authoritative,
            authentic: m.metadata.authentic_data,
            truncated: m.metadata.truncation,
            answers: m.answers,
            authorities: m.authorities,
        }
    }

    /// The A and AAAA addresses in the answer (the end of a CNAME chain included).
    pub fn ips(&self) -> Vec<IpAddr> {
        self.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect()
    }

    /// Each TXT record of the answer, its strings concatenated.
    pub fn txt(&self) -> Vec<String> {
        self.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    }

    /// The records of type `rtype` in the answer, in presentation form (`edge.cdn.test.`,
    /// `0 issue "pebble"`).
    pub fn data(&self, rtype: RecordType) -> Vec<String> {
        self.answers
            .iter()
            .filter(|r| r.record_type() == rtype)
            .map(|r| r.data.to_string())
            .collect()
    }

    /// The SOA serial in the answer or authority section.
    pub fn serial(&self) -> Option<u32> {
        self.answers
            .iter()
            .chain(&self.authorities)
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(soa.serial),
                _ => None,
            })
    }
}

/// Asks `server` over UDP (RD and AD set, EDNS with 1232 bytes), waiting [`QUERY_TIMEOUT`].
/// A server that never answers gives `ErrorKind::TimedOut`; nothing listening, usually
/// `ConnectionRefused`.
pub async fn query(server: SocketAddr, name: &str, rtype: RecordType) -> io::Result<Reply> {
    query_with(server, name, rtype, false, QUERY_TIMEOUT).await
}

/// [`query`] over TCP.
pub async fn query_tcp(server: SocketAddr, name: &str, rtype: RecordType) -> io::Result<Reply> {
    query_with(server, name, rtype, true, QUERY_TIMEOUT).await
}

/// One query over UDP or TCP, waiting at most `timeout`.
pub async fn query_with(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    tcp: bool,
    timeout: Duration,
) -> io::Result<Reply> {
    let mut msg = Message::query();
    let qname = Name::from_ascii(fqdn(name)).map_err(io::Error::other)?;
    msg.add_query(Query::query(qname, rtype));
    msg.metadata.recursion_desired = true;
    msg.metadata.authentic_data = true;
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    msg.set_edns(edns);
    let id = msg.metadata.id;
    let wire = msg.to_vec().map_err(io::Error::other)?;
    let exchange = async {
        if tcp {
            let mut stream = tokio::net::TcpStream::connect(server).await?;
            let len = u16::try_from(wire.len()).map_err(io::Error::other)?;
            stream.write_all(&len.to_be_bytes()).await?;
            stream.write_all(&wire).await?;
            let len = stream.read_u16().await?;
            let mut buf = vec![0; usize::from(len)];
            stream.read_exact(&mut buf).await?;
            Ok::<_, io::Error>(buf)
        } else {
            let local = if server.is_ipv4() {
                "127.0.0.1:0"
            } else {
                "[::1]:0"
            };
            let socket = tokio::net::UdpSocket::bind(local).await?;
            socket.connect(server).await?;
            socket.send(&wire).await?;
            let mut buf = vec![0; 65_535];
            loop {
                let n = socket.recv(&mut buf).await?;
                if buf.get(..2) == Some(&id.to_be_bytes()[..]) {
                    buf.truncate(n);
                    return Ok(buf);
                }
            }
        }
    };
    let wire = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer from {server} within {timeout:?}"),
            )
        })??;
    let reply = Message::from_vec(&wire).map_err(io::Error::other)?;
    Ok(Reply::from_message(reply))
}

// ---- names and text

/// Lowercase, with the final dot.
fn fqdn(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    }
}

/// `owner` as written in a zone (`@`, relative, or absolute) made absolute.
fn owner_in(owner: &str, zone: &str) -> String {
    match owner {
        "@" | "" => zone.to_owned(),
        o if o.ends_with('.') => o.to_ascii_lowercase(),
        o if zone == "." => format!("{}.", o.to_ascii_lowercase()),
        o => format!("{}.{zone}", o.to_ascii_lowercase()),
    }
}

fn is_at_or_below(name: &str, zone: &str) -> bool {
    zone == "."
        || name.eq_ignore_ascii_case(zone)
        || name
            .to_ascii_lowercase()
            .ends_with(&format!(".{}", zone.to_ascii_lowercase()))
}

/// `a.b.` → `b.`, `b.` → `.`.
fn parent_name(name: &str) -> String {
    match name.split_once('.') {
        Some((_, rest)) if !rest.is_empty() => rest.to_owned(),
        _ => ".".to_owned(),
    }
}

/// The closest zone in `zones` at or above `name` (the root when nothing closer).
fn closest_zone(name: &str, zones: &BTreeSet<String>) -> String {
    let mut n = name.to_ascii_lowercase();
    while n != "." && !zones.contains(&n) {
        n = parent_name(&n);
    }
    n
}

/// `ns<k>.<zone>` (`ns<k>.` for the root).
fn ns_name(zone: &str, k: usize) -> String {
    if zone == "." {
        format!("ns{k}.")
    } else {
        format!("ns{k}.{zone}")
    }
}

/// The NS set of `zone` and the addresses of its names, written at `owner`.
fn write_ns_set(t: &mut String, owner: &str, zone: &str, addrs: &[Ipv4Addr]) {
    for k in 1..=addrs.len() {
        let _ = writeln!(t, "{owner} IN NS {}", ns_name(zone, k));
    }
    for (k, ip) in addrs.iter().enumerate() {
        let _ = writeln!(t, "{} IN A {ip}", ns_name(zone, k + 1));
    }
}

/// A quoted character-string.
fn quote(text: &str) -> String {
    let mut q = String::from("\"");
    for c in text.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// TXT rdata: `text` as quoted strings of at most 255 bytes.
fn txt_rdata(text: &str) -> String {
    if text.is_empty() {
        return "\"\"".to_owned();
    }
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(255);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        parts.push(quote(&rest[..cut]));
        rest = &rest[cut..];
    }
    parts.join(" ")
}

/// The signed zone text with each forged RRset put in place of the signed one (its RRSIG
/// kept). `ldns-signzone` writes one record per line: `owner TTL class type rdata`.
fn forge(signed: &str, forged: &[Rr], ttl: u32) -> String {
    let mut out = String::new();
    for line in signed.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let replaced = f.len() > 4
            && forged.iter().any(|r| {
                f[0].eq_ignore_ascii_case(&r.owner) && f[3].eq_ignore_ascii_case(&r.rtype)
            });
        if !replaced {
            out.push_str(line);
            out.push('\n');
        }
    }
    for r in forged {
        let _ = writeln!(out, "{} {ttl} IN {} {}", r.owner, r.rtype, r.rdata);
    }
    out
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// Runs a short command; panics with its output when it fails. Returns stdout.
async fn run(cmd: &mut tokio::process::Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A port free for UDP and TCP on every one of `ips`.
pub fn free_dns_port(ips: &[IpAddr]) -> u16 {
    for _ in 0..200 {
        let port = UdpSocket::bind((ips[0], 0))
            .and_then(|s| s.local_addr())
            .expect("a free UDP port")
            .port();
        let free = ips.iter().all(|ip| {
            UdpSocket::bind((*ip, port)).is_ok() && TcpListener::bind((*ip, port)).is_ok()
        });
        if free {
            return port;
        }
    }
    panic!("no port free for UDP and TCP on {ips:?}");
}

/// Waits until the DNS listener at `server` (a background service of a node) answers its
/// `zone`'s SOA with authority.
pub async fn listening(server: SocketAddr, zone: &str) {
    super::eventually("the node's DNS listener answers", || async {
        query_with(
            server,
            zone,
            RecordType::SOA,
            false,
            Duration::from_millis(300),
        )
        .await
        .ok()
        .filter(|r| r.authoritative)
    })
    .await;
}
