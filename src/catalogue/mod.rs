//! The catalogue of validation failures (`docs/validation-failures.md`): every cause id with its
//! cause in one sentence and its remedy, so that `check`, the metrics, the ACME order status and
//! the CA-error mapping all say the same thing about the same cause.
//!
//! A leaf: nothing here imports another module of the crate, so the probe, the ACME code and
//! the admin output can all use it without depending on each other. [`acme_problem`] maps what
//! a CA says (an ACME problem document's type and detail, RFC 8555 §6.7) to a cause.

mod acme_problem;

pub use acme_problem::{diagnose as diagnose_acme_problem, ACME_ERROR_PREFIX};
mod uncatalogued;

pub use uncatalogued::{remedy_without_cause, FLEET_UNAVAILABLE};

use std::fmt;
use std::str::FromStr;

/// A cause of the catalogue. The id (`D1`, `H4`…) is stable: it is a metric label value and a
/// field of the `--json` document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    D1,
    D2,
    D3,
    D4,
    D5,
    D6,
    D7,
    D8,
    D9,
    D10,
    D11,
    D12,
    D13,
    D14,
    D15,
    D16,
    H1,
    H2,
    H3,
    H4,
    H5,
    H6,
    H7,
    H8,
    H9,
    H10,
    P1,
    P2,
    P3,
    P4,
    P5,
    P6,
    P7,
    P8,
    P9,
    P10,
    P11,
    C1,
    C2,
    C3,
    C4,
    C5,
    C6,
}

impl Cause {
    /// Every cause, in catalogue order.
    pub const ALL: [Cause; 43] = [
        Cause::D1,
        Cause::D2,
        Cause::D3,
        Cause::D4,
        Cause::D5,
        Cause::D6,
        Cause::D7,
        Cause::D8,
        Cause::D9,
        Cause::D10,
        Cause::D11,
        Cause::D12,
        Cause::D13,
        Cause::D14,
        Cause::D15,
        Cause::D16,
        Cause::H1,
        Cause::H2,
        Cause::H3,
        Cause::H4,
        Cause::H5,
        Cause::H6,
        Cause::H7,
        Cause::H8,
        Cause::H9,
        Cause::H10,
        Cause::P1,
        Cause::P2,
        Cause::P3,
        Cause::P4,
        Cause::P5,
        Cause::P6,
        Cause::P7,
        Cause::P8,
        Cause::P9,
        Cause::P10,
        Cause::P11,
        Cause::C1,
        Cause::C2,
        Cause::C3,
        Cause::C4,
        Cause::C5,
        Cause::C6,
    ];

