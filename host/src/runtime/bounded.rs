//! Bounded runs (`headwater run --once`): every source reads its input to the end, then the
//! sinks' input ends, windows fire as at the end of a bounded stream in Flink (the final
//! watermark), sinks flush, and offsets are committed.
//!
//! The order matters: a source ends its own chain first (its windows' results go to the bus),
//! and only once every source has sent everything (and every Kafka-fed sink's consumer has
//! handed over its topics up to the end offsets they had at the start) does the runtime end
//! the sinks' input — a
//! sink's windows then fire on all of it and it flushes, which acknowledges the sources'
//! batches, which lets each source take its final checkpoint.
//!
//! The offsets of a bounded run belong to that run: the connector's config and the run's
//! parameters. A run that completed leaves a record saying so, and the next run (another date,
//! or the same one again) starts from nothing; a run interrupted (killed, a connector failed)
//! resumes from its offsets when started again with the same config and parameters.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::connector::ConnectorConfig;
use crate::runtime::host::{Runtime, RuntimeError};
use crate::runtime::status::State;

/// How far a task is through its bounded input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InputProgress {
    /// Still reading (a source) or taking records (a sink).
    Reading,
    /// A source sent all of its input, its own windows' results included.
    Exhausted,
    /// Everything is durable: a sink flushed after the end of its input; a source's batches
    /// were all acknowledged.
    Done,
}

/// What the runtime asks of a sink at the end of a bounded run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EndInput {
    /// Go on taking records.
    No,
    /// Every source has sent everything: take what the inbox holds, then report `Exhausted`.
    Drain,
    /// Fire the windows, flush, publish, then report `Done`.
    Finish,
}

/// A running task's side of a bounded run.
#[derive(Debug)]
pub(super) struct BoundedTask {
    pub(super) progress: watch::Receiver<InputProgress>,
    /// Sinks: how far their input has ended.
    pub(super) end_input: Option<watch::Sender<EndInput>>,
    /// Sinks reading Kafka: set once their consumer has handed over everything up to the end
    /// offsets their topics had at the start (the Kafka side of their input read).
    pub(super) kafka_read: Option<Arc<AtomicBool>>,
}

/// A sink runner's side of a bounded run.
#[derive(Debug)]
pub(super) struct BoundedSink {
    pub(super) end_input: watch::Receiver<EndInput>,
    pub(super) progress: watch::Sender<InputProgress>,
}

/// The channels of one task of a bounded run: the runner's end and the runtime's.
pub(super) fn sink_channels(kafka_read: Option<Arc<AtomicBool>>) -> (BoundedSink, BoundedTask) {
    let (end_tx, end_rx) = watch::channel(EndInput::No);
    let (progress_tx, progress_rx) = watch::channel(InputProgress::Reading);
    (
        BoundedSink {
            end_input: end_rx,
            progress: progress_tx,
        },
        BoundedTask {
            progress: progress_rx,
            end_input: Some(end_tx),
            kafka_read,
        },
    )
}

pub(super) fn source_channels() -> (watch::Sender<InputProgress>, BoundedTask) {
    let (progress_tx, progress_rx) = watch::channel(InputProgress::Reading);
    (
        progress_tx,
        BoundedTask {
            progress: progress_rx,
            end_input: None,
            kafka_read: None,
        },
    )
}

/// Why a bounded run did not complete.
#[derive(Debug, thiserror::Error)]
pub enum BoundedError {
    #[error("connector {name} failed: {trace}")]
    Failed { name: String, trace: String },
    #[error("the run was interrupted")]
    Interrupted,
    #[error("{0}")]
    Stopped(String),
}

/// Says why the run must stop now, if it must (a limit its caller set was exceeded).
pub type StopCheck<'a> = &'a (dyn Fn() -> Option<String> + Sync);

/// How often the run looks at its tasks' progress and states.
const POLL: Duration = Duration::from_millis(50);

impl Runtime {
    /// Runs a bounded run to its end (see the module): returns once every connector's output
    /// is durable, or with the first connector that failed.
    /// `stop` is asked all along, and once more before the sinks' input ends (when they
    /// publish what they staged) and at the end.
    pub async fn finish_bounded(
        &self,
        cancel: &CancellationToken,
        stop: StopCheck<'_>,
    ) -> Result<(), BoundedError> {
        let tasks = self.bounded_tasks().await;
        let sources: Vec<_> = tasks
            .iter()
            .filter(|(_, t)| t.end_input.is_none())
            .collect();
        let sinks: Vec<_> = tasks
            .iter()
            .filter(|(_, t)| t.end_input.is_some())
            .collect();
        self.wait_until(cancel, stop, &sources, InputProgress::Exhausted)
            .await?;
        self.wait_for_kafka(cancel, stop, &sinks).await?;
        tracing::info!(
            sources = sources.len(),
            "Every source read its input; ending the sinks' input."
        );
        // First the sinks take what the sources sent (their inboxes hold the rest), so that the
        // dead letters it makes are counted before anything is published.
        let end = |stage: EndInput| {
            for (_, task) in &sinks {
                if let Some(end) = &task.end_input {
                    let _ = end.send(stage);
                }
            }
        };
        end(EndInput::Drain);
        self.wait_until(cancel, stop, &sinks, InputProgress::Exhausted)
            .await?;
        end(EndInput::Finish);
        self.wait_until(cancel, stop, &sinks, InputProgress::Done)
            .await?;
        self.wait_until(cancel, stop, &sources, InputProgress::Done)
            .await?;
        match stop() {
            Some(reason) => Err(BoundedError::Stopped(reason)),
            None => Ok(()),
        }
    }

