//! Where each kind of shared state lives under the fleet's etcd prefix. One place, so that the
//! writers, the follower and the docs agree.
//!
//! ```text
//! <prefix>/tokens/<token>          ACME HTTP-01 answer (JSON), under a lease = its lifetime
//! <prefix>/pki/<host>/<file>       CA validation file (JSON, body in base64), host without www.
//! <prefix>/certs/<id>              chain (PEM) and its private key, sealed with the fleet key
//! <prefix>/alpn/<name>             TLS-ALPN-01 key authorization, under a lease
//! <prefix>/dns01/<name>/<token>    DNS-01 TXT value, under a lease
//! <prefix>/secrets/<name>          the ACME account, sealed
//! <prefix>/members/<node id>       a live node and its public addresses, under its lease
//! <prefix>/locks/<name>/…          etcd locks (one ACME order at a time)
//! <prefix>/budget/<n>              a new order counted against the account's budget (n <
//!                                  acme.max_new_orders), under a lease = acme.new_orders_window
//! ```

use crate::config::{CertId, DnsName};
use crate::state::apex_of;
use crate::state::{is_file_name, is_token};

/// The key names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    prefix: String,
}

/// What a key under the prefix is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Token(String),
    Pki {
        host: String,
        file: String,
    },
    Cert(CertId),
    Alpn(String),
    /// A DNS-01 TXT value of `name` (without `_acme-challenge.`) for one challenge token.
    Dns01 {
        name: String,
        token: String,
    },
    Secret(String),
    Member(String),
    /// Locks, budget slots and anything this version does not know: not applied.
    Other,
}

impl Entry {
    /// Label of `dcv_fleet_events_total{kind}`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Entry::Token(_) => "token",
            Entry::Pki { .. } => "pki",
            Entry::Cert(_) => "certificate",
            Entry::Alpn(_) => "tls-alpn",
            Entry::Dns01 { .. } => "dns-01",
            Entry::Secret(_) => "account",
            Entry::Member(_) => "member",
            Entry::Other => "other",
        }
    }
}

impl Layout {
    /// `prefix` starts with `/` and has no trailing `/` (checked by the configuration).
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// Everything shared, with the trailing `/` (so `/a` never matches `/ab/…`).
    pub(crate) fn root(&self) -> String {
        format!("{}/", self.prefix)
    }
    pub(crate) fn token(&self, token: &str) -> String {
        format!("{}/tokens/{token}", self.prefix)
    }
    pub(crate) fn pki(&self, host: &str, file: &str) -> String {
        format!("{}/pki/{}/{file}", self.prefix, apex_of(host))
    }
    pub(crate) fn cert(&self, id: &CertId) -> String {
        format!("{}/certs/{id}", self.prefix)
    }
    pub(crate) fn alpn(&self, name: &str) -> String {
        format!("{}/alpn/{name}", self.prefix)
    }
    pub(crate) fn dns01(&self, name: &str, token: &str) -> String {
        format!("{}/dns01/{name}/{token}", self.prefix)
    }
    pub(crate) fn secret(&self, name: &str) -> String {
        format!("{}/secrets/{name}", self.prefix)
    }
    pub(crate) fn member(&self, node_id: &str) -> String {
        format!("{}/members/{node_id}", self.prefix)
    }
    /// The slots of the account's budget of new orders, with the trailing `/`.
    pub(crate) fn budget(&self) -> String {
        format!("{}/budget/", self.prefix)
    }
    pub(crate) fn budget_slot(&self, n: usize) -> String {
        format!("{}/budget/{n}", self.prefix)
    }
    pub(crate) fn lock(&self, name: &str) -> String {
        format!("{}/locks/{name}", self.prefix)
    }

    /// What `key` is; names are checked like the admin API checks them, so a value planted
    /// under a strange key can never become a file name.
    pub(crate) fn parse(&self, key: &str) -> Entry {
        let Some(rest) = key
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return Entry::Other;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["tokens", t] if is_token(t) => Entry::Token((*t).to_owned()),
            ["pki", host, file] if host.parse::<DnsName>().is_ok() && is_file_name(file) => {
                Entry::Pki {
                    host: (*host).to_owned(),
                    file: (*file).to_owned(),
                }
            }
            ["certs", id] => CertId::parse(id).map_or(Entry::Other, Entry::Cert),
            ["alpn", name] if name.parse::<DnsName>().is_ok() => Entry::Alpn((*name).to_owned()),
            ["dns01", name, token] if name.parse::<DnsName>().is_ok() && is_token(token) => {
                Entry::Dns01 {
                    name: (*name).to_owned(),
                    token: (*token).to_owned(),
                }
            }
            ["secrets", name] if is_file_name(name) => Entry::Secret((*name).to_owned()),
            ["members", id] if !id.is_empty() => Entry::Member((*id).to_owned()),
            _ => Entry::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_round_trip_and_strange_keys_are_other() {
        let l = Layout::new("/dcv");
        assert_eq!(l.parse(&l.token("abc_-1")), Entry::Token("abc_-1".into()));
        assert_eq!(
            l.parse(&l.pki("www.a.test", "fileauth.txt")),
            Entry::Pki {
                host: "a.test".into(),
                file: "fileauth.txt".into()
            }
        );
        let id = CertId::parse("a.test").unwrap();
        assert_eq!(l.parse(&l.cert(&id)), Entry::Cert(id));
        assert_eq!(l.parse(&l.member("n1")), Entry::Member("n1".into()));
        assert_eq!(
            l.parse(&l.dns01("shop.a.test", "tok_1")),
            Entry::Dns01 {
                name: "shop.a.test".into(),
                token: "tok_1".into()
            }
        );
        assert_eq!(
            l.parse("/dcv/dns01/_acme-challenge.a.test/tok"),
            Entry::Other
        );
        assert_eq!(l.parse("/dcv/pki/a.test/../../etc"), Entry::Other);
        assert_eq!(l.parse("/dcv/tokens/a.b"), Entry::Other);
        assert_eq!(l.parse("/dcvx/tokens/abc"), Entry::Other);
        assert_eq!(l.parse(&format!("{}/x", l.lock("order/a"))), Entry::Other);
    }
}
