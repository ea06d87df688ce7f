//! One ACME order, start to finish (RFC 8555 §7.4): challenges answered from the node's own
//! store, a self-check before the CA is asked, polling with backoff, a fresh key and CSR,
//! the chain checked like any upload, then written and swapped in. Whatever happens, the tokens
//! and TLS-ALPN-01 keys planted for the order are removed, and the certificate being served is
//! only replaced by one that passed every check.
//!
//! Every step is reported as it begins ([`ProgressSink`], and a log line at INFO), and the
//! polls are made here rather than by instant-acme's `poll_ready`, so that the status can say
//! which authorization the CA is validating, how many polls were made and when the next one is
//! — and so that a failed authorization's challenge `error`, where the CA puts the validation's
//! detail (RFC 8555 §7.1.4, §8.2), is read instead of only the order's summary.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use instant_acme::{
    Account, AuthorizationState, AuthorizationStatus, CertificateIdentifier, Identifier, NewOrder,
    OrderStatus,
};

use super::client::AcmeHttp;
use super::progress::{short_duration, Progress, ProgressSink, Step};
use super::selfcheck::SelfCheck;
use super::{keys, AcmeError, ProblemDoc};
use crate::config::{AcmeConfig, CaConfig, CertName, CertificateConfig, ChallengeType, DnsName};
use crate::state::certs::{CertSource, InstallError, ValidCert};
use crate::state::AcmeAnswer;
use crate::state::State;

/// How long a planted HTTP-01 answer lives if the order is abandoned mid-way (it is removed as
/// soon as the order ends; the lifetime only covers a crash).
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// First wait before polling the CA; multiplied by [`POLL_BACKOFF`] after each poll, up to
/// [`POLL_MAX`] (catalogue P9: never poll in a tight loop; a `Retry-After` wins when later).
const POLL_FIRST: Duration = Duration::from_millis(250);
const POLL_BACKOFF: f64 = 1.5;
const POLL_MAX: Duration = Duration::from_secs(10);

/// What an order needs.
pub(super) struct OrderContext<'a> {
    pub account: &'a Account,
    pub acme: &'a AcmeConfig,
    /// The CA `account` is at (its profile, its name in logs).
    pub ca: &'a CaConfig,
    pub state: &'a State,
    pub selfcheck: &'a dyn SelfCheck,
    /// The client under `account`, for the CA's `Retry-After` on polls.
    pub http: &'a AcmeHttp,
    /// Where each step is reported.
    pub progress: &'a dyn ProgressSink,
    /// Where the certificate goes once issued.
    pub target: Target,
}

/// Where an issued certificate goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// Into the certificate store: swapped in and served.
    Serve,
    /// Kept as the certificate's backup, checked like any other but never served
    /// ([`super::backup`]).
    Backup,
}

impl OrderContext<'_> {
    /// Reports `progress` and logs it at INFO: a long order is never silent.
    fn report(&self, cert: &CertificateConfig, progress: Progress) {
        tracing::info!(
            certificate = %cert.id,
            step = progress.step.as_str(),
            "{}",
            progress.line(SystemTime::now())
        );
        self.progress.report(progress);
    }
}

/// A certificate obtained and installed.
pub(super) struct Issued {
    /// The certificate as checked (and, for [`Target::Serve`], as published).
    pub cert: ValidCert,
    /// The profile the CA says the order has (the order object's `profile`); `None` when it
    /// names none — a CA without profiles, or one that ignored the request.
    pub profile: Option<String>,
}

