//! The job guard: Microsoft's "don't call start continuously" made a rule for every caller.
//!
//! Owns single flight (concurrent starts of one job share one upstream call and its outcome, on
//! one replica through an in-process table and across replicas through a lease in the store),
//! the cooldown after an accepted start, and `Idempotency-Key` replay. It does not read or start
//! jobs itself: the start pipeline hands it the work to run once.

pub mod config;
pub mod store;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::error::ApiError;
use crate::ids::{JobId, ServicePrincipalId};
use crate::outcome::Outcome;
use store::{Store, StoreError};

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest accepted `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_MAX: usize = 255;
/// How long a finished flight's outcome stays readable for replicas that waited on it.
const OUTCOME_TTL: Duration = Duration::from_secs(60);
/// How often a waiting replica looks for the outcome.
const POLL: Duration = Duration::from_millis(25);

/// "The same job": the resolved service principal object id (lower case) and the job id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobKey(String);

impl JobKey {
    pub fn new(sp: &ServicePrincipalId, job: &JobId) -> Self {
        Self(format!(
            "{}/{}",
            sp.as_str().to_ascii_lowercase(),
            job.as_str().to_ascii_lowercase()
        ))
    }
}

/// A validated `Idempotency-Key` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        if text.is_empty()
            || text.len() > IDEMPOTENCY_KEY_MAX
            || !text.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ApiError::bad_request(format!(
                "Invalid Idempotency-Key: it must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters."
            )));
        }
        Ok(Self(text.to_owned()))
    }

    /// The key of one item of a batch. A key is visible ASCII, so the line break keeps an
    /// item's key apart from every key of a single request (`B2` item 0 is not `B2#0`).
    pub fn for_item(&self, index: usize) -> Self {
        Self(format!("{}\n{index}", self.0))
    }
}

/// How long the last start of a job is remembered for job reads.
const LAST_START_TTL: Duration = Duration::from_secs(24 * 3600);

