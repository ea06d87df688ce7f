//! When to renew and when to retry: pure functions of the certificate, the CA's hints and the
//! failure count, so they can be tested without a CA.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// What a planned renewal time is based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// No usable certificate yet: order now.
    Missing,
    /// The CA's ACME Renewal Information window (RFC 9773).
    Ari,
    /// A third of the lifetime left (Let's Encrypt's advice without ARI).
    ThirdLeft,
    /// Half of the lifetime left: lifetimes under [`SHORT_LIFETIME`] (Let's Encrypt's advice
    /// for short-lived certificates, e.g. the 160-hour `shortlived` profile).
    HalfLeft,
}

/// Lifetimes under this renew at half their lifetime, not at two thirds.
pub const SHORT_LIFETIME: Duration = Duration::from_secs(10 * 86_400);

/// A moment inside `[start, end]` chosen uniformly at random, as RFC 9773 §4.2 asks, so a
/// fleet of clients does not renew at once. A window already past means now.
pub fn in_window(
    start: SystemTime,
    end: SystemTime,
    now: SystemTime,
    rng: &mut impl Rng,
) -> SystemTime {
    if end <= now {
        return now;
    }
    let start = start.max(now);
    let span = end.duration_since(start).unwrap_or_default();
    start + span.mul_f64(rng.random::<f64>())
}

/// When to renew without ARI: with a third of the lifetime left, or half of it for a lifetime
/// under [`SHORT_LIFETIME`]; minus up to 4% of the lifetime as jitter, so certificates issued
/// together do not all renew together (90 days: between day 56.4 and day 60; 160 hours:
/// between hour 73.6 and hour 80).
pub fn renewal_point(
    not_before: SystemTime,
    not_after: SystemTime,
    rng: &mut impl Rng,
) -> (SystemTime, Basis) {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let (share, basis) = if lifetime < SHORT_LIFETIME {
        (0.5, Basis::HalfLeft)
    } else {
        (2.0 / 3.0, Basis::ThirdLeft)
    };
    let jitter = lifetime.mul_f64(0.04 * rng.random::<f64>());
    (not_before + lifetime.mul_f64(share) - jitter, basis)
}

/// The wait after the `failures`-th consecutive failure: the `schedule`'s entry for it (the
/// last one repeats), with ±10% jitter — and never more than an eighth of what is left of the
/// served certificate's life (`remaining`), so a short-lived certificate near its end is tried
/// ever more often instead of once a day (a 6-day certificate with 3 days left: every 9 hours
/// at most, with one day left every 3 hours).
pub fn retry_wait(
    failures: u32,
    schedule: &[Duration],
    remaining: Option<Duration>,
    rng: &mut impl Rng,
) -> Duration {
    let index = (failures.max(1) as usize - 1).min(schedule.len().saturating_sub(1));
    let step = schedule
        .get(index)
        .copied()
        .unwrap_or(Duration::from_secs(60));
    let wait = step.mul_f64(0.9 + 0.2 * rng.random::<f64>());
    match remaining {
        Some(left) => wait.min((left / 8).max(Duration::from_secs(60))),
        None => wait,
    }
}

/// The next attempt after a failure: the wait, or the CA's `Retry-After` when it is later
/// (a rateLimited answer is obeyed, catalogue P4).
pub fn next_attempt(
    now: SystemTime,
    wait: Duration,
    retry_after: Option<SystemTime>,
) -> SystemTime {
    let after_wait = now + wait;
    match retry_after {
        Some(at) if at > after_wait => at,
        _ => after_wait,
    }
}

/// The account's budget of new orders: at most `max` in any `window` (Let's Encrypt: 300 new
/// orders per account per 3 hours). Orders that renew with ARI's `replaces` are exempt (Let's
/// Encrypt does not count them) and are not recorded.
#[derive(Debug, Clone)]
pub struct OrderBudget {
    max: usize,
    window: Duration,
    /// Times of the orders counted, oldest first.
    placed: std::collections::VecDeque<SystemTime>,
}

