//! The edge proxy: validation answers first, then the HTTP→HTTPS redirect, then the origin.
//!
//! One [`EdgeProxy`] serves the HTTP and the HTTPS listeners of one pingora service; the scheme of
//! a request is read from its connection (a TLS digest or not). The order in
//! [`EdgeProxy::request_filter`] is the product: a validation request is answered before any
//! redirect rule can touch it (catalogue H4) and never reaches the origin (H2, H3), on both
//! schemes from the same store (H5).

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use super::classify::{self, ChallengeKind, Route};
use super::counters::{Answer, Scheme, ServeCounters};
use super::routing::Routing;
use crate::config::{OriginAddr, UnknownToken};
use crate::state::challenge::AnswerSource;
use crate::state::ChallengeStore;

/// The pingora application behind every HTTP and HTTPS listener.
pub struct EdgeProxy {
    challenges: Arc<ChallengeStore>,
    routing: Arc<ArcSwap<Routing>>,
    counters: ServeCounters,
}

/// Per-request state.
pub struct RequestCtx {
    scheme: Scheme,
    origin: Option<Arc<OriginAddr>>,
}

/// What a validation request gets.
enum ChallengeOutcome {
    Answer(Bytes),
    /// Unknown token or file: 404 at the edge, or on to the origin.
    Miss {
        to_origin: bool,
    },
    MethodNotAllowed,
}

impl EdgeProxy {
    pub fn new(
        challenges: Arc<ChallengeStore>,
        routing: Arc<ArcSwap<Routing>>,
        counters: ServeCounters,
    ) -> Self {
        Self {
            challenges,
            routing,
            counters,
        }
    }

