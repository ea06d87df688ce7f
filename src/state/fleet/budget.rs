//! The account's budget of new orders counted across the fleet. A CA counts new orders per
//! account (Let's Encrypt: 300 per 3 hours) and a fleet shares one account per CA, so a count
//! kept by each node would let N nodes place N times the limit.
//!
//! The budget is `max` slot keys (`<prefix>/budget/<n>`, `n` < `max`). A node takes a free slot
//! with a transaction that puts the key only if it does not exist (`create_revision == 0`),
//! under a lease of the window's length: etcd removes it when the window has passed, and no
//! two nodes can hold the same slot, so at most `max` orders are placed in any window however
//! many nodes race for the last one.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};

use super::records::BudgetSlotRecord;
use super::{encode, unix, Shared};
use crate::state::backend::{BackendError, OrderSlot};

/// Races lost in a row before the budget is reported busy (each retry reads the slots anew).
const ATTEMPTS: usize = 5;

/// Takes one of `max` slots for `window`, or says when the oldest slot frees.
pub(crate) async fn take(
    shared: &Arc<Shared>,
    max: u32,
    window: Duration,
) -> Result<OrderSlot, BackendError> {
    let fail = |e: super::FleetError| BackendError::Remote(format!("order budget: {e}"));
    let mut client = shared.client().await?;
    let prefix = shared.layout.budget();
    for _ in 0..ATTEMPTS {
        let rsp = shared
            .timed(client.get(prefix.as_str(), Some(GetOptions::new().with_prefix())))
            .await
            .map_err(fail)?;
        let mut taken = vec![false; max as usize];
        let mut oldest: Option<SystemTime> = None;
        for kv in rsp.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            if let Some(n) = key
                .strip_prefix(prefix.as_str())
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n < taken.len())
            {
                taken[n] = true;
            }
            // A slot's record says when its order was placed; one that cannot be read counts
            // as placed now (its lease still ends it).
            let placed = serde_json::from_slice::<BudgetSlotRecord>(kv.value())
                .ok()
                .map_or_else(SystemTime::now, |r| {
                    SystemTime::UNIX_EPOCH + Duration::from_secs(r.placed)
                });
            oldest = Some(oldest.map_or(placed, |o| o.min(placed)));
        }
        let used = taken.iter().filter(|t| **t).count();
        let Some(free) = taken.iter().position(|t| !t) else {
            let now = SystemTime::now();
            let next_free = oldest.map_or(now, |o| (o + window).max(now));
            return Ok(OrderSlot::Full { used, next_free });
        };
        let key = shared.layout.budget_slot(free);
        let secs = i64::try_from(window.as_secs().max(2)).unwrap_or(i64::MAX);
        let lease = shared
            .timed(client.lease_grant(secs, None))
            .await
            .map_err(fail)?
            .id();
        let record = encode(&BudgetSlotRecord {
            node: shared.me.node_id.clone(),
            placed: unix(SystemTime::now()),
        })?;
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.as_str(),
                record,
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let done = shared.timed(client.txn(txn)).await.map_err(fail);
        match done {
            Ok(rsp) if rsp.succeeded() => return Ok(OrderSlot::Taken),
            // Another node took this slot first: its lease is of no use; read again.
            Ok(_) => {
                let _ = shared.timed(client.lease_revoke(lease)).await;
            }
            Err(e) => {
                let _ = shared.timed(client.lease_revoke(lease)).await;
                return Err(e);
            }
        }
    }
    Err(BackendError::Remote(format!(
        "order budget: lost the race for a free slot {ATTEMPTS} times in a row"
    )))
}
