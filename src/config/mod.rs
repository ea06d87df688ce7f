//! The configuration file: raw serde structs are read with their positions, then turned into a
//! typed [`Config`] that is valid by construction.
//!
//! Every refusal names the file, the line and column, and the key (`http.listen[1]`), because an
//! operator editing a config on a node far away gets one chance to read the error.

mod dns;
mod error;
mod probe;
mod raw;
mod types;
mod value;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use dns::{is_at_or_below, DnsConfig, ValidationZone};
pub use error::ConfigError;
pub use probe::{ExpectedTxt, ProbeConfig, RecordName, DEFAULT_SENSITIVE_WORDS};
pub use types::{
    ip_of_reverse_name, reverse_dns_name, CertId, CertName, DnsName, HostPattern, OriginAddr,
    DEFAULT_CERT_ID,
};

/// Where `dcv-proxy` looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "conf/dcv-proxy.toml";

/// A complete, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from (for messages).
    pub source: PathBuf,
    /// Directory holding certificates, the webroot, tokens and keys.
    pub state_dir: PathBuf,
    pub http: HttpConfig,
    pub https: HttpsConfig,
    pub challenge: ChallengeConfig,
    pub admin: AdminConfig,
    pub server: ServerConfig,
    /// The self-probe (`[probe]`).
    pub probe: ProbeConfig,
    pub sites: Sites,
    pub acme: AcmeConfig,
    /// Certificates this node obtains and renews over ACME.
    pub certificates: Vec<CertificateConfig>,
    /// Where state is shared with the other nodes of a fleet; `None`: this node alone, state in
    /// `state_dir` only (the embedded default).
    pub fleet: Option<FleetConfig>,
    /// The authoritative DNS listener for the validation zones (`[dns]`); `None`: no listener.
    pub dns: Option<DnsConfig>,
}

/// `[fleet] backend = "etcd"`: tokens, validation files, certificates, the ACME account and
/// membership shared through etcd (v3 API), so that every node answers what any node was given.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// etcd client URLs, `http://host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    /// Key prefix, starting with `/` and without a trailing `/` (e.g. `/dcv-proxy`).
    pub prefix: String,
    /// This node's name in the fleet (membership key, lock owner, logs).
    pub node_id: String,
    /// Addresses the world reaches this node on (published with its membership, for probes).
    pub public_addresses: Vec<std::net::IpAddr>,
    /// File with the 32-byte fleet key (base64) that seals private keys stored in etcd.
    pub key_file: PathBuf,
    /// TLS towards etcd (with `https://` endpoints).
    pub tls: Option<EtcdTls>,
    /// etcd user name and password.
    pub user: Option<(String, String)>,
    /// TTL of the leases behind membership and order locks: how long a dead node keeps them.
    pub lease_ttl: Duration,
    /// Longest wait for one etcd request (puts, gets) before it counts as failed.
    pub request_timeout: Duration,
}

/// TLS settings for the etcd connection.
#[derive(Debug, Clone, PartialEq)]
pub struct EtcdTls {
    /// PEM roots that sign the etcd servers' certificates.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for etcd's client-certificate authentication.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// How the node talks to its ACME CAs.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeConfig {
    /// The CAs in order of preference, at least one: the first issues unless it refuses, is
    /// rate-limited past the renewal margin or is out longer than [`Self::fallback_after`]; then
    /// the next one does (`[[acme.ca]]`, or the single CA of the `[acme]` keys).
    pub cas: Vec<CaConfig>,
    /// How long a CA may be unreachable or failing (5xx, timeouts) before the next CA is asked
    /// (bounded by half of what is left of the served certificate's life).
    pub fallback_after: Duration,
    /// The operator agreed to the CAs' terms of service (required to create an account).
    pub terms_agreed: bool,
    /// Key type of issued certificates; a fresh key is made for every order (P7).
    pub key_type: KeyType,
    /// Answer any well-formed token on a configured name with `token.<thumbprint>`
    /// (RFC 8555 §8.1), so nodes that never saw the order answer too.
    pub stateless_http01: bool,
    /// Waits after the 1st, 2nd, … consecutive failure; the last one repeats.
    pub retry_schedule: Vec<Duration>,
    /// New orders (without ARI `replaces`) allowed per [`Self::new_orders_window`] on the
    /// account; `0`: no limit. Let's Encrypt: 300 per 3 hours.
    pub max_new_orders: u32,
    pub new_orders_window: Duration,
    /// What checks a challenge before the CA is told it is ready.
    pub self_check: SelfCheckKind,
    /// How long the self-check may take before the CA is told a challenge is ready.
    pub self_check_timeout: Duration,
    /// How long to poll an order before giving it up.
    pub order_timeout: Duration,
    /// How often certificates are re-examined for renewal (ARI windows are fetched this often).
    pub check_interval: Duration,
    /// Longest wait for one answer from the CA.
    pub request_timeout: Duration,
}