/// Obtains the certificate described by `cert`, installs it and returns its entry.
pub(super) async fn issue(
    ctx: &OrderContext<'_>,
    cert: &CertificateConfig,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<Issued, AcmeError> {
    let mut planted = Planted::default();
    let result = run(ctx, cert, replaces, &mut planted).await;
    planted.remove(ctx.state).await;
    result
}

async fn run(
    ctx: &OrderContext<'_>,
    cert: &CertificateConfig,
    replaces: Option<CertificateIdentifier<'static>>,
    planted: &mut Planted,
) -> Result<Issued, AcmeError> {
    // RFC 8738 §3: an address is ordered as an `ip` identifier, never as a `dns` one.
    let identifiers: Vec<Identifier> = cert
        .names
        .iter()
        .map(|n| match n {
            CertName::Dns(n) => Identifier::Dns(n.to_string()),
            CertName::Ip(ip) => Identifier::Ip(*ip),
        })
        .collect();
    let mut new_order = NewOrder::new(&identifiers);
    if let Some(replaces) = replaces {
        new_order = new_order.replaces(replaces);
    }
    // On every order, renewals included (a renewal without it would quietly get the CA's
    // default lifetime).
    let asked = cert.profile_for(ctx.ca);
    if let Some(profile) = &asked {
        new_order = new_order.profile(profile);
    }
    // A hint left by an earlier request (an ARI answer, say) is not about this order.
    let _ = ctx.http.take_poll_hint();
    ctx.report(cert, Progress::new(Step::NewOrder, None, SystemTime::now()));
    let mut order = ctx.account.new_order(&new_order).await?;
    let profile = order.state().profile.clone();
    tracing::info!(certificate = %cert.id, ca = %ctx.ca.name, url = order.url(), profile = profile.as_deref().unwrap_or("-"), "order created");
    if asked.is_some() && profile != asked {
        tracing::warn!(
            certificate = %cert.id,
            ca = %ctx.ca.name,
            requested = asked.as_deref().unwrap_or("-"),
            received = profile.as_deref().unwrap_or("none"),
            "the CA did not apply the profile asked for: the certificate's lifetime may not be the intended one"
        );
    }

    answer_challenges(ctx, cert, &mut order, planted).await?;
    await_authorizations(ctx, cert, &mut order).await?;
    await_ready(ctx, cert, &mut order).await?;

    ctx.report(cert, Progress::new(Step::Finalize, None, SystemTime::now()));
    let key = keys::generate(ctx.acme.key_type)?;
    let csr = keys::csr(&cert.names, &key)?;
    order.finalize_csr(&csr).await?;
    await_issued(ctx, cert, &mut order).await?;

    ctx.report(cert, Progress::new(Step::Download, None, SystemTime::now()));
    let chain = order
        .certificate()
        .await?
        .ok_or_else(|| AcmeError::Transport("the order is valid but has no certificate".into()))?;
    ctx.report(cert, Progress::new(Step::Install, None, SystemTime::now()));
    let names: Vec<String> = cert.names.iter().map(CertName::text).collect();
    if ctx.target == Target::Backup {
        let valid = ctx
            .state
            .certs
            .check(chain.as_bytes(), key.serialize_pem().as_bytes(), &names)
            .map_err(|r| AcmeError::Refused(r.to_string()))?;
        super::backup::store(ctx.state, &cert.id, &ctx.ca.name, &valid).await?;
        return Ok(Issued {
            cert: valid,
            profile,
        });
    }
    match ctx
        .state
        .install_cert(
            &cert.id,
            chain.as_bytes(),
            key.serialize_pem().as_bytes(),
            &names,
            CertSource::Acme,
        )
        .await
    {
        Ok(entry) => Ok(Issued {
            cert: entry.cert.clone(),
            profile,
        }),
        Err(InstallError::Refused(r)) => Err(AcmeError::Refused(r.to_string())),
        Err(e) => Err(AcmeError::Storage(e.to_string())),
    }
}

/// For each authorization not already valid (RFC 8555 §7.1.4: not redone for this account):
/// publish the answer, check it the way the CA will, then tell the CA it is ready. The CA
/// validates them all at once; [`await_authorizations`] waits for the results.
async fn answer_challenges(
    ctx: &OrderContext<'_>,
    cert: &CertificateConfig,
    order: &mut instant_acme::Order,
    planted: &mut Planted,
) -> Result<(), AcmeError> {
    if cert.challenge == ChallengeType::Dns01 {
        publish_dns01(ctx, order, planted).await?;
    }
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        let wildcard = authz.identifier().wildcard;
        let (name, ip) = match authz.identifier().identifier.clone() {
            Identifier::Dns(name) => (name, None),
            Identifier::Ip(ip) => (ip.to_string(), Some(ip)),
            other => {
                return Err(AcmeError::Transport(format!(
                    "the CA sent an authorization for {other:?}, which was not ordered"
                )))
            }
        };
        match authz.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(match state_problem(&authz, &name) {
                    Some(doc) => AcmeError::Problem(doc),
                    None => AcmeError::Transport(format!("authorization for {name} is {other:?}")),
                })
            }
        }
        let wanted = match cert.challenge {
            ChallengeType::Http01 => instant_acme::ChallengeType::Http01,
            ChallengeType::TlsAlpn01 => instant_acme::ChallengeType::TlsAlpn01,
            ChallengeType::Dns01 => instant_acme::ChallengeType::Dns01,
        };
        let mut challenge = authz.challenge(wanted).ok_or_else(|| {
            AcmeError::Transport(format!(
                "the CA offers no {} challenge for {name}",
                cert.challenge.as_str()
            ))
        })?;
        let key_authorization = challenge.key_authorization();
        let key_authorization = key_authorization.as_str().to_owned();
        let token = challenge.token.clone();
        match cert.challenge {
            ChallengeType::Http01 => {
                let now = SystemTime::now();
                ctx.state
                    .put_token(
                        &token,
                        AcmeAnswer {
                            key_authorization: Bytes::from(key_authorization.clone()),
                            // Answer only for the identifier it was issued for.
                            identifier: Some(name.as_str().into()),
                            expires: Some(now + TOKEN_LIFETIME),
                            created: now,
                        },
                    )
                    .await
                    .map_err(|e| AcmeError::Storage(e.to_string()))?;
                planted.tokens.push(token.clone());
            }
            ChallengeType::TlsAlpn01 => {
                // Shared as the key authorization: every node of a fleet makes its own
                // challenge certificate, so whichever node the CA reaches answers (RFC 8737).
                // Stored under the identifier's text: for an address the certificate carries
                // it as an iPAddress SAN, and the handshake's SNI is its reverse-DNS name
                // (RFC 8738 §6), which the challenge store maps back.
                ctx.state
                    .put_alpn(&name, &key_authorization, TOKEN_LIFETIME)
                    .await
                    .map_err(|e| AcmeError::Storage(e.to_string()))?;
                planted.alpn.push(name.clone());
            }
            // Published for every authorization before the first self-check
            // (`publish_dns01`).
            ChallengeType::Dns01 => {}
        }
        let checked = match ip {
            Some(ip) => CertName::Ip(ip),
            None => {
                let dns_name: DnsName = name
                    .parse()
                    .map_err(|e: String| AcmeError::Transport(format!("{name}: {e}")))?;
                // RFC 8555 §7.1.4: a wildcard's authorization names the base domain with
                // `wildcard` set; the self-check is told (CAA `issuewild`, RFC 8659 §4.3).
                CertName::Dns(if wildcard {
                    DnsName::wildcard(&dns_name).map_err(AcmeError::Transport)?
                } else {
                    dns_name
                })
            }
        };
        let now = SystemTime::now();
        ctx.report(
            cert,
            Progress::new(Step::SelfCheck, Some(&name), now)
                .until(now + ctx.acme.self_check_timeout),
        );
        ctx.selfcheck
            .ready(&checked, cert.challenge, &token, &key_authorization)
            .await
            .map_err(|cause| AcmeError::SelfCheck {
                name: name.clone(),
                cause,
            })?;
        ctx.report(
            cert,
            Progress::new(Step::ChallengeReady, Some(&name), SystemTime::now()),
        );
        // The answer to this POST is the challenge; an `error` in it is about this name.
        challenge.set_ready().await.map_err(|e| match e {
            instant_acme::Error::Api(problem) => {
                AcmeError::Problem(ProblemDoc::for_challenge(&problem, &name))
            }
            other => AcmeError::from(other),
        })?;
    }
    Ok(())
}

