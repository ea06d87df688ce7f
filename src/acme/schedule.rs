//! When to renew and when to retry: pure functions of the certificate, the CA's hints and the
//! failure count, so they can be tested without a CA.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// What a planned renewal time is based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// No usable certificate yet: order now.
    Missing,
    /// The CA's ACME Renewal Information window (RFC 9773).
    Ari,
    /// Two thirds of the certificate's lifetime, with jitter.
    TwoThirds,
}

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

/// Two thirds into the lifetime, minus up to 4% of it as jitter (for a 90-day certificate:
/// between day 56.4 and day 60).
pub fn two_thirds(not_before: SystemTime, not_after: SystemTime, rng: &mut impl Rng) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let jitter = lifetime.mul_f64(0.04 * rng.random::<f64>());
    not_before + lifetime.mul_f64(2.0 / 3.0) - jitter
}

/// The wait after the `failures`-th consecutive failure: `min` doubled each time, capped at
/// `max`, with ±10% jitter.
pub fn backoff(failures: u32, min: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let base = min.saturating_mul(1u32 << exp).min(max);
    base.mul_f64(0.9 + 0.2 * rng.random::<f64>())
        .min(max.max(min))
}

/// The next attempt after a failure: the backoff, or the CA's `Retry-After` when it is later
/// (a rateLimited answer is obeyed, catalogue P4).
pub fn next_attempt(
    now: SystemTime,
    backoff: Duration,
    retry_after: Option<SystemTime>,
) -> SystemTime {
    let after_backoff = now + backoff;
    match retry_after {
        Some(at) if at > after_backoff => at,
        _ => after_backoff,
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
    fn two_thirds_of_ninety_days() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let nb = SystemTime::UNIX_EPOCH + 1000 * DAY;
        for _ in 0..100 {
            let at = two_thirds(nb, nb + 90 * DAY, &mut rng);
            assert!(at <= nb + 60 * DAY && at >= nb + 56 * DAY, "{at:?}");
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (min, max) = (Duration::from_secs(60), Duration::from_secs(6 * 3600));
        let d1 = backoff(1, min, max, &mut rng);
        let d3 = backoff(3, min, max, &mut rng);
        let d30 = backoff(30, min, max, &mut rng);
        assert!(
            d1 >= Duration::from_secs(54) && d1 <= Duration::from_secs(66),
            "{d1:?}"
        );
        assert!(
            d3 >= Duration::from_secs(216) && d3 <= Duration::from_secs(264),
            "{d3:?}"
        );
        assert!(d30 <= max && d30 >= max.mul_f64(0.9), "{d30:?}");
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
}