/// A time as RFC 3339 UTC, to the second.
pub fn rfc3339(at: std::time::SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The guard's view of a job, as times: when a start would no longer be refused for its
/// cooldown (`None`: it would not be), and the last start it let through.
#[derive(Debug, Clone, Default)]
pub struct JobView {
    pub start_allowed_at: Option<String>,
    pub last_start: Option<serde_json::Value>,
}

/// How a request took part in a flight, with the outcome every request of it shares.
pub enum Flight<T> {
    /// This request ran the start; `T` is what its work reported besides the outcome.
    Led(Outcome, T),
    /// This request shared another's outcome.
    Joined(Outcome),
}

/// How a flight ended across replicas for the request that asked.
enum Crossed<T> {
    Flight(Flight<T>),
    /// The leader's work declined for its own request alone.
    Declined(ApiError),
}

/// What claiming an idempotency key (or a webhook delivery id) found.
enum Claim<T> {
    /// Nobody held it: this request runs, then settles it.
    Fresh,
    /// Answered before: this is the answer.
    Answered(T),
    /// Held for another target (another job, another hook).
    OtherTarget,
    /// Still held by a request in progress after the wait.
    InProgress,
}

/// A kept answer: the outcome and the shape it was first answered in.
#[derive(Serialize, Deserialize)]
struct Replayed {
    outcome: Outcome,
    pass_thru: bool,
}

/// What an `Idempotency-Key` found.
pub enum Idempotent {
    /// First use: run, then `finish`.
    Fresh,
    /// Used before for the same target: this is its answer, and whether it was given as
    /// `passThru`.
    Replay(Outcome, bool),
}

#[derive(Serialize, Deserialize)]
struct IdempotencyRecord<T> {
    target: String,
    outcome: Option<T>,
}

pub struct Guard {
    /// Leases, flight outcomes, cooldowns.
    state: Store,
    /// Cooldowns; a separate memory store, so that flights of other jobs cannot evict them.
    cooldowns: Store,
    /// Idempotency records; a separate memory store, so that many keys cannot evict cooldowns.
    replies: Store,
    cooldown: Duration,
    /// A flight's lease outlives the longest upstream call, so a crashed holder frees the job.
    lease_ttl: Duration,
    /// Longest wait for another request's outcome.
    wait_bound: Duration,
    /// Longest wait for a concurrent request with the same idempotency key: the caller's own
    /// request timeout, so that the wait ends before the caller gives up.
    reply_wait: Duration,
    /// Flights in progress in this process.
    local: Mutex<HashMap<JobKey, watch::Receiver<Option<Arc<Outcome>>>>>,
}

fn unavailable(error: StoreError) -> ApiError {
    metrics::counter!(crate::telemetry::GUARD_STORE_ERRORS).increment(1);
    tracing::error!(%error, "guard store unavailable; refusing the start");
    ApiError::service_unavailable(
        "The guard store is unreachable; starts are refused until it is back.",
        5,
    )
}

impl Guard {
    pub fn new(
        state: Store,
        cooldowns: Store,
        replies: Store,
        cooldown: Duration,
        flight_bound: Duration,
        reply_wait: Duration,
    ) -> Self {
        Self {
            state,
            cooldowns,
            replies,
            cooldown,
            lease_ttl: flight_bound + Duration::from_secs(5),
            wait_bound: flight_bound,
            reply_wait,
            local: Mutex::new(HashMap::new()),
        }
    }

    pub fn store_kind(&self) -> &'static str {
        self.state.kind()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.state.ping().await
    }

    /// Time left in the job's cooldown.
    pub async fn cooldown_remaining(&self, job: &JobKey) -> Result<Option<Duration>, ApiError> {
        self.cooldowns
            .ttl(&format!("cooldown:{}", job.0))
            .await
            .map_err(unavailable)
    }

    /// What the guard would say about a start of `job` now, as times, so that an answer that
    /// carries it stays true while it is cached.
    pub async fn view(&self, job: &JobKey) -> Result<JobView, ApiError> {
        let allowed_at = self
            .cooldowns
            .get(&format!("cooldown:{}", job.0))
            .await
            .map_err(unavailable)?;
        let last_start = self
            .cooldowns
            .get(&format!("laststart:{}", job.0))
            .await
            .map_err(unavailable)?
            .and_then(|text| serde_json::from_str(&text).ok());
        Ok(JobView {
            start_allowed_at: allowed_at,
            last_start,
        })
    }

    /// Remembers an accepted start of `job` by `caller` (a display name or app id), for a day.
    pub async fn record_last_start(&self, job: &JobKey, caller: &str) {
        let record =
            serde_json::json!({"at": rfc3339(std::time::SystemTime::now()), "caller": caller});
        if let Err(error) = self
            .cooldowns
            .set(
                &format!("laststart:{}", job.0),
                &record.to_string(),
                LAST_START_TTL,
            )
            .await
        {
            tracing::warn!(%error, "could not record the last start of a job");
        }
    }

    pub fn cooldown_error(&self, job_id: &JobId, remaining: Duration) -> ApiError {
        let secs = crate::graph::whole_seconds(remaining).max(1);
        ApiError::conflict(
            "SyncJobStartCooldown",
            format!("The synchronization job {job_id} was started less than {} seconds ago; try again in {secs} seconds.", self.cooldown.as_secs()),
        )
        .with_retry_after(secs)
    }

    /// Runs `start` (a future, which does nothing until awaited) once for all concurrent
    /// requests of `job`, on this replica and across replicas sharing the store; refuses with
    /// the cooldown error when the job is cooling down.
    ///
    /// `start` answers `Ok` with the outcome every request of the flight shares, or `Err` when
    /// it declined for its own request alone (that caller's rate limit, no place to run): then
    /// nothing is shared, and the requests that waited on it try again, one of them leading.
    pub async fn single_flight<T>(
        &self,
        job: &JobKey,
        job_id: &JobId,
        start: impl Future<Output = Result<(Outcome, T), ApiError>>,
    ) -> Result<Flight<T>, ApiError> {
        let sender = loop {
            let existing = {
                let mut local = self.local.lock().expect("flight table");
                match local.get(job) {
                    Some(receiver) => Some(receiver.clone()),
                    None => {
                        let (sender, receiver) = watch::channel(None);
                        local.insert(job.clone(), receiver);
                        break sender;
                    }
                }
            };
            if let Some(mut receiver) = existing {
                // The leader sends before leaving the table, unless it declined (or panicked):
                // then the channel closes empty and this request tries again.
                if let Ok(outcome) = receiver.wait_for(Option::is_some).await {
                    return Ok(Flight::Joined((**outcome.as_ref().expect("some")).clone()));
                }
            }
        };
        let _leaving = LeaveTable { guard: self, job };
        let shared = match self.across_replicas(job, job_id, start).await {
            Ok(Crossed::Flight(flight)) => Ok(flight),
            Ok(Crossed::Declined(error)) => return Err(error),
            Err(error) => Err(error),
        };
        let outcome = match &shared {
            Ok(Flight::Led(outcome, _) | Flight::Joined(outcome)) => outcome.clone(),
            Err(error) => Outcome::from(error.clone()),
        };
        let _ = sender.send(Some(Arc::new(outcome)));
        shared
    }

    async fn across_replicas<T>(
        &self,
        job: &JobKey,
        job_id: &JobId,
        start: impl Future<Output = Result<(Outcome, T), ApiError>>,
    ) -> Result<Crossed<T>, ApiError> {
        // One replica: the in-process table is the whole flight; no lease, no shared record.
        if matches!(self.state, Store::Memory(_)) {
            return self
                .lead(job, job_id, None, start)
                .await
                .map(|(crossed, _)| crossed);
        }
        let lease_key = format!("lease:{}", job.0);
        let flight = uuid::Uuid::new_v4().to_string();
        let deadline = Instant::now() + self.wait_bound;
        loop {
            if self
                .state
                .set_nx(&lease_key, &flight, self.lease_ttl)
                .await
                .map_err(unavailable)?
            {
                let led = self.lead(job, job_id, Some(&flight), start).await;
                // A started job whose cooldown could not be recorded keeps its lease until it
                // expires: a shorter cooldown, rather than none.
                let keep_lease = matches!(led, Ok((_, true)));
                if !keep_lease && let Err(error) = self.state.delete_if(&lease_key, &flight).await {
                    tracing::warn!(%error, "could not release a flight lease; it expires by itself");
                }
                return led.map(|(crossed, _)| crossed);
            }
            let Some(holder) = self.state.get(&lease_key).await.map_err(unavailable)? else {
                continue;
            };
            let outcome_key = format!("outcome:{holder}");
            while Instant::now() < deadline {
                if let Some(joined) = self.shared_outcome(&outcome_key).await? {
                    return Ok(joined);
                }
                if self
                    .state
                    .get(&lease_key)
                    .await
                    .map_err(unavailable)?
                    .as_deref()
                    != Some(holder.as_str())
                {
                    // The holder may have recorded its outcome just before releasing.
                    if let Some(joined) = self.shared_outcome(&outcome_key).await? {
                        return Ok(joined);
                    }
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
            if Instant::now() >= deadline {
                return Err(ApiError::service_unavailable(
                    format!(
                        "A start of the synchronization job {job_id} is in progress on another replica; its outcome did not arrive in time."
                    ),
                    5,
                ));
            }
        }
    }

    /// The outcome another replica's flight shared, once it is there.
    async fn shared_outcome<T>(&self, key: &str) -> Result<Option<Crossed<T>>, ApiError> {
        let Some(text) = self.state.get(key).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let outcome = serde_json::from_str(&text).map_err(ApiError::internal)?;
        Ok(Some(Crossed::Flight(Flight::Joined(outcome))))
    }

    /// The flight's work, run by the leader; `flight` names the outcome record that waiting
    /// replicas read (none with one replica). Also says whether the lease must be kept: the
    /// start happened but its cooldown could not be recorded.
    async fn lead<T>(
        &self,
        job: &JobKey,
        job_id: &JobId,
        flight: Option<&str>,
        start: impl Future<Output = Result<(Outcome, T), ApiError>>,
    ) -> Result<(Crossed<T>, bool), ApiError> {
        // Another replica may have finished a start between this request's first cooldown
        // check and taking the lease.
        if let Some(remaining) = self.cooldown_remaining(job).await? {
            return Err(self.cooldown_error(job_id, remaining));
        }
        // `start` is lazy: nothing of it has run before this await.
        let (outcome, report) = match start.await {
            Ok(done) => done,
            // Nothing to share: the lease is released and waiting replicas try again.
            Err(declined) => return Ok((Crossed::Declined(declined), false)),
        };
        let started = outcome.started();
        let mut cooldown_missing = false;
        if started
            && !self.cooldown.is_zero()
            && let Err(error) = self
                .cooldowns
                .set(
                    &format!("cooldown:{}", job.0),
                    &rfc3339(std::time::SystemTime::now() + self.cooldown),
                    self.cooldown,
                )
                .await
        {
            // The start happened; the caller learns so. The missing cooldown is logged.
            tracing::error!(%error, "could not record the cooldown of a started job");
            cooldown_missing = true;
        }
        if let Some(flight) = flight {
            let text = serde_json::to_string(&outcome).map_err(ApiError::internal)?;
            if let Err(error) = self
                .state
                .set(&format!("outcome:{flight}"), &text, OUTCOME_TTL)
                .await
            {
                tracing::warn!(%error, "could not share a flight outcome; waiting replicas will time out");
            }
        }
        Ok((
            Crossed::Flight(Flight::Led(outcome, report)),
            cooldown_missing,
        ))
    }

    fn idempotency_key(scope: &str, key: &str) -> String {
        format!("idem:{:x}", Sha256::digest(format!("{scope}\n{key}")))
    }

    /// Looks up or claims an idempotency key for `scope` (the caller) and `job`.
    pub async fn begin_idempotent(
        &self,
        scope: &str,
        key: &IdempotencyKey,
        job: &JobKey,
    ) -> Result<Idempotent, ApiError> {
        match self
            .claim(&Self::idempotency_key(scope, &key.0), &job.0)
            .await?
        {
            Claim::Fresh => Ok(Idempotent::Fresh),
            Claim::Answered(Replayed { outcome, pass_thru }) => {
                Ok(Idempotent::Replay(outcome, pass_thru))
            }
            Claim::OtherTarget => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "IdempotencyKeyReused",
                "This Idempotency-Key was already used for another synchronization job; use a new key for a new start.",
            )),
            Claim::InProgress => Err(ApiError::conflict(
                "IdempotencyKeyInProgress",
                "A request with this Idempotency-Key is still in progress; retry later.",
            )
            .with_retry_after(1)),
        }
    }

    /// Records the answer for a claimed key; answers a retry may cure release the key instead.
    pub async fn finish_idempotent(
        &self,
        scope: &str,
        key: &IdempotencyKey,
        job: &JobKey,
        outcome: &Outcome,
        pass_thru: bool,
    ) {
        let answer = Replayed {
            outcome: outcome.clone(),
            pass_thru,
        };
        self.settle(
            &Self::idempotency_key(scope, &key.0),
            &job.0,
            outcome.is_final().then_some(&answer),
        )
        .await;
    }

    /// A webhook delivery: the first answer for this hook and delivery id, or `None` when this
    /// request is the first (it then calls `finish_delivery`).
    pub async fn begin_delivery(
        &self,
        hook: &str,
        delivery_id: &str,
    ) -> Result<Option<serde_json::Value>, ApiError> {
        let key = Self::idempotency_key(&format!("hook:{hook}"), delivery_id);
        match self.claim(&key, hook).await? {
            Claim::Fresh => Ok(None),
            Claim::Answered(answer) => Ok(Some(answer)),
            Claim::OtherTarget | Claim::InProgress => Err(ApiError::conflict(
                "DeliveryInProgress",
                "This delivery is still being processed; it is answered once.",
            )
            .with_retry_after(1)),
        }
    }

    /// Records a delivery's answer; `None` forgets the delivery so that a redelivery runs again.
    pub async fn finish_delivery(
        &self,
        hook: &str,
        delivery_id: &str,
        answer: Option<&serde_json::Value>,
    ) {
        self.settle(
            &Self::idempotency_key(&format!("hook:{hook}"), delivery_id),
            hook,
            answer,
        )
        .await;
    }

    /// Claims `store_key` for `target`, waiting (up to the caller's request timeout) while
    /// another request holds it for the same target.
    async fn claim<T: serde::de::DeserializeOwned + Serialize>(
        &self,
        store_key: &str,
        target: &str,
    ) -> Result<Claim<T>, ApiError> {
        let claim = serde_json::to_string(&IdempotencyRecord::<T> {
            target: target.to_owned(),
            outcome: None,
        })
        .expect("record serialises");
        let deadline = Instant::now() + self.reply_wait;
        loop {
            let replies = &self.replies;
            if replies
                .set_nx(store_key, &claim, self.lease_ttl)
                .await
                .map_err(unavailable)?
            {
                return Ok(Claim::Fresh);
            }
            let Some(text) = replies.get(store_key).await.map_err(unavailable)? else {
                continue;
            };
            let record: IdempotencyRecord<T> =
                serde_json::from_str(&text).map_err(ApiError::internal)?;
            if record.target != target {
                return Ok(Claim::OtherTarget);
            }
            if let Some(outcome) = record.outcome {
                return Ok(Claim::Answered(outcome));
            }
            if Instant::now() >= deadline {
                return Ok(Claim::InProgress);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn settle<T: Serialize>(&self, store_key: &str, target: &str, outcome: Option<&T>) {
        let result = match outcome {
            Some(outcome) => match serde_json::to_string(&IdempotencyRecord {
                target: target.to_owned(),
                outcome: Some(outcome),
            }) {
                Ok(text) => self.replies.set(store_key, &text, IDEMPOTENCY_TTL).await,
                Err(error) => Err(StoreError(error.to_string())),
            },
            None => self.replies.delete(store_key).await,
        };
        if let Err(error) = result {
            tracing::error!(%error, "could not record an idempotent answer");
        }
    }
}

/// Removes a flight from the in-process table however the leader leaves.
struct LeaveTable<'a> {
    guard: &'a Guard,
    job: &'a JobKey,
}

impl Drop for LeaveTable<'_> {
    fn drop(&mut self) {
        if let Ok(mut local) = self.guard.local.lock() {
            local.remove(self.job);
        }
    }
}
