//! The fleet seen by the probe (catalogue H6, "CDN enabled, file not synced to overseas
//! nodes"): besides the addresses DNS gives, the probe token (and each registered
//! pki-validation file) is fetched from every live member of the fleet at its public
//! addresses, so that a node that did not get the change is named, with its node id.
//!
//! The members come through [`Members`], implemented by the node under probe (the state in
//! the running server, the admin API's `/v1/status` from the command line): the probe never
//! reads the fleet store itself. A node alone has no fleet, and then nothing here runs.
//!
//! The token travels to the other members through etcd (measured p99 ≈ 20 ms, see
//! `docs/fleet.md`): a member without it is asked again for up to [`PROPAGATION_WAIT`] before
//! it is declared H6, so a probe that starts right after the token was published does not
//! blame the watch for being a few milliseconds behind.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;

use super::causes::Cause;
use super::node_error::NodeError;
use super::report::{Check, Status};

/// How long a member that does not answer the change yet is asked again before it is H6:
/// twenty-five times the measured p99 of the fleet's propagation.
pub(super) const PROPAGATION_WAIT: Duration = Duration::from_millis(500);

/// A live member of the fleet, as the probe reaches it: from the fleet store's member record,
/// read here or through a node's `/v1/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetMember {
    pub node_id: String,
    /// Where the world reaches it (its `fleet.public_addresses`).
    pub addresses: Vec<IpAddr>,
    /// Port of its first HTTP listener, where it answers HTTP-01 and pki-validation.
    pub http_port: Option<u16>,
    /// Where its DNS listener answers the validation zones (D15).
    pub dns: Vec<SocketAddr>,
}

impl From<crate::state::fleet::Member> for FleetMember {
    fn from(m: crate::state::fleet::Member) -> Self {
        Self {
            node_id: m.node_id,
            addresses: m.public_addresses,
            http_port: m.http_port,
            dns: m.dns,
        }
    }
}

/// The fleet the node under probe belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// The id of the node under probe.
    pub node_id: String,
    /// The live members (whose membership lease is kept alive), the node under probe included.
    pub members: Vec<FleetMember>,
}

impl Fleet {
    /// Whether there is any member besides the node under probe: only then can a change be
    /// missing somewhere (H6).
    pub fn has_others(&self) -> bool {
        self.members.iter().any(|m| m.node_id != self.node_id)
    }

    /// Every `(member, address:port)` to ask, the HTTP port being the member's own (or
    /// `default_port` when it has published none); members without a public address are
    /// returned apart, as they cannot be asked.
    pub fn targets(&self, default_port: u16) -> (Vec<(&FleetMember, SocketAddr)>, Vec<&str>) {
        let mut targets = Vec::new();
        let mut unaddressed = Vec::new();
        for member in &self.members {
            if member.addresses.is_empty() {
                unaddressed.push(member.node_id.as_str());
            }
            let port = member.http_port.unwrap_or(default_port);
            for &ip in &member.addresses {
                targets.push((member, SocketAddr::new(ip, port)));
            }
        }
        (targets, unaddressed)
    }
}

/// Where the probe learns the fleet's members from.
#[async_trait]
pub trait Members: Send + Sync {
    /// The fleet of the node under probe; `None` when it runs alone.
    async fn fleet(&self) -> Result<Option<Fleet>, NodeError>;
}

/// The target text of a member's check: `node-4 at 192.0.2.4:80`.
pub(super) fn target(node_id: &str, addr: SocketAddr) -> String {
    format!("{node_id} at {addr}")
}