/// One ACME CA.
#[derive(Debug, Clone, PartialEq)]
pub struct CaConfig {
    /// How status, logs and metrics (`ca` label) name it: `name`, else `letsencrypt`,
    /// `letsencrypt-staging`, `zerossl`, or the directory URL's host.
    pub name: String,
    /// Directory URL (RFC 8555 §7.1.1).
    pub directory: String,
    /// `mailto:` contacts for the account.
    pub contact: Vec<String>,
    /// External account binding (RFC 8555 §7.3.4), required by ZeroSSL, Google and others.
    pub eab: Option<ExternalAccount>,
    /// PEM bundle of roots to trust for the CA's API instead of the system store (private CAs).
    pub ca_bundle: Option<PathBuf>,
    /// Certificate profile to request from this CA when a `[[certificate]]` names none.
    pub profile: Option<String>,
}

/// The check run before the CA is told a challenge is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfCheckKind {
    /// The self-probe's gate: DNS, CAA, ports and the token as the CA sees them (HTTP-01), the
    /// node's own TLS listener (TLS-ALPN-01).
    Probe,
    /// Only the node's own listeners, over loopback.
    Local,
}

/// An EAB key id and HMAC key.
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalAccount {
    pub key_id: String,
    pub hmac_key: Vec<u8>,
}

impl std::fmt::Debug for ExternalAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalAccount")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Key algorithm of issued certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
}

/// How the CA validates a certificate's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeType {
    Http01,
    TlsAlpn01,
    /// RFC 8555 §8.4, answered by the fleet's own DNS listener in a validation zone (`[dns]`);
    /// the only type for wildcard names.
    Dns01,
}

impl ChallengeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeType::Http01 => "http-01",
            ChallengeType::TlsAlpn01 => "tls-alpn-01",
            ChallengeType::Dns01 => "dns-01",
        }
    }
}

/// A certificate to obtain and keep renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateConfig {
    /// File stem and admin API id; defaults to the first name.
    pub id: CertId,
    /// DNS names and IP addresses (RFC 8738), the first one the subject CN when it is a DNS
    /// name (an address never is: Let's Encrypt's IP certificates carry no CN).
    pub names: Vec<CertName>,
    pub challenge: ChallengeType,
    /// The certificate profile asked for on every order and renewal from the first CA (its
    /// own, else the CA's `profile`); `None`: the CA's default.
    pub profile: Option<String>,
    /// The `[[certificate]]`'s own `profile`, which wins over every CA's (see
    /// [`Self::profile_for`]).
    pub own_profile: Option<String>,
    /// Keep a backup certificate from another CA, valid and unserved, swapped in when the
    /// served one must be replaced early (`backup = true`).
    pub backup: bool,
}

impl CertificateConfig {
    /// The profile asked of `ca`: the certificate's own, else the CA's.
    pub fn profile_for(&self, ca: &CaConfig) -> Option<String> {
        self.own_profile.clone().or_else(|| ca.profile.clone())
    }
}

/// The plain-HTTP listeners (port 80 in production).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub listen: Vec<SocketAddr>,
    /// Redirect every non-challenge request to HTTPS.
    pub redirect_to_https: bool,
    /// Status of that redirect (301 or 308; 308 keeps the method).
    pub redirect_status: u16,
    /// HTTPS port to put in the redirect target (`None`: the default 443, omitted from the URL).
    pub redirect_port: Option<u16>,
}

