//! The node under probe, as the probe needs it: a place to publish a probe token (which it then
//! fetches over the public path, like the CA), the validation files and TXT records registered
//! there, and the fleet it belongs to ([`Members`]). In the running server that is
//! [`LocalNode`], the state itself; from the command line it is [`AdminNode`], the node's admin
//! API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use tokio::net::TcpStream;

use super::fleet::{Fleet, FleetMember, Members};
use super::http::{full, http1};
use super::node_error::NodeError;
use super::registry::TxtRegistry;
use crate::config::{DnsName, ExpectedTxt, RecordName};
use crate::state::State;
use crate::state::{apex_of, AcmeAnswer};

/// A pki-validation file registered for a name.
#[derive(Debug, Clone)]
pub struct RegisteredFile {
    pub file: String,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    pub created: SystemTime,
}

/// What the probe asks of the node.
#[async_trait]
pub trait Node: Send + Sync {
    /// Publishes a key authorization for `token`, answered only for `identifier`, for `ttl`.
    async fn put_token(
        &self,
        token: &str,
        key_authorization: &str,
        identifier: &DnsName,
        ttl: Duration,
    ) -> Result<(), NodeError>;

    /// Withdraws a token published by [`Node::put_token`].
    async fn remove_token(&self, token: &str) -> Result<(), NodeError>;

    /// The pki-validation files registered for `name` (apex and www share them, H8).
    async fn pki_files(&self, name: &DnsName) -> Result<Vec<RegisteredFile>, NodeError>;

    /// TXT records registered at run time (the configured ones come with the configuration).
    async fn expected_txt(&self) -> Result<Vec<ExpectedTxt>, NodeError>;
}

/// The node the probe runs in.
pub struct LocalNode {
    state: State,
    txt: Arc<TxtRegistry>,
}

impl LocalNode {
    pub fn new(state: State, txt: Arc<TxtRegistry>) -> Self {
        Self { state, txt }
    }
}

#[async_trait]
impl Node for LocalNode {
    async fn put_token(
        &self,
        token: &str,
        key_authorization: &str,
        identifier: &DnsName,
        ttl: Duration,
    ) -> Result<(), NodeError> {
        let now = SystemTime::now();
        let answer = AcmeAnswer {
            key_authorization: Bytes::copy_from_slice(key_authorization.as_bytes()),
            identifier: Some(identifier.as_str().into()),
            expires: Some(now + ttl),
            created: now,
        };
        // Through the state, not the store alone: in a fleet every node gets the token, as
        // the CA may reach any of them.
        Ok(self.state.put_token(token, answer).await?)
    }

    async fn remove_token(&self, token: &str) -> Result<(), NodeError> {
        self.state.remove_token(token).await?;
        Ok(())
    }

    async fn pki_files(&self, name: &DnsName) -> Result<Vec<RegisteredFile>, NodeError> {
        let apex = apex_of(name.as_str());
        let snapshot = self.state.challenges.snapshot();
        Ok(snapshot
            .pki()
            .filter(|(host, _, _)| *host == apex)
            .map(|(_, file, entry)| RegisteredFile {
                file: file.to_owned(),
                sha256: crate::state::certs::hex(
                    ring::digest::digest(&ring::digest::SHA256, &entry.body).as_ref(),
                ),
                created: entry.created,
            })
            .collect())
    }

    async fn expected_txt(&self) -> Result<Vec<ExpectedTxt>, NodeError> {
        Ok(self.txt.list())
    }
}

#[async_trait]
impl Members for LocalNode {
    /// The live members as this node follows them (the fleet store's membership keys).
    async fn fleet(&self) -> Result<Option<Fleet>, NodeError> {
        Ok(self.state.fleet().map(|fleet| Fleet {
            node_id: fleet.node_id().to_owned(),
            members: fleet.members().into_iter().map(FleetMember::from).collect(),
        }))
    }
}

/// A node reached through its admin API (for `dcv-proxy check`).
pub struct AdminNode {
    addr: SocketAddr,
    token: String,
    timeout: Duration,
}

impl AdminNode {
    pub fn new(addr: SocketAddr, token: String, timeout: Duration) -> Self {
        Self {
            addr,
            token,
            timeout,
        }
    }

