//! Running several starts of one request (a `POST /start` array, a hook's targets) together,
//! within the request's time.
//!
//! Starts begin in order, a few at a time. When the request's time runs out, the request is
//! answered anyway: each start that finished keeps its answer, each one still running gets its
//! own 504 (it runs on, detached, and is audited), and each one not yet begun is not begun.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::start::Answer;

/// Most items in one `POST /start` array.
pub const MAX_ITEMS: usize = 100;

/// Starts of one request running at once.
pub const CONCURRENCY: usize = 8;

/// The time a batch keeps for writing its answer before the request timeout.
fn margin(request_timeout: Duration) -> Duration {
    (request_timeout / 10).min(Duration::from_secs(1))
}

/// When a batch received at `received` must stop waiting.
pub fn deadline(received: std::time::Instant, request_timeout: Duration) -> Instant {
    Instant::from_std(received) + request_timeout - margin(request_timeout)
}

/// Runs `starts` and returns one answer per start, in their order.
pub async fn run<F>(starts: Vec<F>, deadline: Instant) -> Vec<Answer>
where
    F: Future<Output = Answer>,
{
    let begun: Vec<AtomicBool> = starts.iter().map(|_| AtomicBool::new(false)).collect();
    let mut answers: Vec<Option<Answer>> = starts.iter().map(|_| None).collect();
    let flags = &begun;
    let runs = starts
        .into_iter()
        .enumerate()
        .map(|(index, start)| async move {
            flags[index].store(true, Ordering::Relaxed);
            (index, start.await)
        });
    // Unordered completion (starts still begin in order): a slow start must not hold back
    // the answers of those after it that finished.
    let mut running = futures_util::stream::iter(runs).buffer_unordered(CONCURRENCY);
    let out_of_time = tokio::time::sleep_until(deadline);
    tokio::pin!(out_of_time);
    loop {
        tokio::select! {
            next = running.next() => match next {
                Some((index, answer)) => answers[index] = Some(answer),
                None => break,
            },
            () = &mut out_of_time => break,
        }
    }
    drop(running);
    answers
        .into_iter()
        .enumerate()
        .map(|(index, answer)| {
            answer.unwrap_or_else(|| {
                let message = if begun[index].load(Ordering::Relaxed) {
                    "This start did not finish within the request's time. It may still complete: read the job's status before starting it again."
                } else {
                    "Not started: the request's time ran out before this item's turn. Nothing was sent for it; send it again."
                };
                Answer {
                    outcome: ApiError::gateway_timeout(message).into(),
                    pass_thru: false,
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Answer {
        Answer {
            outcome: crate::outcome::Outcome::report(serde_json::Value::Null),
            pass_thru: false,
        }
    }

    #[tokio::test]
    async fn finished_starts_keep_their_answers_and_the_rest_get_their_own_504() {
        type Start = std::pin::Pin<Box<dyn Future<Output = Answer>>>;
        let mut starts: Vec<Start> = Vec::new();
        // Item 0 never finishes, 1..=9 finish at once, 10..=19 never finish: with 8 at a time,
        // 0 and 10..=16 are running at the deadline and 17..=19 have not begun.
        starts.push(Box::pin(std::future::pending()));
        for _ in 1..10 {
            starts.push(Box::pin(async { answer() }));
        }
        for _ in 10..20 {
            starts.push(Box::pin(std::future::pending()));
        }
        let answers = run(starts, Instant::now() + Duration::from_millis(200)).await;
        assert_eq!(answers.len(), 20);
        assert!(answers[1..10].iter().all(|a| a.outcome.status == 200));
        let message = |i: usize| match &answers[i].outcome.body {
            crate::outcome::Body::Error { message, .. } => message.clone(),
            other => panic!("{other:?}"),
        };
        assert!(message(0).contains("may still complete"));
        assert!(message(10).contains("may still complete"));
        assert!(message(16).contains("may still complete"));
        assert!(message(17).contains("Not started"));
        assert!(message(19).contains("Not started"));
        assert!(
            answers
                .iter()
                .filter(|a| a.outcome.error_code().is_some())
                .all(|a| a.outcome.status == 504)
        );
    }
}
