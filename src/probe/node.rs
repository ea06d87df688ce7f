//! The node under probe, as the probe needs it: a place to publish a probe token (which it then
//! fetches over the public path, like the CA), the validation files and TXT records registered
//! there, and the fleet it belongs to ([`Members`]). In the running server that is
//! [`LocalNode`], the state itself; from the command line it is [`AdminNode`], the node's admin
//! API.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use super::fleet::{Fleet, FleetMember, Members};
use super::node_error::NodeError;
use super::registry::TxtRegistry;
use crate::api::{
    AdminClient, ClientError, FleetStatus, Health, PkiFiles, Removed, TokenEntry, TokenPut,
    TxtRecords,
};
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
    client: AdminClient,
}

impl AdminNode {
    pub fn new(client: AdminClient) -> Self {
        Self { client }
    }

    /// `GET /healthz`: whether the node is there at all.
    pub async fn health(&self) -> Result<(), NodeError> {
        self.client.get::<Health>("/healthz").await?;
        Ok(())
    }

    /// What the node's `/v1/status` says of its fleet (only that part is read: the rest of
    /// the document may be of another version).
    async fn fleet_status(&self) -> Result<Option<Fleet>, NodeError> {
        #[derive(serde::Deserialize)]
        struct FleetOnly {
            fleet: FleetStatus,
        }
        let status: FleetOnly = self.client.get("/v1/status").await?;
        Ok(status.fleet.etcd.map(|fleet| Fleet {
            node_id: fleet.node_id,
            members: fleet.members.into_iter().map(FleetMember::from).collect(),
        }))
    }
}

fn unexpected(path: &str, reason: String) -> NodeError {
    NodeError::Admin(ClientError::Unexpected {
        path: path.to_owned(),
        reason,
    })
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
        let body = TokenPut {
            key_authorization: key_authorization.to_owned(),
            identifier: Some(identifier.as_str().to_owned()),
            ttl_seconds: Some(ttl.as_secs().max(1)),
        };
        self.client
            .call::<TokenEntry>(
                http::Method::PUT,
                &format!("/v1/acme/tokens/{token}"),
                Some(&body),
            )
            .await?;
        Ok(())
    }

    async fn remove_token(&self, token: &str) -> Result<(), NodeError> {
        let path = format!("/v1/acme/tokens/{token}");
        match self
            .client
            .call::<Removed>(http::Method::DELETE, &path, None::<&()>)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn pki_files(&self, name: &DnsName) -> Result<Vec<RegisteredFile>, NodeError> {
        let path = format!("/v1/pki/{name}");
        let files: PkiFiles = self.client.get(&path).await?;
        files
            .files
            .into_iter()
            .map(|f| {
                let created = humantime::parse_rfc3339(&f.created)
                    .map_err(|e| unexpected(&path, format!("created {:?}: {e}", f.created)))?;
                Ok(RegisteredFile {
                    file: f.file,
                    sha256: f.sha256,
                    created,
                })
            })
            .collect()
    }

    async fn expected_txt(&self) -> Result<Vec<ExpectedTxt>, NodeError> {
        let path = "/v1/probe/txt";
        let records: TxtRecords = match self.client.get(path).await {
            Ok(records) => records,
            // The node runs without its own probe: nothing can have been registered.
            Err(e) if e.status() == Some(503) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for record in records.records {
            let name: RecordName = record
                .name
                .parse()
                .map_err(|reason| unexpected(path, reason))?;
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
