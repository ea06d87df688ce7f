//! The follower: keeps this node in step with the fleet store.
//!
//! One session = connect, register this node under a fresh lease, load everything (first time,
//! or after the revision to resume from was compacted away) or resume, then follow one watch of
//! the whole prefix. Any failure ends the session: the node goes on serving what it has, and a
//! new session starts after a backoff, resuming from the last applied revision so that no change
//! (deletions included) is missed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, PutOptions, WatchOptions};

use super::apply::Kv;
use super::{FleetError, Shared};

/// Longest wait between two connection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(3);
/// First wait after a failure.
const BACKOFF_MIN: Duration = Duration::from_millis(100);

/// Runs in the background for the life of the node.
pub struct FleetFollower {
    shared: Arc<Shared>,
    /// The membership lease of the current session, revoked on a clean shutdown so the node
    /// leaves the member list at once.
    lease: Mutex<Option<(Client, i64)>>,
}

/// How a session ended.
enum End {
    /// The revision to resume from was compacted: load everything again, now.
    Reload,
    /// Anything else: back off, then resume.
    Failed(FleetError, &'static str),
}

impl FleetFollower {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            lease: Mutex::new(None),
        }
    }

    /// Follows the fleet until `shutdown` says stop.
    pub async fn run(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        // 0: nothing applied yet, load everything.
        let mut last = 0i64;
        let mut failures = 0u32;
        loop {
            let end = tokio::select! {
                end = self.session(&mut last, &mut failures) => end,
                _ = shutdown.changed() => {
                    self.leave().await;
                    return;
                }
            };
            self.shared.set_connected(false);
            self.shared.set_client(None);
            match end {
                End::Reload => {
                    tracing::warn!(
                        "fleet: the watch's revision was compacted; loading everything again"
                    );
                    last = 0;
                    continue;
                }
                End::Failed(error, stage) => {
                    failures = failures.saturating_add(1);
                    self.shared.record_error(stage, &error.to_string());
                    let wait = backoff(failures);
                    if failures == 1 || failures % 20 == 0 {
                        tracing::warn!(%error, stage, retry_in = ?wait, attempts = failures, kind = "fleet", remedy = crate::catalogue::FLEET_UNAVAILABLE, "fleet: etcd unavailable; serving the local snapshot");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    async fn session(&self, last: &mut i64, failures: &mut u32) -> End {
        let shared = &self.shared;
        let config = &shared.config;
        let connect = Client::connect(&config.endpoints, Some(shared.connect.clone()));
        let mut client = match tokio::time::timeout(config.request_timeout, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return End::Failed(FleetError::Etcd(e.to_string()), "connect"),
            Err(_) => return End::Failed(FleetError::Timeout(config.request_timeout), "connect"),
        };

        // Membership: this node and its public addresses, for as long as it keeps the lease.
        let ttl = i64::try_from(config.lease_ttl.as_secs()).unwrap_or(10);
        let lease = match shared.timed(client.lease_grant(ttl, None)).await {
            Ok(l) => l.id(),
            Err(e) => return End::Failed(e, "connect"),
        };
        *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = Some((client.clone(), lease));
        let (mut keeper, mut kept) = match shared.timed(client.lease_keep_alive(lease)).await {
            Ok(k) => k,
            Err(e) => return End::Failed(e, "connect"),
        };
        let me = match serde_json::to_vec(&shared.me) {
            Ok(v) => v,
            Err(e) => return End::Failed(FleetError::Etcd(e.to_string()), "connect"),
        };
        let member_key = shared.layout.member(&shared.me.node_id);
        let put = client.put(member_key, me, Some(PutOptions::new().with_lease(lease)));
        if let Err(e) = shared.timed(put).await {
            return End::Failed(e, "connect");
        }

        // Writers may go ahead while the load runs: their revisions are remembered, so the load
        // neither undoes nor repeats them.
        shared.set_client(Some(client.clone()));
        if *last == 0 {
            if let Err(e) = self.load(&mut client, last).await {
                return End::Failed(e, "connect");
            }
        }

        let root = shared.layout.root();
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(*last + 1)
            .with_progress_notify();
        let mut watch = match shared.timed(client.watch(root, Some(options))).await {
            Ok(w) => w,
            Err(e) => return End::Failed(e, "watch"),
        };
        shared.set_connected(true);
        if *failures > 0 {
            tracing::info!(revision = *last, "fleet: connected to etcd again; resumed");
        } else {
            tracing::info!(revision = *last, node_id = %shared.me.node_id, "fleet: following etcd");
        }
        *failures = 0;

        let mut tick = tokio::time::interval(config.lease_ttl / 3);
        loop {
            tokio::select! {
                message = watch.message() => {
                    let response = match message {
                        Ok(Some(r)) => r,
                        Ok(None) => return End::Failed(FleetError::Etcd("the watch stream ended".into()), "watch"),
                        Err(e) => return End::Failed(FleetError::Etcd(e.to_string()), "watch"),
                    };
                    if response.canceled() {
                        if response.compact_revision() > 0 {
                            return End::Reload;
                        }
                        let reason = response.cancel_reason().to_owned();
                        return End::Failed(FleetError::Etcd(format!("the watch was cancelled: {reason}")), "watch");
                    }
                    self.apply(&response, last).await;
                }
                _ = tick.tick() => {
                    if let Err(e) = keeper.keep_alive().await {
                        return End::Failed(FleetError::Etcd(e.to_string()), "watch");
                    }
                }
                kept_alive = kept.message() => match kept_alive {
                    Ok(Some(r)) if r.ttl() > 0 => {}
                    Ok(Some(_)) => return End::Failed(FleetError::Etcd("the membership lease expired".into()), "watch"),
                    Ok(None) => return End::Failed(FleetError::Etcd("the lease stream ended".into()), "watch"),
                    Err(e) => return End::Failed(FleetError::Etcd(e.to_string()), "watch"),
                },
            }
        }
    }

    /// Everything under the prefix, applied as the node's whole shared state.
    async fn load(&self, client: &mut Client, last: &mut i64) -> Result<(), FleetError> {
        let shared = &self.shared;
        let rsp = shared
            .timed(client.get(shared.layout.root(), Some(GetOptions::new().with_prefix())))
            .await?;
        let revision = rsp.header().map_or(0, |h| h.revision());
        let kvs: Vec<Kv> = rsp
            .kvs()
            .iter()
            .filter_map(|kv| {
                Some(Kv {
                    key: kv.key_str().ok()?.to_owned(),
                    value: kv.value().to_vec(),
                    revision: kv.mod_revision(),
                })
            })
            .collect();
        let _w = shared.writes.lock().await;
        shared.applier.snapshot(&kvs, revision);
        shared.counters.reloads.inc();
        *last = revision;
        shared.set_revision(revision);
        tracing::info!(revision, keys = kvs.len(), "fleet: loaded the shared state");
        Ok(())
    }

    async fn apply(&self, response: &etcd_client::WatchResponse, last: &mut i64) {
        let shared = &self.shared;
        let events = response.events();
        if events.is_empty() {
            // A progress notification: every event up to this revision was delivered.
            if !response.created() {
                if let Some(h) = response.header() {
                    *last = (*last).max(h.revision());
                    shared.applier.progress(*last);
                    shared.set_revision(*last);
                }
            }
            return;
        }
        let _w = shared.writes.lock().await;
        for event in events {
            let Some(kv) = event.kv() else { continue };
            let Ok(key) = kv.key_str() else { continue };
            match event.event_type() {
                EventType::Put => shared.applier.put(&Kv {
                    key: key.to_owned(),
                    value: kv.value().to_vec(),
                    revision: kv.mod_revision(),
                }),
                EventType::Delete => shared.applier.delete(key, kv.mod_revision()),
            }
            *last = (*last).max(kv.mod_revision());
        }
        shared.applier.progress(*last);
        shared.set_revision(*last);
    }

    /// Leaves the member list (revokes the membership lease) on a clean shutdown.
    async fn leave(&self) {
        let lease = self.lease.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((mut client, id)) = lease {
            let _ = tokio::time::timeout(Duration::from_secs(1), client.lease_revoke(id)).await;
        }
    }
}

/// 100 ms doubling to 3 s, with ±20% jitter so a fleet does not reconnect in lockstep.
fn backoff(failures: u32) -> Duration {
    let base = BACKOFF_MIN
        .saturating_mul(1u32 << failures.saturating_sub(1).min(10))
        .min(BACKOFF_MAX);
    base.mul_f64(0.8 + 0.4 * rand::random::<f64>())
}
