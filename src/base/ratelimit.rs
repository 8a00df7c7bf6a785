//! Token buckets per key, for per-peer limits on stream opens and friend requests. The table
//! is bounded: when it is full, the least recently used key is forgotten (it starts again
//! with a full bucket, which only ever favours a peer we had not heard from in a while).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

pub struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    cap: usize,
    buckets: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `rate` tokens per second, at most `burst` saved up, at most `cap` keys remembered.
    pub fn new(rate: f64, burst: f64, cap: usize) -> Self {
        RateLimiter {
            rate,
            burst: burst.max(1.0),
            cap: cap.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `key` at `now`; false when its bucket is empty.
    pub fn allow(&mut self, key: &K, now: Instant) -> bool {
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.cap {
            if let Some(oldest) = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.last)
                .map(|(k, _)| k.clone())
            {
                self.buckets.remove(&oldest);
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        let b = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub fn forget(&mut self, key: &K) {
        self.buckets.remove(key);
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let mut r = RateLimiter::new(2.0, 3.0, 8);
        let t = Instant::now();
        assert!((0..3).all(|_| r.allow(&"a", t)), "the burst");
        assert!(!r.allow(&"a", t), "then empty");
        assert!(r.allow(&"b", t), "other keys are separate");
        assert!(
            r.allow(&"a", t + Duration::from_millis(500)),
            "2/s refills one in 0.5 s"
        );
        assert!(!r.allow(&"a", t + Duration::from_millis(600)));
        // Never more than the burst, however long the pause.
        let later = t + Duration::from_secs(3600);
        assert_eq!((0..10).filter(|_| r.allow(&"a", later)).count(), 3);
    }

    #[test]
    fn table_is_bounded() {
        let mut r = RateLimiter::new(1.0, 1.0, 2);
        let t = Instant::now();
        for k in 0..100 {
            r.allow(&k, t + Duration::from_millis(k));
        }
        assert_eq!(r.len(), 2);
        r.forget(&99);
        assert_eq!(r.len(), 1);
    }
}
