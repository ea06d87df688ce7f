//! The file as written: serde structs that refuse unknown keys, and the step that turns them into
//! a typed [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::error::Place;
use super::value::{HumanDuration, Parsed};
use super::{
    AcmeConfig, AdminConfig, CaConfig, CertId, CertName, CertificateConfig, ChallengeConfig,
    ChallengeType, Config, ConfigError, DnsName, EtcdTls, ExternalAccount, FleetConfig,
    HostPattern, HttpConfig, HttpsConfig, KeyType, OriginAddr, ServerConfig, Site, Sites,
    UnknownToken,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default = "default_state_dir")]
    state_dir: PathBuf,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    https: RawHttps,
    #[serde(default)]
    challenge: RawChallenge,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    proxy: RawProxy,
    #[serde(default)]
    probe: super::probe::RawProbe,
    #[serde(default, rename = "site")]
    sites: Vec<RawSite>,
    #[serde(default)]
    acme: RawAcme,
    #[serde(default, rename = "certificate")]
    certificates: Vec<RawCertificate>,
    #[serde(default)]
    fleet: RawFleet,
    dns: Option<super::dns::RawDns>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    #[serde(default = "default_fleet_backend")]
    backend: Spanned<RawFleetBackend>,
    #[serde(default)]
    endpoints: Vec<Spanned<String>>,
    #[serde(default = "default_fleet_prefix")]
    prefix: Spanned<String>,
    node_id: Option<Spanned<String>>,
    #[serde(default)]
    public_addresses: Vec<Parsed<std::net::IpAddr>>,
    key_file: Option<PathBuf>,
    tls_ca_file: Option<PathBuf>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default = "default_lease_ttl")]
    lease_ttl: Spanned<Parsed<HumanDuration>>,
    #[serde(default = "default_fleet_request_timeout")]
    request_timeout: Parsed<HumanDuration>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
enum RawFleetBackend {
    #[default]
    #[serde(rename = "local")]
    Local,
    #[serde(rename = "etcd")]
    Etcd,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAcme {
    // The one CA of the single-CA form; the default is Let's Encrypt. With `[[acme.ca]]`,
    // none of these may be written (`build_acme`).
    directory: Option<Spanned<String>>,
    contact: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    terms_agreed: bool,
    eab_key_id: Option<Spanned<String>>,
    eab_hmac_key: Option<Spanned<String>>,
    ca_bundle: Option<Spanned<PathBuf>>,
    #[serde(default)]
    key_type: RawKeyType,
    profile: Option<Spanned<String>>,
    /// The CAs in order of preference (`[[acme.ca]]`).
    #[serde(default)]
    ca: Vec<Spanned<RawCa>>,
    #[serde(default = "default_fallback_after")]
    fallback_after: Parsed<HumanDuration>,
    #[serde(default)]
    stateless_http01: bool,
    #[serde(default = "default_retry_schedule")]
    retry_schedule: Spanned<Vec<Parsed<HumanDuration>>>,
    /// Replaced by `retry_schedule`: refused with a pointer to it.
    retry_min: Option<Spanned<toml::Value>>,
    /// Replaced by `retry_schedule`: refused with a pointer to it.
    retry_max: Option<Spanned<toml::Value>>,
    #[serde(default = "default_max_new_orders")]
    max_new_orders: u32,
    #[serde(default = "default_new_orders_window")]
    new_orders_window: Parsed<HumanDuration>,
    #[serde(default)]
    self_check: RawSelfCheck,
    #[serde(default = "default_self_check_timeout")]
    self_check_timeout: Parsed<HumanDuration>,
    #[serde(default = "default_order_timeout")]
    order_timeout: Parsed<HumanDuration>,
    #[serde(default = "default_check_interval")]
    check_interval: Parsed<HumanDuration>,
    #[serde(default = "default_request_timeout")]
    request_timeout: Parsed<HumanDuration>,
}

/// One `[[acme.ca]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCa {
    name: Option<Spanned<String>>,
    directory: Spanned<String>,
    #[serde(default)]
    contact: Vec<Spanned<String>>,
    eab_key_id: Option<Spanned<String>>,
    eab_hmac_key: Option<Spanned<String>>,
    ca_bundle: Option<Spanned<PathBuf>>,
    profile: Option<Spanned<String>>,
}

#[derive(Deserialize, Default, Clone, Copy)]
enum RawSelfCheck {
    #[default]
    #[serde(rename = "probe")]
    Probe,
    #[serde(rename = "local")]
    Local,
}

#[derive(Deserialize, Default, Clone, Copy)]
enum RawKeyType {
    #[default]
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    #[serde(rename = "rsa-2048")]
    Rsa2048,
}