    /// `GET /healthz`: whether the node is there at all.
    pub async fn health(&self) -> Result<(), NodeError> {
        self.call(http::Method::GET, "/healthz", None)
            .await
            .map(drop)
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Bytes, NodeError> {
        let unreachable = |reason: String| NodeError::Unreachable {
            addr: self.addr,
            reason,
        };
        let method_name = match method {
            http::Method::GET => "GET",
            http::Method::PUT => "PUT",
            http::Method::DELETE => "DELETE",
            _ => "POST",
        };
        let body = body.map_or_else(Vec::new, |b| b.to_string().into_bytes());
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, self.addr.to_string())
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(full(body))
            .map_err(|e| unreachable(e.to_string()))?;
        let exchange = async {
            let stream = TcpStream::connect(self.addr)
                .await
                .map_err(|e| e.to_string())?;
            http1(stream, request, 4 << 20).await
        };
        let (parts, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", self.timeout)))?
            .map_err(unreachable)?;
        if !parts.status.is_success() {
            return Err(NodeError::Refused {
                method: method_name,
                path: path.to_owned(),
                status: parts.status.as_u16(),
                body: String::from_utf8_lossy(&bytes).trim().to_owned(),
            });
        }
        Ok(bytes)
    }

    /// What the node's `/v1/status` says of its fleet.
    async fn fleet_status(&self) -> Result<Option<Fleet>, NodeError> {
        #[derive(Deserialize)]
        struct Status {
            #[serde(default)]
            fleet: Option<StatusFleet>,
        }
        #[derive(Deserialize)]
        struct StatusFleet {
            backend: String,
            #[serde(default)]
            node_id: String,
            #[serde(default)]
            members: Vec<FleetMember>,
        }
        let path = "/v1/status";
        let bytes = self.call(http::Method::GET, path, None).await?;
        let status: Status = Self::parse(path, &bytes)?;
        Ok(status
            .fleet
            .filter(|f| f.backend != "local")
            .map(|f| Fleet {
                node_id: f.node_id,
                members: f.members,
            }))
    }

    fn parse<T: for<'de> Deserialize<'de>>(path: &str, bytes: &[u8]) -> Result<T, NodeError> {
        serde_json::from_slice(bytes).map_err(|e| NodeError::Unexpected {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }
}

#[async_trait]
impl Node for AdminNode {
    async fn put_token(
        &self,
        token: &str,
        key_authorization: &str,
        identifier: &DnsName,
        ttl: Duration,
    ) -> Result<(), NodeError> {
        let body = serde_json::json!({
            "key_authorization": key_authorization,
            "identifier": identifier.as_str(),
            "ttl_seconds": ttl.as_secs().max(1),
        });
        self.call(
            http::Method::PUT,
            &format!("/v1/acme/tokens/{token}"),
            Some(body),
        )
        .await
        .map(drop)
    }

    async fn remove_token(&self, token: &str) -> Result<(), NodeError> {
        match self
            .call(
                http::Method::DELETE,
                &format!("/v1/acme/tokens/{token}"),
                None,
            )
            .await
        {
            Ok(_) | Err(NodeError::Refused { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn pki_files(&self, name: &DnsName) -> Result<Vec<RegisteredFile>, NodeError> {
        #[derive(Deserialize)]
        struct Files {
            files: Vec<File>,
        }
        #[derive(Deserialize)]
        struct File {
            file: String,
            sha256: String,
            created: String,
        }
        let path = format!("/v1/pki/{name}");
        let bytes = self.call(http::Method::GET, &path, None).await?;
        let files: Files = Self::parse(&path, &bytes)?;
        files
            .files
            .into_iter()
            .map(|f| {
                let created =
                    humantime::parse_rfc3339(&f.created).map_err(|e| NodeError::Unexpected {
                        path: path.clone(),
                        reason: format!("created {:?}: {e}", f.created),
                    })?;
                Ok(RegisteredFile {
                    file: f.file,
                    sha256: f.sha256,
                    created,
                })
            })
            .collect()
    }

    async fn expected_txt(&self) -> Result<Vec<ExpectedTxt>, NodeError> {
        #[derive(Deserialize)]
        struct Records {
            records: Vec<Record>,
        }
        #[derive(Deserialize)]
        struct Record {
            name: String,
            values: Vec<String>,
        }
        let path = "/v1/probe/txt";
        let bytes = match self.call(http::Method::GET, path, None).await {
            Ok(bytes) => bytes,
            // The node runs without its own probe: nothing can have been registered.
            Err(NodeError::Refused { status: 503, .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let records: Records = Self::parse(path, &bytes)?;
        let mut out = Vec::new();
        for record in records.records {
            let name: RecordName = record
                .name
                .parse()
                .map_err(|reason| NodeError::Unexpected {
                    path: path.to_owned(),
                    reason,
                })?;
            for value in record.values {
                out.push(ExpectedTxt {
                    name: name.clone(),
                    value,
                });
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Members for AdminNode {
    /// The members listed in `fleet` of the node's `GET /v1/status`.
    async fn fleet(&self) -> Result<Option<Fleet>, NodeError> {
        self.fleet_status().await
    }
}
