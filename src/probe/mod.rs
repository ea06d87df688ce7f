//! The self-probe: looks at a name the way a CA does before it validates, and names the cause
//! (an id of the catalogue, `validation-failures.md`) and the remedy of whatever would make
//! validation fail.
//!
//! The probe never calls the serving code: it publishes a probe token through the [`Node`]
//! (the state in-process, or the admin API from the command line) and fetches it over the
//! public path, resolving the name through the configured resolvers, exactly as the CA would.
//! Order of the checks, each stage using what the previous learnt:
//!
//! 1. lints on the name alone ([`lint`]: P1, P5, P6);
//! 2. addresses, per resolver and per authoritative server ([`dns`]: D1–D7, D11);
//! 3. CAA ([`caa`]: D3, D8) and expected TXT records ([`txt`]: D9, D10);
//! 4. TCP on the HTTP and HTTPS ports of every address, the token over HTTP and HTTPS, the
//!    certificate ([`http`]: H1–H5, H7, H10, C4–C6);
//! 5. registered pki-validation files on the apex and on www, and their age (H7–H9).
//!
//! Every stage is bounded by `probe.timeout` per exchange and the whole by `probe.deadline`.

pub mod acme_problem;
pub mod caa;
pub mod causes;
pub mod dns;
pub mod gate;
pub mod http;
pub mod lint;
pub mod metrics;
pub mod node;
pub mod registry;
pub mod report;
pub mod service;
pub mod txt;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use futures_util::future::join_all;
use tokio::time::Instant;

pub use causes::Cause;
pub use gate::{gate, GateFailure};
pub use node::{AdminNode, LocalNode, Node, NodeError};
pub use registry::TxtRegistry;
pub use report::{Check, CheckKind, Report, Status};

use crate::config::{DnsName, ProbeConfig};
use dns::{Dns, DnsSetupError, Findings, Resolution};
use http::{Expected, Fetcher, HttpSetupError};

/// Why a [`Prober`] could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The resolvers could not be set up.
    #[error(transparent)]
    Dns(#[from] DnsSetupError),
    /// The HTTP client could not be set up.
    #[error(transparent)]
    Http(#[from] HttpSetupError),
}

/// Probes names of one node.
pub struct Prober {
    config: ProbeConfig,
    dns: Dns,
    fetcher: Fetcher,
    node: Arc<dyn Node>,
}

/// What a probe looks at.
enum Scope<'a> {
    /// Everything, with a probe token of its own.
    Full,
    /// What the CA looks at for HTTP-01 with this token (the gate before answering a
    /// challenge): DNS, CAA, port 80 and the token.
    Token {
        token: &'a str,
        key_authorization: &'a str,
    },
}

impl Prober {
    pub fn new(config: ProbeConfig, node: Arc<dyn Node>) -> Result<Self, ProbeError> {
        let dns = Dns::from_config(&config)?;
        let fetcher = Fetcher::new(config.timeout, config.http_port, config.https_port)?;
        Ok(Self {
            config,
            dns,
            fetcher,
            node,
        })
    }

    /// A prober for the same node with other settings (a configuration reload).
    pub fn with_config(&self, config: ProbeConfig) -> Result<Self, ProbeError> {
        Self::new(config, self.node.clone())
    }

    pub fn config(&self) -> &ProbeConfig {
        &self.config
    }

    /// Every check for `name` as typed (a bad name is a P6 finding, not an error).
    pub async fn probe(&self, name: &str) -> Report {
        self.run(name, Scope::Full).await
    }

    /// The checks that decide an HTTP-01 validation of `name` with `token`, which the caller
    /// has already published with `key_authorization`.
    pub async fn probe_token(
        &self,
        name: &DnsName,
        token: &str,
        key_authorization: &str,
    ) -> Report {
        self.run(
            name.as_str(),
            Scope::Token {
                token,
                key_authorization,
            },
        )
        .await
    }

