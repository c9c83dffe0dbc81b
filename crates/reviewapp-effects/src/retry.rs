//! One helper through which every API request goes: the leader's [`WriteFence`] (nothing is
//! sent, retried or awaited once it lapsed), retries of transient failures (409 Conflict, 429,
//! 500, 502, 503, 504, connection errors and timeouts) with full-jitter exponential backoff, and
//! one [`ApiObserver`] call per attempt.

use std::future::Future;
use std::time::Duration;

use kube::core::Status;
use rand::Rng;

use crate::ApiObserver;
use crate::error::Verb;
use crate::fence::{Fenced, WriteFence};

/// How transient failures are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first one included (at least 1 is made).
    pub attempts: u32,
    /// Backoff ceiling before the first retry; it doubles with each retry.
    pub base: Duration,
    /// Largest backoff ceiling (also caps a server's `retryAfterSeconds`).
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts, backoff 100 ms doubling up to 3 s, full jitter.
    fn default() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    /// `attempts` attempts without any delay between them (for tests).
    pub const fn immediate(attempts: u32) -> Self {
        Self {
            attempts,
            base: Duration::ZERO,
            cap: Duration::ZERO,
        }
    }

    /// Upper bound of the delay before retry number `retry` (0 for the first retry):
    /// `min(cap, base * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before retry number `retry`: uniform in `[0, ceiling]` (full jitter), but at
    /// least the server's `retryAfterSeconds` (itself capped at `cap`).
    fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.ceiling(retry);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let jittered = if nanos == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(rand::rng().random_range(0..=nanos))
        };
        match retry_after {
            Some(after) => jittered.max(after.min(self.cap)),
            None => jittered,
        }
    }
}

/// The HTTP status of an error `Status`: its `code`, or, when the body carried none, the code
/// its `reason` stands for. (kube's own `is_not_found()` and friends only look at `reason`, so
/// a bare `404 page not found` from a missing API path would not count.)
pub(crate) fn status_code(status: &Status) -> u16 {
    if status.code != 0 {
        return status.code;
    }
    match status.reason.as_str() {
        "BadRequest" => 400,
        "Unauthorized" => 401,
        "Forbidden" => 403,
        "NotFound" => 404,
        "MethodNotAllowed" => 405,
        "AlreadyExists" | "Conflict" => 409,
        "Gone" | "Expired" => 410,
        "Invalid" => 422,
        "TooManyRequests" => 429,
        "InternalError" => 500,
        "ServiceUnavailable" => 503,
        "Timeout" | "ServerTimeout" => 504,
        _ => 0,
    }
}

/// The error [`send`] returns for a request the fence stopped (see [`is_fenced`]).
pub(crate) fn fenced() -> kube::Error {
    kube::Error::Service(Box::new(Fenced))
}

/// Whether `err` is [`fenced`]'s: the request was not sent, or its answer not awaited, because
/// this replica stopped leading.
pub(crate) fn is_fenced(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Service(source) if source.is::<Fenced>())
}

/// Is `err` an error response with this HTTP status?
pub(crate) fn has_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(status) if status_code(status) == code)
}

/// A `409 AlreadyExists` answer to a create.
pub(crate) fn is_already_exists(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status)
        if status.reason == "AlreadyExists" && matches!(status_code(status), 409 | 0))
}

/// Transient failures worth another attempt.
pub(crate) fn is_retryable(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => match status_code(status) {
            409 => status.reason != "AlreadyExists",
            429 | 500 | 502 | 503 | 504 => true,
            _ => false,
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// The server's `retryAfterSeconds`, if it sent one.
fn retry_after(err: &kube::Error) -> Option<Duration> {
    match err {
        kube::Error::Api(status) => status
            .details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(u64::from(s))),
        _ => None,
    }
}

/// A one-line description of `err` that never quotes the server's message (which may quote
/// the object, and so Secret data).
fn summary(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{} {}", status_code(status), status.reason),
        other => other.to_string(),
    }
}

/// The code reported to the observer: the error's status, `None` when no response arrived.
/// (kube does not expose the status of a successful response: 201 is assumed for a create,
/// 200 otherwise.)
fn observed_code<T>(verb: Verb, result: &Result<T, kube::Error>) -> Option<u16> {
    match result {
        Ok(_) if verb == Verb::Create => Some(201),
        Ok(_) => Some(200),
        Err(kube::Error::Api(status)) => Some(status_code(status)),
        Err(kube::Error::HyperError(_) | kube::Error::Service(_)) => None,
        // A response arrived but could not be read (say, an unparsable body).
        Err(_) => Some(200),
    }
}