#[derive(Deserialize, Default, Clone, Copy)]
enum RawAcmeChallenge {
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    #[serde(rename = "dns-01")]
    Dns01,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    id: Option<Parsed<CertId>>,
    // `*.name` and IP addresses are parsed and checked against the challenge type in
    // `build_certificates`.
    names: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    challenge: RawAcmeChallenge,
    profile: Option<String>,
    #[serde(default = "default_false")]
    backup: Spanned<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default = "default_http_listen")]
    listen: Vec<Parsed<SocketAddr>>,
    #[serde(default)]
    redirect_to_https: bool,
    #[serde(default = "default_redirect_status")]
    redirect_status: Spanned<u16>,
    #[serde(default)]
    redirect_port: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttps {
    #[serde(default = "default_https_listen")]
    listen: Vec<Parsed<SocketAddr>>,
    #[serde(default = "default_tls13_tickets")]
    tls13_tickets: Spanned<u8>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawChallenge {
    #[serde(default)]
    unknown_token: RawUnknownToken,
}

#[derive(Deserialize, Default, Clone, Copy)]
enum RawUnknownToken {
    #[default]
    #[serde(rename = "404")]
    NotFound,
    #[serde(rename = "origin")]
    Origin,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    #[serde(default = "default_admin_listen")]
    listen: Parsed<SocketAddr>,
    token_file: Option<PathBuf>,
    #[serde(default = "default_max_body")]
    max_body_bytes: usize,
    #[serde(default)]
    hosts: Vec<Parsed<DnsName>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default = "default_threads")]
    threads: Spanned<usize>,
    #[serde(default = "default_grace")]
    grace_period: Parsed<HumanDuration>,
    #[serde(default = "default_log_level")]
    log_level: String,
    #[serde(default = "default_head_timeout")]
    head_timeout: Spanned<Parsed<HumanDuration>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    default_origin: Option<Parsed<OriginAddr>>,
    #[serde(default = "default_connect_timeout")]
    connect_timeout: Parsed<HumanDuration>,
    #[serde(default = "default_read_timeout")]
    read_timeout: Parsed<HumanDuration>,
    #[serde(default = "default_true")]
    fast_path: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    names: Spanned<Vec<Spanned<Parsed<HostPattern>>>>,
    origin: Parsed<OriginAddr>,
}

/// Reads `text` into the raw structs, or says where and why not.
pub(super) fn parse(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(path, text, "", e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        // toml::Spanned wraps values in a private struct; its field is not a key the user wrote.
        let key = e
            .path()
            .to_string()
            .replace(".$__serde_spanned_private_value", "");
        toml_error(path, text, &key, e.into_inner())
    })
}

fn toml_error(path: &Path, text: &str, key: &str, e: toml::de::Error) -> ConfigError {
    let offset = e.span().map_or(0, |s| s.start);
    ConfigError::Invalid {
        place: Place::at(path, text, offset),
        key: if key.is_empty() || key == "." {
            "(document)".to_owned()
        } else {
            key.to_owned()
        },
        message: e.message().trim().to_owned(),
    }
}

/// Most TLS 1.3 tickets a handshake may be answered with.
const MAX_TLS13_TICKETS: u8 = 8;

