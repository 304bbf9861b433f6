//! Admission: what a caller may send to Graph (the per-caller rate limit) and how many starts
//! may be running at once (load shedding).
//!
//! The limit protects Graph's quota, which every caller shares through the facade's one
//! credential, so it is charged for what would reach Graph, at the moment it would: a start
//! forwarded (the flight's leader, after the guard let it through), a lookup or read that no
//! cache can answer. A caller that joins a flight, replays an idempotent answer or is refused by
//! the guard costs nothing. Both limits key on what the caller is (tenant + object id), never
//! on the client address: behind a load balancer or a portal many callers share one address.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::{Caller, CallerKind};
use crate::error::ApiError;

type KeyedLimiter = RateLimiter<String, HashMapStateStore<String>, DefaultClock>;

pub struct Admission {
    limiter: Option<KeyedLimiter>,
    in_flight: Option<Arc<Semaphore>>,
    checks: std::sync::atomic::AtomicU64,
}

/// A start's place among the starts running; held until the start ends.
pub type Place = Option<OwnedSemaphorePermit>;

impl Admission {
    /// `rate_per_minute` and `burst` per caller (0: no limit); `max_starts` at once (0: no limit).
    pub fn new(rate_per_minute: u32, burst: u32, max_starts: usize) -> Self {
        let limiter = NonZeroU32::new(rate_per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::hashmap(Quota::per_minute(rate).allow_burst(burst))
        });
        let in_flight = (max_starts > 0).then(|| Arc::new(Semaphore::new(max_starts)));
        Self {
            limiter,
            in_flight,
            checks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Charges `caller` one call to Graph: 429 with `Retry-After` when it is over its rate.
    /// Signed webhook deliveries are not charged: they start only their hook's fixed targets,
    /// which the guard's cooldown already bounds.
    pub fn charge(&self, caller: &Caller) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if caller.kind == CallerKind::Webhook {
            return Ok(());
        }
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
                format!(
                    "This caller is over its rate of calls to Graph through the facade; retry in {secs} seconds."
                ),
            )
            .with_retry_after(secs)
        })
    }

    /// A place among the starts running, or 503 when all are taken (load shedding), then the
    /// charge for the start. Only a start that will be sent asks: followers of a flight hold
    /// no place.
    pub fn admit_start(&self, caller: &Caller) -> Result<Place, ApiError> {
        let place = match &self.in_flight {
            None => None,
            Some(in_flight) => match Arc::clone(in_flight).try_acquire_owned() {
                Ok(place) => Some(place),
                Err(_) => {
                    metrics::counter!(crate::telemetry::LOAD_SHED).increment(1);
                    return Err(ApiError::service_unavailable(
                        "The facade is at its limit of starts in flight; retry shortly.",
                        1,
                    ));
                }
            },
        };
        self.charge(caller)?;
        Ok(place)
    }
}
