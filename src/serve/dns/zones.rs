//! The static part of the validation zones, made once from `[dns]`: the SOA and NS sets at each
//! apex and the addresses of name servers inside the zone. The TXT records are not here: they
//! are read from the challenge store at every query.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use hickory_server::proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};

use crate::config::{DnsConfig, ValidationZone};

/// TTL of the NS set and the name servers' addresses: they change with the fleet, not with
/// orders, and a resolver that keeps them an hour asks the parent less often.
pub(super) const NS_TTL: u32 = 3600;
/// SOA timers (RFC 1035 §3.3.13). No secondary transfers these zones (AXFR is refused), so
/// they only tell a reader what is usual.
const REFRESH: i32 = 3600;
const RETRY: i32 = 600;
const EXPIRE: i32 = 86_400;

/// One validation zone, ready to answer from.
pub struct Zone {
    /// The apex as configured (`dcv.cdn.example`): the `zone` label of the metrics.
    pub label: String,
    pub origin: LowerName,
    pub apex: Name,
    pub soa: Record,
    pub ns: Vec<Record>,
    /// In-zone name servers (full name, lowercase, no trailing dot) → their A and AAAA records.
    pub hosts: HashMap<String, Vec<Record>>,
    /// Parents of the in-zone name servers below the apex (empty non-terminals, RFC 8020).
    pub host_parents: HashSet<String>,
    /// TTL of the TXT records and of negative answers.
    pub ttl: u32,
}

/// Every validation zone of the listener.
pub struct Zones {
    pub zones: Vec<Zone>,
}

/// Why the zones could not be made (names that hickory refuses; the configuration parser
/// accepted them, so this is not expected).
#[derive(Debug, thiserror::Error)]
#[error("validation zone {zone}: {reason}")]
pub struct ZoneError {
    zone: String,
    reason: String,
}

impl Zones {
    pub fn new(config: &DnsConfig) -> Result<Self, ZoneError> {
        let ttl = u32::try_from(config.ttl.as_secs()).unwrap_or(u32::MAX);
        let zones = config
            .zones
            .iter()
            .map(|z| Zone::new(z, ttl))
            .collect::<Result<_, _>>()?;
        Ok(Self { zones })
    }

    /// The zone `name` is in, if any.
    pub fn find(&self, name: &LowerName) -> Option<&Zone> {
        // Zones never overlap (the configuration refuses it), so the first match is the one.
        self.zones.iter().find(|z| z.origin.zone_of(name))
    }
}

impl Zone {
    fn new(config: &ValidationZone, ttl: u32) -> Result<Self, ZoneError> {
        let error = |reason: String| ZoneError {
            zone: config.name.to_string(),
            reason,
        };
        let fqdn = |name: &str| {
            Name::from_ascii(format!("{name}.")).map_err(|e| error(format!("{name}: {e}")))
        };
        let apex = fqdn(config.name.as_str())?;
        let name_servers: Vec<Name> = config
            .name_servers
            .iter()
            .map(|n| fqdn(n.as_str()))
            .collect::<Result<_, _>>()?;
        let mname = name_servers
            .first()
            .cloned()
            .ok_or_else(|| error("no name server".into()))?;
        let soa = Record::from_rdata(
            apex.clone(),
            ttl,
            RData::SOA(SOA::new(
                mname,
                fqdn(config.hostmaster.as_str())?,
                serial(config),
                REFRESH,
                RETRY,
                EXPIRE,
                ttl,
            )),
        );
        let ns = name_servers
            .iter()
            .map(|n| Record::from_rdata(apex.clone(), NS_TTL, RData::NS(NS(n.clone()))))
            .collect();
        let mut hosts = HashMap::new();
        let mut host_parents = HashSet::new();
        for (host, ips) in &config.addresses {
            let owner = fqdn(host.as_str())?;
            let records = ips
                .iter()
                .map(|ip| {
                    let data = match ip {
                        IpAddr::V4(v4) => RData::A(A(*v4)),
                        IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
                    };
                    Record::from_rdata(owner.clone(), NS_TTL, data)
                })
                .collect();
            hosts.insert(host.as_str().to_owned(), records);
            let mut rest = host.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                if parent.len() <= config.name.as_str().len() {
                    break;
                }
                host_parents.insert(parent.to_owned());
                rest = parent;
            }
        }
        Ok(Self {
            label: config.name.to_string(),
            origin: LowerName::new(&apex),
            apex,
            soa,
            ns,
            hosts,
            host_parents,
            ttl,
        })
    }

    /// The A/AAAA records of the in-zone name server `name` of type `rtype`.
    pub fn host_records(&self, name: &str, rtype: RecordType) -> Option<Vec<Record>> {
        let records = self.hosts.get(name)?;
        Some(
            records
                .iter()
                .filter(|r| r.record_type() == rtype)
                .cloned()
                .collect(),
        )
    }
}

/// A SOA serial from what the zone is made of (its NS set, addresses and hostmaster): equal on
/// every node with the same configuration, so the probe's serial comparison (D11) flags a node
/// whose `[dns]` differs, and never the challenge churn. Never 0.
fn serial(config: &ValidationZone) -> u32 {
    let mut text = format!("{}|{}", config.name, config.hostmaster);
    for ns in &config.name_servers {
        text.push('|');
        text.push_str(ns.as_str());
    }
    for (host, ips) in &config.addresses {
        text.push('|');
        text.push_str(host.as_str());
        for ip in ips {
            text.push(' ');
            text.push_str(&ip.to_string());
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let bytes = digest.as_ref();
    let n = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) & 0x7fff_ffff;
    n.max(1)
}