/// Cross-field checks and defaults that depend on other keys.
pub(super) fn build(path: &Path, text: &str, raw: RawConfig) -> Result<Config, ConfigError> {
    let invalid =
        |span: std::ops::Range<usize>, key: String, message: String| ConfigError::Invalid {
            place: Place::at(path, text, span.start),
            key,
            message,
        };
    let base = path.parent().unwrap_or(Path::new("."));
    let state_dir = base.join(&raw.state_dir);

    let status = raw.http.redirect_status;
    if ![301, 302, 307, 308].contains(status.get_ref()) {
        return Err(invalid(
            status.span(),
            "http.redirect_status".into(),
            format!(
                "{} is not a redirect status (301, 302, 307 or 308)",
                status.get_ref()
            ),
        ));
    }
    let tickets = raw.https.tls13_tickets;
    if *tickets.get_ref() > MAX_TLS13_TICKETS {
        return Err(invalid(
            tickets.span(),
            "https.tls13_tickets".into(),
            format!(
                "{} is out of range (0 to {MAX_TLS13_TICKETS})",
                tickets.get_ref()
            ),
        ));
    }
    let head_timeout = raw.server.head_timeout.get_ref().0 .0;
    if head_timeout < Duration::from_secs(1) || head_timeout > Duration::from_secs(600) {
        return Err(invalid(
            raw.server.head_timeout.span(),
            "server.head_timeout".into(),
            format!("{head_timeout:?} is out of range (1s to 10min)"),
        ));
    }
    let threads = raw.server.threads;
    if *threads.get_ref() == 0 || *threads.get_ref() > 1024 {
        return Err(invalid(
            threads.span(),
            "server.threads".into(),
            format!("{} is out of range (1 to 1024)", threads.get_ref()),
        ));
    }

    let mut sites = Vec::with_capacity(raw.sites.len());
    let mut seen: std::collections::HashMap<HostPattern, usize> = Default::default();
    for (i, site) in raw.sites.into_iter().enumerate() {
        if site.names.get_ref().is_empty() {
            return Err(invalid(
                site.names.span(),
                format!("site[{i}].names"),
                "a site needs at least one name".into(),
            ));
        }
        let mut names = Vec::new();
        for (j, name) in site.names.into_inner().into_iter().enumerate() {
            let span = name.span();
            let name = name.into_inner().0;
            if let Some(first) = seen.insert(name.clone(), i) {
                return Err(invalid(
                    span,
                    format!("site[{i}].names[{j}]"),
                    format!("{name} is already a name of site[{first}]"),
                ));
            }
            names.push(name);
        }
        sites.push(Site {
            names,
            origin: std::sync::Arc::new(site.origin.0),
        });
    }

    let acme = build_acme(&invalid, base, raw.acme)?;
    let dns =
        super::dns::build(raw.dns).map_err(|(span, key, message)| invalid(span, key, message))?;
    let certificates = build_certificates(&invalid, &acme, raw.certificates, dns.is_some())?;
    let fleet = build_fleet(&invalid, base, raw.fleet)?;

    let mut probe = super::probe::build(raw.probe, base)
        .map_err(|(span, key, message)| invalid(span, key, message))?;
    // The probe checks the delegation of the zones this node answers (probe::delegation).
    probe.dns = dns.clone();

    Ok(Config {
        source: path.to_path_buf(),
        acme,
        certificates,
        probe,
        fleet,
        dns,
        http: HttpConfig {
            listen: raw.http.listen.into_iter().map(|a| a.0).collect(),
            redirect_to_https: raw.http.redirect_to_https,
            redirect_status: *status.get_ref(),
            redirect_port: raw.http.redirect_port.filter(|&p| p != 443),
        },
        https: HttpsConfig {
            listen: raw.https.listen.into_iter().map(|a| a.0).collect(),
            tls13_tickets: usize::from(*tickets.get_ref()),
        },
        challenge: ChallengeConfig {
            unknown_token: match raw.challenge.unknown_token {
                RawUnknownToken::NotFound => UnknownToken::NotFound,
                RawUnknownToken::Origin => UnknownToken::Origin,
            },
        },
        admin: AdminConfig {
            listen: raw.admin.listen.0,
            token_file: raw
                .admin
                .token_file
                .map(|p| base.join(p))
                .unwrap_or_else(|| state_dir.join("admin.token")),
            max_body_bytes: raw.admin.max_body_bytes,
            hosts: raw.admin.hosts.into_iter().map(|h| h.0).collect(),
        },
        server: ServerConfig {
            threads: *threads.get_ref(),
            grace_period: raw.server.grace_period.0 .0,
            log_level: raw.server.log_level,
            head_timeout,
            origin_connect_timeout: raw.proxy.connect_timeout.0 .0,
            origin_read_timeout: raw.proxy.read_timeout.0 .0,
            fast_path: raw.proxy.fast_path,
        },
        sites: Sites::new(
            raw.proxy.default_origin.map(|o| std::sync::Arc::new(o.0)),
            sites,
        ),
        state_dir,
    })
}

type Invalid<'a> = dyn Fn(std::ops::Range<usize>, String, String) -> ConfigError + 'a;

