//! `headwater run --once`: a bounded run for schedulers (an Airflow task, a cron job). Runs the
//! connectors of the directory until every source has read all of its input, fires every
//! window at the end (see `crate::runtime::bounded`), flushes, commits, prints a summary per
//! connector and exits: 0 when everything completed, non-zero with the reason when a connector
//! failed or the run's dead letters exceeded `--max-dead-letters`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::api::connector::ConnectorType;
use crate::config::connector::{ConnectorConfig, load_file};
use crate::runtime::bounded::BoundedError;
use crate::runtime::host::{Origin, Runtime};
use crate::runtime::prepare::RunMode;
use crate::runtime::worker::{BusKind, WorkerConfig};

/// What a bounded run was asked for.
#[derive(Debug)]
pub(super) struct OnceArgs {
    pub(super) run: RunMode,
    pub(super) max_dead_letters: Option<u64>,
}

/// One connector of the run.
struct Planned {
    config: ConnectorConfig,
    file: PathBuf,
    connector_type: ConnectorType,
    /// It resumes an interrupted run of the same config and parameters.
    resumes: bool,
    /// Its task can resume an interrupted bounded run from its offsets.
    resumable: bool,
}

pub(super) async fn run_once(worker: WorkerConfig, args: OnceArgs) -> anyhow::Result<()> {
    if worker.bus.kind == BusKind::Kafka {
        bail!(
            "--once runs on the embedded bus: bus.kind = \"kafka\" is not supported in a bounded \
             run yet"
        );
    }
    let mut runtime = crate::runtime(&worker.data_dir).with_run_mode(args.run);
    if let Some(link) = worker.kafka_link()? {
        // Sinks read their topics up to the end offsets at the start; dead-letter topics.
        runtime = runtime.with_kafka(link);
    }
    let runtime = Arc::new(runtime);
    let mut planned = plan(&runtime, &worker)?;
    if planned.is_empty() {
        bail!(
            "no connector configs in {}: nothing to run",
            worker.connectors_dir.display()
        );
    }
    // Sinks first: a source's records must find their readers subscribed.
    planned.sort_by_key(|p| p.connector_type == ConnectorType::Source);
    // A source that cannot resume (a CDC snapshot starts again) makes the whole run start again.
    let may_resume = planned.iter().all(|p| p.resumable);
    for p in &mut planned {
        p.resumes = runtime
            .begin_bounded(&p.config, may_resume)
            .with_context(|| format!("preparing the bounded run of {}", p.config.name))?;
        if p.resumes {
            tracing::info!(connector = %p.config.name, "Resuming the interrupted run of the same config and parameters.");
        }
        runtime
            .apply(p.config.clone(), Origin::File(p.file.clone()))
            .await
            .with_context(|| format!("starting connector {}", p.config.name))?;
    }
    let started = Instant::now();
    let cancel = CancellationToken::new();
    let names: Vec<String> = planned.iter().map(|p| p.config.name.clone()).collect();
    let watch = tokio::spawn(show_progress(
        Arc::clone(&runtime),
        names.clone(),
        cancel.clone(),
    ));
    let over_limit = {
        let (runtime, names) = (Arc::clone(&runtime), names.clone());
        move || {
            let max = args.max_dead_letters?;
            let dead_letters: u64 = names
                .iter()
                .filter_map(|n| runtime.metrics(n))
                .map(|m| m.dead_letters)
                .sum();
            (dead_letters > max)
                .then(|| format!("{dead_letters} dead letters, more than --max-dead-letters {max}"))
        }
    };
    let outcome = tokio::select! {
        outcome = runtime.finish_bounded(&cancel, &over_limit) => outcome,
        signal = super::shutdown_signal() => Err(BoundedError::Stopped(format!("interrupted by {signal}"))),
    };
    cancel.cancel();
    let _ = watch.await;
    runtime.shutdown().await;
    let elapsed = started.elapsed();
    print_summary(&runtime, &planned, elapsed, args.max_dead_letters);
    match outcome {
        Ok(()) => {
            runtime
                .complete_bounded(&names)
                .context("recording the completed run")?;
            println!("Run complete in {:.1} s.", elapsed.as_secs_f64());
            Ok(())
        }
        Err(e) => bail!("the bounded run did not complete: {e}"),
    }
}

