//! What keeps a failing Graph from being hammered: a retry budget, so that retries stay a small
//! fraction of the traffic during an outage, and a circuit breaker that fails fast after a run
//! of failures and lets one trial call through once the open period has passed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// In tenths of a retry: a first attempt earns a fifth of a retry; at most ten are saved up.
const DEPOSIT: u32 = 2;
const RETRY: u32 = 10;
const MAX_BALANCE: u32 = 100;

/// A token bucket for retries: every first attempt deposits a fraction of a retry, every retry
/// withdraws a whole one.
pub struct RetryBudget(AtomicU32);

impl Default for RetryBudget {
    fn default() -> Self {
        Self(AtomicU32::new(MAX_BALANCE))
    }
}

impl RetryBudget {
    pub fn deposit(&self) {
        let _ = self
            .0
            .fetch_update(Relaxed, Relaxed, |b| Some((b + DEPOSIT).min(MAX_BALANCE)));
    }

    /// True when a retry may be sent.
    pub fn withdraw(&self) -> bool {
        self.0
            .fetch_update(Relaxed, Relaxed, |b| b.checked_sub(RETRY))
            .is_ok()
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial call is out; another is let through only if it takes longer than the open period.
    HalfOpen {
        trial_since: Instant,
    },
}

pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

/// The breaker's state for readiness and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// `Err(wait)` while calls must fail fast.
    pub fn admit(&self) -> Result<(), Duration> {
        let mut state = self.state.lock().expect("breaker lock");
        let now = Instant::now();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now < until => Err(until - now),
            State::HalfOpen { trial_since } if now < trial_since + self.open_for => {
                Err(trial_since + self.open_for - now)
            }
            State::Open { .. } | State::HalfOpen { .. } => {
                *state = State::HalfOpen { trial_since: now };
                publish(&state);
                Ok(())
            }
        }
    }

    pub fn record(&self, success: bool) {
        let mut state = self.state.lock().expect("breaker lock");
        *state = match (*state, success) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            (_, false) => {
                tracing::warn!(
                    open_secs = self.open_for.as_secs(),
                    "Graph keeps failing: circuit open, starts fail fast"
                );
                metrics::counter!(crate::telemetry::GRAPH_CIRCUIT_OPENED).increment(1);
                State::Open {
                    until: Instant::now() + self.open_for,
                }
            }
        };
        publish(&state);
    }

    pub fn state(&self) -> BreakerState {
        match *self.state.lock().expect("breaker lock") {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// The breaker's state as a gauge: 0 closed, 1 half-open, 2 open.
fn publish(state: &State) {
    let value = match state {
        State::Closed { .. } => 0.0,
        State::HalfOpen { .. } => 1.0,
        State::Open { .. } => 2.0,
    };
    metrics::gauge!(crate::telemetry::GRAPH_CIRCUIT_STATE).set(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_the_threshold_and_closes_after_a_good_trial() {
        let breaker = Breaker::new(3, Duration::from_millis(50));
        for _ in 0..2 {
            breaker.record(false);
        }
        assert!(breaker.admit().is_ok(), "below the threshold");
        breaker.record(false);
        assert!(breaker.admit().is_err(), "open");
        assert_eq!(breaker.state(), BreakerState::Open);
        std::thread::sleep(Duration::from_millis(60));
        assert!(breaker.admit().is_ok(), "one trial");
        assert!(breaker.admit().is_err(), "only one trial at a time");
        breaker.record(true);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.admit().is_ok());
    }

    #[test]
    fn a_failed_trial_opens_the_breaker_again() {
        let breaker = Breaker::new(1, Duration::from_millis(20));
        breaker.record(false);
        std::thread::sleep(Duration::from_millis(30));
        assert!(breaker.admit().is_ok());
        breaker.record(false);
        assert!(breaker.admit().is_err());
    }

    #[test]
    fn the_budget_allows_a_burst_then_a_fraction_of_traffic() {
        let budget = RetryBudget::default();
        let burst = (0..20).filter(|_| budget.withdraw()).count();
        assert_eq!(burst, 10);
        for _ in 0..10 {
            budget.deposit();
        }
        assert_eq!((0..5).filter(|_| budget.withdraw()).count(), 2);
    }
}