fn build_acme(invalid: &Invalid<'_>, base: &Path, raw: RawAcme) -> Result<AcmeConfig, ConfigError> {
    let single: [(&str, Option<std::ops::Range<usize>>); 6] = [
        ("directory", raw.directory.as_ref().map(Spanned::span)),
        (
            "contact",
            raw.contact
                .as_ref()
                .map(|c| c.first().map_or(0..0, Spanned::span)),
        ),
        ("eab_key_id", raw.eab_key_id.as_ref().map(Spanned::span)),
        ("eab_hmac_key", raw.eab_hmac_key.as_ref().map(Spanned::span)),
        ("ca_bundle", raw.ca_bundle.as_ref().map(Spanned::span)),
        ("profile", raw.profile.as_ref().map(Spanned::span)),
    ];
    let cas = if raw.ca.is_empty() {
        vec![build_ca(
            invalid,
            base,
            "acme",
            RawCa {
                name: None,
                directory: raw.directory.unwrap_or_else(default_directory),
                contact: raw.contact.unwrap_or_default(),
                eab_key_id: raw.eab_key_id,
                eab_hmac_key: raw.eab_hmac_key,
                ca_bundle: raw.ca_bundle,
                profile: raw.profile,
            },
        )?]
    } else {
        // Both forms at once would leave it unclear which CA the keys are for.
        if let Some((key, span)) = single
            .iter()
            .find_map(|(key, span)| span.clone().map(|s| (key, s)))
        {
            return Err(invalid(
                span,
                format!("acme.{key}"),
                format!("[[acme.ca]] tables name the CAs: move {key} into the [[acme.ca]] it is for (the single-CA keys directory, contact, eab_key_id, eab_hmac_key, ca_bundle and profile cannot be used beside them)"),
            ));
        }
        let mut cas: Vec<CaConfig> = Vec::with_capacity(raw.ca.len());
        for (i, ca) in raw.ca.into_iter().enumerate() {
            let span = ca.span();
            let ca = build_ca(invalid, base, &format!("acme.ca[{i}]"), ca.into_inner())?;
            if let Some(j) = cas
                .iter()
                .position(|c| c.name == ca.name || c.directory == ca.directory)
            {
                return Err(invalid(
                    span,
                    format!("acme.ca[{i}].name"),
                    format!(
                        "acme.ca[{j}] has the same name or directory ({}): give each CA its own directory and name",
                        ca.name
                    ),
                ));
            }
            cas.push(ca);
        }
        cas
    };
    for (key, old) in [("retry_min", &raw.retry_min), ("retry_max", &raw.retry_max)] {
        if let Some(old) = old {
            return Err(invalid(
                old.span(),
                format!("acme.{key}"),
                "replaced by acme.retry_schedule, a list of waits after the 1st, 2nd, … failure \
                 (the last repeats), e.g. [\"1m\", \"10m\", \"100m\", \"1d\"]"
                    .into(),
            ));
        }
    }
    let retry_schedule: Vec<Duration> = raw
        .retry_schedule
        .get_ref()
        .iter()
        .map(|d| d.0 .0)
        .collect();
    if retry_schedule.is_empty() || retry_schedule.iter().any(Duration::is_zero) {
        return Err(invalid(
            raw.retry_schedule.span(),
            "acme.retry_schedule".into(),
            "give one or more waits longer than 0s, e.g. [\"1m\", \"10m\", \"100m\", \"1d\"]"
                .into(),
        ));
    }
    Ok(AcmeConfig {
        cas,
        fallback_after: raw.fallback_after.0 .0,
        terms_agreed: raw.terms_agreed,
        key_type: match raw.key_type {
            RawKeyType::EcdsaP256 => KeyType::EcdsaP256,
            RawKeyType::EcdsaP384 => KeyType::EcdsaP384,
            RawKeyType::Rsa2048 => KeyType::Rsa2048,
        },
        stateless_http01: raw.stateless_http01,
        retry_schedule,
        max_new_orders: raw.max_new_orders,
        new_orders_window: raw.new_orders_window.0 .0,
        self_check: match raw.self_check {
            RawSelfCheck::Probe => super::SelfCheckKind::Probe,
            RawSelfCheck::Local => super::SelfCheckKind::Local,
        },
        self_check_timeout: raw.self_check_timeout.0 .0,
        order_timeout: raw.order_timeout.0 .0,
        check_interval: raw.check_interval.0 .0,
        request_timeout: raw.request_timeout.0 .0,
    })
}

/// One CA: its directory (a URL or a known name), contacts, EAB, roots and profile. `key` is
/// where it was written (`acme` or `acme.ca[1]`), for messages.
fn build_ca(
    invalid: &Invalid<'_>,
    base: &Path,
    key: &str,
    raw: RawCa,
) -> Result<CaConfig, ConfigError> {
    let written = raw.directory.get_ref().as_str();
    let (directory, default_name) = match written {
        "letsencrypt" => (
            instant_acme::LetsEncrypt::Production.url().to_owned(),
            written.to_owned(),
        ),
        "letsencrypt-staging" => (
            instant_acme::LetsEncrypt::Staging.url().to_owned(),
            written.to_owned(),
        ),
        "zerossl" => (
            instant_acme::ZeroSsl::Production.url().to_owned(),
            written.to_owned(),
        ),
        url if url.starts_with("https://") || url.starts_with("http://") => {
            // The host (and port) names the CA where no `name` is given.
            let host = url.split("://").nth(1).unwrap_or(url);
            let host = host.split('/').next().unwrap_or(host);
            (url.to_owned(), host.to_owned())
        }
        other => {
            return Err(invalid(
                raw.directory.span(),
                format!("{key}.directory"),
                format!("{other:?} is neither a directory URL nor one of \"letsencrypt\", \"letsencrypt-staging\", \"zerossl\""),
            ))
        }
    };
    let name = match raw.name {
        Some(name) => {
            let ok = !name.get_ref().is_empty()
                && name.get_ref().len() <= 64
                && name
                    .get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
            if !ok {
                return Err(invalid(
                    name.span(),
                    format!("{key}.name"),
                    format!(
                        "{:?} is not a CA name (1-64 of A-Z a-z 0-9 . - _ :; it is a metric label value)",
                        name.get_ref()
                    ),
                ));
            }
            name.into_inner()
        }
        None => default_name,
    };
    let mut contact = Vec::new();
    for (i, c) in raw.contact.into_iter().enumerate() {
        let value = c.get_ref();
        let ok = value
            .strip_prefix("mailto:")
            .is_some_and(|addr| addr.contains('@') && !addr.contains(','));
        if !ok {
            return Err(invalid(
                c.span(),
                format!("{key}.contact[{i}]"),
                format!("expected \"mailto:someone@example.com\", got {value:?}"),
            ));
        }
        contact.push(c.into_inner());
    }
    let eab = match (raw.eab_key_id, raw.eab_hmac_key) {
        (None, None) => None,
        (Some(key_id), Some(hmac)) => {
            use base64::Engine;
            let hmac_key = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(hmac.get_ref().trim_end_matches('='))
                .map_err(|e| {
                    invalid(
                        hmac.span(),
                        format!("{key}.eab_hmac_key"),
                        format!("not base64url as the CA shows it: {e}"),
                    )
                })?;
            Some(ExternalAccount {
                key_id: key_id.into_inner(),
                hmac_key,
            })
        }
        (Some(one), None) | (None, Some(one)) => {
            return Err(invalid(
                one.span(),
                format!("{key}.eab_key_id"),
                "eab_key_id and eab_hmac_key go together".into(),
            ))
        }
    };
    Ok(CaConfig {
        name,
        directory,
        contact,
        eab,
        ca_bundle: raw.ca_bundle.map(|p| base.join(p.into_inner())),
        profile: raw.profile.map(Spanned::into_inner),
    })
}