/// Names the cause of each member's answer, `judged` holding one check per asked address
/// (by [`super::http::judge`], with H2 for a miss) with the member it belongs to. A member that
/// answers 404 or other content while other members have it is H6, named with the remedy; one
/// that cannot be reached from here is a warning (H1 at that member): it keeps its membership
/// lease, so it runs, and the CA may well reach it. When no member has it, the misses keep
/// their own cause (H2, H7): nothing was synced anywhere, so the fleet is not to blame.
pub(super) fn blame(judged: Vec<(&str, Check)>, waited: Duration) -> Vec<Check> {
    let answering: BTreeSet<&str> = judged
        .iter()
        .filter(|(_, c)| matches!(c.status, Status::Pass | Status::Warn))
        .map(|(id, _)| *id)
        .collect();
    judged
        .into_iter()
        .map(|(id, mut check)| {
            let others: Vec<&str> = answering.iter().copied().filter(|o| *o != id).collect();
            match (check.status, check.cause) {
                (Status::Fail, Some(Cause::H2 | Cause::H7)) if !others.is_empty() => {
                    check.cause = Some(Cause::H6);
                    check.detail = format!(
                        "{id} does not have it ({}), while {} {} (asked again for {} ms: not a propagation delay)",
                        check.detail,
                        others.join(", "),
                        if others.len() == 1 { "has it" } else { "have it" },
                        waited.as_millis()
                    );
                }
                (Status::Fail, Some(Cause::H1)) => {
                    check.status = Status::Warn;
                    check.detail = format!(
                        "{} ({id} is a live member of the fleet but cannot be reached from here; the CA may land on it)",
                        check.detail
                    );
                }
                _ => {}
            }
            check
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::probe::CheckKind;

    fn member(id: &str, addresses: &[&str], port: Option<u16>) -> FleetMember {
        FleetMember {
            node_id: id.into(),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            http_port: port,
            dns: Vec::new(),
        }
    }

    #[test]
    fn every_public_address_of_every_member_is_a_target() {
        let fleet = Fleet {
            node_id: "a".into(),
            members: vec![
                member("a", &["192.0.2.1", "2001:db8::1"], Some(80)),
                member("b", &["192.0.2.2"], None),
                member("c", &[], Some(80)),
            ],
        };
        assert!(fleet.has_others());
        let (targets, unaddressed) = fleet.targets(8080);
        let shown: Vec<String> = targets
            .iter()
            .map(|(m, addr)| target(&m.node_id, *addr))
            .collect();
        assert_eq!(
            shown,
            [
                "a at 192.0.2.1:80",
                "a at [2001:db8::1]:80",
                "b at 192.0.2.2:8080"
            ]
        );
        assert_eq!(unaddressed, ["c"]);
        let alone = Fleet {
            node_id: "a".into(),
            members: vec![member("a", &["192.0.2.1"], Some(80))],
        };
        assert!(!alone.has_others());
    }

    fn judged(id: &'static str, status: Status, cause: Option<Cause>) -> (&'static str, Check) {
        let check = Check::new(CheckKind::FleetToken, id, status, cause, "seen");
        (id, check)
    }

    #[test]
    fn a_member_missing_what_the_others_answer_is_h6() {
        let checks = blame(
            vec![
                judged("a", Status::Pass, None),
                judged("b", Status::Pass, None),
                judged("c", Status::Fail, Some(Cause::H2)),
                judged("d", Status::Fail, Some(Cause::H7)),
                judged("e", Status::Fail, Some(Cause::H1)),
                judged("f", Status::Fail, Some(Cause::H3)),
            ],
            PROPAGATION_WAIT,
        );
        let causes: Vec<_> = checks.iter().map(|c| (c.status, c.cause)).collect();
        assert_eq!(
            causes,
            [
                (Status::Pass, None),
                (Status::Pass, None),
                (Status::Fail, Some(Cause::H6)),
                (Status::Fail, Some(Cause::H6)),
                (Status::Warn, Some(Cause::H1)),
                (Status::Fail, Some(Cause::H3)),
            ]
        );
        assert!(
            checks[2]
                .detail
                == "c does not have it (seen), while a, b have it (asked again for 500 ms: not a propagation delay)",
            "{}",
            checks[2].detail
        );
        assert!(Cause::H6.remedy().contains("dcv_fleet_connected"));
    }

    #[test]
    fn nobody_having_it_is_not_the_fleets_fault() {
        let checks = blame(
            vec![
                judged("a", Status::Fail, Some(Cause::H2)),
                judged("b", Status::Fail, Some(Cause::H2)),
            ],
            PROPAGATION_WAIT,
        );
        assert!(checks.iter().all(|c| c.cause == Some(Cause::H2)));
        // A member answering on one of its addresses only is not blamed on itself.
        let checks = blame(
            vec![
                judged("a", Status::Pass, None),
                judged("a", Status::Fail, Some(Cause::H2)),
            ],
            PROPAGATION_WAIT,
        );
        assert_eq!(checks[1].cause, Some(Cause::H2));
    }
}
