//! `errors.retry.timeout` / `errors.retry.delay.max.ms`: retrying operations that may succeed
//! later, with exponential backoff ([`Backoff`], shared by every retry loop).
//!
//! ```ignore
//! let mut retry = Retry::new(&policy);
//! loop {
//!     match sink.flush().await {
//!         Ok(()) => break,
//!         Err(e) => retry.backoff(e, &cancel, "flushing sink").await?,
//!     }
//! }
//! ```

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::error::ConnectorError;
use crate::api::error::ErrorPolicy;

/// First backoff delay; doubled after each failure up to `errors.retry.delay.max.ms`
/// (Kafka Connect's RetryWithToleranceOperator starts at 300 ms too).
pub const INITIAL_DELAY: Duration = Duration::from_millis(300);

/// Exponential backoff: waits start at `initial` and double after each one, up to `max`. Every
/// retry loop in Headwater waits through one of these, so they all back off alike; loops that
/// have their task's cancellation token wait with [`Backoff::wait`] (or `wait_blocking`) and
/// stop waiting the moment the task is cancelled.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    delay: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            delay: initial,
        }
    }

    /// The next wait.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// After a success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.delay = self.initial;
    }

    /// Takes the next wait and doubles the one after it.
    pub fn advance(&mut self) -> Duration {
        let delay = self.delay;
        self.delay = (self.delay * 2).min(self.max);
        delay
    }

    /// Sleeps the next wait; false when `cancel` fired first.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        let delay = self.advance();
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = cancel.cancelled() => false,
        }
    }

    /// [`Backoff::wait`] for a plain thread (a Kafka consumer's): sleeps in short steps so a
    /// cancelled task is noticed within `step`.
    pub fn wait_blocking(&mut self, cancel: &CancellationToken, step: Duration) -> bool {
        let until = std::time::Instant::now() + self.advance();
        while std::time::Instant::now() < until {
            if cancel.is_cancelled() {
                return false;
            }
            std::thread::sleep(step);
        }
        !cancel.is_cancelled()
    }
}

/// The retry state of one operation under a connector's `errors.retry.*` policy.
#[derive(Debug)]
pub struct Retry {
    limit: Option<Duration>,
    started: Instant,
    backoff: Backoff,
    attempt: u32,
}

impl Retry {
    pub fn new(policy: &ErrorPolicy) -> Self {
        Self {
            limit: policy.retry_timeout,
            started: Instant::now(),
            backoff: Backoff::new(INITIAL_DELAY, policy.retry_delay_max),
            attempt: 1,
        }
    }

    /// After a failure: sleeps and returns `Ok` when the operation should be tried again;
    /// returns the error when it is not retriable, the retry window is closed, or `cancel`
    /// fired.
    pub async fn backoff(
        &mut self,
        error: ConnectorError,
        cancel: &CancellationToken,
        what: &str,
    ) -> Result<(), ConnectorError> {
        let in_window = self
            .limit
            .is_none_or(|limit| self.started.elapsed() + self.backoff.delay() <= limit);
        if !error.is_retriable() || !in_window || cancel.is_cancelled() {
            return Err(error);
        }
        tracing::warn!(
            operation = what,
            attempt = self.attempt,
            retry_in_ms = self.backoff.delay().as_millis() as u64,
            error = %error,
            "Operation failed; retrying."
        );
        if !self.backoff.wait(cancel).await {
            return Err(error);
        }
        self.attempt += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn attempts_until_given_up(policy: &ErrorPolicy, error: fn() -> ConnectorError) -> u32 {
        let cancel = CancellationToken::new();
        let mut retry = Retry::new(policy);
        let mut calls = 0;
        loop {
            calls += 1;
            if retry.backoff(error(), &cancel, "test").await.is_err() {
                return calls;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retriable_errors_within_the_window_only() {
        let policy = ErrorPolicy {
            retry_timeout: Some(Duration::from_secs(2)),
            ..ErrorPolicy::default()
        };
        // Sleeps of 0.3 + 0.6 s fit in 2 s; the next one (1.2 s) would not.
        let calls = attempts_until_given_up(&policy, || {
            ConnectorError::retriable("connecting", "refused")
        })
        .await;
        assert_eq!(calls, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_errors_and_the_default_policy_do_not_retry() {
        let forever = ErrorPolicy {
            retry_timeout: None,
            ..ErrorPolicy::default()
        };
        let calls =
            attempts_until_given_up(&forever, || ConnectorError::Config("bad".into())).await;
        assert_eq!(calls, 1);
        let calls = attempts_until_given_up(&ErrorPolicy::default(), || {
            ConnectorError::retriable("connecting", "refused")
        })
        .await;
        assert_eq!(calls, 1, "errors.retry.timeout defaults to 0");
    }
}
