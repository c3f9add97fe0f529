//! Exponential backoff with full jitter: the n-th wait is uniform in
//! `[0, min(max, min_delay * 2^n)]`, so a fleet that lost its broker at the
//! same moment does not come back in lock-step.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max, attempt: 0, rng: Rng::from_entropy() }
    }

    /// The ceiling of the next wait (before jitter).
    pub fn ceiling(&self) -> Duration {
        let factor = 1u64 << self.attempt.min(30);
        let ms = (self.min.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(ms).min(self.max)
    }

    /// The next wait, and count the attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        // Never 0: a zero wait would make a reconnect loop spin.
        let ms = self.rng.below(ceiling.as_millis() as u64 + 1).max(50);
        Duration::from_millis(ms)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// A small xorshift generator: jitter needs spread, not cryptography, and
/// this avoids a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn from_entropy() -> Rng {
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        seed ^= (std::process::id() as u64) << 32;
        if let Ok(b) = std::fs::read("/proc/sys/kernel/random/uuid") {
            for (i, c) in b.iter().enumerate() {
                seed ^= (*c as u64) << ((i * 7) % 57);
            }
        }
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-ish in `[0, n)`; 0 when n is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_below_the_ceiling() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let ceilings: Vec<u64> = (0..12)
            .map(|_| {
                let c = b.ceiling();
                let d = b.next_delay();
                assert!(d <= c.max(Duration::from_millis(50)), "{d:?} > {c:?}");
                c.as_secs()
            })
            .collect();
        assert_eq!(ceilings, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads() {
        let mut b = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        let v: std::collections::BTreeSet<u64> = (0..50).map(|_| b.next_delay().as_millis() as u64 / 1000).collect();
        assert!(v.len() > 10, "full jitter should spread waits: {v:?}");
    }
}