impl OrderBudget {
    /// `max` of 0: no limit.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max: max as usize,
            window,
            placed: std::collections::VecDeque::new(),
        }
    }

    /// Whether a new order may be placed at `now`.
    pub fn allows(&mut self, now: SystemTime) -> bool {
        self.expire(now);
        self.max == 0 || self.placed.len() < self.max
    }

    /// Counts a new order placed at `now`.
    pub fn record(&mut self, now: SystemTime) {
        if self.max > 0 {
            self.placed.push_back(now);
        }
    }

    /// When the next new order may be placed (`now` when one may).
    pub fn next_free(&mut self, now: SystemTime) -> SystemTime {
        self.expire(now);
        if self.max == 0 || self.placed.len() < self.max {
            return now;
        }
        self.placed
            .front()
            .map_or(now, |oldest| *oldest + self.window)
    }

    /// Orders counted in the window ending at `now`.
    pub fn used(&mut self, now: SystemTime) -> usize {
        self.expire(now);
        self.placed.len()
    }

    fn expire(&mut self, now: SystemTime) {
        while self
            .placed
            .front()
            .is_some_and(|t| now.duration_since(*t).unwrap_or_default() >= self.window)
        {
            self.placed.pop_front();
        }
    }
}

/// The order in which due certificates are served when the budget cannot take them all:
/// the one whose served certificate ends first, a missing one before any (earliest deadline
/// first). `not_after` is `None` for a missing certificate.
pub fn urgency(not_after: Option<SystemTime>) -> SystemTime {
    not_after.unwrap_or(SystemTime::UNIX_EPOCH)
}

/// What a failed order at one CA says about asking the next one (`[[acme.ca]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// The CA refuses the names or the account by policy (`rejectedIdentifier`,
    /// `unsupportedIdentifier`, `caa`, `unauthorized` on the new order, a paused name,
    /// `userActionRequired`, `externalAccountRequired`): another CA may well issue.
    Policy,
    /// `rateLimited` (RFC 8555 §6.6): the next CA is asked when the CA's `Retry-After` is
    /// beyond the margin ([`fallback_margin`]).
    RateLimited,
    /// No answer, or a 5xx / `serverInternal`: the next CA is asked once the CA has been out
    /// for the margin.
    Outage,
    /// Anything else — a failed validation, a refused certificate, a storage error — is on the
    /// node's side: the next CA would see the same, and would count a failed validation of
    /// its own.
    Other,
}

/// How a failure reads for fallback. `problem_type` is the ACME error type without its URN
/// prefix, `status` the problem's HTTP status, `no_answer` whether the CA could not be reached
/// or timed out, `at_new_order` whether the order failed at its first step (an `unauthorized`
/// there is the CA's refusal; after a challenge it is a failed validation).
pub fn classify_failure(
    problem_type: Option<&str>,
    status: Option<u16>,
    no_answer: bool,
    paused: bool,
    at_new_order: bool,
) -> FailureClass {
    if paused {
        return FailureClass::Policy;
    }
    match problem_type {
        Some(
            "rejectedIdentifier"
            | "unsupportedIdentifier"
            | "caa"
            | "userActionRequired"
            | "externalAccountRequired",
        ) => FailureClass::Policy,
        Some("unauthorized") if at_new_order => FailureClass::Policy,
        Some("rateLimited") => FailureClass::RateLimited,
        Some("serverInternal") => FailureClass::Outage,
        Some(_) if status.is_some_and(|s| s >= 500) => FailureClass::Outage,
        None if no_answer => FailureClass::Outage,
        _ => FailureClass::Other,
    }
}