    async fn run(&self, raw: &str, scope: Scope<'_>) -> Report {
        let started = SystemTime::now();
        let clock = Instant::now();
        let mut checks = Vec::new();
        let (lints, name) = lint::lint(raw, &self.config.sensitive_words);
        if matches!(scope, Scope::Full) || name.is_none() {
            checks.extend(lints);
        }
        if let Some(name) = name {
            let mut planted = None;
            let work = self.network(&name, &scope, &mut planted, &mut checks);
            if tokio::time::timeout_at(clock + self.config.deadline, work)
                .await
                .is_err()
            {
                checks.push(Check::error(
                    CheckKind::Probe,
                    "",
                    format!(
                        "the probe did not finish within probe.deadline ({:?}); the checks above are those that did",
                        self.config.deadline
                    ),
                ));
            }
            // Also after a deadline: the token must not outlive the probe (its TTL is the
            // backstop).
            if let Some(token) = planted {
                let removal = self.node.remove_token(&token);
                match tokio::time::timeout(self.config.timeout, removal).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(%token, error = %e, "probe token not removed"),
                    Err(_) => tracing::warn!(%token, "probe token removal timed out"),
                }
            }
        }
        Report {
            name: raw.to_owned(),
            started,
            duration: clock.elapsed(),
            checks,
        }
    }

    async fn network(
        &self,
        name: &DnsName,
        scope: &Scope<'_>,
        planted: &mut Option<String>,
        checks: &mut Vec<Check>,
    ) {
        // CAA does not depend on the addresses: both at once.
        let mut address_checks = Vec::new();
        let (findings, caa) = tokio::join!(
            dns::check_addresses(&self.dns, name, &self.config, &mut address_checks),
            caa::check(&self.dns, name, &self.config),
        );
        checks.extend(address_checks);
        checks.push(caa);
        match scope {
            Scope::Full => {
                self.txt_stage(name, &findings, checks).await;
                let token = random_b64(32);
                let key_authorization = format!("{token}.{}", random_b64(32));
                if !findings.addresses.is_empty() {
                    // Long enough to outlive the probe, short enough not to linger after a crash.
                    let ttl = self.config.deadline + Duration::from_secs(60);
                    match self
                        .node
                        .put_token(&token, &key_authorization, name, ttl)
                        .await
                    {
                        Ok(()) => *planted = Some(token.clone()),
                        Err(e) => {
                            checks.push(Check::error(
                                CheckKind::Probe,
                                "",
                                format!("cannot publish the probe token: {e}"),
                            ));
                            return;
                        }
                    }
                }
                self.http_stage(name, &findings, &token, &key_authorization, true, checks)
                    .await;
                self.pki_stage(name, &findings, checks).await;
            }
            Scope::Token {
                token,
                key_authorization,
            } => {
                self.http_stage(name, &findings, token, key_authorization, false, checks)
                    .await;
            }
        }
    }

    async fn txt_stage(&self, name: &DnsName, findings: &Findings, checks: &mut Vec<Check>) {
        let mut expected = self.config.txt.clone();
        match self.node.expected_txt().await {
            Ok(registered) => expected.extend(registered),
            Err(e) => checks.push(Check::error(
                CheckKind::DnsTxt,
                "",
                format!("cannot read the TXT records registered with the node: {e}"),
            )),
        }
        checks.extend(txt::check(&self.dns, &findings.authoritative, name, &expected).await);
    }

    /// TCP on both ports of every address, then the token over HTTP (and, in full, the
    /// certificate and the token over HTTPS).
    async fn http_stage(
        &self,
        name: &DnsName,
        findings: &Findings,
        token: &str,
        key_authorization: &str,
        full: bool,
        checks: &mut Vec<Check>,
    ) {
        if findings.addresses.is_empty() {
            checks.push(Check::skip(
                CheckKind::TcpConnect,
                "",
                "no address to connect to",
            ));
            return;
        }
        let (http_port, https_port) = (self.config.http_port, self.config.https_port);
        let path = format!("/.well-known/acme-challenge/{token}");
        let primary = self.dns.primary();
        let per_address = findings.addresses.iter().map(|&ip| {
            let path = path.as_str();
            async move {
                let mut connects = Vec::new();
                let mut out = Vec::new();
                let connect = self.fetcher.connect_check(ip).await;
                let http_open = connect.status == Status::Pass;
                connects.push(connect);
                let mut http_ok = false;
                if http_open {
                    let url = self.fetcher.url(false, name, path);
                    let fetched = self.fetcher.fetch(url, ip, primary).await;
                    let check = http::judge(
                        CheckKind::HttpToken,
                        &SocketAddr::new(ip, http_port).to_string(),
                        &fetched,
                        Expected::Body(key_authorization.as_bytes()),
                        Cause::H2,
                    );
                    http_ok = check.status == Status::Pass;
                    out.push(check);
                }
                if full && https_port != http_port {
                    let (connect, certificate) = self.fetcher.https_checks(ip, name).await;
                    connects.push(connect);
                    if let Some(certificate) = certificate {
                        out.push(certificate);
                        let url = self.fetcher.url(true, name, path);
                        let fetched = self.fetcher.fetch(url, ip, primary).await;
                        out.push(http::judge(
                            CheckKind::HttpsToken,
                            &SocketAddr::new(ip, https_port).to_string(),
                            &fetched,
                            Expected::Body(key_authorization.as_bytes()),
                            // Found over HTTP but not over HTTPS: two configurations (H5).
                            if http_ok { Cause::H5 } else { Cause::H2 },
                        ));
                    }
                }
                (connects, out)
            }
        });
        let results = join_all(per_address).await;
        let (connects, rest): (Vec<_>, Vec<_>) = results.into_iter().unzip();
        checks.extend(connects.into_iter().flatten());
        checks.extend(rest.into_iter().flatten());
    }

    /// Registered pki-validation files: age (H9), content on the name (H2, H7) and on its
    /// apex/www sibling (H8), as CAs fetch both.
    async fn pki_stage(&self, name: &DnsName, findings: &Findings, checks: &mut Vec<Check>) {
        let files = match self.node.pki_files(name).await {
            Ok(files) => files,
            Err(e) => {
                checks.push(Check::error(
                    CheckKind::PkiFile,
                    "",
                    format!("cannot list the validation files registered with the node: {e}"),
                ));
                return;
            }
        };
        if files.is_empty() {
            checks.push(Check::skip(
                CheckKind::PkiFile,
                "",
                "no pki-validation file registered for this name",
            ));
            return;
        }
        let sibling = name.www_sibling();
        let sibling_addresses = Resolution::of(self.dns.primary(), sibling.as_str())
            .await
            .addresses();
        let now = SystemTime::now();
        for file in &files {
            let target = format!("/.well-known/pki-validation/{}", file.file);
            let age = now.duration_since(file.created).unwrap_or_default();
            let days = age.as_secs() / 86_400;
            checks.push(if age > self.config.max_file_age {
                Check::fail(
                    CheckKind::PkiAge,
                    &target,
                    Cause::H9,
                    format!(
                        "registered {days} days ago, more than probe.max_file_age ({})",
                        humantime::format_duration(self.config.max_file_age)
                    ),
                )
            } else {
                Check::pass(
                    CheckKind::PkiAge,
                    &target,
                    format!("registered {days} days ago"),
                )
            });
            for (host, addresses, miss) in [
                (name, &findings.addresses, Cause::H2),
                (&sibling, &sibling_addresses, Cause::H8),
            ] {
                let url = self.fetcher.url(false, host, &target);
                let Some(&ip) = addresses.first() else {
                    checks.push(Check::warn(
                        CheckKind::PkiFile,
                        url.to_string(),
                        Cause::H8,
                        format!("{host} does not resolve, and CAs check the apex and www"),
                    ));
                    continue;
                };
                let fetched = self
                    .fetcher
                    .fetch(url.clone(), ip, self.dns.primary())
                    .await;
                checks.push(http::judge(
                    CheckKind::PkiFile,
                    &format!("{url} at {ip}"),
                    &fetched,
                    Expected::Sha256(&file.sha256),
                    miss,
                ));
            }
        }
    }
}

/// `n` random bytes, base64url without padding: a token has 256 bits of entropy, as the CA's
/// (RFC 8555 §8.3 asks for at least 128).
fn random_b64(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The last report of every name probed by the running server.
#[derive(Default)]
pub struct ProbeResults {
    reports: std::sync::RwLock<BTreeMap<String, Report>>,
}

impl ProbeResults {
    pub fn insert(&self, report: Report) {
        self.reports
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(report.name.clone(), report);
    }

    pub fn get(&self, name: &str) -> Option<Report> {
        self.reports
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn all(&self) -> Vec<Report> {
        self.reports
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
