//! The one retry engine. Every call that may be retried (the resume, Graph reads and writes, the
//! operator commands' listings) goes through [`run`]: exponential backoff with full jitter,
//! the server's `Retry-After` when it names one, a per-attempt ceiling, and the caller's
//! deadline over all of it. Changing the policy means changing this file only.

use std::future::Future;
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::time::Instant;

/// No single attempt may take longer than this, so a hung connection leaves time to retry.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A retry is only worth waiting for if at least this much of the deadline is left after the
/// wait: less cannot reach Graph and get an answer, and would only blur the attempt count.
const MIN_ATTEMPT_BUDGET: Duration = Duration::from_millis(500);
/// A `Retry-After` beyond this is taken as this: nobody waits an hour inside a resume.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What the engine needs to know of a failed attempt.
pub(crate) trait Failure {
    /// Whether another attempt may succeed (throttling, a fault, no answer).
    fn retryable(&self) -> bool;
    /// The wait the server asked for, if it named one.
    fn retry_after(&self) -> Option<Duration>;
    /// One line for the log and the operator's progress output.
    fn describe(&self) -> String;
}

/// How a run of attempts ended.
#[derive(Debug)]
pub(crate) struct Run<T, E> {
    /// The value, or the last failure: a refusal, a retryable failure with no time left for
    /// another try, or `None` when the deadline passed before any attempt failed.
    pub(crate) result: Result<T, Option<E>>,
    pub(crate) attempts: u32,
}

