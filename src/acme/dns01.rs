//! DNS-01 (RFC 8555 §8.4) as this node answers it: the TXT value of a key authorization, and
//! the local self-check (`acme.self_check = "local"`), which asks the node's own DNS listener —
//! and in a fleet every member's — for the value at `<name>.<zone>` in each validation zone.
//!
//! The self-probe's gate (`probe::gate_dns01`) is the default and sees much more (the
//! customer's CNAME, the delegation, the CA's resolver); this check only proves that the
//! listeners serve what was published.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::StreamExt;
use hickory_net::client::Client;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::DnsHandle;
use hickory_resolver::proto::op::{DnsRequestOptions, Query};
use hickory_resolver::proto::rr::{Name, RData, RecordType};

use crate::config::{reachable, DnsConfig, DnsName, ValidationZone};
use crate::state::FleetHandle;

/// How long one query to a listener may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The TXT value for `key_authorization`: base64url, unpadded, of its SHA-256 (RFC 8555 §8.4).
pub fn txt_value(key_authorization: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The node's DNS listeners and zones, for the local self-check.
#[derive(Debug, Clone)]
pub(super) struct LocalDns {
    listen: Vec<SocketAddr>,
    zones: Vec<ValidationZone>,
}

impl LocalDns {
    pub(super) fn new(config: &DnsConfig) -> Self {
        Self {
            listen: config.listen.iter().map(reachable).collect(),
            zones: config.zones.clone(),
        }
    }

    /// `Ok` when this node's first listener answers the value at `<name>.<zone>` in every zone.
    pub(super) async fn check_own(
        &self,
        name: &DnsName,
        key_authorization: &str,
    ) -> Result<(), String> {
        let addr = *self
            .listen
            .first()
            .ok_or("no DNS listener is configured (dns.listen)")?;
        self.check_at(addr, name, key_authorization).await
    }

    async fn check_at(
        &self,
        addr: SocketAddr,
        name: &DnsName,
        key_authorization: &str,
    ) -> Result<(), String> {
        let value = txt_value(key_authorization);
        for zone in &self.zones {
            let at = zone.delegated(&name.base()).ok_or_else(|| {
                format!(
                    "{name} is too long to be delegated into {} (D13)",
                    zone.name
                )
            })?;
            let found = ask_txt(addr, &at).await?;
            if !found.contains(&value) {
                return Err(format!(
                    "the DNS listener at {addr} does not answer the TXT value at {at} (D9)"
                ));
            }
        }
        Ok(())
    }

    /// Waits (at most until `deadline`) until every other live member's DNS listener answers
    /// the value; never fails: a member out of reach from here may be reached by the CA's
    /// resolver, and is named in the log (D15).
    pub(super) async fn barrier(
        &self,
        fleet: &FleetHandle,
        name: &DnsName,
        key_authorization: &str,
        deadline: Instant,
    ) {
        for member in fleet.members() {
            if member.node_id == fleet.node_id() {
                continue;
            }
            for &addr in &member.dns {
                loop {
                    match self.check_at(addr, name, key_authorization).await {
                        Ok(()) => break,
                        Err(e) if Instant::now() >= deadline => {
                            tracing::warn!(member = %member.node_id, %addr, error = %e, "fleet member's DNS listener does not answer the challenge yet; telling the CA anyway (D15)");
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
        }
    }
}

/// The TXT values at `name` on `server`, asked without recursion over UDP.
async fn ask_txt(server: SocketAddr, name: &str) -> Result<Vec<String>, String> {
    let fqdn = Name::from_ascii(format!("{name}.")).map_err(|e| format!("{name}: {e}"))?;
    let mut options = DnsRequestOptions::default();
    options.recursion_desired = false;
    let udp = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(QUERY_TIMEOUT))
        .build();
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(udp);
    let task = tokio::spawn(background);
    let response = tokio::time::timeout(
        QUERY_TIMEOUT,
        client
            .lookup(Query::query(fqdn, RecordType::TXT), options)
            .next(),
    )
    .await;
    task.abort();
    let message = match response {
        Err(_) => return Err(format!("the DNS listener at {server} did not answer (D15)")),
        Ok(None) => return Err(format!("no answer from the DNS listener at {server} (D15)")),
        Ok(Some(Err(e))) => return Err(format!("the DNS listener at {server}: {e} (D15)")),
        Ok(Some(Ok(response))) => response.into_message(),
    };
    Ok(message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_txt_value_is_the_rfc_8555_digest() {
        // RFC 8555 §8.4: base64url(SHA-256("token.thumbprint")), 43 characters, no padding.
        let value = txt_value("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEt62jcerQ");
        assert_eq!(value.len(), 43);
        assert!(!value.contains('='));
        assert_eq!(txt_value("a.b"), txt_value("a.b"));
        assert_ne!(txt_value("a.b"), txt_value("a.c"));
    }
}