/// Reads and validates every config of the directory: all problems at once, before anything
/// starts.
fn plan(runtime: &Runtime, worker: &WorkerConfig) -> anyhow::Result<Vec<Planned>> {
    let dir = &worker.connectors_dir;
    let files = crate::runtime::watcher::list_config_files(dir)
        .with_context(|| format!("listing connector configs in {}", dir.display()))?;
    let mut planned: Vec<Planned> = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        let config = match load_file(&file) {
            Ok(config) => config,
            Err(e) => {
                problems.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        if let Some(other) = planned.iter().find(|p| p.config.name == config.name) {
            problems.push(format!(
                "{}: connector {} is also defined by {}",
                file.display(),
                config.name,
                other.file.display()
            ));
            continue;
        }
        match runtime.validate(&config, &Origin::File(file.clone())) {
            Ok(prepared) => planned.push(Planned {
                connector_type: prepared.connector_type,
                resumable: runtime
                    .registry()
                    .find(prepared.class)
                    .is_none_or(|plugin| plugin.resumes_bounded_runs()),
                config,
                file,
                resumes: false,
            }),
            Err(e) => problems.push(format!("{}: {e}", file.display())),
        }
    }
    if !problems.is_empty() {
        bail!("invalid connector configs:\n{}", problems.join("\n"));
    }
    Ok(planned)
}

/// How often progress is shown: a line redrawn on a terminal, a log line otherwise.
const PROGRESS_TERMINAL: Duration = Duration::from_millis(500);
const PROGRESS_LOG: Duration = Duration::from_secs(10);

/// Shows the run's progress until `cancel`.
async fn show_progress(runtime: Arc<Runtime>, names: Vec<String>, cancel: CancellationToken) {
    let terminal = std::io::stderr().is_terminal();
    let mut last_log = Instant::now();
    let mut shown = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = cancel.cancelled() => break,
        }
        let metrics: Vec<_> = names
            .iter()
            .filter_map(|n| Some((n, runtime.metrics(n)?)))
            .collect();
        let dead_letters: u64 = metrics.iter().map(|(_, m)| m.dead_letters).sum();
        let read: u64 = metrics.iter().map(|(_, m)| m.bytes_in).sum();
        let behind: u64 = metrics.iter().filter_map(|(_, m)| m.source_lag_bytes).sum();
        let records: u64 = metrics.iter().map(|(_, m)| m.records_in).sum();
        let line = progress_line(read, behind, records, dead_letters);
        if terminal && last_log.elapsed() >= PROGRESS_TERMINAL {
            eprint!("\r{line}\x1b[K");
            let _ = std::io::stderr().flush();
            shown = true;
            last_log = Instant::now();
        } else if !terminal && last_log.elapsed() >= PROGRESS_LOG {
            tracing::info!(progress = %line, "Bounded run under way.");
            last_log = Instant::now();
        }
    }
    if shown {
        eprintln!();
    }
}

fn progress_line(read: u64, behind: u64, records: u64, dead_letters: u64) -> String {
    let total = read + behind;
    let share = if total > 0 {
        format!("{:>3.0}% ", read as f64 / total as f64 * 100.0)
    } else {
        String::new()
    };
    format!(
        "{share}{} of {} read, {records} records, {dead_letters} dead letters",
        megabytes(read),
        megabytes(total)
    )
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn print_summary(
    runtime: &Runtime,
    planned: &[Planned],
    elapsed: Duration,
    max_dead_letters: Option<u64>,
) {
    let width = planned
        .iter()
        .map(|p| p.config.name.len())
        .max()
        .unwrap_or(0)
        .max("CONNECTOR".len());
    println!(
        "{:<width$}  {:<6}  {:>12}  {:>12}  {:>12}  {:>6}",
        "CONNECTOR", "TYPE", "RECORDS IN", "RECORDS OUT", "DEAD LETTERS", "FILES"
    );
    let mut dead_letters = 0;
    for p in planned {
        let m = runtime.metrics(&p.config.name).unwrap_or_default();
        dead_letters += m.dead_letters;
        let files = match p.connector_type {
            ConnectorType::Sink if m.files_committed > 0 => m.files_committed.to_string(),
            _ => "-".to_owned(),
        };
        println!(
            "{:<width$}  {:<6}  {:>12}  {:>12}  {:>12}  {files:>6}",
            p.config.name,
            p.connector_type.as_str(),
            m.records_in,
            m.records_out,
            m.dead_letters
        );
    }
    let resumed: Vec<&str> = planned
        .iter()
        .filter(|p| p.resumes)
        .map(|p| p.config.name.as_str())
        .collect();
    if !resumed.is_empty() {
        println!(
            "Resumed the interrupted run of {} (same configs and parameters): the counts are \
             this run's.",
            resumed.join(", ")
        );
    }
    let limit = max_dead_letters.map_or_else(|| "no limit".to_owned(), |m| format!("limit {m}"));
    println!(
        "{dead_letters} dead letters ({limit}); {:.1} s",
        elapsed.as_secs_f64()
    );
}
