//! Requests-per-minute and tokens-per-minute limits, as evenly spaced reservations (GCRA):
//! each request books `60 / rpm` seconds of the request budget and `tokens · 60 / tpm` of the
//! token budget, and waits until both bookings start. No bursts, no busy waiting.

use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct RateLimiter {
    request_interval: Option<Duration>,
    seconds_per_token: Option<f64>,
    next: Mutex<(Instant, Instant)>,
}

impl RateLimiter {
    pub fn new(requests_per_minute: Option<u32>, tokens_per_minute: Option<u32>) -> Self {
        let now = Instant::now();
        Self {
            request_interval: requests_per_minute
                .filter(|r| *r > 0)
                .map(|r| Duration::from_secs_f64(60.0 / f64::from(r))),
            seconds_per_token: tokens_per_minute
                .filter(|t| *t > 0)
                .map(|t| 60.0 / f64::from(t)),
            next: Mutex::new((now, now)),
        }
    }

    /// Waits for a slot for one request of about `tokens` tokens.
    pub async fn acquire(&self, tokens: u64) {
        if self.request_interval.is_none() && self.seconds_per_token.is_none() {
            return;
        }
        let start = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let mut start = now;
            if let Some(step) = self.request_interval {
                let slot = next.0.max(now);
                next.0 = slot + step;
                start = start.max(slot);
            }
            if let Some(per_token) = self.seconds_per_token {
                let slot = next.1.max(now);
                next.1 = slot + Duration::from_secs_f64(per_token * tokens as f64);
                start = start.max(slot);
            }
            start
        };
        tokio::time::sleep_until(start).await;
    }
}