/// DNS-01: the TXT value of every pending authorization goes into the shared challenge store
/// before any is checked or announced. A wildcard and its apex are validated at the same
/// `_acme-challenge` name (RFC 8555 §8.4), and a resolver that cached the RRset while it held
/// one value would give the CA that one only until the TTL runs out: the CA must see the
/// complete set from its first query on.
async fn publish_dns01(
    ctx: &OrderContext<'_>,
    order: &mut instant_acme::Order,
    planted: &mut Planted,
) -> Result<(), AcmeError> {
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        if authz.status != AuthorizationStatus::Pending {
            // Valid: nothing to do; anything else is reported by `answer_challenges`.
            continue;
        }
        let Identifier::Dns(name) = authz.identifier().identifier.clone() else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        let Some(challenge) = authz.challenge(instant_acme::ChallengeType::Dns01) else {
            return Err(AcmeError::Transport(format!(
                "the CA offers no dns-01 challenge for {name}"
            )));
        };
        let value = challenge.key_authorization().dns_value();
        let token = challenge.token.clone();
        ctx.state
            .put_dns01(&name, &token, &value, TOKEN_LIFETIME)
            .await
            .map_err(|e| AcmeError::Storage(e.to_string()))?;
        tracing::info!(name = %name, "DNS-01 TXT value published in the validation zones");
        planted.dns01.push((name, token));
    }
    Ok(())
}

