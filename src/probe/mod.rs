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
//! 5. registered pki-validation files on the apex and on www, and their age (H7–H9);
//! 6. in a fleet, the token and the files at every live member's public addresses ([`fleet`]:
//!    H6, H1 at a member).
//!
//! Every stage is bounded by `probe.timeout` per exchange and the whole by `probe.deadline`.

mod alpn_check;
mod caa;
mod delegation;
// The catalogue moved to `crate::catalogue`; `super::causes::Cause` keeps working for the checks.
pub use crate::catalogue as causes;
mod dns;
mod dnssec;
mod fleet;
mod gate;
mod http;
mod lint;
mod metrics;
mod node;
mod node_error;
mod persist;
mod registry;
mod report;
mod service;
mod txt;
mod zone;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use futures_util::future::join_all;
use hickory_resolver::proto::rr::RecordType;
use tokio::time::Instant;

pub use crate::catalogue::Cause;
pub use fleet::{Fleet, FleetMember, Members};
pub use gate::{gate, gate_dns01, gate_tls_alpn, GateFailure};
pub use node::RegisteredFile;
pub use node::{AdminNode, LocalNode, Node};
pub use node_error::NodeError;
pub use registry::TxtRegistry;
pub use report::{json_document, Check, CheckKind, Report, Status};
pub use service::{ProbeRunner, ProbeService};

use crate::config::{DnsName, ProbeConfig};
use dns::{Dns, DnsSetupError, Findings, Resolution};
use http::{Expected, Fetched, Fetcher, HttpSetupError, Url};

