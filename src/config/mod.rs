//! The configuration file: raw serde structs are read with their positions, then turned into a
//! typed [`Config`] that is valid by construction.
//!
//! Every refusal names the file, the line and column, and the key (`http.listen[1]`), because an
//! operator editing a config on a node far away gets one chance to read the error.

mod error;
mod probe;
mod raw;
mod types;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use error::ConfigError;
pub use probe::{ExpectedTxt, ProbeConfig, RecordName, DEFAULT_SENSITIVE_WORDS};
pub use types::{DnsName, HostPattern, OriginAddr};

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
}

/// The plain-HTTP listeners (port 80 in production).
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone)]
pub struct HttpsConfig {
    pub listen: Vec<SocketAddr>,
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
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// File holding the bearer token; created with a random token (mode 0600) when missing.
    pub token_file: PathBuf,
    /// Largest request body accepted (413 above it).
    pub max_body_bytes: usize,
}

/// Process-wide serving settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Worker threads of the serving runtime.
    pub threads: usize,
    /// How long a graceful shutdown waits for in-flight requests.
    pub grace_period: Duration,
    /// Default log filter (`RUST_LOG` overrides it).
    pub log_level: String,
    /// Connect timeout towards origins.
    pub origin_connect_timeout: Duration,
    /// Read timeout towards origins.
    pub origin_read_timeout: Duration,
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

#[cfg(test)]
mod tests;