/// Polls each authorization that is not valid yet until the CA has validated it. On the first
/// one that fails, looks once at the others (the CA validated them at the same time) and
/// returns the order's problem with every failed challenge's error as a subproblem.
async fn await_authorizations(
    ctx: &OrderContext<'_>,
    cert: &CertificateConfig,
    order: &mut instant_acme::Order,
) -> Result<(), AcmeError> {
    let deadline = Instant::now() + ctx.acme.order_timeout;
    let mut failed: Vec<ProblemDoc> = Vec::new();
    let mut without_problem: Vec<String> = Vec::new();
    {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            if authz.status == AuthorizationStatus::Valid {
                continue;
            }
            let name = authz.identifier().to_string();
            if !failed.is_empty() || !without_problem.is_empty() {
                // The order is invalid already (RFC 8555 §7.1.6); one look for this name's own
                // problem, no waiting.
                if let Ok(state) = authz.refresh().await {
                    if let Some(doc) = state_problem(state, &name) {
                        failed.push(doc);
                    }
                }
                continue;
            }
            let mut poller = Poller::new(
                ctx,
                cert,
                Step::PollingAuthorization,
                Some(name.clone()),
                deadline,
            );
            loop {
                poller.wait().await?;
                let state = authz.refresh().await?;
                poller.polled();
                match state.status {
                    AuthorizationStatus::Valid => {
                        tracing::info!(certificate = %cert.id, name = %name, polls = poller.attempt, "the CA validated the name");
                        break;
                    }
                    AuthorizationStatus::Pending => {}
                    other => {
                        tracing::info!(certificate = %cert.id, name = %name, status = ?other, "the CA did not validate the name");
                        match state_problem(state, &name) {
                            Some(doc) => failed.push(doc),
                            None => without_problem.push(format!("{name} ({other:?})")),
                        }
                        break;
                    }
                }
            }
        }
    }
    if failed.is_empty() && without_problem.is_empty() {
        return Ok(());
    }
    // Pebble and others also set the order's `error`; keep it as the top-level problem.
    let order_error = match order.refresh().await {
        Ok(state) => state.error.clone(),
        Err(_) => None,
    };
    match ProblemDoc::for_failed_order(order_error.as_ref(), failed) {
        Some(doc) => Err(AcmeError::Problem(doc)),
        None => Err(AcmeError::Transport(format!(
            "the CA did not validate {} and sent no problem document",
            without_problem.join(", ")
        ))),
    }
}

/// Every authorization is valid: waits for the order to be `ready` (usually at once).
async fn await_ready(
    ctx: &OrderContext<'_>,
    cert: &CertificateConfig,
    order: &mut instant_acme::Order,
) -> Result<(), AcmeError> {
    let deadline = Instant::now() + ctx.acme.order_timeout;
    let mut poller = Poller::new(ctx, cert, Step::PollingOrder, None, deadline);
    loop {
        let state = order.refresh().await?;
        poller.polled();
        if let Some(problem) = &state.error {
            return Err(AcmeError::Problem(ProblemDoc::from(problem)));
        }
        match state.status {
            OrderStatus::Ready => return Ok(()),
            OrderStatus::Pending | OrderStatus::Processing => {}
            other => {
                return Err(AcmeError::Transport(format!(
                    "the order became {other:?} before it was finalized, without a problem document"
                )))
            }
        }
        poller.wait().await?;
    }
}