/// Runs `request` until it succeeds, fails with a non-retryable error, or `policy.attempts`
/// attempts were made; reports every attempt to `observer` as `(verb, kind, code)`.
///
/// `fence` is checked before every attempt, and watched while an attempt waits for its answer
/// or for its retry backoff: once it lapsed nothing more is sent, and [`fenced`]'s error is
/// returned (an attempt cut off while in flight is reported with no code).
pub(crate) async fn send<T, F, Fut>(
    policy: &RetryPolicy,
    observer: &dyn ApiObserver,
    fence: &WriteFence,
    verb: Verb,
    kind: &str,
    mut request: F,
) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let attempts = policy.attempts.max(1);
    let mut attempt = 1;
    loop {
        if !fence.is_open() {
            tracing::debug!(
                verb = verb.as_str(),
                kind,
                "not sent: the write fence lapsed"
            );
            return Err(fenced());
        }
        let result = tokio::select! {
            biased;
            () = fence.lapsed() => None,
            result = request() => Some(result),
        };
        let Some(result) = result else {
            observer.request(verb.as_str(), kind, None);
            tracing::debug!(
                verb = verb.as_str(),
                kind,
                "answer not awaited: the write fence lapsed"
            );
            return Err(fenced());
        };
        observer.request(verb.as_str(), kind, observed_code(verb, &result));
        match result {
            Err(err) if attempt < attempts && is_retryable(&err) => {
                let delay = policy.delay(attempt - 1, retry_after(&err));
                tracing::debug!(
                    verb = verb.as_str(),
                    kind,
                    attempt,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    error = %summary(&err),
                    "transient API error, retrying"
                );
                if !delay.is_zero() {
                    tokio::select! {
                        biased;
                        () = fence.lapsed() => {}
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.ceiling(0), Duration::from_millis(100));
        assert_eq!(policy.ceiling(1), Duration::from_millis(200));
        assert_eq!(policy.ceiling(4), Duration::from_millis(1600));
        assert_eq!(policy.ceiling(5), Duration::from_secs(3));
        assert_eq!(policy.ceiling(60), Duration::from_secs(3));
    }

    #[test]
    fn delay_is_jittered_below_the_ceiling_and_honours_retry_after() {
        let policy = RetryPolicy::default();
        for retry in 0..8 {
            assert!(policy.delay(retry, None) <= policy.ceiling(retry));
        }
        let after = policy.delay(0, Some(Duration::from_secs(1)));
        assert!(after >= Duration::from_secs(1) && after <= Duration::from_secs(3));
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(60))),
            Duration::from_secs(3)
        );
        assert_eq!(RetryPolicy::immediate(3).delay(5, None), Duration::ZERO);
    }

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Status::failure("m", reason).with_code(code).boxed())
    }

    #[test]
    fn classification() {
        for code in [409, 429, 500, 502, 503, 504] {
            assert!(is_retryable(&api(code, "")), "{code}");
        }
        for code in [400, 401, 403, 404, 410, 422] {
            assert!(!is_retryable(&api(code, "")), "{code}");
        }
        assert!(!is_retryable(&api(409, "AlreadyExists")));
        assert!(is_already_exists(&api(409, "AlreadyExists")));
        assert!(!is_already_exists(&api(409, "Conflict")));
        // A bare "404 page not found" (missing API path) still counts as 404.
        assert!(has_status(&api(404, "Failed to parse error data"), 404));
        assert!(has_status(&api(0, "NotFound"), 404));
    }

    /// Counts the attempts reported.
    #[derive(Default)]
    struct Count(std::sync::Mutex<Vec<Option<u16>>>);

    impl ApiObserver for Count {
        fn request(&self, _: &'static str, _: &str, code: Option<u16>) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(code);
        }
    }

    impl Count {
        fn codes(&self) -> Vec<Option<u16>> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }
    }

    fn lapsing_in(duration: Duration) -> WriteFence {
        let fence = WriteFence::standby();
        fence.extend_to(tokio::time::Instant::now() + duration);
        fence
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_sent_through_a_closed_fence() {
        let observer = Count::default();
        let sent = std::sync::atomic::AtomicU32::new(0);
        let result: Result<(), _> = send(
            &RetryPolicy::default(),
            &observer,
            &WriteFence::standby(),
            Verb::Apply,
            "Deployment",
            || {
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { Ok(()) }
            },
        )
        .await;
        assert!(is_fenced(&result.unwrap_err()));
        assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert!(observer.codes().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_waiting_in_backoff_is_not_sent_after_the_deadline() {
        // Every backoff is at least 1 s (the server's retryAfterSeconds); the fence lapses
        // during the first one.
        let policy = RetryPolicy {
            attempts: 5,
            base: Duration::from_secs(2),
            cap: Duration::from_secs(2),
        };
        let observer = Count::default();
        let fence = lapsing_in(Duration::from_millis(500));
        let started = tokio::time::Instant::now();
        let result: Result<(), _> = send(
            &policy,
            &observer,
            &fence,
            Verb::Status,
            "ReviewApp",
            || async {
                let status: Status = serde_json::from_value(serde_json::json!({
                    "status": "Failure", "message": "slow down", "reason": "TooManyRequests",
                    "code": 429, "details": {"retryAfterSeconds": 1},
                }))
                .unwrap_or_else(|_| Status::failure("slow down", "TooManyRequests").with_code(429));
                Err(kube::Error::Api(status.boxed()))
            },
        )
        .await;
        assert!(is_fenced(&result.unwrap_err()));
        assert_eq!(observer.codes(), vec![Some(429)], "one attempt, no retry");
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(500),
            "the backoff ends at the deadline"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_is_not_awaited_past_the_deadline() {
        let observer = Count::default();
        let fence = lapsing_in(Duration::from_secs(3));
        let result: Result<(), _> = send(
            &RetryPolicy::default(),
            &observer,
            &fence,
            Verb::Patch,
            "ReviewApp",
            std::future::pending,
        )
        .await;
        assert!(is_fenced(&result.unwrap_err()));
        assert_eq!(observer.codes(), vec![None]);
        assert!(!is_fenced(&api(500, "")));
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_fence_changes_nothing() {
        let observer = Count::default();
        let mut calls = 0;
        let result = send(
            &RetryPolicy::immediate(3),
            &observer,
            &WriteFence::open(),
            Verb::Apply,
            "Service",
            || {
                calls += 1;
                let fail = calls < 3;
                async move { if fail { Err(api(500, "")) } else { Ok(7) } }
            },
        )
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(observer.codes(), vec![Some(500), Some(500), Some(200)]);
    }
}
