//! The per-source response limit of the DNS listener (RRL, after BIND's response rate
//! limiting): a UDP source address can be forged, so an unlimited UDP server is a reflector
//! that floods whoever the forged address belongs to.
//!
//! Sources are counted by network (an IPv4 /24, an IPv6 /56: one client rarely has fewer
//! addresses, and a forger cycling through a block gains nothing). Each network has a token
//! bucket of `rate` responses per second, holding at most one second's worth. Over the limit,
//! every second response "slips" as an empty truncated one (TC set, RFC 1035 §4.1.1): a real
//! resolver retries over TCP (RFC 7766 §5), which cannot be forged; the others are dropped.
//! TCP is not limited here (its connections are bounded by the listener).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Most networks tracked at once; beyond, idle ones are forgotten first.
const MAX_TRACKED: usize = 65_536;

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Within the limit: answer.
    Answer,
    /// Over the limit: an empty response with TC set, so a real resolver retries over TCP.
    Slip,
    /// Over the limit: no response.
    Drop,
}

/// Token buckets per source network.
pub(super) struct RateLimiter {
    /// Responses per second per network; `0`: no limit.
    rate: u32,
    buckets: Mutex<HashMap<u128, Bucket>>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    /// Responses over the limit so far, for the slip ratio.
    over: u64,
}

impl RateLimiter {
    pub(super) fn new(rate: u32) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The verdict for one response to `source` at `now`.
    pub(super) fn check(&self, source: IpAddr, now: Instant) -> Verdict {
        if self.rate == 0 {
            return Verdict::Answer;
        }
        let rate = f64::from(self.rate);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&network(source)) {
            // A full bucket is the state of a network not seen for a second: forgetting it
            // changes nothing for it.
            buckets
                .retain(|_, b| now.duration_since(b.last).as_secs_f64() * rate + b.tokens < rate);
            if buckets.len() >= MAX_TRACKED {
                // Every tracked network is busy: a forged-source flood. Its responses are
                // small (REFUSED or NXDOMAIN, about the query's size), so answering an untracked
                // network costs less than tracking it.
                return Verdict::Answer;
            }
        }
        let bucket = buckets.entry(network(source)).or_insert(Bucket {
            tokens: rate,
            last: now,
            over: 0,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Answer;
        }
        bucket.over += 1;
        if bucket.over % 2 == 1 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

/// The network `ip` is counted in: its /24 (IPv4) or /56 (IPv6), as one key.
fn network(ip: IpAddr) -> u128 {
    match ip {
        // IPv4 keys have bit 127 set, so they never meet an IPv6 network.
        IpAddr::V4(v4) => (1u128 << 127) | u128::from(u32::from(v4) & 0xffff_ff00),
        IpAddr::V6(v6) => u128::from(v6) & !((1u128 << 72) - 1),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_over_the_rate_slips_then_drops_and_time_refills() {
        let limiter = RateLimiter::new(3);
        let now = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let same_net: IpAddr = "192.0.2.200".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..6).map(|_| limiter.check(a, now)).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Answer,
                Verdict::Answer,
                Verdict::Answer,
                Verdict::Slip,
                Verdict::Drop,
                Verdict::Slip
            ]
        );
        // The /24 shares the bucket; another network has its own.
        assert_ne!(limiter.check(same_net, now), Verdict::Answer);
        assert_eq!(limiter.check(other, now), Verdict::Answer);
        assert_eq!(
            limiter.check(a, now + Duration::from_millis(400)),
            Verdict::Answer
        );
    }

    #[test]
    fn no_rate_means_no_limit() {
        let limiter = RateLimiter::new(0);
        let now = Instant::now();
        let a = IpAddr::from([192, 0, 2, 1]);
        assert!((0..1000).all(|_| limiter.check(a, now) == Verdict::Answer));
    }

    #[test]
    fn ipv6_networks_are_slash_56() {
        let a: IpAddr = "2001:db8:0:ff00::1".parse().unwrap();
        let b: IpAddr = "2001:db8:0:ffff::2".parse().unwrap();
        let c: IpAddr = "2001:db8:0:fe00::1".parse().unwrap();
        assert_eq!(network(a), network(b));
        assert_ne!(network(a), network(c));
    }
}
