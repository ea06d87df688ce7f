//! What to do about failures that are no cause of the catalogue: the CA unreachable, a stale
//! nonce, a full disk. They keep their ACME type or kind rather than being forced into a cause
//! that does not fit, but they still come with a remedy.

/// What to do while a node cannot reach the fleet's etcd (failure kind `fleet`): said by the
/// fleet store's log line and by every order the node holds back meanwhile.
pub const FLEET_UNAVAILABLE: &str = "the node cannot reach the fleet's etcd: look at its connection (dcv_fleet_connected, `fleet` in GET /v1/status: endpoints, last_error) and its log (`fleet: etcd unavailable`); meanwhile it serves its local snapshot and places no order, so that no two nodes order one certificate and the fleet's budget of new orders holds";

/// What to do about a failure the catalogue has no cause for, by its ACME error type (without
/// the URN prefix) or, without one, the failure's kind (`transport`, `timeout`, …): the log, the
/// status page and `certs list` show it where a cause's remedy would be, so that no failure an
/// operator sees goes without something to do.
pub fn remedy_without_cause(ca_type: Option<&str>, kind: &str) -> &'static str {
    match ca_type.unwrap_or(kind) {
        "transport" => {
            "the node cannot reach the CA: check acme.directory, DNS and the outbound firewall or proxy (and acme.ca_bundle for a private CA); the node retries with backoff"
        }
        "timeout" => {
            "the CA did not finish within acme.order_timeout: the next attempt starts a new order; if it repeats, look at the CA's status"
        }
        "serverInternal" => {
            "the CA failed on its side: the node retries with backoff; if it repeats, look at the CA's status page"
        }
        "badNonce" => {
            "a stale replay nonce, normally retried at once: if it repeats, something between the node and the CA caches or replays answers"
        }
        "fleet" => FLEET_UNAVAILABLE,
        "storage" => "the state directory could not be written (full or read-only disk: see the detail)",
        "key" => "a key or CSR could not be made (see the detail)",
        "config" => "the [acme] settings cannot be used as they are: fix what the detail names",
        "refused" => {
            "the certificate the CA issued failed the node's checks (see the detail): nothing was served, the next attempt orders again"
        }
        _ => "read the detail (what the CA or the node said); the node retries with backoff",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acme_type_wins_over_the_kind_and_anything_gets_a_remedy() {
        assert!(remedy_without_cause(Some("badNonce"), "transport").contains("nonce"));
        assert!(remedy_without_cause(None, "transport").contains("acme.directory"));
        assert!(remedy_without_cause(None, "storage").contains("state directory"));
        assert!(remedy_without_cause(Some("somethingNew"), "ca").contains("retries"));
    }
}