    /// Looks a validation request up and counts it.
    fn challenge_outcome(
        &self,
        routing: &Routing,
        scheme: Scheme,
        method: &Method,
        route: Route<'_>,
        host: Option<&str>,
    ) -> ChallengeOutcome {
        if !matches!(*method, Method::GET | Method::HEAD) {
            return ChallengeOutcome::MethodNotAllowed;
        }
        let found = match (route, host) {
            (Route::AcmeChallenge(token), Some(host)) => self.challenges.acme_answer(token, host),
            (Route::PkiValidation(file), Some(host)) => self.challenges.pki_answer(host, file),
            _ => None,
        };
        let kind = match route {
            Route::PkiValidation(_) | Route::Malformed(ChallengeKind::Pki) => Answer::Pki,
            _ => Answer::Acme,
        };
        match found {
            Some((body, source)) => {
                let answer = match source {
                    AnswerSource::Webroot => Answer::Webroot,
                    AnswerSource::Store => kind,
                };
                self.counters.challenge(answer, scheme, true);
                ChallengeOutcome::Answer(body)
            }
            None => {
                self.counters.challenge(kind, scheme, false);
                // Malformed paths are never forwarded: they are probes, not validations.
                let to_origin = routing.unknown_token == UnknownToken::Origin
                    && matches!(route, Route::AcmeChallenge(_) | Route::PkiValidation(_));
                ChallengeOutcome::Miss { to_origin }
            }
        }
    }
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx {
            scheme: Scheme::Http,
            origin: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        ctx.scheme = if session.digest().is_some_and(|d| d.ssl_digest.is_some()) {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let routing = self.routing.load();
        let req = session.req_header();
        let host = classify::request_host(
            req.uri.authority().map(|a| a.as_str()),
            req.headers.get(http::header::HOST).map(|v| v.as_bytes()),
        );
        let route = classify::classify(req.uri.path());
        let outcome_was_challenge = route != Route::Other;
        let outcome = outcome_was_challenge.then(|| {
            self.challenge_outcome(&routing, ctx.scheme, &req.method, route, host.as_deref())
        });
        let host = host.map(|h| h.into_owned());
        match outcome {
            Some(ChallengeOutcome::Answer(body)) => {
                write_text(session, 200, body).await?;
                return Ok(true);
            }
            Some(ChallengeOutcome::MethodNotAllowed) => {
                write_text(session, 405, Bytes::from_static(b"method not allowed\n")).await?;
                return Ok(true);
            }
            Some(ChallengeOutcome::Miss { to_origin: false }) => {
                write_text(session, 404, Bytes::from_static(b"not found\n")).await?;
                return Ok(true);
            }
            Some(ChallengeOutcome::Miss { to_origin: true }) | None => {}
        }
        // A validation request passed on to the origin is never redirected (H4).
        let is_validation = outcome_was_challenge;

        let Some(host) = host else {
            write_text(
                session,
                400,
                Bytes::from_static(b"missing or invalid Host\n"),
            )
            .await?;
            return Ok(true);
        };

        if ctx.scheme == Scheme::Http && routing.redirect_to_https && !is_validation {
            let location = routing.redirect_location(&host, session.req_header());
            let mut resp = ResponseHeader::build(routing.redirect_status, Some(3))?;
            resp.insert_header(http::header::LOCATION, location)?;
            resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
            session.write_response_header(Box::new(resp), true).await?;
            self.counters.redirect();
            return Ok(true);
        }

        match routing.sites.origin_for(&host) {
            Some(origin) => {
                ctx.origin = Some(origin.clone());
                Ok(false)
            }
            None => {
                write_text(
                    session,
                    404,
                    Bytes::from_static(b"no site is configured for this host\n"),
                )
                .await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let origin = match &ctx.origin {
            Some(origin) => origin,
            // An unknown token passed on to the origin: route it like any other request.
            None => return Error::e_explain(ErrorType::InternalError, "no origin chosen"),
        };
        let routing = self.routing.load();
        // The SNI string is only needed (and only allocated) for TLS origins.
        let sni = if origin.tls {
            origin.host.clone()
        } else {
            String::new()
        };
        let mut peer = HttpPeer::new(origin.addr, origin.tls, sni);
        peer.options.connection_timeout = Some(routing.connect_timeout);
        peer.options.read_timeout = Some(routing.read_timeout);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        // X-Forwarded-For: append this hop, as nginx's $proxy_add_x_forwarded_for does.
        if let Some(client) = session.client_addr().and_then(|a| a.as_inet()) {
            let ip = client.ip().to_string();
            let value = match upstream_request.headers.get("x-forwarded-for") {
                Some(prior) => match prior.to_str() {
                    Ok(prior) => format!("{prior}, {ip}"),
                    Err(_) => ip,
                },
                None => ip,
            };
            upstream_request.insert_header("x-forwarded-for", value)?;
        }
        upstream_request.insert_header("x-forwarded-proto", ctx.scheme.as_str())?;
        Ok(())
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Self::CTX) {
        if ctx.origin.is_some() {
            let status = session.response_written().map_or(0, |r| r.status.as_u16());
            self.counters.proxied(status);
        }
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut Self::CTX,
    ) -> FailToProxy {
        // The cause goes to the log, never to the client (no addresses, no error chains).
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ => match e.esource() {
                pingora_error::ErrorSource::Upstream => 502,
                pingora_error::ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                _ => match e.etype() {
                    ErrorType::ConnectTimedout
                    | ErrorType::ConnectRefused
                    | ErrorType::ConnectNoRoute
                    | ErrorType::ConnectError => 502,
                    _ => 500,
                },
            },
        };
        tracing::warn!(status = code, error = %e, "request failed");
        if code > 0 && session.response_written().is_none() {
            let body = match code {
                502 => &b"502 bad gateway: the origin could not be reached\n"[..],
                504 => b"504 gateway timeout\n",
                400 => b"400 bad request\n",
                _ => b"server error\n",
            };
            let _ = write_text(session, code, Bytes::from_static(body)).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}

/// Writes a complete `text/plain` response; for `HEAD` only the header (with the length).
async fn write_text(session: &mut Session, status: u16, body: Bytes) -> Result<()> {
    let head = session.req_header().method == Method::HEAD;
    let mut resp = ResponseHeader::build(status, Some(2))?;
    resp.insert_header(http::header::CONTENT_TYPE, "text/plain")?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    if head {
        session.write_response_header(Box::new(resp), true).await
    } else {
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body), true).await
    }
}