fn build_certificates(
    invalid: &Invalid<'_>,
    acme: &AcmeConfig,
    raw: Vec<RawCertificate>,
    dns_zones: bool,
) -> Result<Vec<CertificateConfig>, ConfigError> {
    let mut out: Vec<CertificateConfig> = Vec::with_capacity(raw.len());
    for (i, cert) in raw.into_iter().enumerate() {
        let span = cert.names.span();
        let dns01 = matches!(cert.challenge, RawAcmeChallenge::Dns01);
        if dns01 && !dns_zones {
            return Err(invalid(
                span,
                format!("certificate[{i}].challenge"),
                "dns-01 is answered by the node's DNS listener: configure [dns] with a [[dns.zone]] (README \"Wildcards and DNS validation\")".into(),
            ));
        }
        let mut names: Vec<CertName> = Vec::new();
        for (j, name) in cert.names.into_inner().into_iter().enumerate() {
            let name_span = name.span();
            let key = format!("certificate[{i}].names[{j}]");
            let parsed = CertName::parse(name.get_ref())
                .map_err(|e| invalid(name_span.clone(), key.clone(), e))?;
            let name = match parsed {
                // RFC 8738 §7: an address is validated by HTTP-01 or TLS-ALPN-01, never DNS-01.
                Ok(CertName::Ip(_)) if dns01 => {
                    return Err(invalid(
                        name_span,
                        key,
                        "an IP address is validated over HTTP-01 or TLS-ALPN-01, not dns-01 (RFC 8738 §7): give it a [[certificate]] of its own with challenge = \"http-01\" or \"tls-alpn-01\"".into(),
                    ))
                }
                Ok(ip) => ip,
                Err(HostPattern::Exact(n)) => CertName::Dns(n),
                // RFC 8555 §7.1.3, Baseline Requirements 3.2.2.4: wildcards by DNS only (P6).
                Err(HostPattern::Wildcard(_)) if !dns01 => {
                    return Err(invalid(
                        name_span,
                        key,
                        "a wildcard can only be validated over DNS: set challenge = \"dns-01\" (P6)"
                            .into(),
                    ))
                }
                Err(HostPattern::Wildcard(parent)) => CertName::Dns(
                    DnsName::wildcard(&parent).map_err(|e| invalid(name_span.clone(), key, e))?,
                ),
            };
            if names.contains(&name) {
                return Err(invalid(
                    name_span,
                    format!("certificate[{i}].names[{j}]"),
                    format!("{name} is listed twice"),
                ));
            }
            names.push(name);
        }
        let Some(first) = names.first() else {
            return Err(invalid(
                span,
                format!("certificate[{i}].names"),
                "a certificate needs at least one name".into(),
            ));
        };
        // P6: the first name becomes the subject CN, which X.509 limits to 64 characters.
        if first.text().len() > 64 {
            return Err(invalid(
                span,
                format!("certificate[{i}].names[0]"),
                format!(
                    "{first} is longer than 64 characters and cannot be the certificate's common name (P6); put a shorter name first"
                ),
            ));
        }
        // A backup comes from another CA than the served certificate's.
        if *cert.backup.get_ref() && acme.cas.len() < 2 {
            return Err(invalid(
                cert.backup.span(),
                format!("certificate[{i}].backup"),
                "a backup certificate comes from a second CA: list two or more [[acme.ca]] (README \"Backup certificates\")".into(),
            ));
        }
        let own_profile = cert.profile;
        let profile = own_profile.clone().or_else(|| acme.cas[0].profile.clone());
        if names.iter().any(|n| n.ip().is_some()) {
            for ca in &acme.cas {
                let asked = own_profile.as_deref().or(ca.profile.as_deref());
                check_ip_profile(&ca.directory, asked).map_err(|message| {
                    invalid(
                        span.clone(),
                        format!("certificate[{i}].profile"),
                        format!("{message} (CA {})", ca.name),
                    )
                })?;
            }
        }
        let id = match cert.id {
            Some(id) => id.0,
            // `*.a.test` makes the id `wildcard.a.test`, `2001:db8::1` `ip6-2001-db8--1` (an
            // id is a file name).
            None => CertId::parse(&default_id(first))
                .map_err(|e| invalid(span.clone(), format!("certificate[{i}].id"), e))?,
        };
        if id.as_str() == super::DEFAULT_CERT_ID || out.iter().any(|c| c.id == id) {
            return Err(invalid(
                span,
                format!("certificate[{i}].id"),
                format!("id {id} is already used; give this certificate another `id`"),
            ));
        }
        if !acme.terms_agreed {
            return Err(invalid(
                span,
                "acme.terms_agreed".into(),
                "certificates are configured: read the CA's terms of service and set acme.terms_agreed = true".into(),
            ));
        }
        out.push(CertificateConfig {
            id,
            names,
            challenge: match cert.challenge {
                RawAcmeChallenge::Http01 => ChallengeType::Http01,
                RawAcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
                RawAcmeChallenge::Dns01 => ChallengeType::Dns01,
            },
            profile,
            own_profile,
            backup: *cert.backup.get_ref(),
        });
    }
    Ok(out)
}