    /// Waits until every Kafka-fed sink's consumer has handed over its topics up to their end
    /// offsets at the start.
    async fn wait_for_kafka(
        &self,
        cancel: &CancellationToken,
        stop: StopCheck<'_>,
        sinks: &[&(String, BoundedTask)],
    ) -> Result<(), BoundedError> {
        loop {
            let read = sinks.iter().all(|(_, task)| {
                task.kafka_read
                    .as_ref()
                    .is_none_or(|read| read.load(Ordering::Acquire))
            });
            if read {
                return Ok(());
            }
            // Failures and the stop check, without waiting on any progress.
            self.wait_until(cancel, stop, sinks, InputProgress::Reading)
                .await?;
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = cancel.cancelled() => return Err(BoundedError::Interrupted),
            }
        }
    }

    async fn wait_until(
        &self,
        cancel: &CancellationToken,
        stop: StopCheck<'_>,
        tasks: &[&(String, BoundedTask)],
        wanted: InputProgress,
    ) -> Result<(), BoundedError> {
        loop {
            if let Some(reason) = stop() {
                return Err(BoundedError::Stopped(reason));
            }
            for (name, _) in tasks {
                if let Some(status) = self.shared.status.get(name)
                    && status.state == State::Failed
                {
                    return Err(BoundedError::Failed {
                        name: name.clone(),
                        trace: status.trace.unwrap_or_default(),
                    });
                }
            }
            if tasks.iter().all(|(_, t)| *t.progress.borrow() >= wanted) {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = cancel.cancelled() => return Err(BoundedError::Interrupted),
            }
        }
    }

    async fn bounded_tasks(&self) -> Vec<(String, BoundedTask)> {
        let entries = self.entries.lock().await;
        entries
            .iter()
            .filter_map(|(name, entry)| {
                let bounded = entry.task.as_ref()?.bounded.as_ref()?;
                Some((
                    name.clone(),
                    BoundedTask {
                        progress: bounded.progress.clone(),
                        end_input: bounded.end_input.clone(),
                        kafka_read: bounded.kafka_read.clone(),
                    },
                ))
            })
            .collect()
    }

    /// Before a bounded run starts `config`: its offsets and state are those of this run (the
    /// connector's config and the run's parameters). Returns true when it resumes an
    /// interrupted run of the same (never when `may_resume` is false: a source of the run
    /// cannot resume, so the whole run starts again); otherwise what an earlier run left is
    /// forgotten, and the run is a new attempt (what a sink stages for it is its own).
    pub fn begin_bounded(
        &self,
        config: &ConnectorConfig,
        may_resume: bool,
    ) -> Result<bool, RuntimeError> {
        let identity = self.shared.run.identity(config);
        let path = run_record_path(&self.shared.data_dir, &config.name);
        let previous = read_run_record(&path);
        let resumes = may_resume
            && previous
                .as_ref()
                .is_some_and(|p| p["identity"] == identity && p["complete"] == false);
        let attempt = previous.as_ref().map_or(0, attempt_of);
        let attempt = if resumes {
            attempt
        } else {
            self.forget_state(&config.name)?;
            self.shared.offsets.delete(&config.name)?;
            attempt + 1
        };
        write_run_record(&path, &identity, attempt, false)?;
        Ok(resumes)
    }

    /// After a bounded run completed: the next run of these connectors starts from nothing.
    pub fn complete_bounded(&self, names: &[String]) -> Result<(), RuntimeError> {
        for name in names {
            let path = run_record_path(&self.shared.data_dir, name);
            let record = read_run_record(&path).unwrap_or(Value::Null);
            write_run_record(&path, &record["identity"], attempt_of(&record), true)?;
        }
        Ok(())
    }
}

/// Where a connector's bounded runs are recorded.
fn run_record_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("bounded-runs").join(format!("{name}.json"))
}

fn read_run_record(path: &Path) -> Option<Value> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

fn attempt_of(record: &Value) -> u64 {
    record["attempt"].as_u64().unwrap_or(0)
}

/// The attempt of the connector's current bounded run (0 before any): a new one each time a
/// run starts from nothing, the same when it resumes.
pub fn attempt(data_dir: &Path, name: &str) -> u64 {
    read_run_record(&run_record_path(data_dir, name)).map_or(0, |r| attempt_of(&r))
}

fn write_run_record(
    path: &Path,
    identity: &Value,
    attempt: u64,
    complete: bool,
) -> Result<(), RuntimeError> {
    let record = json!({"identity": identity, "attempt": attempt, "complete": complete});
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::offsets::write_atomically(path, record.to_string().as_bytes())
    };
    write().map_err(|source| RuntimeError::StateFile {
        path: path.to_path_buf(),
        source,
    })
}
