//! Shared fixtures: a workspace directory, the `headwater` binary running in it, waiting for
//! conditions, reading Parquet output back, and the real services of `scripts/service.sh`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

pub use crate::service::Service;

/// Generous upper bound for conditions that normally hold within a second or two; it only
/// matters when something is broken (then the test fails with the host's log).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A scratch directory with `connectors.d/`, `var/` (data dir) and `in/`/`out/` folders.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        for sub in ["connectors.d", "var", "in", "out"] {
            fs::create_dir_all(dir.path().join(sub)).expect("create workspace dirs");
        }
        Self { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn connectors_dir(&self) -> PathBuf {
        self.path("connectors.d")
    }

    /// Writes `connectors.d/<file>` atomically (temp file + rename, as editors do).
    pub fn put_config(&self, file: &str, config: &Value) {
        let tmp = self.connectors_dir().join(format!(".{file}.swp"));
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(config).expect("serialize config"),
        )
        .expect("write config");
        fs::rename(&tmp, self.connectors_dir().join(file)).expect("rename config");
    }

    /// Writes the worker config (`worker.toml`) the host is started with.
    pub fn put_worker_config(&self, toml: &str) {
        fs::write(self.path("worker.toml"), toml).expect("write worker.toml");
    }

    pub fn remove_config(&self, file: &str) {
        fs::remove_file(self.connectors_dir().join(file)).expect("remove config");
    }

    /// A host with the default `[files] allowed_paths` (the data directory, `var/`), or the
    /// worker config's: connectors created over REST may not use the workspace's other files.
    pub fn start_confined(&self, env: &[(&str, &str)]) -> Host {
        Host::start_with_args(self.dir.path(), env, &[])
    }

    pub fn start(&self) -> Host {
        Host::start(self.dir.path(), &[])
    }

    /// Starts Headwater with extra environment variables (for `${env:..}` in configs).
    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Host {
        Host::start(self.dir.path(), env)
    }

    /// A `headwater.file.FileSink` config writing `topic` to `file` (relative to the workspace).
    pub fn file_sink(&self, name: &str, topic: &str, file: &str) -> Value {
        serde_json::json!({"name": name, "config": {
            "connector.class": "headwater.file.FileSink",
            "topics": topic,
            "file": self.path(file).display().to_string(),
        }})
    }

    /// Appends one JSON line per value to `rel` (created if missing), as a log writer would.
    pub fn append_jsonl<'a>(&self, rel: &str, values: impl IntoIterator<Item = &'a Value>) {
        use std::io::Write;
        let mut f = fs::File::options()
            .create(true)
            .append(true)
            .open(self.path(rel))
            .expect("open input file");
        for v in values {
            writeln!(f, "{v}").expect("append a line");
        }
    }
}

/// A running `headwater run`.
pub struct Host {
    child: Option<Child>,
    /// The workspace the host runs in.
    root: PathBuf,
    log: PathBuf,
    /// Where this run's lines start in the log (earlier runs of the workspace come before).
    log_start: usize,
}

impl Host {
    /// The tests' connectors created over REST use files anywhere in the workspace.
    fn start(root: &Path, env: &[(&str, &str)]) -> Host {
        Self::start_with_args(root, env, &["--allowed-path", "."])
    }

    fn start_with_args(root: &Path, env: &[(&str, &str)], args: &[&str]) -> Host {
        let log = root.join("host.log");
        let log_start = fs::metadata(&log).map_or(0, |m| m.len() as usize);
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open host log");
        let worker = root.join("worker.toml");
        let config: Vec<&str> = if worker.exists() {
            vec!["--config", "worker.toml"]
        } else {
            Vec::new()
        };
        // A fresh ready file tells this start's REST address (see `rest_port`).
        let _ = fs::remove_file(root.join("ready.json"));
        let child = Command::new(env!("CARGO_BIN_EXE_headwater"))
            .current_dir(root)
            .arg("run")
            .args(config)
            .args([
                "--connectors-dir",
                "connectors.d",
                "--data-dir",
                "var",
                // A free port: tests run side by side.
                "--rest-listen",
                "127.0.0.1:0",
                "--ready-file",
                "ready.json",
            ])
            .args(args)
            .env("HEADWATER_LOG", "info,headwater=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start headwater");
        Host {
            child: Some(child),
            root: root.to_path_buf(),
            log,
            log_start,
        }
    }

    /// This run's log lines.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn log(&self) -> String {
        let all = fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(all.get(self.log_start..).unwrap_or_default()).into_owned()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("host is running").id()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) -> ExitStatus {
        self.signal("-TERM");
        let mut child = self.child.take().expect("host is running");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().expect("wait for host") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("headwater did not stop on SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the host to exit by itself (a start that fails).
    pub fn wait_for_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("host is running");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().expect("wait for host") {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!("headwater did not exit; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGSTOP: the process stops, as in a long pause, without knowing it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// SIGKILL: no cleanup of any kind.
    pub fn kill9(mut self) {
        let mut child = self.child.take().expect("host is running");
        child.kill().expect("kill -9 headwater");
        child.wait().expect("reap headwater");
    }

    /// Polls `f` until it returns `Some`, failing with the host's log after [`PATIENCE`].
    pub fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; host log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        self.wait_for(&format!("log line {needle:?}"), || {
            self.log().contains(needle).then_some(())
        });
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The port the host's REST API bound (it listens on port 0), from its ready file.
pub fn rest_port(host: &Host) -> u16 {
    host.wait_for("the ready file", || {
        let text = fs::read_to_string(host.root().join("ready.json")).ok()?;
        let ready: serde_json::Value = serde_json::from_str(&text).ok()?;
        ready["rest"].as_str()?.rsplit(':').next()?.parse().ok()
    })
}

/// Every committed `.parquet` file under `root`, sorted.
pub fn parquet_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".parquet") && !name.starts_with('.') {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The record batches of one Parquet file.
pub fn read_batches(path: &Path) -> Vec<RecordBatch> {
    let file = File::open(path).expect("open parquet file");
    ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("read parquet footer")
        .build()
        .expect("build parquet reader")
        .collect::<Result<Vec<_>, _>>()
        .expect("read parquet rows")
}

/// Every row under `root` as JSON, with the file it is in.
pub fn parquet_rows(root: &Path) -> Vec<(PathBuf, Value)> {
    let mut rows = Vec::new();
    for path in parquet_files(root) {
        for batch in read_batches(&path) {
            let mut writer = arrow_json::ArrayWriter::new(Vec::new());
            writer.write(&batch).expect("rows to JSON");
            writer.finish().expect("finish JSON");
            let values: Vec<Value> =
                serde_json::from_slice(&writer.into_inner()).expect("parse JSON rows");
            rows.extend(values.into_iter().map(|v| (path.clone(), v)));
        }
    }
    rows
}

/// Complete lines of a JSONL file (empty if it does not exist yet).
pub fn jsonl(path: &Path) -> Vec<Value> {
    let mut text = fs::read_to_string(path).unwrap_or_default();
    // A last line without its newline is still being written: not a line yet.
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    text.truncate(complete);
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

/// The value payloads a FileSink wrote (the `payload` of each JsonConverter envelope).
pub fn sink_values(path: &Path) -> Vec<Value> {
    jsonl(path)
        .into_iter()
        .map(|l| l["value"]["payload"].clone())
        .collect()
}

/// The last header `key` of a FileSink line or a dead letter, as text.
pub fn header<'a>(line: &'a Value, key: &str) -> Option<&'a str> {
    line["headers"]
        .as_array()?
        .iter()
        .rev()
        .find(|h| h["key"] == key)?["value"]
        .as_str()
}
