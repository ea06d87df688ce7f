//! The renewal scheduler at fleet scale, on virtual time: thousands of certificates on one ACME
//! account, Let's Encrypt's limit of 300 new orders per 3 hours, and the renewer's own rules —
//! renew with a third (under 10 days: half) of the lifetime left or inside the ARI window
//! (`schedule::renewal_point`, `schedule::in_window`), new orders within the budget
//! (`schedule::OrderBudget`, ARI renewals with `replaces` exempt), the certificate that ends
//! first served first (`schedule::urgency`). The loop is the renewer's round, with the CA
//! answering at once.
//!
//! Prints, per scenario: the most new orders in any 3-hour window, the renewals per hour at the
//! busiest hour, the least lifetime left at any renewal, and certificates that expired.
//!
//! `cargo bench --bench renewal_sim`

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, SystemTime};

use dcv_proxy::acme::schedule::{self, OrderBudget};
use rand::rngs::StdRng;
use rand::SeedableRng;

const HOUR: Duration = Duration::from_secs(3600);
const TICK: Duration = Duration::from_secs(60);

struct Cert {
    not_after: Option<SystemTime>,
    renew_at: SystemTime,
    ari: bool,
}

struct Scenario {
    name: &'static str,
    certificates: usize,
    lifetime: Duration,
    /// The CA offers ARI (renewals send `replaces` and are exempt from the budget).
    ari: bool,
    /// Certificates already issued at the start, spread evenly over this share of the
    /// lifetime before it — their renewal points then spread over the first hours — or, with
    /// `None`, none issued yet (the first issuance of all of them).
    issued_over: Option<f64>,
    days: u64,
}

struct Outcome {
    new_orders_max_3h: usize,
    renewals_busiest_hour: usize,
    least_left: Duration,
    expired: usize,
    orders: usize,
}

fn run(s: &Scenario) -> Outcome {
    let mut rng = StdRng::seed_from_u64(42);
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 20_000);
    let mut budget = OrderBudget::new(300, 3 * HOUR);
    let mut certs: Vec<Cert> = (0..s.certificates)
        .map(|i| match s.issued_over {
            Some(share) => {
                let span = s.lifetime.mul_f64(share);
                let nb = start - span.mul_f64(i as f64 / s.certificates as f64);
                let na = nb + s.lifetime;
                Cert {
                    not_after: Some(na),
                    renew_at: plan(nb, na, s.ari, start, &mut rng),
                    ari: s.ari,
                }
            }
            None => Cert {
                not_after: None,
                renew_at: start,
                ari: false,
            },
        })
        .collect();
    let mut new_orders: Vec<SystemTime> = Vec::new();
    let mut renewals_per_hour = std::collections::BTreeMap::<u64, usize>::new();
    let mut least_left = s.lifetime;
    let mut expired = 0;
    let mut orders = 0;
    let end = start + Duration::from_secs(86_400 * s.days);
    // Certificates by planned time: each minute of virtual time takes those due.
    let mut queue: BinaryHeap<Reverse<(SystemTime, usize)>> = certs
        .iter()
        .enumerate()
        .map(|(i, c)| Reverse((c.renew_at, i)))
        .collect();
    let mut now = start;
    while now < end {
        // Every certificate due now, the one that ends first first (the renewer's round).
        let mut due = Vec::new();
        while queue.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            if let Some(Reverse((_, i))) = queue.pop() {
                due.push(i);
            }
        }
        due.sort_by_key(|&i| schedule::urgency(certs[i].not_after));
        for i in due {
            let c = &mut certs[i];
            if let Some(na) = c.not_after {
                if na <= now {
                    expired += 1;
                }
                least_left = least_left.min(na.duration_since(now).unwrap_or_default());
            }
            // An ARI renewal sends `replaces`: not counted against the budget.
            let exempt = c.ari && c.not_after.is_some();
            if !exempt {
                if !budget.allows(now) {
                    // Deferred until the next free slot (the renewer's `deferred`).
                    c.renew_at = budget.next_free(now);
                    queue.push(Reverse((c.renew_at, i)));
                    continue;
                }
                budget.record(now);
                new_orders.push(now);
            }
            orders += 1;
            if c.not_after.is_some() {
                let hour = now.duration_since(start).unwrap_or_default().as_secs() / 3600;
                *renewals_per_hour.entry(hour).or_default() += 1;
            }
            let (nb, na) = (now, now + s.lifetime);
            c.not_after = Some(na);
            c.ari = s.ari;
            c.renew_at = plan(nb, na, s.ari, now, &mut rng);
            queue.push(Reverse((c.renew_at, i)));
        }
        now += TICK;
    }
    // The most new orders in any 3-hour window.
    let mut max_3h = 0;
    let mut j = 0;
    for i in 0..new_orders.len() {
        while new_orders[i]
            .duration_since(new_orders[j])
            .unwrap_or_default()
            >= 3 * HOUR
        {
            j += 1;
        }
        max_3h = max_3h.max(i + 1 - j);
    }
    Outcome {
        new_orders_max_3h: max_3h,
        renewals_busiest_hour: renewals_per_hour.values().copied().max().unwrap_or(0),
        least_left,
        expired,
        orders,
    }
}

/// The renewal plan: an ARI window a CA would suggest (Let's Encrypt's suggestion sits around
/// two thirds of the lifetime, here 60–66 %), or the renewer's own rule.
fn plan(
    nb: SystemTime,
    na: SystemTime,
    ari: bool,
    now: SystemTime,
    rng: &mut StdRng,
) -> SystemTime {
    if ari {
        let life = na.duration_since(nb).unwrap_or_default();
        schedule::in_window(nb + life.mul_f64(0.60), nb + life.mul_f64(0.66), now, rng)
    } else {
        schedule::renewal_point(nb, na, rng).0
    }
}

fn main() {
    let shortlived = 160 * HOUR;
    let scenarios = [
        Scenario {
            name: "10 000 shortlived, ARI, first issuance from nothing",
            certificates: 10_000,
            lifetime: shortlived,
            ari: true,
            issued_over: None,
            days: 30,
        },
        Scenario {
            name: "10 000 shortlived, ARI, in steady state",
            certificates: 10_000,
            lifetime: shortlived,
            ari: true,
            issued_over: Some(0.6),
            days: 30,
        },
        Scenario {
            name: "10 000 shortlived, no ARI, in steady state",
            certificates: 10_000,
            lifetime: shortlived,
            ari: false,
            issued_over: Some(0.45),
            days: 30,
        },
        Scenario {
            name: "5 000 shortlived, no ARI, in steady state",
            certificates: 5_000,
            lifetime: shortlived,
            ari: false,
            issued_over: Some(0.45),
            days: 30,
        },
        Scenario {
            name: "10 000 of 90 days, no ARI, in steady state",
            certificates: 10_000,
            lifetime: 90 * 24 * HOUR,
            ari: false,
            issued_over: Some(0.63),
            days: 180,
        },
    ];
    println!("| scenario | orders | most new orders in 3 h (limit 300) | renewals in the busiest hour | least lifetime left at a renewal | expired |");
    println!("|---|---:|---:|---:|---:|---:|");
    for s in &scenarios {
        let clock = std::time::Instant::now();
        let o = run(s);
        println!(
            "| {} | {} | {} | {} | {:.1} h | {} |",
            s.name,
            o.orders,
            o.new_orders_max_3h,
            o.renewals_busiest_hour,
            o.least_left.as_secs_f64() / 3600.0,
            o.expired
        );
        eprintln!("  ({} simulated in {:?})", s.name, clock.elapsed());
    }
}