/// The longest a certificate waits on one CA before the next is asked: `fallback_after`, and
/// never more than half of what is left of the served certificate's life (`remaining`), so a
/// short-lived certificate near its end does not sit out an outage or a rate limit.
pub fn fallback_margin(fallback_after: Duration, remaining: Option<Duration>) -> Duration {
    match remaining {
        Some(left) => fallback_after.min(left / 2),
        None => fallback_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn window_choice_is_inside_and_spread() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let now = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let (start, end) = (now + DAY, now + 3 * DAY);
        let picks: Vec<_> = (0..200)
            .map(|_| in_window(start, end, now, &mut rng))
            .collect();
        assert!(picks.iter().all(|p| *p >= start && *p <= end));
        let first_half = picks.iter().filter(|p| **p < now + 2 * DAY).count();
        assert!((60..140).contains(&first_half), "not uniform: {first_half}");
    }

    #[test]
    fn window_in_the_past_means_now_and_started_window_starts_now() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let now = SystemTime::UNIX_EPOCH + 1000 * DAY;
        assert_eq!(in_window(now - 2 * DAY, now - DAY, now, &mut rng), now);
        let pick = in_window(now - DAY, now + DAY, now, &mut rng);
        assert!(pick >= now && pick <= now + DAY);
    }

    #[test]
    fn a_third_left_for_ninety_days_and_half_for_short_lifetimes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let nb = SystemTime::UNIX_EPOCH + 1000 * DAY;
        for _ in 0..100 {
            let (at, basis) = renewal_point(nb, nb + 90 * DAY, &mut rng);
            assert_eq!(basis, Basis::ThirdLeft);
            assert!(at <= nb + 60 * DAY && at >= nb + 56 * DAY, "{at:?}");
            let hours = Duration::from_secs(3600);
            let (at, basis) = renewal_point(nb, nb + 160 * hours, &mut rng);
            assert_eq!(basis, Basis::HalfLeft);
            assert!(at <= nb + 80 * hours && at >= nb + 73 * hours, "{at:?}");
        }
    }

    #[test]
    fn retries_follow_the_schedule_and_quicken_near_the_end() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let m = Duration::from_secs(60);
        let schedule = [m, 10 * m, 100 * m, DAY];
        let around = |d: Duration, want: Duration| d >= want.mul_f64(0.9) && d <= want.mul_f64(1.1);
        assert!(around(retry_wait(1, &schedule, None, &mut rng), m));
        assert!(around(retry_wait(2, &schedule, None, &mut rng), 10 * m));
        assert!(around(retry_wait(3, &schedule, None, &mut rng), 100 * m));
        assert!(around(retry_wait(4, &schedule, None, &mut rng), DAY));
        assert!(around(retry_wait(40, &schedule, None, &mut rng), DAY));
        // Three days left of a 6-day certificate: at most 9 hours.
        let nine = retry_wait(9, &schedule, Some(3 * DAY), &mut rng);
        assert!(nine <= Duration::from_secs(9 * 3600), "{nine:?}");
        let near = retry_wait(9, &schedule, Some(Duration::from_secs(60)), &mut rng);
        assert_eq!(near, Duration::from_secs(60));
    }

    #[test]
    fn the_budget_counts_new_orders_in_a_sliding_window() {
        let now = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let hour = Duration::from_secs(3600);
        let mut budget = OrderBudget::new(2, 3 * hour);
        assert!(budget.allows(now));
        budget.record(now);
        budget.record(now + hour);
        assert!(!budget.allows(now + hour));
        assert_eq!(budget.next_free(now + hour), now + 3 * hour);
        assert!(budget.allows(now + 3 * hour));
        assert_eq!(budget.used(now + 3 * hour), 1);
        let mut unlimited = OrderBudget::new(0, hour);
        unlimited.record(now);
        assert!(unlimited.allows(now));
    }

    #[test]
    fn retry_after_wins_when_later() {
        let now = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let b = Duration::from_secs(60);
        assert_eq!(next_attempt(now, b, None), now + b);
        assert_eq!(next_attempt(now, b, Some(now + DAY)), now + DAY);
        assert_eq!(
            next_attempt(now, b, Some(now + Duration::from_secs(1))),
            now + b
        );
    }

    #[test]
    fn failures_that_another_ca_would_not_share_fall_back() {
        use super::FailureClass::*;
        let c = |t: Option<&str>, status, no_answer, paused, first| {
            classify_failure(t, status, no_answer, paused, first)
        };
        assert_eq!(
            c(Some("rejectedIdentifier"), Some(400), false, false, true),
            Policy
        );
        assert_eq!(c(Some("caa"), Some(403), false, false, false), Policy);
        assert_eq!(
            c(Some("unauthorized"), Some(403), false, false, true),
            Policy
        );
        // A failed validation is the node's: the next CA would fail it too.
        assert_eq!(
            c(Some("unauthorized"), Some(403), false, false, false),
            Other
        );
        assert_eq!(c(Some("connection"), Some(400), false, false, false), Other);
        assert_eq!(c(Some("rateLimited"), Some(429), false, true, true), Policy);
        assert_eq!(
            c(Some("rateLimited"), Some(429), false, false, true),
            RateLimited
        );
        assert_eq!(
            c(Some("serverInternal"), Some(500), false, false, false),
            Outage
        );
        assert_eq!(c(Some("badGateway"), Some(502), false, false, true), Outage);
        assert_eq!(c(None, None, true, false, true), Outage);
        assert_eq!(c(None, None, false, false, false), Other);
        let hour = Duration::from_secs(3600);
        assert_eq!(fallback_margin(hour, None), hour);
        assert_eq!(fallback_margin(hour, Some(30 * hour)), hour);
        assert_eq!(fallback_margin(hour, Some(hour)), hour / 2);
    }
}