/// The id a certificate gets when none is given: its first name, as a file name.
fn default_id(first: &CertName) -> String {
    match first {
        CertName::Dns(n) => n.as_str().replacen("*.", "wildcard.", 1),
        CertName::Ip(std::net::IpAddr::V4(v4)) => v4.to_string(),
        CertName::Ip(std::net::IpAddr::V6(v6)) => {
            format!("ip6-{}", v6.to_string().replace(':', "-"))
        }
    }
}

/// Let's Encrypt issues IP-address certificates only under its `shortlived` profile (160
/// hours; "IP Addresses in Certificates", 2026-01-15 general availability): an order for an
/// address under another profile is refused every time, so the configuration is refused
/// instead. Other CAs decide for themselves (README "IP-address certificates").
pub(super) fn check_ip_profile(directory: &str, profile: Option<&str>) -> Result<(), String> {
    let letsencrypt = [
        instant_acme::LetsEncrypt::Production.url(),
        instant_acme::LetsEncrypt::Staging.url(),
    ]
    .contains(&directory);
    if letsencrypt && profile != Some("shortlived") {
        return Err(format!(
            "Let's Encrypt issues certificates for IP addresses only with the \"shortlived\" profile (got {}): set profile = \"shortlived\"",
            profile.map_or("none".to_owned(), |p| format!("{p:?}"))
        ));
    }
    Ok(())
}

