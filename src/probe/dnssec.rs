//! DNSSEC as the CA validates it: since 2026-03-15 CAs must validate DNSSEC on the lookups of
//! domain validation and CAA (CA/Browser Forum ballot SC-085), and a bogus answer — a broken or
//! expired signature, a DS at the parent without a matching key — fails validation where an
//! unsigned zone passes. The CA's validating resolver shows such a name only as SERVFAIL (D2);
//! this check says why (D12).
//!
//! The answer is fetched through the first configured resolver with checking disabled (CD, RFC
//! 4035 §3.2.2), so that a validating resolver passes on what it would refuse, and validated
//! here by hickory's DNSSEC validator from the root's trust anchor (IANA's, or the file in
//! `probe.trust_anchor`). Over TCP: DNSKEY answers are often larger than one UDP message.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hickory_net::client::Client;
use hickory_net::dnssec::DnssecDnsHandle;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::xfer::DnsHandle;
use hickory_resolver::proto::dnssec::rdata::DNSSECRData;
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::op::{DnsRequest, DnsRequestOptions, Query};
use hickory_resolver::proto::rr::{Name, RData, RecordType};

use super::causes::Cause;
use super::dns::Dns;
use super::report::{Check, CheckKind};

/// Sends every request with the CD bit set.
#[derive(Clone)]
struct CheckingDisabled<H>(H);

impl<H: DnsHandle> DnsHandle for CheckingDisabled<H> {
    type Response = H::Response;
    type Runtime = H::Runtime;

    fn send(&self, mut request: DnsRequest) -> Self::Response {
        request.metadata.checking_disabled = true;
        self.0.send(request)
    }
}

/// The DNSSEC check of the `rtype` records of `name` (A for HTTP-01 and TLS-ALPN-01: the first
/// lookup the CA makes; TXT at `_acme-challenge` for DNS-01) through the primary resolver,
/// validated from `anchors`.
pub(super) async fn check(
    dns: &Dns,
    name: &str,
    rtype: RecordType,
    anchors: &Arc<TrustAnchors>,
) -> Check {
    let kind = CheckKind::DnsDnssec;
    let primary = dns.primary();
    let target = primary.label.as_str();
    let Some(addr) = primary.addr() else {
        return Check::skip(kind, target, "the resolver has no address to ask");
    };
    let Ok(fqdn) = Name::from_ascii(format!("{name}.")) else {
        return Check::skip(kind, target, "not a DNS name");
    };
    let timeout = dns.timeout();
    let (connect, handle) =
        TcpClientStream::new(addr, None, Some(timeout), TokioRuntimeProvider::default());
    let tcp = match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Check::skip(kind, target, format!("no TCP to the resolver: {e}")),
        Err(_) => return Check::skip(kind, target, "no TCP to the resolver: timeout"),
    };
    let (client, background) = Client::<TokioRuntimeProvider>::new(tcp, handle);
    let task = tokio::spawn(background);
    let client = CheckingDisabled(client);
    let mut options = DnsRequestOptions::default();
    options.recursion_desired = true;
    options.use_edns = true;
    options.edns_set_dnssec_ok = true;
    // A resolver that does not serve the root keys of the trust anchor (a private or test DNS
    // tree) cannot be validated against it: nothing to conclude, rather than "bogus".
    let root = tokio::time::timeout(
        timeout,
        client
            .lookup(Query::query(Name::root(), RecordType::DNSKEY), options)
            .next(),
    )
    .await;
    let connected = matches!(&root, Ok(Some(Ok(response))) if response.answers.iter().any(|r| {
        matches!(&r.data, RData::DNSSEC(DNSSECRData::DNSKEY(key)) if anchors.contains(key.public_key()))
    }));
    if !connected {
        task.abort();
        return Check::skip(
            kind,
            target,
            "not validated: the resolver serves no root key of the trust anchor (a private DNS \
             tree? set probe.trust_anchor to its root's DNSKEY)",
        );
    }
    let secure = DnssecDnsHandle::with_trust_anchor(client, anchors.clone());
    // Validation asks for DNSKEY and DS up to the root: a few round trips.
    let deadline = timeout.saturating_mul(4).max(Duration::from_secs(1));
    let answer = tokio::time::timeout(
        deadline,
        secure.lookup(Query::query(fqdn, rtype), options).next(),
    )
    .await;
    task.abort();
    match answer {
        Err(_) => Check::skip(kind, target, "validation did not finish in time"),
        Ok(None) => Check::skip(kind, target, "no answer"),
        Ok(Some(Ok(response))) => {
            let proofs: Vec<Proof> = response
                .answers
                .iter()
                .filter(|r| r.record_type() == rtype || r.record_type() == RecordType::CNAME)
                .map(|r| r.proof)
                .collect();
            judge(kind, target, name, rtype, &proofs)
        }
        Ok(Some(Err(e))) => {
            let text = e.to_string();
            if is_bogus(&text) {
                Check::fail(
                    kind,
                    target,
                    Cause::D12,
                    format!("DNSSEC validation of {name} fails: {text}"),
                )
            } else {
                // NXDOMAIN, SERVFAIL of another kind, no A: the address checks report those.
                Check::skip(kind, target, format!("no answer to validate ({text})"))
            }
        }
    }
}

/// The verdict on the proofs of the answer's records.
fn judge(kind: CheckKind, target: &str, name: &str, rtype: RecordType, proofs: &[Proof]) -> Check {
    if proofs.is_empty() {
        return Check::skip(kind, target, format!("no {rtype} record to validate"));
    }
    if let Some(bad) = proofs.iter().find(|p| p.is_bogus() || p.is_indeterminate()) {
        return Check::fail(
            kind,
            target,
            Cause::D12,
            format!("DNSSEC validation of {name} fails: the answer is {bad}"),
        );
    }
    if proofs.iter().all(|p| p.is_secure()) {
        Check::pass(
            kind,
            target,
            format!("{name}: signed, and the signatures validate"),
        )
    } else {
        Check::pass(
            kind,
            target,
            format!("{name}: not signed (no DS at the parent), nothing to validate"),
        )
    }
}

/// hickory's errors that mean "validation failed" rather than "no answer".
fn is_bogus(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "bogus",
        "rrsig",
        "dnskey",
        "signature",
        "expired",
        "dnssec validation",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// The trust anchor of the DNSSEC check: the file's DNSKEY records (the format of
/// `dig DNSKEY . | grep 257`), or IANA's root keys.
pub(super) fn trust_anchors(file: Option<&std::path::Path>) -> Result<Arc<TrustAnchors>, String> {
    match file {
        None => Ok(Arc::new(TrustAnchors::default())),
        Some(path) => TrustAnchors::from_file(path)
            .map(Arc::new)
            .map_err(|e| format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::probe::Status;

    #[test]
    fn proofs_decide() {
        let (k, a) = (CheckKind::DnsDnssec, RecordType::A);
        let c = judge(k, "r", "a.test", a, &[Proof::Secure]);
        assert_eq!(c.status, Status::Pass);
        let c = judge(k, "r", "a.test", a, &[Proof::Insecure]);
        assert_eq!(c.status, Status::Pass);
        assert!(c.detail.contains("not signed"));
        let c = judge(k, "r", "a.test", a, &[Proof::Secure, Proof::Bogus]);
        assert_eq!((c.status, c.cause), (Status::Fail, Some(Cause::D12)));
        assert!(is_bogus("RRSIG has expired"));
        assert!(!is_bogus("no records found for a.test"));
    }
}