/// Calls `attempt` until it succeeds, fails for good, or `deadline` leaves no room for
/// another try. `on_wait` hears of every wait (failure, wait, attempts so far), after the
/// engine has logged it.
pub(crate) async fn run<T, E, F, Fut>(
    deadline: Instant,
    attempt: F,
    on_wait: impl Fn(&E, Duration, u32),
) -> Run<T, E>
where
    E: Failure + Clone,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    use std::sync::atomic::{AtomicU32, Ordering};
    // The attempt's future goes to backon as it is: wrapping it to count attempts would copy
    // the whole (large) future once more per attempt. Counting happens in the hooks instead:
    // one attempt to start, one more after each wait that ran to its end.
    let attempts = std::sync::Arc::new(AtomicU32::new(1));
    let last: std::sync::Mutex<Option<E>> = std::sync::Mutex::new(None);
    let retrying = attempt
        .retry(backoff())
        .sleep({
            let attempts = std::sync::Arc::clone(&attempts);
            move |wait| {
                let attempts = std::sync::Arc::clone(&attempts);
                async move {
                    tokio::time::sleep(wait).await;
                    attempts.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .when(|e: &E| {
            *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
            e.retryable()
        })
        .notify(|e, wait| {
            let count = attempts.load(Ordering::Relaxed);
            tracing::info!(error = %e.describe(), wait_ms = wait.as_millis() as u64, attempts = count, "transient failure, retrying");
            on_wait(e, wait, count);
        })
        .adjust(|e, planned| next_wait(e.retry_after(), planned, deadline));
    let result = match tokio::time::timeout_at(deadline, retrying).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Some(e)),
        // Cut off mid-attempt: the attempt before it says what was going wrong, if any.
        Err(_elapsed) => Err(last.lock().unwrap_or_else(|p| p.into_inner()).take()),
    };
    Run {
        result,
        attempts: attempts.load(Ordering::Relaxed),
    }
}

/// How long the next attempt may take: what is left of the deadline, at most
/// [`ATTEMPT_TIMEOUT`].
pub(crate) fn attempt_budget(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .min(ATTEMPT_TIMEOUT)
}

/// Statuses worth another try, from Graph or the identity endpoint; every other refusal is final.
pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After` as delta-seconds or an HTTP date, relative to `now`.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The schedule: exponential from 200 ms to 10 s, unbounded in count because the caller's
/// deadline bounds it.
fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(FIRST_BACKOFF)
        .with_max_delay(MAX_BACKOFF)
        .with_factor(2.0)
        .without_max_times()
}

/// The wait before the next try: the server's `Retry-After` wins, otherwise full jitter over
/// the exponential step; `None` (give up) when the wait would end past `deadline`.
fn next_wait(
    retry_after: Option<Duration>,
    planned: Option<Duration>,
    deadline: Instant,
) -> Option<Duration> {
    let wait = retry_after.unwrap_or_else(|| full_jitter(planned.unwrap_or(MAX_BACKOFF)));
    (Instant::now() + wait + MIN_ATTEMPT_BUDGET <= deadline).then_some(wait)
}

/// A uniformly random wait between zero and `step` ("full jitter"), so that many gateways
/// retrying after the same outage do not arrive together.
fn full_jitter(step: Duration) -> Duration {
    let millis = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(12));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(12)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(12));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&past).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("999999"));
        assert_eq!(retry_after(&h, now), Some(MAX_RETRY_AFTER));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn jitter_stays_within_the_step() {
        let step = Duration::from_millis(800);
        let waits: Vec<_> = (0..1000).map(|_| full_jitter(step)).collect();
        assert!(waits.iter().all(|w| *w <= step));
        assert!(waits.iter().any(|w| *w < step / 4));
        assert!(waits.iter().any(|w| *w > step * 3 / 4));
    }

    #[test]
    fn only_throttling_and_server_faults_are_transient() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_transient_status(s), "{s}");
        }
        for s in [301, 400, 401, 403, 404, 405, 409, 412, 501, 505] {
            assert!(!is_transient_status(s), "{s}");
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Fail {
        retryable: bool,
        retry_after: Option<Duration>,
        n: u32,
    }

    impl Failure for Fail {
        fn retryable(&self) -> bool {
            self.retryable
        }
        fn retry_after(&self) -> Option<Duration> {
            self.retry_after
        }
        fn describe(&self) -> String {
            format!("failure {}", self.n)
        }
    }

    fn transient(n: u32) -> Fail {
        Fail {
            retryable: true,
            retry_after: Some(Duration::from_millis(10)),
            n,
        }
    }

    #[tokio::test]
    async fn a_refusal_ends_the_run_at_once() {
        let calls = AtomicU32::new(0);
        let run = run(
            Instant::now() + Duration::from_secs(5),
            || async {
                let n = calls.fetch_add(1, Ordering::Relaxed);
                Err::<(), _>(Fail {
                    retryable: false,
                    retry_after: None,
                    n,
                })
            },
            |_, _, _| panic!("no wait after a refusal"),
        )
        .await;
        assert_eq!(run.attempts, 1);
        assert_eq!(run.result.unwrap_err().unwrap().n, 0);
    }

    /// Runs attempts that fail as `fail(n)` for the first `failures`, then succeed with `n`;
    /// gives the run and every wait heard (failure number, wait, attempts so far).
    async fn failing(
        failures: u32,
        fail: impl Fn(u32) -> Fail,
        within: Duration,
    ) -> (Run<u32, Fail>, Vec<(u32, Duration, u32)>) {
        let calls = AtomicU32::new(0);
        let waits = std::sync::Mutex::new(Vec::new());
        let run = run(
            Instant::now() + within,
            || async {
                let n = calls.fetch_add(1, Ordering::Relaxed);
                if n < failures { Err(fail(n)) } else { Ok(n) }
            },
            |e, wait, attempts| waits.lock().unwrap().push((e.n, wait, attempts)),
        )
        .await;
        (run, waits.into_inner().unwrap())
    }

    #[tokio::test]
    async fn transient_failures_are_retried_with_the_asked_wait_and_counted() {
        let (run, waits) = failing(2, transient, Duration::from_secs(5)).await;
        assert_eq!(run.result.unwrap(), 2);
        assert_eq!(run.attempts, 3);
        let ms10 = Duration::from_millis(10);
        assert_eq!(waits, [(0, ms10, 1), (1, ms10, 2)]);
    }

    #[tokio::test]
    async fn without_retry_after_waits_follow_the_doubling_schedule_past_three_retries() {
        // Seeded, so the jitter this test meets is the same on every run.
        fastrand::seed(14);
        let without_retry_after = |n| Fail {
            retry_after: None,
            ..transient(n)
        };
        let (run, waits) = failing(4, without_retry_after, Duration::from_secs(30)).await;
        assert_eq!(run.result.unwrap(), 4);
        assert_eq!(run.attempts, 5);
        let steps = [200, 400, 800, 1600].map(Duration::from_millis);
        assert_eq!(waits.len(), steps.len());
        for ((_, wait, _), step) in waits.iter().zip(steps) {
            assert!(*wait <= step, "{waits:?}");
        }
    }

    #[tokio::test]
    async fn a_wait_that_would_leave_no_attempt_budget_gives_up_with_the_failure() {
        // Retry-After fits in the deadline, but not with the minimum budget for one more try.
        let wait = Duration::from_millis(800);
        let started = std::time::Instant::now();
        let run = run(
            Instant::now() + wait + MIN_ATTEMPT_BUDGET - Duration::from_millis(100),
            || async {
                Err::<(), _>(Fail {
                    retry_after: Some(wait),
                    ..transient(7)
                })
            },
            |_, _, _| panic!("no wait without room for another attempt"),
        )
        .await;
        assert_eq!(run.attempts, 1);
        assert_eq!(run.result.unwrap_err().unwrap().n, 7);
        assert!(started.elapsed() < wait, "gave up without waiting");
    }

    #[tokio::test]
    async fn the_deadline_cuts_a_hanging_attempt_and_keeps_the_last_failure() {
        let calls = AtomicU32::new(0);
        let run = run(
            Instant::now() + Duration::from_millis(1200),
            || async {
                let n = calls.fetch_add(1, Ordering::Relaxed);
                if n == 0 {
                    return Err::<(), _>(transient(0));
                }
                std::future::pending::<()>().await;
                unreachable!()
            },
            |_, _, _| {},
        )
        .await;
        assert_eq!(run.attempts, 2);
        assert_eq!(run.result.unwrap_err().unwrap().n, 0);

        let hanging = run_hanging().await;
        assert_eq!(hanging.attempts, 1);
        assert!(
            hanging.result.unwrap_err().is_none(),
            "no failure was seen before the cut"
        );
    }

    async fn run_hanging() -> Run<(), Fail> {
        run(
            Instant::now() + Duration::from_millis(300),
            || async { std::future::pending::<Result<(), Fail>>().await },
            |_, _, _| {},
        )
        .await
    }

    #[test]
    fn an_attempt_gets_what_is_left_at_most_the_ceiling() {
        let far = Instant::now() + Duration::from_secs(600);
        assert_eq!(attempt_budget(far), ATTEMPT_TIMEOUT);
        let near = Instant::now() + Duration::from_secs(2);
        assert!(attempt_budget(near) <= Duration::from_secs(2));
        assert_eq!(attempt_budget(Instant::now()), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_retry_needs_half_a_second_left_after_its_wait() {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1000);
        let wait = |ms| next_wait(Some(Duration::from_millis(ms)), None, deadline);
        assert_eq!(wait(300), Some(Duration::from_millis(300)));
        // 600 ms of wait leaves 400 ms: too little for another attempt.
        assert_eq!(wait(600), None);
        assert_eq!(wait(2000), None);
    }
}
