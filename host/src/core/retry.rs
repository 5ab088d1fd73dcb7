//! `errors.retry.timeout` / `errors.retry.delay.max.ms`: retrying operations that may succeed
//! later, with exponential backoff.
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

use super::error::ConnectorError;
use super::reporter::ErrorPolicy;

/// First backoff delay; doubled after each failure up to `errors.retry.delay.max.ms`
/// (Kafka Connect's RetryWithToleranceOperator starts at 300 ms too).
const INITIAL_DELAY: Duration = Duration::from_millis(300);

/// The retry state of one operation.
#[derive(Debug)]
pub struct Retry {
    limit: Option<Duration>,
    max_delay: Duration,
    started: Instant,
    delay: Duration,
    attempt: u32,
}

impl Retry {
    pub fn new(policy: &ErrorPolicy) -> Self {
        Self {
            limit: policy.retry_timeout,
            max_delay: policy.retry_delay_max.max(INITIAL_DELAY),
            started: Instant::now(),
            delay: INITIAL_DELAY,
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
            .is_none_or(|limit| self.started.elapsed() + self.delay <= limit);
        if !error.is_retriable() || !in_window || cancel.is_cancelled() {
            return Err(error);
        }
        tracing::warn!(
            operation = what,
            attempt = self.attempt,
            retry_in_ms = self.delay.as_millis() as u64,
            error = %error,
            "Operation failed; retrying."
        );
        tokio::select! {
            _ = tokio::time::sleep(self.delay) => {}
            _ = cancel.cancelled() => return Err(error),
        }
        self.delay = (self.delay * 2).min(self.max_delay);
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