fn build_fleet(
    invalid: &Invalid<'_>,
    base: &Path,
    raw: RawFleet,
) -> Result<Option<FleetConfig>, ConfigError> {
    if *raw.backend.get_ref() == RawFleetBackend::Local {
        return Ok(None);
    }
    let backend_span = raw.backend.span();
    if raw.endpoints.is_empty() {
        return Err(invalid(
            backend_span,
            "fleet.endpoints".into(),
            "backend = \"etcd\" needs at least one endpoint, e.g. [\"http://127.0.0.1:2379\"]"
                .into(),
        ));
    }
    let tls_files = raw.tls_ca_file.is_some() || raw.tls_cert_file.is_some();
    let mut endpoints = Vec::new();
    for (i, e) in raw.endpoints.into_iter().enumerate() {
        let url = e.get_ref().trim_end_matches('/');
        let https = url.starts_with("https://");
        let hostport = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        match hostport {
            Some(hp) if !hp.is_empty() && !hp.contains('/') => {}
            _ => {
                return Err(invalid(
                    e.span(),
                    format!("fleet.endpoints[{i}]"),
                    format!(
                        "expected \"http://host:port\" or \"https://host:port\", got {:?}",
                        e.get_ref()
                    ),
                ))
            }
        }
        // etcd-client only applies TLS settings to https:// endpoints and refuses a mix.
        if tls_files && !https {
            return Err(invalid(
                e.span(),
                format!("fleet.endpoints[{i}]"),
                "tls_ca_file / tls_cert_file are set: every endpoint must be https://".into(),
            ));
        }
        // tonic is built without a platform root store: the CA must be named.
        if https && raw.tls_ca_file.is_none() {
            return Err(invalid(
                e.span(),
                format!("fleet.endpoints[{i}]"),
                "an https:// endpoint needs tls_ca_file (the PEM roots of the etcd servers)".into(),
            ));
        }
        endpoints.push(url.to_owned());
    }
    let prefix = raw.prefix.get_ref().trim_end_matches('/').to_owned();
    if !prefix.starts_with('/') || prefix.len() < 2 || prefix.contains("//") {
        return Err(invalid(
            raw.prefix.span(),
            "fleet.prefix".into(),
            format!(
                "expected a key prefix like \"/dcv-proxy\", got {:?}",
                raw.prefix.get_ref()
            ),
        ));
    }
    let (node_id, node_span) = match raw.node_id {
        Some(id) => (id.get_ref().clone(), id.span()),
        None => (hostname().unwrap_or_default(), backend_span.clone()),
    };
    let id_ok = !node_id.is_empty()
        && node_id.len() <= 64
        && node_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !id_ok {
        return Err(invalid(
            node_span,
            "fleet.node_id".into(),
            format!("{node_id:?} is not a node id (1-64 of A-Z a-z 0-9 . - _); set fleet.node_id"),
        ));
    }
    let Some(key_file) = raw.key_file else {
        return Err(invalid(
            backend_span,
            "fleet.key_file".into(),
            "backend = \"etcd\" needs key_file: the fleet key that seals private keys in etcd (make one with `head -c 32 /dev/urandom | base64 > fleet.key`)".into(),
        ));
    };
    let client = match (raw.tls_cert_file, raw.tls_key_file) {
        (None, None) => None,
        (Some(c), Some(k)) => Some((base.join(c), base.join(k))),
        _ => {
            return Err(invalid(
                backend_span,
                "fleet.tls_cert_file".into(),
                "tls_cert_file and tls_key_file go together".into(),
            ))
        }
    };
    let tls = (raw.tls_ca_file.is_some() || client.is_some()).then(|| EtcdTls {
        ca_file: raw.tls_ca_file.map(|p| base.join(p)),
        client,
    });
    let password = match (raw.password, raw.password_file) {
        (Some(p), None) => Some(p),
        (None, Some(file)) => {
            let path = base.join(file);
            let text = read_small(&path).map_err(|e| {
                invalid(
                    backend_span.clone(),
                    "fleet.password_file".into(),
                    format!("{}: {e}", path.display()),
                )
            })?;
            Some(text.trim_end_matches(['\n', '\r']).to_owned())
        }
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(invalid(
                backend_span,
                "fleet.password".into(),
                "give password or password_file, not both".into(),
            ))
        }
    };
    let user = match (raw.username, password) {
        (None, None) => None,
        (Some(u), Some(p)) => Some((u, p)),
        _ => {
            return Err(invalid(
                backend_span,
                "fleet.username".into(),
                "username and password (or password_file) go together".into(),
            ))
        }
    };
    let lease_span = raw.lease_ttl.span();
    let lease_ttl = raw.lease_ttl.into_inner().0 .0;
    // etcd grants at least 2 s whatever is asked; keep-alives are sent at a third of the TTL.
    if lease_ttl < Duration::from_secs(2) || lease_ttl > Duration::from_secs(3600) {
        return Err(invalid(
            lease_span,
            "fleet.lease_ttl".into(),
            format!("{lease_ttl:?} is out of range (2s to 1h)"),
        ));
    }
    Ok(Some(FleetConfig {
        endpoints,
        prefix,
        node_id,
        public_addresses: raw.public_addresses.into_iter().map(|a| a.0).collect(),
        key_file: base.join(key_file),
        tls,
        user,
        lease_ttl,
        request_timeout: raw.request_timeout.0 .0,
    }))
}

/// The machine's host name (the default node id), without calling into libc. The systemd unit
/// hides `/proc/sys` (`ProcSubset=pid`), hence `/etc/hostname` next.
fn hostname() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let name = text.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// Reads a small text file (a password): at most 4 KiB, so a wrong path (a device, a log)
/// cannot make the configuration load read without end.
fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(4096)
        .read_to_string(&mut text)?;
    Ok(text)
}

impl Default for RawHttp {
    fn default() -> Self {
        Self {
            listen: default_http_listen(),
            redirect_to_https: false,
            redirect_status: default_redirect_status(),
            redirect_port: None,
        }
    }
}

impl Default for RawHttps {
    fn default() -> Self {
        Self {
            listen: default_https_listen(),
            tls13_tickets: default_tls13_tickets(),
        }
    }
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            token_file: None,
            max_body_bytes: default_max_body(),
            hosts: Vec::new(),
        }
    }
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            threads: default_threads(),
            head_timeout: default_head_timeout(),
            grace_period: default_grace(),
            log_level: default_log_level(),
        }
    }
}