/// The TLS listeners (port 443 in production).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpsConfig {
    pub listen: Vec<SocketAddr>,
    /// TLS 1.3 session tickets sent after each handshake (0: no resumption).
    pub tls13_tickets: usize,
}

/// What happens to challenge paths.
#[derive(Debug, Clone)]
pub struct ChallengeConfig {
    /// What a token that no store knows gets.
    pub unknown_token: UnknownToken,
}

/// Treatment of `/.well-known/acme-challenge/<token>` when the token is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownToken {
    /// Answer `404` at the edge: the origin never sees validation traffic.
    NotFound,
    /// Pass the request to the site's origin, for origins that still run their own ACME client.
    Origin,
}

/// The admin API listener.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// File holding the bearer token; created with a random token (mode 0600) when missing.
    pub token_file: PathBuf,
    /// Largest request body accepted (413 above it).
    pub max_body_bytes: usize,
    /// Names accepted in `Host` besides addresses, `localhost` and the host's name (DNS
    /// rebinding protection, `admin::input::admin_host`).
    pub hosts: Vec<DnsName>,
}

/// Process-wide serving settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Worker threads of the serving runtime.
    pub threads: usize,
    /// How long a graceful shutdown waits for in-flight requests.
    pub grace_period: Duration,
    /// Default log filter (`RUST_LOG` overrides it).
    pub log_level: String,
    /// How long a request head may take from its first byte to its last (HTTP/1), and how
    /// long an HTTP/2 connection may go without a request.
    pub head_timeout: Duration,
    /// Connect timeout towards origins.
    pub origin_connect_timeout: Duration,
    /// Read timeout towards origins.
    pub origin_read_timeout: Duration,
    /// Requests the fast path can serve are served by it (`proxy.fast_path`); off, every
    /// request is served by pingora's engine (after the same head limits).
    pub fast_path: bool,
}

/// The sites: which origin serves which host.
#[derive(Debug, Clone)]
pub struct Sites {
    pub default_origin: Option<Arc<OriginAddr>>,
    pub sites: Vec<Site>,
    exact: HashMap<String, usize>,
    wildcard: HashMap<String, usize>,
}

/// One site: names and the origin behind them.
#[derive(Debug, Clone)]
pub struct Site {
    pub names: Vec<HostPattern>,
    /// Shared so that a request can hold its origin without copying it.
    pub origin: Arc<OriginAddr>,
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw = raw::parse(path, text)?;
        raw::build(path, text, raw)
    }
}

impl Sites {
    pub(crate) fn new(default_origin: Option<Arc<OriginAddr>>, sites: Vec<Site>) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (index, site) in sites.iter().enumerate() {
            for name in &site.names {
                match name {
                    HostPattern::Exact(n) => exact.insert(n.as_str().to_owned(), index),
                    HostPattern::Wildcard(parent) => {
                        wildcard.insert(parent.as_str().to_owned(), index)
                    }
                };
            }
        }
        Self {
            default_origin,
            sites,
            exact,
            wildcard,
        }
    }

    /// The site serving `host` (already lowercased, without port or trailing dot).
    pub fn site_for(&self, host: &str) -> Option<&Site> {
        if let Some(&i) = self.exact.get(host) {
            return self.sites.get(i);
        }
        let (_, parent) = host.split_once('.')?;
        self.wildcard.get(parent).and_then(|&i| self.sites.get(i))
    }

    /// The origin for `host`: its site's, else the default origin.
    pub fn origin_for(&self, host: &str) -> Option<&Arc<OriginAddr>> {
        self.site_for(host)
            .map(|s| &s.origin)
            .or(self.default_origin.as_ref())
    }

    /// Every exact name of every site (wildcards cannot be probed or ordered over HTTP-01).
    pub fn exact_names(&self) -> impl Iterator<Item = &DnsName> {
        self.sites.iter().flat_map(|s| {
            s.names.iter().filter_map(|n| match n {
                HostPattern::Exact(n) => Some(n),
                HostPattern::Wildcard(_) => None,
            })
        })
    }
}

/// Where this host reaches one of its own listeners: a wildcard listen address over loopback.
/// (The readiness check and the ACME self-check connect to the node itself.)
pub fn reachable(listen: &SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port())
        }
        _ => *listen,
    }
}

#[cfg(test)]
mod tests;
