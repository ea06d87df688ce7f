//! Fleet-wide locks on etcd's lock API: the lock key hangs on a lease that a task keeps alive
//! while the lock is held, so a node that is killed holding it loses it after the lease TTL and
//! the next node waiting gets it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Client, LockOptions};
use tokio::task::JoinHandle;

use super::Shared;
use crate::state::backend::{BackendError, HeldLock, LockRelease};

/// Takes the lock `name`, waiting as long as another node holds it.
pub(crate) async fn acquire(shared: &Arc<Shared>, name: &str) -> Result<HeldLock, BackendError> {
    let mut client = shared.client().await?;
    let ttl = shared.config.lease_ttl;
    let secs = i64::try_from(ttl.as_secs()).unwrap_or(10);
    let lease = shared
        .timed(client.lease_grant(secs, None))
        .await
        .map_err(|e| BackendError::Remote(format!("lock {name}: {e}")))?
        .id();
    let (mut keeper, mut kept) = shared
        .timed(client.lease_keep_alive(lease))
        .await
        .map_err(|e| BackendError::Remote(format!("lock {name}: {e}")))?;
    let lock_name = name.to_owned();
    let keepalive = AbortOnDrop(tokio::spawn(async move {
        loop {
            tokio::time::sleep(ttl / 3).await;
            if keeper.keep_alive().await.is_err() {
                break;
            }
            match kept.message().await {
                Ok(Some(r)) if r.ttl() > 0 => {}
                _ => break,
            }
        }
        tracing::warn!(lock = %lock_name, "fleet: lost the lease of a held lock; another node may take it");
    }));
    // No time limit: the holder may be ordering. A dead holder's lease expires and frees it.
    let key = shared.layout.lock(name);
    match client
        .lock(key, Some(LockOptions::new().with_lease(lease)))
        .await
    {
        Ok(rsp) => {
            tracing::debug!(lock = %name, "fleet: lock taken");
            Ok(HeldLock::new(Box::new(EtcdLock {
                client,
                key: rsp.key().to_vec(),
                lease,
                _keepalive: keepalive,
            })))
        }
        Err(e) => {
            drop(keepalive);
            let _ = tokio::time::timeout(Duration::from_secs(1), client.lease_revoke(lease)).await;
            Err(BackendError::Remote(format!("lock {name}: {e}")))
        }
    }
}

/// A held etcd lock.
struct EtcdLock {
    client: Client,
    key: Vec<u8>,
    lease: i64,
    _keepalive: AbortOnDrop,
}

#[async_trait]
impl LockRelease for EtcdLock {
    async fn release(self: Box<Self>) {
        let EtcdLock {
            mut client,
            key,
            lease,
            _keepalive,
        } = *self;
        drop(_keepalive);
        let limit = Duration::from_secs(2);
        let _ = tokio::time::timeout(limit, client.unlock(key)).await;
        // Revoking the lease removes the lock key even if the unlock did not get through.
        let _ = tokio::time::timeout(limit, client.lease_revoke(lease)).await;
    }
}

/// Aborts the keep-alive task when the lock (or a failed attempt) goes away.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
