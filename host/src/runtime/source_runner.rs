//! Running a source task: its retry loop, and the committer that persists the offsets its
//! sinks acknowledged.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api::connector::Source;
use crate::api::retry::Retry;
use crate::offsets::OffsetStore;
use crate::runtime::ack::OffsetTracker;
use crate::runtime::host::{Shared, fail};
use crate::runtime::reporter::ErrorReporter;
use crate::runtime::source_context::SourceTaskContext;

/// How long a stopping source with stateful transforms waits for its sinks before its last
/// state checkpoint.
const FINAL_CHECKPOINT_WAIT: Duration = Duration::from_secs(10);

/// Pause between attempts to persist offsets after a failed write.
const OFFSET_RETRY_DELAY: Duration = Duration::from_secs(1);

async fn persist(name: &str, tracker: &OffsetTracker, store: &OffsetStore) -> bool {
    let Some(offsets) = tracker.take_dirty() else {
        return true;
    };
    let store = store.clone();
    let owned = name.to_owned();
    let result = tokio::task::spawn_blocking(move || store.save(&owned, &offsets)).await;
    match result {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::error!(connector = %name, error = %e, "Could not persist source offsets; will retry.");
            tracker.mark_dirty();
            false
        }
        Err(e) => {
            tracing::error!(connector = %name, error = %e, "Offset writer panicked; will retry.");
            tracker.mark_dirty();
            false
        }
    }
}

/// Persists a source's committed offsets whenever they advance, and once more when stopped.
/// Sources with stateful transforms (`enabled` false) persist them at checkpoints instead.
pub(super) async fn commit_loop(
    name: String,
    tracker: Arc<OffsetTracker>,
    store: OffsetStore,
    stop: CancellationToken,
    enabled: bool,
) {
    if !enabled {
        return;
    }
    loop {
        tokio::select! {
            _ = tracker.changed() => {}
            _ = stop.cancelled() => break,
        }
        if !persist(&name, &tracker, &store).await {
            tokio::select! {
                _ = tokio::time::sleep(OFFSET_RETRY_DELAY) => {}
                _ = stop.cancelled() => break,
            }
        }
    }
    persist(&name, &tracker, &store).await;
}

pub(super) async fn run_source(
    name: String,
    shared: Arc<Shared>,
    mut source: Box<dyn Source>,
    mut ctx: SourceTaskContext,
    reporter: Arc<ErrorReporter>,
    bounded: Option<tokio::sync::watch::Sender<crate::runtime::bounded::InputProgress>>,
) {
    let cancel = ctx.cancel.clone();
    let mut retry = Retry::new(reporter.policy());
    let result = loop {
        match source.run(&mut ctx).await {
            Ok(()) => break Ok(()),
            Err(e) => {
                if let Err(e) = retry.backoff(e, &cancel, "source task").await {
                    break Err(e);
                }
                if let Err(e) = ctx.rewind() {
                    break Err(e);
                }
            }
        }
    };
    match result {
        // A bounded run's source read all of its input (it returns early only when stopped).
        Ok(()) if !cancel.is_cancelled() && bounded.is_some() => {
            if let Some(progress) = &bounded
                && let Err(e) = ctx.end_of_input(progress).await
            {
                fail(&shared, &name, &e);
            }
        }
        Ok(()) => ctx.final_checkpoint(FINAL_CHECKPOINT_WAIT).await,
        Err(_) if cancel.is_cancelled() => ctx.final_checkpoint(FINAL_CHECKPOINT_WAIT).await,
        Err(e) => fail(&shared, &name, &e),
    }
}