    /// The catalogue id, e.g. `"D8"`.
    pub fn id(self) -> &'static str {
        self.text().0
    }

    /// The cause, in one sentence.
    pub fn summary(self) -> &'static str {
        self.text().1
    }

    /// What to do about it.
    pub fn remedy(self) -> &'static str {
        self.text().2
    }

    /// The first catalogue id that `text` names the way the node's own sentences do: `ID (…)`
    /// after a space or at the start (the self-probe gate: `"…: H1 (port 80 …) at …"`), or `(ID)`
    /// (the local self-check: `"… on 127.0.0.1:80 (H7)"`). Case-sensitive and bounded, so a
    /// name like `h1.example.com`, `IPv4` or a token that happens to contain `D1` never match.
    /// This is how a self-check failure, which is a sentence (`acme::SelfCheck`),
    /// gets its cause.
    pub fn named_in(text: &str) -> Option<Cause> {
        Cause::all_named_in(text).first().map(|(_, c)| *c)
    }

    /// Every catalogue id `text` names (as [`Cause::named_in`] reads them), in the order they
    /// appear, each once, with its byte offset in `text`.
    pub fn all_named_in(text: &str) -> Vec<(usize, Cause)> {
        let mut found: Vec<(usize, Cause)> = Vec::new();
        for cause in Cause::ALL {
            let id = cause.id();
            let first = text.match_indices(id).map(|(at, _)| at).find(|&at| {
                let before = text[..at].chars().next_back();
                let after = &text[at + id.len()..];
                match before {
                    Some('(') => after.starts_with(')'),
                    None | Some(' ') => after.starts_with(" ("),
                    Some(_) => false,
                }
            });
            if let Some(at) = first {
                found.push((at, cause));
            }
        }
        found.sort();
        found
    }

    fn text(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Cause::D1 => (
                "D1",
                "the name does not exist in DNS (NXDOMAIN): a typo, or the domain has no name servers at the registrar",
                "create the A/AAAA or CNAME record at the DNS provider; check the spelling and that the registrar delegates the domain to that provider (NS records)",
            ),
            Cause::D2 => (
                "D2",
                "a DNS server fails (SERVFAIL or REFUSED) when asked about the name",
                "fix the zone at the DNS provider (broken DNSSEC, lame delegation, a server refusing some resolvers); `dig +trace NAME` shows which server fails",
            ),
            Cause::D3 => (
                "D3",
                "a DNS server fails on CAA queries, which the CA must treat as a refusal (RFC 8659)",
                "have the DNS provider answer CAA queries at every level of the name (an empty answer is fine), or move the zone to a provider that does",
            ),
            Cause::D4 => (
                "D4",
                "DNS queries time out or the DNS server cannot be reached",
                "check that the authoritative servers answer from everywhere (firewall, rate limits, anycast) and that the resolvers are reachable",
            ),
            Cause::D5 => (
                "D5",
                "the name has no A or AAAA record, or its CNAME points to a name without addresses",
                "add an A/AAAA record for the name, or fix the CNAME target",
            ),
            Cause::D6 => (
                "D6",
                "the name resolves, but not to this node or the CDN's CNAME target",
                "point the DNS at the CDN: a CNAME to probe.cname_target or A/AAAA records with probe.public_addresses only; the old records live on for their TTL",
            ),
            Cause::D7 => (
                "D7",
                "resolvers or authoritative servers give different answers (split-horizon or geo DNS): the CA may see another view",
                "set every view of the DNS (default and foreign lines included) to the CDN",
            ),
            Cause::D8 => (
                "D8",
                "a CAA record forbids the CA from issuing for the name",
                "add `0 issue \"<CA identity>\"` (with matching accounturi/validationmethods, RFC 8657) to the CAA set that applies (at the name, a parent, or the CNAME target), or remove the restricting record",
            ),
            Cause::D9 => (
                "D9",
                "the TXT record for DNS validation is not published",
                "create the TXT record with the value the CA gave at the exact name, and wait until every authoritative server has it",
            ),
            Cause::D10 => (
                "D10",
                "the TXT record has a wrong or stale value",
                "set the TXT value to exactly what the CA gave and delete old values; resolvers keep an old value until its TTL runs out",
            ),
            Cause::D11 => (
                "D11",
                "the authoritative servers disagree: a change has not reached all of them",
                "wait until the provider has synced every server (or fix its zone transfers) before asking the CA to validate",
            ),
            Cause::D12 => (
                "D12",
                "DNSSEC validation fails for the name: a signature expired or broken, or a DS record at the parent without a matching key (CAs validate DNSSEC)",
                "re-sign the zone or fix its keys at the DNS provider, or remove the DS record at the registrar to turn DNSSEC off; `delv NAME` or dnsviz.net shows where the chain breaks",
            ),
            Cause::D13 => (
                "D13",
                "the `_acme-challenge` CNAME that delegates DNS validation to the CDN's validation zone is missing or points elsewhere (or TXT records sit at `_acme-challenge` itself)",
                "publish once, at the name's DNS provider, `_acme-challenge.<name>. CNAME <name>.<validation zone>.` (a wildcard `*.<name>` uses the same record) and delete any TXT record at `_acme-challenge.<name>`: a CNAME cannot share its name with other records (RFC 1034 §3.6.2)",
            ),
            Cause::D14 => (
                "D14",
                "the validation zone is not delegated to the fleet: its parent has no NS records for it, its name servers have no addresses, or they do not answer for the zone (lame delegation)",
                "at the parent zone, publish the zone's NS records (dns.zone.name_servers) and the addresses of the nodes' DNS listeners (glue for names inside the zone); every listed server must answer SOA for the zone with the AA flag (`dig +norec SOA <zone> @<server>`)",
            ),
            Cause::D15 => (
                "D15",
                "a fleet node's DNS listener does not answer for the validation zone (timeout, refused, or not authoritative)",
                "on the named node: [dns] listen on the address the NS and glue records give, port 53 open over UDP and TCP (firewall, security group), the node running (dcv_dns_queries_total rising); the zone's other name servers answer for it meanwhile",
            ),
            Cause::D16 => (
                "D16",
                "the `_validation-persist` record (dns-persist-01, draft-ietf-acme-dns-persist) would not be accepted: another issuer, no or another accounturi, no policy=wildcard for a wildcard, or persistUntil in the past",
                "publish `_validation-persist.<name>. TXT \"<CA issuer domain>; accounturi=<ACME account URL>\"`, with `; policy=wildcard` to cover `*.<name>` and subdomains and `; persistUntil=<Unix time>` to make it expire; the issuer domain is the CA's CAA identity (probe.ca_identities), the account the node's (probe.account_uri)",
            ),
            Cause::H1 => (
                "H1",
                "port 80 or 443 cannot be reached: closed, filtered by a firewall or security group, or nothing listening",
                "open ports 80 and 443 to the internet on every address the name resolves to (the CA validates from unannounced addresses; see P8) and check dcv-proxy listens there",
            ),
            Cause::H2 => (
                "H2",
                "the token or validation file is not found (404) at the URL the CA fetches",
                "make sure requests for the name reach dcv-proxy (DNS, port forwarding, no other server in front) and the token or file is registered with it",
            ),
            Cause::H3 => (
                "H3",
                "the server refuses or fails to serve the validation file (403, 5xx)",
                "let dcv-proxy answer /.well-known/ itself (from memory, no file permissions) and remove access rules in front of it",
            ),
            Cause::H4 => (
                "H4",
                "the validation request is redirected",
                "the CA follows at most 10 redirects, only to http/https on ports 80 and 443: remove the redirect for /.well-known/ or keep it within those rules",
            ),
            Cause::H5 => (
                "H5",
                "the file is served over HTTP but not over HTTPS (or the other way round)",
                "serve /.well-known/ from the same store on both (dcv-proxy does on all its listeners)",
            ),
            Cause::H6 => (
                "H6",
                "a node of the fleet (or CDN) does not have the token or validation file that the others answer: state not shared, or not synced to that node",
                "in a dcv-proxy fleet, look at the named node: its connection to etcd (dcv_fleet_connected, `fleet` in its GET /v1/status) and its log (`fleet: etcd unavailable`); a node that cannot follow etcd leaves the member list after fleet.lease_ttl. Behind another CDN: share the validation store with every node",
            ),
            Cause::H7 => (
                "H7",
                "the content served is not the expected key authorization or file (stale or wrong content)",
                "delete old files and tokens, register the exact value, and check that no other server answers for the name",
            ),
            Cause::H8 => (
                "H8",
                "the file is served on the apex or on www but not on both, and the CA checks both",
                "point both names at the node and register the file for the apex (dcv-proxy serves it on both)",
            ),
            Cause::H9 => (
                "H9",
                "the validation file is older than the CA accepts",
                "ask the CA for a new validation value and replace the file",
            ),
            Cause::H10 => (
                "H10",
                "HTTPS answers with another site's certificate (wrong SNI mapping or wrong node)",
                "upload or issue a certificate covering the name on this node, and check the name's DNS points at it",
            ),
            Cause::P1 => (
                "P1",
                "the name does not end in a public suffix, or is a public suffix itself",
                "order for a registrable name under a suffix of the public suffix list (publicsuffix.org)",
            ),
            Cause::P2 => (
                "P2",
                "the CA's policy forbids issuing for this name",
                "use another CA or another name; ask the CA which policy applies",
            ),
            Cause::P3 => (
                "P3",
                "a third-party list (Safe Browsing) flags the name as unsafe",
                "clean the site, request a review from Google Safe Browsing and the other lists, then order again",
            ),
            Cause::P4 => (
                "P4",
                "the CA's rate limit is reached",
                "wait until the time the CA gives (Retry-After) without retrying in a loop; put names together in fewer orders",
            ),
            Cause::P5 => (
                "P5",
                "the name contains words that CA anti-phishing filters flag",
                "expect manual review or refusal from some CAs; prefer another name, or a CA without such a filter",
            ),
            Cause::P6 => (
                "P6",
                "the name cannot be a certificate name: over 64 characters for a CN, or characters other than letters, digits and hyphens",
                "use letters, digits and hyphens only (punycode, xn--, for internationalised names); a name over 64 characters can only be a SAN",
            ),
            Cause::P7 => (
                "P7",
                "the CSR (its key) was already used in an earlier order",
                "generate a new key for every order",
            ),
            Cause::P8 => (
                "P8",
                "the CA's validation addresses are blocked (closed network)",
                "allow the CA's published validation ranges on ports 80 and 443, or validate over DNS",
            ),
            Cause::P9 => (
                "P9",
                "status checks are polled too often",
                "poll with backoff and honour Retry-After",
            ),
            Cause::P10 => (
                "P10",
                "the CA has paused orders for the name after too many failed validations in a row",
                "fix the cause of the failed validations (the earlier orders' causes), then unpause the name at the address in the CA's message (Let's Encrypt: its self-service portal), then `dcv-proxy certs renew <id>`; dcv-proxy places no order for it until then",
            ),
            Cause::P11 => (
                "P11",
                "the CA has been unreachable or failing (5xx, timeouts) for longer than acme.fallback_after",
                "the next CA of [[acme.ca]] issues meanwhile and the first is asked again at the next renewal; check the CA's status page and the node's outbound access (DNS, firewall, proxy, acme.ca_bundle)",
            ),
            Cause::C1 => (
                "C1",
                "the certificate file does not parse (not PEM, wrong BEGIN/END lines, extra spaces)",
                "upload the PEM exactly as the CA issued it",
            ),
            Cause::C2 => (
                "C2",
                "the chain is incomplete (intermediate missing)",
                "upload the full chain: the leaf, then the intermediates",
            ),
            Cause::C3 => (
                "C3",
                "the private key does not match the certificate",
                "upload the key the certificate's CSR was made with",
            ),
            Cause::C4 => (
                "C4",
                "the certificate has expired",
                "renew it, and check the renewal job and its alerts",
            ),
            Cause::C5 => (
                "C5",
                "HTTPS is unreachable: port 443 closed or nothing listening",
                "open port 443 and check dcv-proxy listens on it",
            ),
            Cause::C6 => (
                "C6",
                "no certificate on the node covers the name: the self-signed default is presented",
                "issue or upload a certificate with the name in its subjectAltName",
            ),
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Cause {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cause::ALL
            .into_iter()
            .find(|c| c.id().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("{s:?} is not a catalogue id"))
    }
}