/// The CSR is sent: waits while the order is `processing` until it is `valid`.
async fn await_issued(
    ctx: &OrderContext<'_>,
    cert: &CertificateConfig,
    order: &mut instant_acme::Order,
) -> Result<(), AcmeError> {
    let deadline = Instant::now() + ctx.acme.order_timeout;
    let mut poller = Poller::new(ctx, cert, Step::Finalize, None, deadline);
    loop {
        let state = order.state();
        if let Some(problem) = &state.error {
            return Err(AcmeError::Problem(ProblemDoc::from(problem)));
        }
        match state.status {
            OrderStatus::Valid => return Ok(()),
            OrderStatus::Processing | OrderStatus::Ready | OrderStatus::Pending => {}
            OrderStatus::Invalid => {
                return Err(AcmeError::Transport(
                    "the order became invalid after finalization, without a problem document"
                        .into(),
                ))
            }
        }
        poller.wait().await?;
        order.refresh().await?;
        poller.polled();
    }
}

/// The polls of one step: waits with backoff (or the CA's `Retry-After`, RFC 8555 §7.5.1,
/// when later), reporting before each wait how many polls were made and when the next one is.
struct Poller<'c, 'a> {
    ctx: &'c OrderContext<'a>,
    cert: &'c CertificateConfig,
    step: Step,
    name: Option<String>,
    delay: Duration,
    attempt: u32,
    deadline: Instant,
    since: SystemTime,
}

impl<'c, 'a> Poller<'c, 'a> {
    fn new(
        ctx: &'c OrderContext<'a>,
        cert: &'c CertificateConfig,
        step: Step,
        name: Option<String>,
        deadline: Instant,
    ) -> Self {
        Self {
            ctx,
            cert,
            step,
            name,
            delay: POLL_FIRST,
            attempt: 0,
            deadline,
            since: SystemTime::now(),
        }
    }

    async fn wait(&mut self) -> Result<(), AcmeError> {
        let now = SystemTime::now();
        let hint = self
            .ctx
            .http
            .take_poll_hint()
            .and_then(|at| at.duration_since(now).ok());
        let wait = hint.map_or(self.delay, |h| h.max(self.delay));
        if Instant::now() + wait > self.deadline {
            let what = match &self.name {
                Some(name) => format!("{name}: the CA did not validate it"),
                None => format!("the order did not get past {}", self.step),
            };
            return Err(AcmeError::Timeout(format!(
                "{what} within acme.order_timeout ({}; {} polls{})",
                short_duration(self.ctx.acme.order_timeout),
                self.attempt,
                match hint {
                    Some(h) => format!(", the CA asked to wait {}", short_duration(h)),
                    None => String::new(),
                }
            )));
        }
        let until = now + self.deadline.saturating_duration_since(Instant::now());
        self.ctx.report(
            self.cert,
            Progress::new(self.step, self.name.as_deref(), self.since)
                .polling(self.attempt, now + wait)
                .until(until),
        );
        tokio::time::sleep(wait).await;
        Ok(())
    }

    fn polled(&mut self) {
        self.attempt += 1;
        self.delay = self.delay.mul_f64(POLL_BACKOFF).min(POLL_MAX);
    }
}

/// The `error` of the authorization's failed challenge, about `name` (RFC 8555 §7.1.4).
fn state_problem(state: &AuthorizationState, name: &str) -> Option<ProblemDoc> {
    state
        .challenges
        .iter()
        .find_map(|c| c.error.as_ref())
        .map(|p| ProblemDoc::for_challenge(p, name))
}

/// Answers planted for one order, removed when it ends.
#[derive(Default)]
struct Planted {
    tokens: Vec<String>,
    alpn: Vec<String>,
    /// `(name, token)` of each DNS-01 TXT value.
    dns01: Vec<(String, String)>,
}

impl Planted {
    async fn remove(self, state: &State) {
        for token in self.tokens {
            if let Err(e) = state.remove_token(&token).await {
                tracing::warn!(%token, error = %e, "cannot remove an order's token; it expires on its own");
            }
        }
        for name in self.alpn {
            if let Err(e) = state.remove_alpn(&name).await {
                tracing::warn!(%name, error = %e, "cannot withdraw a TLS-ALPN-01 challenge; it expires on its own");
            }
        }
        for (name, token) in self.dns01 {
            if let Err(e) = state.remove_dns01(&name, &token).await {
                tracing::warn!(%name, error = %e, "cannot withdraw a DNS-01 TXT value; it expires on its own");
            }
        }
    }
}
