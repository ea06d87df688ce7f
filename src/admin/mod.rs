//! The admin API: JSON over HTTP on its own listener (loopback by default), plus `/healthz`,
//! `/metrics` and the status page (`/`, [`page`]).
//!
//! Every request's `Host` must be one of the listener's own names or an address (421
//! otherwise: a page reached by DNS rebinding reads nothing, see [`input::admin_host`]). Reads
//! are open to whoever can reach the listener, except the ACME key authorizations, which need
//! the token; everything that changes state needs `Authorization: Bearer <token>` (401
//! otherwise, and nothing changes). Bodies are capped (413), and every refusal is a 4xx with a
//! JSON `{"error": "..."}` that says why.

/// Public for the fuzz target `admin_input`: every parser of admin requests.
pub mod input;
mod page;
mod probe;
mod routes;
mod token;

pub use token::AdminToken;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde::Serialize;

use crate::acme::RenewerHandle;
use crate::inflight::{Front, InFlight};
use crate::metrics::Metrics;
use crate::probe::ProbeRunner;
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
    /// The names `Host` may carry besides addresses and localhost.
    hosts: input::AdminHosts,
    /// This host's name (`/proc/sys/kernel/hostname`): accepted in `Host`, and the status
    /// page's title when the node is not in a fleet.
    host_name: String,
}

/// A parsed request handed to a route.
pub(crate) struct AdminRequest {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) body: Vec<u8>,
    /// The request carried the right bearer token (reads that show secrets need it).
    pub(crate) authorized: bool,
}

/// A response before serialisation.
pub(crate) struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    /// Headers besides the content type, length and `Cache-Control`.
    headers: Vec<(http::HeaderName, String)>,
}

impl Reply {
    pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Reply {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
        body.push(b'\n');
        Reply {
            status,
            content_type: "application/json",
            body,
            headers: Vec::new(),
        }
    }

    pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Reply {
        Reply::json(
            status,
            &crate::api::ErrorBody {
                error: message.into(),
                reason: None,
            },
        )
    }

    pub(crate) fn text(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type,
            body,
            headers: Vec::new(),
        }
    }

    /// Adds a header to the answer.
    pub(crate) fn with_header(mut self, name: http::HeaderName, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
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
            hosts: input::AdminHosts::new([own_host_name()]),
            host_name: own_host_name(),
        }
    }

    /// Accepts these names in `Host` too (`admin.hosts`), besides the host's own name.
    pub fn with_hosts<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut all: Vec<String> = names.into_iter().map(|n| n.as_ref().to_owned()).collect();
        all.push(self.host_name.clone());
        self.hosts = input::AdminHosts::new(all);
        self
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

    /// Answers one request; the flag says whether its body was read (else the connection
    /// cannot be reused).
    async fn handle(&self, session: &mut ServerSession) -> (Reply, bool) {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_owned();
        let query = req.uri.query().map(str::to_owned);
        let mutating = !matches!(method, Method::GET | Method::HEAD);

        // Before anything else, so that a rebound page learns nothing, not even a 401 or 404.
        let host = match req.headers.get(http::header::HOST) {
            Some(v) => Some(v.to_str().unwrap_or("\u{fffd}")),
            None => req.uri.authority().map(|a| a.as_str()),
        };
        if let Err(refused) = input::admin_host(host, &self.hosts) {
            return (refused.into(), false);
        }
        let authorized = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(input::bearer_token)
            .is_some_and(|t| self.token.matches(t));
        if mutating && !authorized {
            let reply = Reply::error(
                StatusCode::UNAUTHORIZED,
                "this request changes state: send Authorization: Bearer <token from the admin token file>",
            )
            // RFC 9110 §11.6.1: a 401 names the scheme it wants.
            .with_header(
                http::header::WWW_AUTHENTICATE,
                "Bearer realm=\"dcv-proxy admin\"",
            );
            return (reply, false);
        }

        let declared = req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.max_body) {
            return (self.too_large(), false);
        }
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_body {
                        return (self.too_large(), false);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return (
                        Reply::error(StatusCode::BAD_REQUEST, format!("cannot read body: {e}")),
                        false,
                    )
                }
            }
        }
        let request = AdminRequest {
            method,
            path,
            query,
            body,
            authorized,
        };
        (routes::route(self, request).await, true)
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

/// The kernel's host name (empty when it cannot be read).
fn own_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|n| n.trim().to_owned())
        .unwrap_or_default()
}

#[async_trait]
impl ServeHttp for AdminApi {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let _inflight = self.inflight.enter(Front::Admin);
        let (reply, body_read) = self.handle(session).await;
        if !body_read {
            // The body was not read: do not try to reuse the connection.
            session.set_keepalive(None);
        }
        let head = session.req_header().method == Method::HEAD;
        let len = reply.body.len();
        let mut response = Response::builder()
            .status(reply.status)
            .header(http::header::CONTENT_TYPE, reply.content_type)
            .header(http::header::CONTENT_LENGTH, len)
            .header(http::header::CACHE_CONTROL, "no-store")
            // Every answer is data, never a document to sniff (JSON shown as HTML).
            .header(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        for (name, value) in &reply.headers {
            response = response.header(name, value.as_str());
        }
        response
            .body(if head { Vec::new() } else { reply.body })
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}