/// Why a [`Prober`] could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The resolvers could not be set up.
    #[error(transparent)]
    Dns(#[from] DnsSetupError),
    /// The HTTP client could not be set up.
    #[error(transparent)]
    Http(#[from] HttpSetupError),
    /// The DNSSEC trust anchor could not be read.
    #[error("probe.trust_anchor: {0}")]
    TrustAnchor(String),
}

/// Probes names of one node.
pub struct Prober {
    config: ProbeConfig,
    dns: Dns,
    /// The root keys the DNSSEC check validates from (D12).
    anchors: Arc<hickory_resolver::proto::dnssec::TrustAnchors>,
    fetcher: Fetcher,
    node: Arc<dyn Node>,
    /// Where the fleet's members come from; `None` (or no fleet) probes this node alone.
    members: Option<Arc<dyn Members>>,
}

/// What the probe knows of the fleet for one run.
enum FleetView {
    /// No fleet: nothing more to ask, the probe is what it is for a node alone.
    Alone,
    /// In a fleet whose only live member is this node (its id).
    Only(String),
    /// The members could not be listed (why).
    Unknown(String),
    /// Members to ask besides the addresses DNS gives.
    Members(Fleet),
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
        let anchors = dnssec::trust_anchors(config.trust_anchor.as_deref())
            .map_err(ProbeError::TrustAnchor)?;
        Ok(Self {
            config,
            dns,
            anchors,
            fetcher,
            node,
            members: None,
        })
    }

    /// Also asks every live member of the fleet `members` describes (H6). Without it, or
    /// while the node runs alone, the probe looks at what DNS gives only.
    pub fn with_members(mut self, members: Arc<dyn Members>) -> Self {
        self.members = Some(members);
        self
    }

    /// A prober for the same node with other settings (a configuration reload); the fleet
    /// members it asks stay the same.
    pub fn with_config(&self, config: ProbeConfig) -> Result<Self, ProbeError> {
        let mut prober = Self::new(config, self.node.clone())?;
        prober.members = self.members.clone();
        Ok(prober)
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

    /// Runs a probe's `work` until `probe.deadline` from `clock`; past it, the check that says
    /// the probe was cut short (the checks `work` recorded so far stand).
    async fn within_deadline(
        &self,
        clock: Instant,
        work: impl std::future::Future<Output = ()>,
    ) -> Option<Check> {
        tokio::time::timeout_at(clock + self.config.deadline, work)
            .await
            .is_err()
            .then(|| {
                Check::error(
                    CheckKind::Probe,
                    "",
                    format!(
                        "the probe did not finish within probe.deadline ({:?}); the checks above are those that did",
                        self.config.deadline
                    ),
                )
            })
    }

    async fn run(&self, raw: &str, scope: Scope<'_>) -> Report {
        let started = SystemTime::now();
        let clock = Instant::now();
        let mut checks = Vec::new();
        let (lints, subject) = lint::lint(raw, &self.config.sensitive_words, self.method_for(raw));
        if matches!(scope, Scope::Full) || subject.is_none() {
            checks.extend(lints);
        }
        if let Some(subject) = subject {
            let mut planted = None;
            let work = async {
                if subject.wildcard {
                    // DNS-01 only: no address is fetched from (README "Verdicts").
                    self.wildcard_network(&subject.name, &mut checks).await
                } else {
                    self.network(&subject.name, &scope, &mut planted, &mut checks)
                        .await
                }
            };
            let cut_short = self.within_deadline(clock, work).await;
            checks.extend(cut_short);
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
        // The gate of an HTTP-01 challenge is judged as HTTP-01, whatever the configured method
        // (CAA `validationmethods`, RFC 8657 §4).
        let http01;
        let caa_config = match scope {
            Scope::Token { .. } if self.config.validation_method != "http-01" => {
                let mut config = self.config.clone();
                config.validation_method = "http-01".to_owned();
                http01 = config;
                &http01
            }
            _ => &self.config,
        };
        // CAA, DNSSEC and the fleet's members do not depend on the addresses: all at once.
        let mut address_checks = Vec::new();
        let (findings, caa, dnssec, fleet) = tokio::join!(
            dns::check_addresses(&self.dns, name, &self.config, &mut address_checks),
            caa::check(&self.dns, name, false, caa_config),
            dnssec::check(&self.dns, name.as_str(), RecordType::A, &self.anchors),
            self.fleet_view(),
        );
        checks.extend(address_checks);
        checks.push(dnssec);
        checks.extend(caa);
        match scope {
            Scope::Full => {
                self.txt_stage(name, checks).await;
                self.dns_validation_stage(name, false, checks).await;
                let token = random_b64(32);
                let key_authorization = format!("{token}.{}", random_b64(32));
                let anyone_to_ask =
                    !findings.addresses.is_empty() || matches!(fleet, FleetView::Members(_));
                if anyone_to_ask {
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
                checks.extend(
                    self.http_stage(name, &findings, &fleet, &token, &key_authorization, true)
                        .await,
                );
                self.pki_stage(name, &findings, &fleet, checks).await;
            }
            Scope::Token {
                token,
                key_authorization,
            } => {
                checks.extend(
                    self.http_stage(name, &findings, &fleet, token, key_authorization, false)
                        .await,
                );
            }
        }
    }

    /// The validation method `raw` is judged by: a node that answers validation zones
    /// (`[dns]`) validates wildcards over DNS-01, whatever `probe.validation_method` says of
    /// its other names (RFC 8555 §7.1.3: wildcards by DNS only).
    fn method_for(&self, raw: &str) -> &str {
        if self.config.dns.is_some() && raw.starts_with("*.") {
            "dns-01"
        } else {
            &self.config.validation_method
        }
    }

    /// The checks of `*.name` (DNS-01): CAA with `issuewild` (RFC 8659 §4.3), DNSSEC, and the
    /// expected `_acme-challenge` TXT records.
    async fn wildcard_network(&self, name: &DnsName, checks: &mut Vec<Check>) {
        let challenge = format!("_acme-challenge.{name}");
        // CAA `validationmethods` (RFC 8657 §4) is judged against the method used: DNS-01.
        let mut config = self.config.clone();
        config.validation_method = "dns-01".to_owned();
        let (caa, dnssec) = tokio::join!(
            caa::check(&self.dns, name, true, &config),
            dnssec::check(&self.dns, &challenge, RecordType::TXT, &self.anchors),
        );
        checks.push(dnssec);
        checks.extend(caa);
        self.txt_stage(name, checks).await;
        self.dns_validation_stage(name, true, checks).await;
    }

    /// The fleet to ask for this run. The members are read once per run: one that joins during
    /// the run is asked next time.
    async fn fleet_view(&self) -> FleetView {
        let Some(members) = &self.members else {
            return FleetView::Alone;
        };
        match members.fleet().await {
            Ok(Some(fleet)) if fleet.has_others() => FleetView::Members(fleet),
            Ok(Some(fleet)) => FleetView::Only(fleet.node_id),
            Ok(None) => FleetView::Alone,
            Err(e) => FleetView::Unknown(e.to_string()),
        }
    }

    async fn txt_stage(&self, name: &DnsName, checks: &mut Vec<Check>) {
        let mut expected = self.config.txt.clone();
        match self.node.expected_txt().await {
            Ok(registered) => expected.extend(registered),
            Err(e) => checks.push(Check::error(
                CheckKind::DnsTxt,
                "",
                format!("cannot read the TXT records registered with the node: {e}"),
            )),
        }
        checks.extend(txt::check(&self.dns, name, &expected).await);
    }

    /// TCP on the HTTP port of every address, then the token over HTTP, judged the way
    /// Boulder validates HTTP-01 (`http::ca_tolerates`: FAIL only where the CA would fail); in
    /// full, the certificate and the token over HTTPS, and TLS-ALPN-01 when that is the
    /// validation method; in a fleet, the token at every member too.
    ///
    /// What a check may fail depends on the validation method (`probe.validation_method` in
    /// full; HTTP-01 for a token, the gate's case): HTTP-01 is fetched from port 80 only (RFC
    /// 8555 §8.3), TLS-ALPN-01 is a handshake on port 443 only (RFC 8737 §3), DNS-01 touches
    /// neither. A port the CA does not use for the method is reported, as a warning at most.
    async fn http_stage(
        &self,
        name: &DnsName,
        findings: &Findings,
        fleet: &FleetView,
        token: &str,
        key_authorization: &str,
        full: bool,
    ) -> Vec<Check> {
        let path = format!("/.well-known/acme-challenge/{token}");
        let expected = Expected::Body(key_authorization.as_bytes());
        let method = if full {
            self.config.validation_method.as_str()
        } else {
            "http-01"
        };
        // In a fleet the token may still be on its way to the node DNS points at, or to a
        // member: a miss is asked again until then.
        let settle = settle_until(fleet);
        let members = async {
            match fleet {
                FleetView::Alone => Vec::new(),
                FleetView::Only(id) => vec![Check::skip(
                    CheckKind::FleetToken,
                    "",
                    format!("{id} is the only live member of the fleet"),
                )],
                FleetView::Unknown(e) => vec![Check::error(
                    CheckKind::FleetToken,
                    "",
                    format!("cannot list the fleet's members: {e}"),
                )],
                FleetView::Members(fleet) => {
                    self.fleet_checks(CheckKind::FleetToken, name, &path, expected, fleet, settle)
                        .await
                }
            }
        };
        // TLS-ALPN-01: the probe publishes no challenge certificate, so it judges one only
        // while an order has one pending (the gate, `probe_tls_alpn`, checks it with the key
        // authorization).
        let alpn = async {
            if full && method == "tls-alpn-01" {
                self.tls_alpn_checks(name, &findings.addresses, None).await
            } else {
                Vec::new()
            }
        };
        let (mut checks, members, alpn) = tokio::join!(
            self.address_checks(name, findings, &path, expected, full, settle),
            members,
            alpn
        );
        checks.extend(alpn);
        match http::port_unused(method, false) {
            Some(why) => checks.extend(members.into_iter().map(|c| http::tolerate(c, why))),
            None => checks.extend(members),
        }
        checks
    }

    /// The token at every address DNS gives: TCP and the token on the HTTP port, each address
    /// taken as the one the CA may pick first (Boulder `processHTTPValidation`: the first AAAA
    /// address, the first A address after a dial error only), and in full the certificate and
    /// the token over HTTPS.
    async fn address_checks(
        &self,
        name: &DnsName,
        findings: &Findings,
        path: &str,
        expected: Expected<'_>,
        full: bool,
        settle: Instant,
    ) -> Vec<Check> {
        if findings.addresses.is_empty() {
            return vec![Check::skip(
                CheckKind::TcpConnect,
                "",
                "no address to connect to",
            )];
        }
        let method = if full {
            self.config.validation_method.as_str()
        } else {
            "http-01"
        };
        let (http_port, https_port) = (self.config.http_port, self.config.https_port);
        let url = self.fetcher.url(false, name, path);
        let port80 = join_all(findings.addresses.iter().map(|&ip| {
            let url = url.clone();
            async move {
                let connect = self.fetcher.connect_check(ip).await;
                if connect.status != Status::Pass {
                    return (ip, connect, None);
                }
                let fetched = self.fetch_settled(url, ip, expected, settle).await;
                let check = http::judge(
                    CheckKind::HttpToken,
                    &SocketAddr::new(ip, http_port).to_string(),
                    &fetched,
                    expected,
                    Cause::H2,
                );
                (ip, connect, Some((fetched, check)))
            }
        }))
        .await;
        let attempts: Vec<(IpAddr, http::Attempt)> = port80
            .iter()
            .map(|(ip, _, token)| match token {
                None => (*ip, http::Attempt::FallsBack),
                Some((fetched, check)) => (*ip, http::attempt_of(fetched, check)),
            })
            .collect();
        let v4: Vec<IpAddr> = findings
            .addresses
            .iter()
            .copied()
            .filter(IpAddr::is_ipv4)
            .collect();
        // After a dial error on the first request, Boulder's retry on the first A address is
        // that address's own attempt.
        let a_validates = !v4.is_empty()
            && attempts
                .iter()
                .filter(|(ip, _)| ip.is_ipv4())
                .all(|(_, a)| *a == http::Attempt::Validates);
        let unused80 = http::port_unused(method, false);
        let mut connects = Vec::new();
        let mut tokens = Vec::new();
        let mut http_ok = Vec::new();
        for (ip, connect, token) in port80 {
            let attempt = match &token {
                None => http::Attempt::FallsBack,
                Some((fetched, check)) => http::attempt_of(fetched, check),
            };
            let fallback_validates = match &token {
                // A dial error further down the redirects: Boulder retries the whole
                // validation on the first A address, with the records and the redirect count
                // of this attempt (`processHTTPValidation`), so the retry is asked the same way.
                Some((fetched, _))
                    if ip.is_ipv6() && fetched.dial_error().is_some_and(|hop| hop > 0) =>
                {
                    let retries = join_all(v4.iter().map(|&a| {
                        self.fetcher.fetch_with(
                            url.clone(),
                            a,
                            self.dns.primary(),
                            expected.body_limit(),
                            fetched.trail.clone(),
                        )
                    }))
                    .await;
                    !v4.is_empty()
                        && retries.iter().all(|retry| {
                            let check =
                                http::judge(CheckKind::HttpToken, "", retry, expected, Cause::H2);
                            matches!(check.status, Status::Pass | Status::Warn)
                        })
                }
                _ => a_validates,
            };
            let why = http::ca_tolerates(ip, attempt, &attempts, fallback_validates);
            let judged = |check: Check| {
                let check = match &why {
                    Some(why) => http::tolerate(check, why),
                    None => check,
                };
                match unused80 {
                    Some(why) => http::tolerate(check, why),
                    None => check,
                }
            };
            connects.push(judged(connect));
            if let Some((_, check)) = token {
                http_ok.push((ip, check.status == Status::Pass));
                tokens.push(judged(check));
            }
        }
        let mut checks = connects;
        checks.extend(tokens);
        if full && https_port != http_port {
            // The HTTPS port as a site's visitors see it. HTTP-01 never fetches from it first
            // and DNS-01 never connects, so nothing there fails those validations (a redirect
            // to HTTPS is followed, and judged, by the token check above); for TLS-ALPN-01 the
            // port's connectivity is judged by `tls_alpn_checks`.
            let why = http::port_unused(method, true).unwrap_or(
                "tolerated: for TLS-ALPN-01 the CA only makes the acme-tls/1 handshake on this port (RFC 8737 §3)",
            );
            let alpn = method == "tls-alpn-01";
            let http_ok = &http_ok;
            let per_address = findings.addresses.iter().map(|&ip| async move {
                let mut out = Vec::new();
                let (connect, certificate) = self.fetcher.https_checks(ip, name).await;
                if !alpn {
                    out.push(http::tolerate(connect, why));
                }
                if let Some(certificate) = certificate {
                    out.push(http::tolerate(certificate, why));
                    let url = self.fetcher.url(true, name, path);
                    let fetched = self.fetch_settled(url, ip, expected, settle).await;
                    let found_over_http = http_ok.iter().any(|(a, ok)| *a == ip && *ok);
                    let check = http::judge(
                        CheckKind::HttpsToken,
                        &SocketAddr::new(ip, https_port).to_string(),
                        &fetched,
                        expected,
                        // Found over HTTP but not over HTTPS: two configurations (H5).
                        if found_over_http {
                            Cause::H5
                        } else {
                            Cause::H2
                        },
                    );
                    out.push(http::tolerate(check, why));
                }
                out
            });
            checks.extend(join_all(per_address).await.into_iter().flatten());
        }
        checks
    }

    /// H6: `path` on `name` at every public address of every live member, on its HTTP port,
    /// with the `Host` the CA sends; a member without it while others have it is named. Each
    /// check's target is the member (`node-4 at 192.0.2.4:80`), after the file's path for a
    /// validation file.
    async fn fleet_checks(
        &self,
        kind: CheckKind,
        name: &DnsName,
        path: &str,
        expected: Expected<'_>,
        fleet: &Fleet,
        settle: Instant,
    ) -> Vec<Check> {
        let (targets, unaddressed) = fleet.targets(self.config.http_port);
        let asked = targets.into_iter().map(|(member, addr)| async move {
            let url = Url {
                https: false,
                host: name.as_str().to_owned(),
                port: addr.port(),
                path: path.to_owned(),
            };
            let fetched = self.fetch_settled(url, addr.ip(), expected, settle).await;
            let target = match kind {
                CheckKind::FleetPkiFile => {
                    format!("{path} on {}", fleet::target(&member.node_id, addr))
                }
                _ => fleet::target(&member.node_id, addr),
            };
            let check = http::judge(kind, &target, &fetched, expected, Cause::H2);
            (member.node_id.as_str(), check)
        });
        let mut checks = fleet::blame(join_all(asked).await, fleet::PROPAGATION_WAIT);
        checks.extend(unaddressed.into_iter().map(|id| {
            Check::skip(
                kind,
                id,
                "published no public address (fleet.public_addresses): cannot be asked",
            )
        }));
        checks
    }

    /// GETs `url` from `ip`, asking again while the answer is a miss a change on its way would
    /// explain (404, other content), until `settle`; alone, `settle` is now: one fetch.
    async fn fetch_settled(
        &self,
        url: Url,
        ip: IpAddr,
        expected: Expected<'_>,
        settle: Instant,
    ) -> Fetched {
        let mut pause = Duration::from_millis(20);
        loop {
            // At most 128 bytes of a key authorization's body, as Boulder reads
            // (`maxResponseSize`); a first attempt, with a trail of its own.
            let fetched = self
                .fetcher
                .fetch_with(
                    url.clone(),
                    ip,
                    self.dns.primary(),
                    expected.body_limit(),
                    http::Trail::default(),
                )
                .await;
            if !http::missing(&fetched, expected) || Instant::now() + pause > settle {
                return fetched;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Registered pki-validation files: age (H9), content on the name (H2, H7) and on its
    /// apex/www sibling (H8), as CAs fetch both; in a fleet, at every member too (H6).
    async fn pki_stage(
        &self,
        name: &DnsName,
        findings: &Findings,
        fleet: &FleetView,
        checks: &mut Vec<Check>,
    ) {
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
        // A file registered a moment before the probe may still be on its way to a member.
        let settle = settle_until(fleet);
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
            if let FleetView::Members(fleet) = fleet {
                let expected = Expected::Sha256(&file.sha256);
                checks.extend(
                    self.fleet_checks(
                        CheckKind::FleetPkiFile,
                        name,
                        &target,
                        expected,
                        fleet,
                        settle,
                    )
                    .await,
                );
            }
        }
    }
}

/// Until when a miss is asked again: [`fleet::PROPAGATION_WAIT`] from now in a fleet, now
/// (one fetch, as always) for a node alone.
fn settle_until(fleet: &FleetView) -> Instant {
    match fleet {
        FleetView::Members(_) => Instant::now() + fleet::PROPAGATION_WAIT,
        _ => Instant::now(),
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
