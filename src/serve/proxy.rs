//! The edge proxy on pingora: carries out the [`Decider`]'s decision for every request the
//! fast path hands over (HTTP/2, proxied requests, anything unusual), and proxies to origins.
//!
//! One [`EdgeProxy`] serves the HTTP and the HTTPS listeners of one pingora service; the scheme of
//! a request is read from its connection (a TLS digest or not).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use super::classify;
use super::counters::Scheme;
use super::decide::{static_body, Decider, Decision, RequestView, Tally};
use super::forwarding;
use crate::config::OriginAddr;

/// The pingora application behind every HTTP and HTTPS listener, for what the fast path does
/// not take: HTTP/2, proxied requests, and anything unusual.
pub struct EdgeProxy {
    decider: Arc<Decider>,
}

/// Per-request state.
pub struct RequestCtx {
    scheme: Scheme,
    origin: Option<Arc<OriginAddr>>,
    tally: Tally,
}

impl EdgeProxy {
    pub fn new(decider: Arc<Decider>) -> Self {
        Self { decider }
    }
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx {
            scheme: Scheme::Http,
            origin: None,
            tally: Tally::Nothing,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        ctx.scheme = if session.digest().is_some_and(|d| d.ssl_digest.is_some()) {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let req = session.req_header();
        if let Err(e) = forwarding::check_request_framing(req) {
            return Error::e_explain(ErrorType::HTTPStatus(400), e.to_string());
        }
        let host = classify::request_host(
            req.uri.authority().map(|a| a.as_str()),
            req.headers.get(http::header::HOST).map(|v| v.as_bytes()),
        );
        let view = RequestView {
            scheme: ctx.scheme,
            get_or_head: matches!(req.method, Method::GET | Method::HEAD),
            path: req.uri.path(),
            host: host.as_deref(),
            target: req.uri.path_and_query().map_or("/", |pq| pq.as_str()),
        };
        let (decision, tally) = self.decider.decide(&view);
        match decision {
            Decision::Answer(reply) => {
                self.decider.count(tally, ctx.scheme);
                write_text(session, 200, reply.body()).await?;
                Ok(true)
            }
            Decision::Fixed(fixed) => {
                self.decider.count(tally, ctx.scheme);
                write_text(session, fixed.status, static_body(fixed)).await?;
                Ok(true)
            }
            Decision::Redirect { status, location } => {
                self.decider.count(tally, ctx.scheme);
                let mut resp = ResponseHeader::build(status, Some(3))?;
                resp.insert_header(http::header::LOCATION, location)?;
                resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
                session.write_response_header(Box::new(resp), true).await?;
                Ok(true)
            }
            Decision::Proxy(origin) => {
                ctx.origin = Some(origin);
                ctx.tally = tally;
                Ok(false)
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
        Ok(Box::new(HttpPeer::clone(
            &self.decider.routing().peer(origin),
        )))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        // pingora has applied its own request rules already; these are the same ones
        // (forwarding.rs) plus the forwarding headers, as the fast path applies them.
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        forwarding::prepare_request(upstream_request, client, ctx.scheme)
            .map_err(|e| Error::explain(ErrorType::HTTPStatus(400), e.to_string()))
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        let upgrade = session
            .req_header()
            .headers
            .contains_key(http::header::UPGRADE);
        match forwarding::check_response(upstream_response, upgrade) {
            Ok(hops) => {
                hops.strip(upstream_response);
                Ok(())
            }
            Err(e) => Error::e_explain(ErrorType::HTTPStatus(502), e.to_string()),
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Self::CTX) {
        if ctx.origin.is_some() {
            let status = session.response_written().map_or(0, |r| r.status.as_u16());
            self.decider.count(ctx.tally, ctx.scheme);
            self.decider.count_proxied(status);
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
