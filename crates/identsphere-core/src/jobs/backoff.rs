//! When a failed job runs again: exponential backoff with jitter, so that
//! jobs failing together (a database outage) do not all retry together.
use chrono::Duration;
use rand::Rng;

/// The delay after the `attempt`-th failed attempt (1 for the first):
/// `base · 2^(attempt-1)`, capped at `max`, then drawn uniformly from its
/// upper half ("equal jitter": never less than half, so retries still back off).
pub fn retry_delay(attempt: u32, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let full = base
        .num_milliseconds()
        .saturating_mul(1_i64 << exponent)
        .min(max.num_milliseconds())
        .max(1);
    let half = full / 2;
    Duration::milliseconds(half + rng.gen_range(0..=full - half))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn ms(d: Duration) -> i64 {
        d.num_milliseconds()
    }

    #[test]
    fn delays_double_within_their_jitter_and_stop_at_the_cap() {
        let mut rng = StdRng::seed_from_u64(7);
        let (base, max) = (Duration::seconds(1), Duration::seconds(60));
        for (attempt, full) in [
            (1, 1_000),
            (2, 2_000),
            (3, 4_000),
            (7, 60_000),
            (40, 60_000),
        ] {
            for _ in 0..200 {
                let d = ms(retry_delay(attempt, base, max, &mut rng));
                assert!(
                    (full / 2..=full).contains(&d),
                    "attempt {attempt}: {d} ms not in [{}, {full}]",
                    full / 2
                );
            }
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut rng = StdRng::seed_from_u64(1);
        let delays: std::collections::HashSet<i64> = (0..50)
            .map(|_| {
                ms(retry_delay(
                    4,
                    Duration::seconds(1),
                    Duration::hours(1),
                    &mut rng,
                ))
            })
            .collect();
        assert!(delays.len() > 40, "only {} distinct delays", delays.len());
    }

    #[test]
    fn attempt_zero_and_tiny_bases_stay_positive() {
        let mut rng = StdRng::seed_from_u64(3);
        assert!(
            ms(retry_delay(
                0,
                Duration::seconds(1),
                Duration::hours(1),
                &mut rng
            )) >= 500
        );
        assert!(
            ms(retry_delay(
                1,
                Duration::zero(),
                Duration::hours(1),
                &mut rng
            )) <= 1
        );
    }
}
