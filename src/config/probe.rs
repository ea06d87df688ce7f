//! The `[probe]` section: how the self-probe looks at the node the way a CA does (resolvers,
//! ports, the CA's CAA identity, what the DNS should point at), and its typed form.
//!
//! Defaults are those of a production edge node probing Let's Encrypt HTTP-01 validation; tests
//! point `resolvers` at a mock DNS server and `http_port`/`https_port` at high ports.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::value::{HumanDuration, Parsed};
use super::DnsName;

/// Words that CAs' anti-phishing filters look for in a name (catalogue P5). A match is a
/// warning before ordering, not a refusal: the filters differ between CAs.
pub const DEFAULT_SENSITIVE_WORDS: &[&str] = &[
    "bank",
    "pay",
    "paypal",
    "live",
    "login",
    "signin",
    "secure",
    "verify",
    "account",
    "wallet",
    "test",
    "example",
    "apple",
    "icloud",
    "google",
    "microsoft",
    "amazon",
    "facebook",
];

/// How the self-probe runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// Recursive resolvers to ask, each reported on its own (D4, D7); empty: `/etc/resolv.conf`.
    pub resolvers: Vec<SocketAddr>,
    /// Authoritative servers to ask directly (D7, D9, D11); empty: found through NS records.
    pub authoritative: Vec<SocketAddr>,
    /// Limit for one DNS query, one TCP connect, one HTTP exchange.
    pub timeout: Duration,
    /// Limit for the whole probe of one name.
    pub deadline: Duration,
    /// How often the running server probes every site name; `None`: never.
    pub interval: Option<Duration>,
    /// The node's public addresses: what the names must resolve to (D6).
    pub public_addresses: Vec<IpAddr>,
    /// The CDN name the sites' CNAME records must point at (D6).
    pub cname_target: Option<DnsName>,
    /// Issuer domain names of the CA in CAA records, e.g. `letsencrypt.org` (D8).
    pub ca_identities: Vec<DnsName>,
    /// ACME account URI, compared with CAA `accounturi` parameters (RFC 8657 §3).
    pub account_uri: Option<String>,
    /// Validation method, compared with CAA `validationmethods` parameters (RFC 8657 §4).
    pub validation_method: String,
    /// The port the CA fetches `http://` from: 80 (tests use a high port).
    pub http_port: u16,
    /// The port of `https://`: 443 (tests use a high port).
    pub https_port: u16,
    /// pki-validation files older than this are reported (H9).
    pub max_file_age: Duration,
    /// P5 words, lowercase.
    pub sensitive_words: Vec<String>,
    /// TXT records that must be published (D9, D10).
    pub txt: Vec<ExpectedTxt>,
    /// DNSKEY records of the root the DNSSEC check validates from (D12); `None`: IANA's root
    /// keys. The file parsed when the configuration was read.
    pub trust_anchor: Option<std::path::PathBuf>,
    /// The validation zones this node answers (`[dns]`, copied here): the probe checks their
    /// delegation and the `_acme-challenge` CNAMEs into them (D13–D15).
    pub dns: Option<super::DnsConfig>,
}

/// A TXT record an operator expects for DNS validation: `_acme-challenge.<name>` (ACME DNS-01)
/// or `_dnsauth.<name>` (DigiCert, TrustAsia), with the value the CA gave.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExpectedTxt {
    pub name: RecordName,
    pub value: String,
}

/// A DNS owner name that may hold underscore labels (`_acme-challenge.example.com`), lowercase,
/// without trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct RecordName(String);

impl RecordName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this record belongs to `name`: it is `name` itself, or `name` under one or more
    /// underscore labels (RFC 8552 attribute leaves).
    pub fn belongs_to(&self, name: &str) -> bool {
        if self.0 == name {
            return true;
        }
        self.0
            .strip_suffix(name)
            .and_then(|prefix| prefix.strip_suffix('.'))
            .is_some_and(|prefix| prefix.split('.').all(|l| l.starts_with('_')))
    }
}

impl FromStr for RecordName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        if name.is_empty() || name.len() > 253 {
            return Err(format!("{s:?} is not a DNS name (1 to 253 characters)"));
        }
        for label in name.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(format!(
                    "{s:?}: label {label:?} is not 1-63 letters, digits, '-' or '_'"
                ));
            }
        }
        Ok(RecordName(name))
    }
}

impl fmt::Display for RecordName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    #[serde(default)]
    resolvers: Vec<Parsed<SocketAddr>>,
    #[serde(default)]
    authoritative: Vec<Parsed<SocketAddr>>,
    #[serde(default = "default_timeout")]
    timeout: Spanned<Parsed<HumanDuration>>,
    #[serde(default = "default_deadline")]
    deadline: Spanned<Parsed<HumanDuration>>,
    #[serde(default = "default_interval")]
    interval: Parsed<HumanDuration>,
    #[serde(default)]
    public_addresses: Vec<Parsed<IpAddr>>,
    cname_target: Option<Parsed<DnsName>>,
    #[serde(default = "default_ca_identities")]
    ca_identities: Spanned<Vec<Parsed<DnsName>>>,
    account_uri: Option<Spanned<String>>,
    #[serde(default = "default_validation_method")]
    validation_method: Spanned<String>,
    #[serde(default = "default_http_port")]
    http_port: u16,
    #[serde(default = "default_https_port")]
    https_port: u16,
    #[serde(default = "default_max_file_age")]
    max_file_age: Parsed<HumanDuration>,
    sensitive_words: Option<Vec<String>>,
    #[serde(default)]
    txt: Vec<RawTxt>,
    trust_anchor: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTxt {
    name: Parsed<RecordName>,
    value: String,
}

/// A refusal: the span of the value, the key and the message.
pub(super) type Refusal = (std::ops::Range<usize>, String, String);