impl Default for RawAcme {
    fn default() -> Self {
        Self {
            directory: None,
            contact: None,
            terms_agreed: false,
            eab_key_id: None,
            eab_hmac_key: None,
            ca_bundle: None,
            key_type: RawKeyType::default(),
            profile: None,
            ca: Vec::new(),
            fallback_after: default_fallback_after(),
            stateless_http01: false,
            retry_schedule: default_retry_schedule(),
            retry_min: None,
            retry_max: None,
            max_new_orders: default_max_new_orders(),
            new_orders_window: default_new_orders_window(),
            self_check: RawSelfCheck::default(),
            self_check_timeout: default_self_check_timeout(),
            order_timeout: default_order_timeout(),
            check_interval: default_check_interval(),
            request_timeout: default_request_timeout(),
        }
    }
}

impl Default for RawFleet {
    fn default() -> Self {
        Self {
            backend: default_fleet_backend(),
            endpoints: Vec::new(),
            prefix: default_fleet_prefix(),
            node_id: None,
            public_addresses: Vec::new(),
            key_file: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            username: None,
            password: None,
            password_file: None,
            lease_ttl: default_lease_ttl(),
            request_timeout: default_fleet_request_timeout(),
        }
    }
}

impl Default for RawProxy {
    fn default() -> Self {
        Self {
            default_origin: None,
            connect_timeout: default_connect_timeout(),
            read_timeout: default_read_timeout(),
            fast_path: true,
        }
    }
}

fn default_fleet_backend() -> Spanned<RawFleetBackend> {
    Spanned::new(0..0, RawFleetBackend::Local)
}
fn default_fleet_prefix() -> Spanned<String> {
    Spanned::new(0..0, "/dcv-proxy".into())
}
fn default_lease_ttl() -> Spanned<Parsed<HumanDuration>> {
    Spanned::new(0..0, Parsed(HumanDuration(Duration::from_secs(10))))
}
fn default_fleet_request_timeout() -> Parsed<HumanDuration> {
    Parsed(HumanDuration(Duration::from_secs(5)))
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/dcv-proxy")
}
fn default_http_listen() -> Vec<Parsed<SocketAddr>> {
    vec![Parsed(SocketAddr::from(([0, 0, 0, 0], 80)))]
}
fn default_https_listen() -> Vec<Parsed<SocketAddr>> {
    vec![Parsed(SocketAddr::from(([0, 0, 0, 0], 443)))]
}
fn default_tls13_tickets() -> Spanned<u8> {
    Spanned::new(0..0, 1)
}
fn default_redirect_status() -> Spanned<u16> {
    Spanned::new(0..0, 301)
}
fn default_admin_listen() -> Parsed<SocketAddr> {
    Parsed(SocketAddr::from(([127, 0, 0, 1], 9180)))
}
fn default_max_body() -> usize {
    1 << 20
}
fn default_threads() -> Spanned<usize> {
    Spanned::new(0..0, 1)
}
fn default_grace() -> Parsed<HumanDuration> {
    Parsed(HumanDuration(Duration::from_secs(30)))
}
fn default_head_timeout() -> Spanned<Parsed<HumanDuration>> {
    Spanned::new(0..0, Parsed(HumanDuration(Duration::from_secs(60))))
}
fn default_log_level() -> String {
    "info".into()
}
fn default_connect_timeout() -> Parsed<HumanDuration> {
    Parsed(HumanDuration(Duration::from_secs(5)))
}
fn default_true() -> bool {
    true
}
fn default_false() -> Spanned<bool> {
    Spanned::new(0..0, false)
}

fn default_read_timeout() -> Parsed<HumanDuration> {
    Parsed(HumanDuration(Duration::from_secs(60)))
}
fn default_directory() -> Spanned<String> {
    Spanned::new(0..0, "letsencrypt".into())
}
/// Let's Encrypt's advice for a failed order: again after 1 minute, 10 minutes, 100 minutes,
/// then daily ("Integration Guide", retrying failures).
fn default_retry_schedule() -> Spanned<Vec<Parsed<HumanDuration>>> {
    let d = |secs| Parsed(HumanDuration(Duration::from_secs(secs)));
    Spanned::new(0..0, vec![d(60), d(600), d(6000), d(86_400)])
}
/// Let's Encrypt's limit of new orders per account: 300 per 3 hours.
fn default_max_new_orders() -> u32 {
    300
}
fn default_new_orders_window() -> Parsed<HumanDuration> {
    Parsed(HumanDuration(Duration::from_secs(3 * 3600)))
}
/// How long a CA may be out (unreachable, answering 5xx) before the next CA is asked.
fn default_fallback_after() -> Parsed<HumanDuration> {
    Parsed(HumanDuration(Duration::from_secs(3600)))
}
fn default_self_check_timeout() -> Parsed<HumanDuration> {
    Parsed(HumanDuration(Duration::from_secs(60)))
}
fn default_order_timeout() -> Parsed<HumanDuration> {
    Parsed(HumanDuration(Duration::from_secs(300)))
}
fn default_check_interval() -> Parsed<HumanDuration> {
    Parsed(HumanDuration(Duration::from_secs(3600)))
}
fn default_request_timeout() -> Parsed<HumanDuration> {
    Parsed(HumanDuration(Duration::from_secs(30)))
}
