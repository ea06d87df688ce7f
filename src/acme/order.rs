//! One ACME order, start to finish (RFC 8555 §7.4): challenges answered from the node's own
//! store, a self-check before the CA is asked, polling with backoff, a fresh key and CSR,
//! the chain checked like any upload, then written and swapped in. Whatever happens, the tokens
//! and TLS-ALPN-01 keys planted for the order are removed, and the certificate being served is
//! only replaced by one that passed every check.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, Identifier, NewOrder, OrderStatus,
    RetryPolicy,
};

use super::selfcheck::SelfCheck;
use super::{keys, AcmeError, ProblemDoc};
use crate::config::{AcmeConfig, CertificateConfig, ChallengeType};
use crate::state::certs::{CertEntry, CertSource, InstallError};
use crate::state::challenge::AcmeAnswer;
use crate::state::State;

/// How long a planted HTTP-01 answer lives if the order is abandoned mid-way (it is removed as
/// soon as the order ends; the lifetime only covers a crash).
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// What an order needs.
pub struct OrderContext<'a> {
    pub account: &'a Account,
    pub acme: &'a AcmeConfig,
    pub state: &'a State,
    pub selfcheck: &'a dyn SelfCheck,
}

/// Obtains the certificate described by `cert`, installs it and returns its entry.
pub async fn issue(
    ctx: &OrderContext<'_>,
    cert: &CertificateConfig,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<Arc<CertEntry>, AcmeError> {
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
) -> Result<Arc<CertEntry>, AcmeError> {
    let identifiers: Vec<Identifier> = cert
        .names
        .iter()
        .map(|n| Identifier::Dns(n.to_string()))
        .collect();
    let mut new_order = NewOrder::new(&identifiers);
    if let Some(replaces) = replaces {
        new_order = new_order.replaces(replaces);
    }
    if let Some(profile) = &ctx.acme.profile {
        new_order = new_order.profile(profile);
    }
    let mut order = ctx.account.new_order(&new_order).await?;
    tracing::info!(certificate = %cert.id, url = order.url(), "order created");

    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            // Already validated for this account: not redone (RFC 8555 §7.1.4).
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(AcmeError::Transport(format!(
                    "authorization for {} is {other:?}",
                    authz.identifier()
                )))
            }
        }
        let wanted = match cert.challenge {
            ChallengeType::Http01 => instant_acme::ChallengeType::Http01,
            ChallengeType::TlsAlpn01 => instant_acme::ChallengeType::TlsAlpn01,
        };
        let name = authz.identifier().identifier.clone();
        let Identifier::Dns(name) = name else {
            return Err(AcmeError::Transport(
                "only DNS identifiers are ordered".into(),
            ));
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
                ctx.state
                    .put_alpn(&name, &key_authorization, TOKEN_LIFETIME)
                    .await
                    .map_err(|e| AcmeError::Storage(e.to_string()))?;
                planted.alpn.push(name.clone());
            }
        }
        let dns_name = name
            .parse()
            .map_err(|e: String| AcmeError::Transport(format!("{name}: {e}")))?;
        ctx.selfcheck
            .ready(&dns_name, cert.challenge, &token, &key_authorization)
            .await
            .map_err(|cause| AcmeError::SelfCheck {
                name: name.clone(),
                cause,
            })?;
        challenge.set_ready().await?;
    }

    // P9: poll with backoff, never in a tight loop.
    let retries = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(ctx.acme.order_timeout);
    let status = order.poll_ready(&retries).await?;
    if status != OrderStatus::Ready {
        return Err(authorization_failure(&mut order, status).await);
    }

    let key = keys::generate(ctx.acme.key_type)?;
    let csr = keys::csr(&cert.names, &key)?;
    order.finalize_csr(&csr).await?;
    let chain = order.poll_certificate(&retries).await?;
    let names: Vec<String> = cert.names.iter().map(|n| n.to_string()).collect();
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
        Ok(entry) => Ok(entry),
        Err(InstallError::Refused(r)) => Err(AcmeError::Refused(r.to_string())),
        Err(e) => Err(AcmeError::Storage(e.to_string())),
    }
}

/// The problem of the first failed authorization (the order's own error otherwise).
async fn authorization_failure(order: &mut instant_acme::Order, status: OrderStatus) -> AcmeError {
    if let Some(problem) = &order.state().error {
        return AcmeError::Problem(ProblemDoc::from(problem));
    }
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let Ok(state) = authz.refresh().await else {
            continue;
        };
        for challenge in &state.challenges {
            if let Some(problem) = &challenge.error {
                let mut doc = ProblemDoc::from(problem);
                if doc.subproblems.is_empty() {
                    doc.detail = format!("{}: {}", state.identifier(), doc.detail);
                }
                return AcmeError::Problem(doc);
            }
        }
    }
    AcmeError::Transport(format!("order ended {status:?} without a problem document"))
}

/// Answers planted for one order, removed when it ends.
#[derive(Default)]
struct Planted {
    tokens: Vec<String>,
    alpn: Vec<String>,
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
    }
}
