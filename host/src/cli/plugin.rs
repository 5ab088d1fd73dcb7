//! `headwater plugin new|build|test|inspect`: write, build and try WASM plugins locally.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;

use crate::api::record::{Payload, Record};
use crate::wasm::Limits;
use crate::wasm::plugin::{Tester, inspect};

/// Where this binary's source checkout keeps the SDK (for `plugin new`).
const SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Create a plugin crate (headwater-sdk, built for wasm32-wasip2) with a sample input.
    New {
        /// Crate name (also the directory created).
        name: String,
        /// What to scaffold.
        #[arg(long, value_enum, default_value = "transform")]
        kind: Scaffold,
        /// Parent directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Path to headwater-sdk (defaults to the sdk/ of the checkout this binary came from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build the plugin crate in the current (or given) directory for wasm32-wasip2.
    Build {
        /// The crate's directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Build without optimizations.
        #[arg(long)]
        debug: bool,
    },
    /// Run a plugin over sample records and print what it did with each.
    Test {
        /// The plugin's .wasm component.
        module: PathBuf,
        /// JSON lines, one record value per line.
        #[arg(long)]
        input: PathBuf,
        /// A parameter for `init`, as name=value (repeatable).
        #[arg(long = "config", value_name = "NAME=VALUE")]
        config: Vec<String>,
        /// Topic the sample records carry.
        #[arg(long, default_value = "test")]
        topic: String,
        /// Run all records as one batch, as a connector would (for rules across records, such
        /// as `unique` or `mostly`), instead of one call per record.
        #[arg(long)]
        batch: bool,
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        #[arg(long, default_value_t = 64 << 20)]
        max_memory_bytes: u64,
    },
    /// Print a plugin's name, version, kind and parameters.
    Inspect {
        /// The plugin's .wasm component.
        module: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The kind of crate `plugin new` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Scaffold {
    Transform,
    Check,
}

pub fn run(command: &PluginCommand) -> ExitCode {
    let result = match command {
        PluginCommand::New {
            name,
            kind,
            dir,
            sdk,
        } => new(name, *kind, dir, sdk.as_deref()),
        PluginCommand::Build { dir, debug } => build(dir, *debug),
        PluginCommand::Test {
            module,
            input,
            config,
            topic,
            batch,
            timeout_ms,
            max_memory_bytes,
        } => test(
            module,
            input,
            config,
            topic,
            *batch,
            Limits {
                timeout_ms: *timeout_ms,
                max_memory: (*max_memory_bytes).min(crate::wasm::MEMORY_CEILING) as usize,
            },
        ),
        PluginCommand::Inspect { module, json } => show(module, *json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn new(name: &str, kind: Scaffold, dir: &Path, sdk: Option<&Path>) -> anyhow::Result<ExitCode> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        bail!("{name:?} is not a valid crate name: use letters, digits, '-' and '_'");
    }
    let sdk = sdk.map_or_else(|| PathBuf::from(SDK_DIR), Path::to_path_buf);
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "headwater-sdk not found at {}; pass --sdk PATH (the sdk/ folder of a Headwater checkout)",
            sdk.display()
        )
    })?;
    let root = dir.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    std::fs::create_dir_all(root.join("src"))
        .with_context(|| format!("cannot create {}", root.display()))?;
    let manifest = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
rust-version = "1.95"
description = "A Headwater {kind} plugin."

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
headwater-sdk = {{ path = "{sdk}" }}

[profile.release]
strip = true

# A crate of its own, not part of an enclosing workspace.
[workspace]
"#,
        kind = match kind {
            Scaffold::Transform => "transform",
            Scaffold::Check => "check",
        },
        sdk = sdk.display(),
    );
    let source = match kind {
        Scaffold::Transform => TRANSFORM_TEMPLATE,
        Scaffold::Check => CHECK_TEMPLATE,
    };
    let files = [
        ("Cargo.toml", manifest.as_str()),
        ("src/lib.rs", source),
        ("sample.jsonl", SAMPLE),
        (".gitignore", "/target\n"),
    ];
    for (file, text) in files {
        let path = root.join(file);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let wasm = format!(
        "target/wasm32-wasip2/release/{}.wasm",
        name.replace('-', "_")
    );
    println!("Created {}. Next:", root.display());
    println!("  cd {}", root.display());
    println!("  headwater plugin build");
    println!("  headwater plugin test {wasm} --input sample.jsonl");
    Ok(ExitCode::SUCCESS)
}

const TRANSFORM_TEMPLATE: &str = r##"//! A Headwater feature transform. `headwater plugin build`, then
//! `headwater plugin test target/wasm32-wasip2/release/<crate>.wasm --input sample.jsonl`.

use headwater_sdk::prelude::*;

const PARAMS: &[Param] = &[Param::optional(
    "factor",
    ParamType::Float,
    "2.0",
    "What `amount` is multiplied by.",
)];

