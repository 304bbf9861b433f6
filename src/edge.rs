//! Protection at the edge: the per-caller rate limit and the global limit on starts in flight.
//!
//! Both are keyed or counted on what the caller is (tenant + object id), never on the client
//! address: behind a load balancer or a portal, many callers share one address.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::Caller;
use crate::config::ServerConfig;
use crate::error::ApiError;

type KeyedLimiter = RateLimiter<String, HashMapStateStore<String>, DefaultClock>;

pub struct Edge {
    limiter: Option<KeyedLimiter>,
    in_flight: Option<Arc<Semaphore>>,
    checks: std::sync::atomic::AtomicU64,
}

impl Edge {
    pub fn new(config: &ServerConfig) -> Self {
        let limiter = NonZeroU32::new(config.rate_limit_per_minute).map(|rate| {
            let burst = NonZeroU32::new(config.rate_limit_burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::hashmap(Quota::per_minute(rate).allow_burst(burst))
        });
        let in_flight = (config.max_concurrent_starts > 0)
            .then(|| Arc::new(Semaphore::new(config.max_concurrent_starts)));
        Self {
            limiter,
            in_flight,
            checks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// 429 with `Retry-After` when the caller is over its rate.
    pub fn check_rate(&self, caller: &Caller) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        // Forget callers whose buckets are full again, so the table stays small; a sweep walks
        // the whole table, so it runs once per 1024 checks, not on each.
        if self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % 1024
            == 1023
        {
            limiter.retain_recent();
        }
        let key = format!("{}/{}", caller.tenant_id, caller.object_id);
        limiter.check_key(&key).map_err(|not_until| {
            metrics::counter!(crate::telemetry::RATE_LIMITED).increment(1);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = crate::graph::whole_seconds(wait.max(Duration::from_millis(1)));
            ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                format!("Too many start requests from this caller; retry in {secs} seconds."),
            )
            .with_retry_after(secs)
        })
    }

    /// A place among the starts in flight, or 503 when all are taken (load shedding).
    pub fn admit(&self) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        let Some(in_flight) = &self.in_flight else {
            return Ok(None);
        };
        match Arc::clone(in_flight).try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => {
                metrics::counter!(crate::telemetry::LOAD_SHED).increment(1);
                Err(ApiError::service_unavailable(
                    "The facade is at its limit of starts in flight; retry shortly.",
                    1,
                ))
            }
        }
    }
}