/// Checks the values that serde could not check alone; relative paths are taken from `base`
/// (the configuration file's directory).
pub(super) fn build(raw: RawProbe, base: &std::path::Path) -> Result<ProbeConfig, Refusal> {
    let trust_anchor = match raw.trust_anchor {
        None => None,
        Some(path) => {
            let file = base.join(path.get_ref());
            // At most 64 KiB: a wrong path (a device, a log) cannot make the load read on.
            let text = read_bounded(&file, 64 * 1024).map_err(|e| {
                (
                    path.span(),
                    "probe.trust_anchor".to_owned(),
                    format!("cannot read {}: {e}", file.display()),
                )
            })?;
            if let Err(e) = text.parse::<hickory_resolver::proto::dnssec::TrustAnchors>() {
                return Err((
                    path.span(),
                    "probe.trust_anchor".into(),
                    format!(
                        "{} holds no DNSKEY records hickory can read: {e}",
                        file.display()
                    ),
                ));
            }
            Some(file)
        }
    };
    let timeout = raw.timeout.get_ref().0 .0;
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        return Err((
            raw.timeout.span(),
            "probe.timeout".into(),
            format!("{timeout:?} is out of range (more than 0s, at most 60s)"),
        ));
    }
    let deadline = raw.deadline.get_ref().0 .0;
    if deadline < timeout {
        return Err((
            raw.deadline.span(),
            "probe.deadline".into(),
            format!("{deadline:?} is shorter than probe.timeout ({timeout:?})"),
        ));
    }
    if raw.ca_identities.get_ref().is_empty() {
        return Err((
            raw.ca_identities.span(),
            "probe.ca_identities".into(),
            "name at least one CA identity, e.g. [\"letsencrypt.org\"]".into(),
        ));
    }
    if let Some(uri) = &raw.account_uri {
        if !uri.get_ref().starts_with("https://") {
            return Err((
                uri.span(),
                "probe.account_uri".into(),
                format!(
                    "expected the ACME account URL \"https://…\", got {:?}",
                    uri.get_ref()
                ),
            ));
        }
    }
    let method = raw.validation_method.get_ref();
    if !["http-01", "dns-01", "tls-alpn-01"].contains(&method.as_str()) {
        return Err((
            raw.validation_method.span(),
            "probe.validation_method".into(),
            format!("expected \"http-01\", \"dns-01\" or \"tls-alpn-01\", got {method:?}"),
        ));
    }
    let interval = raw.interval.0 .0;
    Ok(ProbeConfig {
        resolvers: raw.resolvers.into_iter().map(|a| a.0).collect(),
        authoritative: raw.authoritative.into_iter().map(|a| a.0).collect(),
        timeout,
        deadline,
        interval: (!interval.is_zero()).then_some(interval),
        public_addresses: raw.public_addresses.into_iter().map(|a| a.0).collect(),
        cname_target: raw.cname_target.map(|n| n.0),
        ca_identities: raw
            .ca_identities
            .into_inner()
            .into_iter()
            .map(|n| n.0)
            .collect(),
        account_uri: raw.account_uri.map(Spanned::into_inner),
        validation_method: raw.validation_method.into_inner(),
        http_port: raw.http_port,
        https_port: raw.https_port,
        max_file_age: raw.max_file_age.0 .0,
        sensitive_words: raw
            .sensitive_words
            .unwrap_or_else(|| {
                DEFAULT_SENSITIVE_WORDS
                    .iter()
                    .map(|w| (*w).to_owned())
                    .collect()
            })
            .into_iter()
            .map(|w| w.to_ascii_lowercase())
            .filter(|w| !w.is_empty())
            .collect(),
        txt: raw
            .txt
            .into_iter()
            .map(|t| ExpectedTxt {
                name: t.name.0,
                value: t.value,
            })
            .collect(),
        trust_anchor,
        dns: None,
    })
}

fn read_bounded(path: &std::path::Path, limit: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(limit)
        .read_to_string(&mut text)?;
    Ok(text)
}

impl Default for RawProbe {
    fn default() -> Self {
        Self {
            resolvers: Vec::new(),
            authoritative: Vec::new(),
            timeout: default_timeout(),
            deadline: default_deadline(),
            interval: default_interval(),
            public_addresses: Vec::new(),
            cname_target: None,
            ca_identities: default_ca_identities(),
            account_uri: None,
            validation_method: default_validation_method(),
            http_port: default_http_port(),
            https_port: default_https_port(),
            max_file_age: default_max_file_age(),
            sensitive_words: None,
            txt: Vec::new(),
            trust_anchor: None,
        }
    }
}

fn duration(secs: u64) -> Parsed<HumanDuration> {
    Parsed(HumanDuration(Duration::from_secs(secs)))
}
fn default_timeout() -> Spanned<Parsed<HumanDuration>> {
    Spanned::new(0..0, duration(5))
}
fn default_deadline() -> Spanned<Parsed<HumanDuration>> {
    Spanned::new(0..0, duration(60))
}
fn default_interval() -> Parsed<HumanDuration> {
    duration(300)
}
fn default_ca_identities() -> Spanned<Vec<Parsed<DnsName>>> {
    let le = DnsName::from_str("letsencrypt.org").expect("a constant, valid name");
    Spanned::new(0..0, vec![Parsed(le)])
}
fn default_validation_method() -> Spanned<String> {
    Spanned::new(0..0, "http-01".into())
}
fn default_http_port() -> u16 {
    80
}
fn default_https_port() -> u16 {
    443
}
fn default_max_file_age() -> Parsed<HumanDuration> {
    // DigiCert and Sectigo accept a file-validation random value for 30 days.
    duration(30 * 24 * 3600)
}