/// Adds `amount_scaled`; a record without a numeric `amount` goes to the dead-letter queue.
#[transform(params = PARAMS)]
fn scale(rec: &Record, out: &mut Emitter, config: &Config) -> Result<()> {
    let amount = rec.require_f64("amount")?;
    let mut value = rec.json()?.clone();
    value["amount_scaled"] = json!(amount * config.float("factor")?);
    out.emit(rec.output().value_json(&value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_the_amount() {
        let rec = Record::for_test("t", None, Some(br#"{"amount": 2.5}"#));
        let mut out = Emitter::new();
        scale(&rec, &mut out, &Config::from_pairs([("factor", "2")])).unwrap();
        assert_eq!(out.value_json(0).unwrap()["amount_scaled"], json!(5.0));
    }
}
"##;

const CHECK_TEMPLATE: &str = r#"//! A Headwater data-quality check. `headwater plugin build`, then
//! `headwater plugin test target/wasm32-wasip2/release/<crate>.wasm --input sample.jsonl`.

use headwater_sdk::prelude::*;

/// `amount` must be a positive number.
#[check]
fn positive_amount(rec: &Record) -> Result<Vec<Violation>> {
    Ok(match rec.get_f64("amount") {
        Some(a) if a > 0.0 => vec![],
        _ => vec![Violation::error("amount.positive", "amount must be a positive number")],
    })
}
"#;

const SAMPLE: &str = r#"{"id": 1, "amount": 12.5}
{"id": 2, "amount": -3}
{"id": 3, "amount": "n/a"}
"#;

fn build(dir: &Path, debug: bool) -> anyhow::Result<ExitCode> {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(dir)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped());
    if !debug {
        cmd.arg("--release");
    }
    let mut child = cmd
        .spawn()
        .context("cannot run cargo (is a Rust toolchain installed?)")?;
    let mut built = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.context("reading cargo's output")?;
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if msg["reason"] == "compiler-artifact"
                && let Some(files) = msg["filenames"].as_array()
            {
                built.extend(
                    files
                        .iter()
                        .filter_map(|f| f.as_str())
                        .filter(|f| f.ends_with(".wasm"))
                        .map(str::to_owned),
                );
            }
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!(
            "cargo build failed ({status}); if the target is missing: rustup target add wasm32-wasip2"
        );
    }
    for file in &built {
        println!("built {file}");
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_config(pairs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_owned(), v.to_owned())),
            None => bail!("--config {p:?}: expected NAME=VALUE"),
        })
        .collect()
}

fn test(
    module: &Path,
    input: &Path,
    config: &[String],
    topic: &str,
    batch: bool,
    limits: Limits,
) -> anyhow::Result<ExitCode> {
    let config = parse_config(config)?;
    let mut tester = Tester::new(module, limits, config)?;
    let file =
        std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let mut lines = Vec::new();
    let mut records = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", input.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        lines.push(n + 1);
        records.push(Record::new(topic, Payload::json_bytes(Bytes::from(line))));
    }
    let outcomes = if batch {
        tester.run_batch(records)
    } else {
        records.into_iter().map(|r| tester.run(r)).collect()
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let (mut outputs, mut violations, mut errors) = (0usize, 0usize, 0usize);
    let mut total = Duration::ZERO;
    for (line, outcome) in lines.iter().zip(&outcomes) {
        total += outcome.elapsed;
        outputs += outcome.outputs.len();
        violations += outcome.violations.len();
        errors += usize::from(outcome.error.is_some());
        let shown: Vec<serde_json::Value> = outcome.outputs.iter().map(render).collect();
        let report = serde_json::json!({
            "line": line,
            "micros": outcome.elapsed.as_secs_f64() * 1e6,
            "outputs": shown,
            "violations": outcome.violations,
            "error": outcome.error,
        });
        writeln!(out, "{report}")?;
    }
    out.flush()?;
    let records = outcomes.len();
    let mean = if records == 0 {
        0.0
    } else {
        total.as_secs_f64() * 1e6 / records as f64
    };
    eprintln!(
        "{records} records ({} plugin{}): {outputs} outputs, {violations} violations, {errors} errors; {mean:.1} µs/record",
        tester.kind().as_str(),
        if batch { ", one batch" } else { "" },
    );
    Ok(ExitCode::SUCCESS)
}

fn render(r: &Record) -> serde_json::Value {
    let parse = |p: &Payload| {
        p.to_json_bytes()
            .map(|b| {
                serde_json::from_slice(&b).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&b).into_owned())
                })
            })
            .unwrap_or(serde_json::Value::Null)
    };
    let headers: serde_json::Map<String, serde_json::Value> = r
        .headers
        .iter()
        .map(|h| {
            let v = h
                .value
                .as_ref()
                .map(|v| serde_json::Value::String(String::from_utf8_lossy(v).into_owned()))
                .unwrap_or(serde_json::Value::Null);
            (h.key.clone(), v)
        })
        .collect();
    serde_json::json!({
        "topic": r.topic,
        "key": parse(&r.key),
        "value": parse(&r.value),
        "headers": headers,
        "timestamp": r.timestamp,
    })
}

fn show(module: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let limits = Limits {
        timeout_ms: 5000,
        max_memory: 64 << 20,
    };
    let d = inspect(module, limits)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("name:        {}", d.name);
    println!("version:     {}", d.version);
    println!("kind:        {} (\"type\": \"{}\")", d.kind, d.class);
    println!("description: {}", d.description);
    println!("sha256:      {}", d.sha256);
    if d.params.is_empty() {
        println!("params:      none");
    } else {
        println!("params (transforms.<alias>.config.<name>):");
        for p in &d.params {
            let default = match (&p.default, p.required) {
                (_, true) => "required".to_owned(),
                (Some(d), false) => format!("default {d:?}"),
                (None, false) => "optional".to_owned(),
            };
            println!(
                "  {:<24} {:<8} {:<20} {}",
                p.name, p.kind, default, p.description
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
