//! The admin API: JSON over HTTP on its own listener (loopback by default), plus `/healthz` and
//! `/metrics`.
//!
//! Reads are open to whoever can reach the listener; everything that changes state needs
//! `Authorization: Bearer <token>` (401 otherwise, and nothing changes). Bodies are capped (413),
//! and every refusal is a 4xx with a JSON `{"error": "..."}` that says why.

pub mod client;
pub mod input;
mod probe;
mod routes;
pub mod token;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde::Serialize;

use crate::acme::RenewerHandle;
use crate::metrics::Metrics;
use crate::probe::service::ProbeRunner;
use crate::serve::inflight::{Front, InFlight};
use crate::state::State;

/// The admin API application.
pub struct AdminApi {
    state: State,
    metrics: Arc<Metrics>,
    token: token::AdminToken,
    max_body: usize,
    started: SystemTime,
    acme: Option<RenewerHandle>,
    /// The self-probe, when it runs on this node.
    probe: Option<Arc<ProbeRunner>>,
    /// Requests being answered (a graceful stop waits for them).
    inflight: InFlight,
}

/// A parsed request handed to a route.
pub(crate) struct AdminRequest {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) body: Vec<u8>,
}

/// A response before serialisation.
pub(crate) struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Reply {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
        body.push(b'\n');
        Reply {
            status,
            content_type: "application/json",
            body,
        }
    }

    pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Reply {
        #[derive(Serialize)]
        struct ErrorBody {
            error: String,
        }
        Reply::json(
            status,
            &ErrorBody {
                error: message.into(),
            },
        )
    }

    pub(crate) fn text(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type,
            body,
        }
    }
}

impl AdminApi {
    pub fn new(
        state: State,
        metrics: Arc<Metrics>,
        token: token::AdminToken,
        max_body: usize,
    ) -> Self {
        Self {
            state,
            metrics,
            token,
            max_body,
            started: SystemTime::now(),
            acme: None,
            probe: None,
            inflight: InFlight::new(),
        }
    }

    /// Counts requests being answered in `inflight`.
    pub fn with_inflight(mut self, inflight: InFlight) -> Self {
        self.inflight = inflight;
        self
    }

    /// Adds the renewer's status and the renew endpoint.
    pub fn with_acme(mut self, acme: RenewerHandle) -> Self {
        self.acme = Some(acme);
        self
    }

    /// Serves the probe's endpoints (`/v1/probe…`) and its results in `/v1/status`.
    pub fn with_probe(mut self, runner: Arc<ProbeRunner>) -> Self {
        self.probe = Some(runner);
        self
    }

    async fn handle(&self, session: &mut ServerSession) -> Reply {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_owned();
        let mutating = !matches!(method, Method::GET | Method::HEAD);

        if mutating {
            let presented = req
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !presented.is_some_and(|t| self.token.matches(t)) {
                return Reply::error(
                    StatusCode::UNAUTHORIZED,
                    "this request changes state: send Authorization: Bearer <token from the admin token file>",
                );
            }
        }

        let declared = req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.max_body) {
            return self.too_large();
        }
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_body {
                        return self.too_large();
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Reply::error(StatusCode::BAD_REQUEST, format!("cannot read body: {e}"))
                }
            }
        }
        routes::route(self, AdminRequest { method, path, body }).await
    }

    fn too_large(&self) -> Reply {
        Reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is larger than {} bytes (admin.max_body_bytes)",
                self.max_body
            ),
        )
    }
}

#[async_trait]
impl ServeHttp for AdminApi {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let _inflight = self.inflight.enter(Front::Admin);
        let reply = self.handle(session).await;
        if reply.status == StatusCode::PAYLOAD_TOO_LARGE || reply.status == StatusCode::UNAUTHORIZED
        {
            // The body may not have been read: do not try to reuse the connection.
            session.set_keepalive(None);
        }
        let head = session.req_header().method == Method::HEAD;
        let len = reply.body.len();
        Response::builder()
            .status(reply.status)
            .header(http::header::CONTENT_TYPE, reply.content_type)
            .header(http::header::CONTENT_LENGTH, len)
            .header(http::header::CACHE_CONTROL, "no-store")
            .body(if head { Vec::new() } else { reply.body })
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}
