//! The one client of the admin API: the CLI (`health`, `certs …`) and `dcv-proxy check` (the
//! probe publishing its token and reading the fleet through a running node) talk to the node
//! through it instead of touching its state directory behind its back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpStream;

use super::documents::ErrorBody;
use crate::config::Config;
use crate::http1;

/// The most of an answer read: the status document of a node with many certificates fits.
const MAX_ANSWER: usize = 16 << 20;

/// The longest wait for the connection (the node is local, or on the operator's network).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Talks to the admin listener of one node.
#[derive(Debug, Clone)]
pub struct AdminClient {
    addr: SocketAddr,
    token: Option<String>,
    timeout: Duration,
}

/// Why a request to the admin API did not get the answer it documents.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection, or no answer in time.
    #[error("cannot reach the admin API at {addr} (is dcv-proxy running with this configuration?): {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    /// The API answered with an error status; `reason` is its `error`.
    #[error("admin API answered {status} to {method} {path}: {reason}")]
    Refused {
        method: http::Method,
        path: String,
        status: u16,
        reason: String,
    },
    /// The API answered something that is not the document it documents.
    #[error("admin API {path}: unexpected answer: {reason}")]
    Unexpected { path: String, reason: String },
}

impl ClientError {
    /// The status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl AdminClient {
    /// The node at `addr`, presenting `token` (none: read-only requests only), each request
    /// answered within `timeout`.
    pub fn new(addr: SocketAddr, token: Option<String>, timeout: Duration) -> Self {
        Self {
            addr,
            token,
            timeout,
        }
    }

    /// The admin listener of `config` (a wildcard bind is reached over loopback) and its token,
    /// if the token file is readable; 120 s per request (a probe run through the API takes its
    /// time).
    pub fn from_config(config: &Config) -> Self {
        let addr = match config.admin.listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), config.admin.listen.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), config.admin.listen.port())
            }
            _ => config.admin.listen,
        };
        let token = std::fs::read_to_string(&config.admin.token_file)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        Self::new(addr, token, Duration::from_secs(120))
    }

    /// The same node with another time limit per request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether there is a token to present (state-changing requests need it).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// `GET path`, read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(http::Method::GET, path, None::<&()>).await
    }

    /// `method path` with `body` as JSON, the answer read as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let unexpected = |reason: String| ClientError::Unexpected {
            path: path.to_owned(),
            reason,
        };
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| unexpected(format!("the request body: {e}")))?;
        let (status, bytes) = self.exchange(method.clone(), path, body).await?;
        if !status.is_success() {
            let reason = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(e) => e.error,
                Err(_) => String::from_utf8_lossy(&bytes).trim().to_owned(),
            };
            return Err(ClientError::Refused {
                method,
                path: path.to_owned(),
                status: status.as_u16(),
                reason,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| unexpected(e.to_string()))
    }

    /// One request; its status and body, whatever the status.
    async fn exchange(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(http::StatusCode, bytes::Bytes), ClientError> {
        let addr = self.addr;
        let unreachable = |reason: String| ClientError::Unreachable { addr, reason };
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, addr.to_string());
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(http1::full(body.unwrap_or_default()))
            .map_err(|e| ClientError::Unexpected {
                path: path.to_owned(),
                reason: format!("the request: {e}"),
            })?;
        let connect = CONNECT_TIMEOUT.min(self.timeout);
        let stream = tokio::time::timeout(connect, TcpStream::connect(addr))
            .await
            .map_err(|_| unreachable(format!("no connection within {connect:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        let exchange = async {
            let answer = http1::send(stream, request)
                .await
                .map_err(|e| e.to_string())?;
            let status = answer.head.status;
            let bytes = answer
                .body(MAX_ANSWER + 1)
                .await
                .map_err(|e| format!("reading the answer: {e}"))?;
            if bytes.len() > MAX_ANSWER {
                return Err(format!("an answer over {MAX_ANSWER} bytes"));
            }
            Ok((status, bytes))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", self.timeout)))?
            .map_err(unreachable)
    }
}
