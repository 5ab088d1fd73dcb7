//! The `headwater` command line (clap): `run`, `validate`, `connectors` (a client of a running
//! host's REST API, in [`crate::client`]) and `plugin` (WASM plugins, in [`plugin`]).

pub mod docs;
mod once;
mod plugin;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::client::{self, Client, ClientError};
use crate::config::connector::{ConfigErrors, ConfigFileError, load_file};
use crate::runtime::prepare::{RunMode, prepare};
use crate::runtime::watcher::DirectoryWatcher;
use crate::runtime::worker::{RestTokens, WorkerConfig};

/// A Kafka Connect-style connector host for feature-store ingestion.
#[derive(Debug, Parser)]
#[command(name = "headwater", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the host in the foreground until SIGINT or SIGTERM.
    Run(RunArgs),
    /// Check connector config files; print every problem and exit non-zero if any.
    Validate {
        /// Connector config files (.json or .properties).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The worker config (TOML) the connectors will run with: with its `[kafka]`, a sink
        /// with `tasks.max` > 1 keeps state per partition, and validate checks it so.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A run parameter, `name=value`, for `${param:name}` in the configs (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Check the configs for a bounded run (`headwater run --once`): only sources that end
        /// at the end of their input are accepted.
        #[arg(long)]
        once: bool,
    },
    /// Manage the connectors of a running host through its REST API.
    Connectors(ConnectorsArgs),
    /// Dead letters of a running host's connectors.
    Dlq(DlqArgs),
    /// Write, build, test and inspect WASM plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// For Headwater's maintainers: regenerate the book's reference pages (one per connector,
    /// transform, predicate and converter class) from the code's documented config keys.
    Docs {
        /// The book's `src` directory.
        #[arg(long, default_value = "docs/src")]
        book: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct DlqArgs {
    #[command(flatten)]
    api: ConnectorsApi,
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Send a sink connector's dead letters through it again, once their cause is fixed.
    /// Waits until they are flushed; those that fail again are dead letters again.
    Replay {
        /// Connector name.
        name: String,
        /// Replay from this Kafka dead-letter topic instead of the connector's dead-letter
        /// file (`<data dir>/dlq/<name>.jsonl`).
        #[arg(long)]
        topic: Option<String>,
    },
    /// Show a connector's last dead letters: where each came from, the stage and class that
    /// failed, and why.
    List {
        /// Connector name.
        name: String,
        /// How many, the newest (at most 1,000).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// How to reach the host's REST API.
#[derive(clap::Args)]
struct ConnectorsApi {
    /// Base URL of the host's REST API.
    #[arg(long, global = true, default_value = client::DEFAULT_URL)]
    url: String,
    /// Bearer token, if the host requires one.
    #[arg(
        long,
        global = true,
        env = "HEADWATER_REST_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// A PEM file of the CA certificates to trust for an `https://` URL (a host serving its API
    /// with `[rest] tls_cert` signed by a private CA), instead of the system's.
    #[arg(long, global = true, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Print the API's JSON bodies (pretty) instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

// By hand: the token must never show in a debug print.
impl std::fmt::Debug for ConnectorsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorsApi")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "[hidden]"))
            .field("cacert", &self.cacert)
            .field("json", &self.json)
            .finish()
    }
}

#[derive(Debug, clap::Args)]
struct ConnectorsArgs {
    #[command(flatten)]
    api: ConnectorsApi,
    #[command(subcommand)]
    command: ConnectorsCommand,
}

#[derive(Debug, Subcommand)]
enum ConnectorsCommand {
    /// List connectors: NAME, TYPE, STATE, TASKS.
    List,
    /// Show a connector's and its tasks' states and workers, and the trace of a failure.
    Status {
        /// Connector name.
        name: String,
    },
    /// Create a connector from a config file (Kafka Connect JSON or .properties).
    Create {
        /// Connector config file.
        file: PathBuf,
    },
    /// Print a connector's config as sorted `key = value` lines.
    Config {
        /// Connector name.
        name: String,
    },
    /// Pause a connector.
    Pause {
        /// Connector name.
        name: String,
    },
    /// Resume a paused or stopped connector.
    Resume {
        /// Connector name.
        name: String,
    },
    /// Restart a connector.
    Restart {
        /// Connector name.
        name: String,
        /// Restart its tasks too.
        #[arg(long)]
        include_tasks: bool,
        /// Restart only instances that FAILED.
        #[arg(long)]
        only_failed: bool,
    },
    /// Stop a connector (no task; offsets may then be changed).
    Stop {
        /// Connector name.
        name: String,
    },
    /// Delete a connector (its offsets are kept).
    Delete {
        /// Connector name.
        name: String,
    },
    /// Show a source connector's offsets: PARTITION, OFFSET.
    Offsets {
        /// Connector name.
        name: String,
    },
    /// Send a Debezium signal to a running CDC connector, e.g. `signal orders-cdc
    /// execute-snapshot '{"data-collections": ["public.orders"], "type": "incremental"}'`.
    Signal {
        /// Connector name.
        name: String,
        /// execute-snapshot, stop-snapshot, pause-snapshot, resume-snapshot or log.
        r#type: String,
        /// The signal's data, a JSON object.
        data: Option<String>,
        /// The signal's id (notifications of the snapshot it starts carry it); generated when
        /// absent.
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Worker config file (TOML). Without it, defaults serve the demo.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory of connector configs to run and watch (overrides the worker config).
    #[arg(long)]
    connectors_dir: Option<PathBuf>,
    /// Directory for offsets, dead letters and caches (overrides the worker config).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address of the REST API (overrides the worker config). Port 0 picks a free port; see
    /// `--ready-file` to learn which.
    #[arg(long)]
    rest_listen: Option<SocketAddr>,
    /// A directory where connectors created over the REST API may use files (repeatable;
    /// replaces the worker config's `[files] allowed_paths`, whose default is the data
    /// directory).
    #[arg(long = "allowed-path", value_name = "DIR")]
    allowed_paths: Vec<PathBuf>,
    /// Once the REST API listens, write `{"rest": "<ip:port>", "url": "<scheme>://<ip:port>",
    /// "pid": <pid>}` to this file (for
    /// scripts and tests that start the host on port 0).
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// A bounded run for schedulers: run the directory's connectors until every source has read
    /// all of its input, fire every window, flush, print a summary and exit (0 when complete).
    /// No REST API, no watching.
    #[arg(long)]
    once: bool,
    /// A run parameter, `name=value`, for `${param:name}` in the configs (repeatable), e.g.
    /// `--set ds=2024-01-02`.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// With --once: fail the run (exit non-zero) once its dead letters, all connectors
    /// together, exceed this number. No limit by default.
    #[arg(long, requires = "once")]
    max_dead_letters: Option<u64>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEADWATER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            init_tracing(args.log_format);
            if let Err(e) = crate::runtime::host::prepare_process() {
                tracing::debug!(error = %e, "Could not turn transparent huge pages off; memory use may be higher.");
            }
            match run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "Headwater stopped on an error.");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Validate {
            files,
            config,
            set,
            once,
        } => match crate::config::providers::Params::parse(set.iter().map(String::as_str)) {
            Ok(params) => validate(
                &files,
                config.as_deref(),
                &RunMode {
                    params,
                    bounded: once,
                },
            ),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Connectors(args) => call_api(&args.api, |c| connectors_command(c, &args.command)),
        Command::Dlq(args) => call_api(&args.api, |c| dlq_command(c, &args.command)),
        Command::Plugin(command) => plugin::run(&command),
        Command::Docs { book } => match docs::generate(&crate::registry(), &book) {
            Ok(n) => {
                println!("Wrote {n} files under {}.", book.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Runs one REST API command: prints a table or the API's JSON body, or the error and
/// exits 1.
fn call_api(
    args: &ConnectorsApi,
    command: impl FnOnce(&Client) -> Result<(Option<serde_json::Value>, String), ClientError>,
) -> ExitCode {
    let client = Client::new(&args.url, args.token.as_deref());
    let client = match &args.cacert {
        Some(ca) => client.with_ca(ca),
        None => Ok(client),
    };
    match client.and_then(|client| command(&client)) {
        Ok((body, text)) => {
            if args.json {
                if let Some(body) = body {
                    println!("{}", pretty(&body));
                }
            } else {
                print!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if args.json
                && let Some(body) = e.api_body()
            {
                println!("{}", pretty(body));
            }
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dlq_command(
    client: &Client,
    command: &DlqCommand,
) -> Result<(Option<serde_json::Value>, String), ClientError> {
    match command {
        DlqCommand::Replay { name, topic } => {
            let report = client.replay(name, topic.as_deref())?;
            let text = format!(
                "Replayed {} dead letter(s) of {name} from the {}; {} refused again by its converters.\n",
                report["replayed"],
                report["from"].as_str().unwrap_or("file"),
                report["refused"]
            );
            Ok((Some(report), text))
        }
        DlqCommand::List { name, limit } => {
            let body = client.dead_letters(name, *limit)?;
            let text = crate::client::render_dead_letters(&body);
            Ok((Some(body), text))
        }
    }
}

fn pretty(body: &serde_json::Value) -> String {
    serde_json::to_string_pretty(body).unwrap_or_else(|_| body.to_string())
}

/// The API's body (if any) and its rendering for people.
fn connectors_command(
    client: &Client,
    command: &ConnectorsCommand,
) -> Result<(Option<serde_json::Value>, String), ClientError> {
    let shown = |body: serde_json::Value, render: &dyn Fn(&serde_json::Value) -> String| {
        let text = render(&body);
        (Some(body), text)
    };
    let done = |body: Option<serde_json::Value>, text: String| (body, text + "\n");
    Ok(match command {
        ConnectorsCommand::List => shown(client.list()?, &client::render_list),
        ConnectorsCommand::Status { name } => shown(client.status(name)?, &client::render_status),
        ConnectorsCommand::Create { file } => {
            let request = client::create_request(file)?;
            shown(client.create(&request)?, &client::render_created)
        }
        ConnectorsCommand::Config { name } => shown(client.config(name)?, &client::render_config),
        ConnectorsCommand::Pause { name } => {
            done(client.pause(name)?, format!("Connector {name} paused."))
        }
        ConnectorsCommand::Resume { name } => {
            done(client.resume(name)?, format!("Connector {name} resumed."))
        }
        ConnectorsCommand::Restart {
            name,
            include_tasks,
            only_failed,
        } => match client.restart(name, *include_tasks, *only_failed)? {
            Some(status) => shown(status, &client::render_status),
            None => done(None, format!("Connector {name} restarted.")),
        },
        ConnectorsCommand::Stop { name } => {
            done(client.stop(name)?, format!("Connector {name} stopped."))
        }
        ConnectorsCommand::Delete { name } => {
            done(client.delete(name)?, format!("Connector {name} deleted."))
        }
        ConnectorsCommand::Offsets { name } => shown(client.offsets(name)?, &|body| {
            client::render_offsets(name, body)
        }),
        ConnectorsCommand::Signal {
            name,
            r#type,
            data,
            id,
        } => {
            let sent = client.signal(name, r#type, data.as_deref(), id.as_deref())?;
            let id = sent
                .get("id")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?");
            done(
                Some(sent.clone()),
                format!("Signal {id} ({type}) sent to {name}; its effect is in the connector's log.", type = r#type),
            )
        }
    })
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut worker = match &args.config {
        Some(path) => WorkerConfig::load(path)?,
        None => WorkerConfig::default(),
    };
    if let Some(dir) = args.connectors_dir {
        worker.connectors_dir = dir;
    }
    if let Some(dir) = args.data_dir {
        worker.data_dir = dir;
    }
    if let Some(addr) = args.rest_listen {
        worker.rest.listen = addr;
    }
    if !args.allowed_paths.is_empty() {
        worker.files.allowed_paths = Some(args.allowed_paths);
    }
    if let Ok(id) = std::env::var("HEADWATER_GROUP_INSTANCE_ID") {
        worker.kafka.group_instance_id = Some(id);
    }
    std::fs::create_dir_all(&worker.data_dir)
        .with_context(|| format!("creating data directory {}", worker.data_dir.display()))?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("headwater")
        .build()
        .context("starting the async runtime")?;
    let params = crate::config::providers::Params::parse(args.set.iter().map(String::as_str))?;
    if args.once {
        let once = once::OnceArgs {
            run: RunMode {
                params,
                bounded: true,
            },
            max_dead_letters: args.max_dead_letters,
        };
        return tokio.block_on(once::run_once(worker, once));
    }
    tokio.block_on(serve(worker, args.ready_file, params))
}

async fn serve(
    worker: WorkerConfig,
    ready_file: Option<PathBuf>,
    params: crate::config::providers::Params,
) -> anyhow::Result<()> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        data_dir = %worker.data_dir.display(),
        connectors_dir = %worker.connectors_dir.display(),
        bus = ?worker.bus.kind,
        "Headwater starting."
    );
    // TLS files and the port first: a bad certificate or a taken port should stop the host
    // before any connector starts.
    let serve_options = crate::rest::ServeOptions::from_config(&worker.rest)?;
    let listener = crate::rest::bind(worker.rest.listen).await?;
    let allowed_paths = worker
        .allowed_paths()
        .context("resolving [files] allowed_paths")?;
    let mut runtime = crate::runtime(&worker.data_dir)
        .with_run_mode(RunMode {
            params,
            bounded: false,
        })
        .with_allowed_paths(allowed_paths)
        .with_allowed_env(worker.allowed_env());
    if let Some(link) = worker.kafka_link()? {
        tracing::info!(bootstrap_servers = %link.settings.bootstrap_servers, kafka_bus = link.bus, "Kafka configured.");
        runtime = runtime.with_kafka(link);
    }
    let runtime = Arc::new(runtime);
    runtime.supervise();
    runtime
        .restore()
        .await
        .context("restoring connectors created over REST and target states")?;
    let cancel = CancellationToken::new();
    let watcher = DirectoryWatcher::new(&worker.connectors_dir, Arc::clone(&runtime));
    let (loaded_tx, loaded_rx) = tokio::sync::oneshot::channel();
    let mut watch_task = tokio::spawn(watcher.run(cancel.clone(), Some(loaded_tx)));
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn({
        let ready = Arc::clone(&ready);
        async move {
            if loaded_rx.await.is_ok() {
                ready.store(true, std::sync::atomic::Ordering::Release);
                tracing::info!("Connectors loaded; ready.");
            }
        }
    });
    let RestTokens { token, read_token } = worker.rest.tokens(
        std::env::var("HEADWATER_REST_TOKEN").ok(),
        std::env::var("HEADWATER_REST_READ_TOKEN").ok(),
    )?;
    let worker_id = listener
        .local_addr()
        .map_or_else(|_| worker.rest.listen.to_string(), |a| a.to_string());
    let state = crate::rest::AppState {
        runtime: Arc::clone(&runtime),
        worker_id: worker_id.clone(),
        token: token.map(Arc::from),
        read_token: read_token.map(Arc::from),
        ready,
        schema_registry: Arc::new(
            crate::schema_registry::SchemaRegistry::open(&worker.data_dir)
                .context("opening the embedded schema registry")?,
        ),
        started: std::time::Instant::now(),
    };
    let url = format!("{}://{worker_id}", serve_options.scheme());
    let mut rest_task = tokio::spawn(crate::rest::serve(
        listener,
        state,
        serve_options,
        cancel.clone(),
    ));
    // Everything the API needs is open: tell whoever waits where it is.
    if let Some(path) = &ready_file {
        let ready = serde_json::json!({ "rest": worker_id, "url": url, "pid": std::process::id() });
        crate::offsets::write_atomically(path, ready.to_string().as_bytes())
            .with_context(|| format!("writing the ready file {}", path.display()))?;
    }
    let outcome = tokio::select! {
        signal = shutdown_signal() => {
            tracing::info!(signal, "Shutting down.");
            Ok(())
        }
        result = &mut watch_task => match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::new(e)),
            Err(e) => Err(anyhow::Error::new(e).context("connector watcher panicked")),
        },
        result = &mut rest_task => match result {
            Ok(()) => Ok(()),
            Err(e) => Err(anyhow::Error::new(e).context("REST server panicked")),
        },
    };
    cancel.cancel();
    if !watch_task.is_finished() {
        let _ = watch_task.await;
    }
    if !rest_task.is_finished() {
        let _ = rest_task.await;
    }
    runtime.shutdown().await;
    if let Some(path) = &ready_file
        && let Err(e) = std::fs::remove_file(path)
    {
        tracing::warn!(file = %path.display(), error = %e, "Could not remove the ready file.");
    }
    outcome
}

pub(super) async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("Cannot install signal handlers; stop with SIGKILL.");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

fn validate(files: &[PathBuf], worker: Option<&Path>, run: &RunMode) -> ExitCode {
    let kafka = match worker.map(|path| {
        WorkerConfig::load(path)
            .map_err(anyhow::Error::from)
            .and_then(|w| Ok(w.kafka_link()?))
    }) {
        None => None,
        Some(Ok(link)) => link.map(|l| l.settings),
        Some(Err(e)) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let registry = crate::registry();
    // Building a task compiles its WASM plugins; that cache is scratch here, never a user's
    // data dir.
    let scratch = std::env::temp_dir().join(format!("headwater-validate-{}", std::process::id()));
    let mut invalid = 0;
    for file in files {
        match validate_file(&registry, file, &scratch, kafka.as_ref(), run) {
            Ok(summary) => println!("{}: OK: {summary}", file.display()),
            Err(e) => {
                invalid += 1;
                let message = e
                    .to_string()
                    .lines()
                    .map(|l| format!("  {}", l.trim_start()))
                    .collect::<Vec<_>>()
                    .join("\n");
                println!("{}: INVALID\n{message}", file.display());
            }
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&scratch)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %scratch.display(), error = %e, "Could not remove the scratch dir.");
    }
    if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{invalid} of {} config file(s) invalid", files.len());
        ExitCode::FAILURE
    }
}

/// Why a config file is invalid.
#[derive(Debug, thiserror::Error)]
enum Invalid {
    #[error(transparent)]
    File(#[from] ConfigFileError),
    #[error(transparent)]
    Config(#[from] ConfigErrors),
}

fn validate_file(
    registry: &crate::api::registry::Registry,
    file: &Path,
    scratch: &Path,
    kafka: Option<&crate::kafka::KafkaSettings>,
    run: &RunMode,
) -> Result<String, Invalid> {
    let config = load_file(file)?;
    let prepared = prepare(registry, &config, scratch, kafka, run, None)?;
    let mut summary = format!(
        "connector '{}' ({} {})",
        config.name,
        prepared.connector_type.as_str(),
        prepared.class
    );
    if let Some(tasks) = prepared.tasks_summary() {
        summary.push_str(&format!("\n  {tasks}"));
    }
    if let Some(state) = prepared.state_summary() {
        summary.push_str(&format!("\n  {state}"));
    }
    for key in &prepared.unused_keys {
        summary.push_str(&format!("\n  warning: unknown key {key:?} is ignored"));
    }
    Ok(summary)
}
