//! A small client of the admin API, for the command line (`dcv-proxy certs …`): the CLI talks to
//! the running node instead of touching its state directory behind its back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::net::TcpStream;

use super::token::AdminToken;
use crate::config::Config;

/// Talks to the admin listener of the node configured by a [`Config`].
pub struct AdminClient {
    addr: SocketAddr,
    token: Option<AdminToken>,
}

/// Why a request to the admin API did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the admin API at {addr} (is dcv-proxy running?): {detail}")]
    Unreachable { addr: SocketAddr, detail: String },
    #[error("admin API at {addr}: {detail}")]
    Protocol { addr: SocketAddr, detail: String },
}

impl AdminClient {
    /// The admin listener of `config` (wildcard binds reached over loopback) and its token, if
    /// the token file is readable.
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
            .filter(|t| !t.is_empty())
            .map(AdminToken::from_secret);
        Self { addr, token }
    }

    /// Whether the token file was readable (state-changing requests need it).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Sends `method path` with an optional JSON body; returns status and body.
    pub async fn request(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let addr = self.addr;
        let unreachable = |detail: String| ClientError::Unreachable { addr, detail };
        let protocol = |detail: String| ClientError::Protocol { addr, detail };
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| unreachable("connect timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| protocol(e.to_string()))?;
        tokio::spawn(conn);
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, addr.to_string());
        if let Some(token) = &self.token {
            req = req.header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.as_str()),
            );
        }
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.unwrap_or_default(),
            )))
            .map_err(|e| protocol(e.to_string()))?;
        let rsp = tokio::time::timeout(Duration::from_secs(120), sender.send_request(req))
            .await
            .map_err(|_| protocol("no answer within 120 s".into()))?
            .map_err(|e| protocol(e.to_string()))?;
        let status = rsp.status().as_u16();
        let bytes = rsp
            .into_body()
            .collect()
            .await
            .map_err(|e| protocol(e.to_string()))?
            .to_bytes();
        Ok((status, bytes.to_vec()))
    }
}