impl serde::Serialize for Cause {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

/// Read back by id, as a client of the admin API reads a `cause`.
impl<'de> serde::Deserialize<'de> for Cause {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        id.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for cause in Cause::ALL {
            assert!(seen.insert(cause.id()), "duplicate {cause}");
            assert_eq!(cause.id().parse::<Cause>().unwrap(), cause);
            assert!(!cause.summary().is_empty() && !cause.remedy().is_empty());
        }
        assert!("Z1".parse::<Cause>().is_err());
    }

    #[test]
    fn new_dns_ids_are_not_read_as_d1() {
        assert_eq!(Cause::named_in("x: D13 (CNAME) at y"), Some(Cause::D13));
        assert_eq!(
            Cause::named_in("listener at 127.0.0.1:53 did not answer (D15)"),
            Some(Cause::D15)
        );
        assert_eq!("d16".parse::<Cause>().unwrap(), Cause::D16);
    }

    #[test]
    fn ids_are_found_as_words_only() {
        let gate = "self-check of a.test failed 3 time(s) in 6.0s: H1 (port 80 or 443 cannot be reached) at 127.0.0.99:80";
        assert_eq!(Cause::named_in(gate), Some(Cause::H1));
        assert_eq!(
            Cause::named_in("http://a.test/… answered other content on 127.0.0.1:80 (H7)"),
            Some(Cause::H7)
        );
        assert_eq!(
            Cause::named_in("H10 (another site's certificate)"),
            Some(Cause::H10)
        );
        assert_eq!(
            Cause::named_in("cannot connect to h1.example.test over IPv4"),
            None
        );
        assert_eq!(Cause::named_in("token a_D1_b answered 404"), None);
        assert_eq!(
            Cause::named_in("self-check: D8 (CAA) at x; H1 (ports) at y"),
            Some(Cause::D8)
        );
        let all = Cause::all_named_in("failed: H1 (ports) at y; D8 (CAA) at x; H1 (ports) at z");
        assert_eq!(
            all.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
            vec![Cause::H1, Cause::D8]
        );
        assert_eq!(all[0].0, 8);
        assert_eq!(Cause::named_in(""), None);
    }
}
