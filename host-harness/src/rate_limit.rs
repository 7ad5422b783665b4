//! A per-token rate limit: past it, 429 Too Many Requests with `Retry-After` (RFC 6585 §4,
//! RFC 9110 §10.2.3), which Entra ID and Okta honour by backing off and retrying.
//!
//! Each token has a bucket that refills at the limit's rate and holds one second's worth, so a
//! client may burst up to the limit and then goes at the rate. A leaked token cannot then be used
//! to flood the server, and one identity provider cannot starve another.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The buckets of the tokens that have made requests lately.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<Vec<u8>, Bucket>>,
}

struct Bucket {
    /// Requests the token may make now, fractions included.
    available: f64,
    refilled: Instant,
}

impl RateLimiter {
    /// Takes one request from the bucket of the token with this digest, which refills at
    /// `per_second` requests a second. `Err` holds how long until the next one is allowed.
    pub fn admit(
        &self,
        token_digest: &[u8],
        per_second: NonZeroU32,
        now: Instant,
    ) -> Result<(), Duration> {
        let rate = f64::from(per_second.get());
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !buckets.contains_key(token_digest) {
            // A full bucket is as good as none: forgetting them keeps the map as small as the
            // set of tokens in use, however many were rotated away.
            buckets.retain(|_, bucket| bucket.refill(rate, now) < rate);
            buckets.insert(
                token_digest.to_vec(),
                Bucket {
                    available: rate,
                    refilled: now,
                },
            );
        }
        let Some(bucket) = buckets.get_mut(token_digest) else {
            return Ok(());
        };
        if bucket.refill(rate, now) >= 1.0 {
            bucket.available -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.available) / rate))
        }
    }
}

impl Bucket {
    /// Adds what the time since the last refill earned, up to one second's worth.
    fn refill(&mut self, rate: f64, now: Instant) -> f64 {
        let earned = now.saturating_duration_since(self.refilled).as_secs_f64() * rate;
        self.available = (self.available + earned).min(rate);
        self.refilled = now;
        self.available
    }
}

/// `Retry-After` in whole seconds for a wait: rounded up, and at least one.
pub fn retry_after_seconds(wait: Duration) -> u32 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(seconds.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN: NonZeroU32 = NonZeroU32::new(10).unwrap();

    #[test]
    fn a_burst_of_one_seconds_worth_then_the_rate() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for _ in 0..10 {
            assert_eq!(limiter.admit(b"token", TEN, start), Ok(()));
        }
        let wait = limiter.admit(b"token", TEN, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert_eq!(retry_after_seconds(wait), 1);

        // A tenth of a second earns one request, and no more.
        let later = start + Duration::from_millis(100);
        assert_eq!(limiter.admit(b"token", TEN, later), Ok(()));
        assert!(limiter.admit(b"token", TEN, later).is_err());
    }

    #[test]
    fn each_token_has_its_own_bucket() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        for _ in 0..10 {
            limiter.admit(b"entra", TEN, now).unwrap();
        }
        assert!(limiter.admit(b"entra", TEN, now).is_err());
        assert_eq!(limiter.admit(b"okta", TEN, now), Ok(()));
    }

    #[test]
    fn idle_tokens_are_forgotten() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        limiter.admit(b"rotated away", TEN, now).unwrap();
        limiter
            .admit(b"current", TEN, now + Duration::from_secs(2))
            .unwrap();
        let buckets = limiter.buckets.lock().unwrap();
        assert_eq!(buckets.len(), 1);
        assert!(buckets.contains_key(b"current".as_slice()));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1_001)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(3)), 3);
    }
}
