//! `headwater connectors ...`: the CLI client against a running host's REST API.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Workspace, jsonl, rest_port};

/// What one `headwater connectors` run printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Stdout of a run that must have succeeded.
    fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "stderr: {}", self.stderr);
        assert!(self.stderr.is_empty(), "stderr: {}", self.stderr);
        self.stdout
    }
}

/// `headwater connectors --url http://127.0.0.1:<port> <args>`.
fn cli(port: u16, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_headwater"))
        .arg("connectors")
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .args(args)
        .env_remove("HEADWATER_REST_TOKEN")
        .output()
        .expect("run headwater connectors");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn every_command_against_a_running_host() {
    let ws = Workspace::new();
    let input = ws.path("in/events.jsonl");
    std::fs::write(&input, "{\"n\": 1}\n{\"n\": 2}\n").unwrap();
    let out = ws.path("out/events.jsonl");
    let host = ws.start();
    let port = rest_port(&host);
    let worker = format!("127.0.0.1:{port}");

    // create: a wrapped Kafka Connect file and a flat map named by its `name` key.
    let sink_file = ws.path("sink.json");
    std::fs::write(
        &sink_file,
        json!({"name": "cli-sink", "config": {
            "connector.class": "headwater.file.FileSink",
            "topics": "events",
            "file": out.display().to_string(),
        }})
        .to_string(),
    )
    .unwrap();
    let created = cli(port, &["create", sink_file.to_str().unwrap()]).ok();
    assert_eq!(
        created,
        format!(
            "Created connector cli-sink (sink, 1 task).\n\
             connector.class = headwater.file.FileSink\n\
             file = {}\n\
             topics = events\n",
            out.display()
        )
    );
    let source_file = ws.path("source.json");
    std::fs::write(
        &source_file,
        json!({
            "name": "cli-source",
            "connector.class": "headwater.file.FileSource",
            "path": input.display().to_string(),
            "topic": "events",
            "poll.interval.ms": 50,
        })
        .to_string(),
    )
    .unwrap();
    let created = cli(port, &["create", source_file.to_str().unwrap()]).ok();
    assert!(
        created.starts_with("Created connector cli-source (source, 1 task).\n"),
        "{created}"
    );
    host.wait_for("both records", || (jsonl(&out).len() == 2).then_some(()));

    // A second create of the same name: the API's message, exit 1.
    let again = cli(port, &["create", sink_file.to_str().unwrap()]);
    assert_eq!(again.code, Some(1));
    assert_eq!(again.stderr, "error: Connector cli-sink already exists\n");
    assert!(again.stdout.is_empty(), "{}", again.stdout);

    assert_eq!(
        cli(port, &["list"]).ok(),
        "NAME        TYPE    STATE    TASKS\n\
         cli-sink    sink    RUNNING  0: RUNNING\n\
         cli-source  source  RUNNING  0: RUNNING\n"
    );
    assert_eq!(
        cli(port, &["status", "cli-source"]).ok(),
        format!(
            "Connector cli-source (source)\n\n\
             INSTANCE   STATE    WORKER\n\
             connector  RUNNING  {worker}\n\
             task 0     RUNNING  {worker}\n\
             \nLag and latency:\n\
             INSTANCE  WHAT               VALUE\n\
             task 0    behind its source  0 bytes\n"
        )
    );
    assert_eq!(
        cli(port, &["config", "cli-source"]).ok(),
        format!(
            "connector.class = headwater.file.FileSource\n\
             name = cli-source\n\
             path = {}\n\
             poll.interval.ms = 50\n\
             topic = events\n",
            input.display()
        )
    );

    // offsets: PARTITION and OFFSET as compact JSON, once both lines (18 bytes) are committed.
    let partition = json!({"path": input.display().to_string()}).to_string();
    let offsets = host.wait_for("the committed position", || {
        let shown = cli(port, &["offsets", "cli-source"]).ok();
        shown.contains("{\"position\":18}").then_some(shown)
    });
    let lines: Vec<&str> = offsets.lines().collect();
    assert_eq!(lines.len(), 2, "{offsets}");
    assert!(
        lines[0].starts_with("PARTITION ") && lines[0].ends_with("  OFFSET"),
        "{offsets}"
    );
    assert_eq!(lines[1], format!("{partition}  {{\"position\":18}}"));

    assert_eq!(
        cli(port, &["pause", "cli-source"]).ok(),
        "Connector cli-source paused.\n"
    );
    assert!(
        cli(port, &["list"])
            .ok()
            .contains("cli-source  source  PAUSED   0: PAUSED\n")
    );
    assert_eq!(
        cli(port, &["resume", "cli-source"]).ok(),
        "Connector cli-source resumed.\n"
    );
    assert!(
        cli(port, &["status", "cli-source"])
            .ok()
            .contains(&format!("task 0     RUNNING  {worker}\n"))
    );
    assert_eq!(
        cli(port, &["restart", "cli-sink"]).ok(),
        "Connector cli-sink restarted.\n"
    );
    assert_eq!(
        cli(port, &["stop", "cli-source"]).ok(),
        "Connector cli-source stopped.\n"
    );
    assert_eq!(
        cli(port, &["status", "cli-source"]).ok(),
        format!(
            "Connector cli-source (source)\n\n\
             INSTANCE   STATE    WORKER\n\
             connector  STOPPED  {worker}\n"
        )
    );

    // --json: the API's bodies as they came, pretty-printed.
    let listed = cli(port, &["--json", "list"]).ok();
    assert!(listed.starts_with("{\n  \""), "pretty JSON: {listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        listed["cli-source"]["status"]["connector"]["state"],
        "STOPPED"
    );
    assert_eq!(listed["cli-source"]["status"]["tasks"], json!([]));
    assert_eq!(listed["cli-sink"]["info"]["config"]["topics"], "events");
    assert_eq!(
        listed["cli-sink"]["status"]["tasks"][0]["worker_id"],
        worker
    );
    let offsets: Value =
        serde_json::from_str(&cli(port, &["offsets", "cli-source", "--json"]).ok()).unwrap();
    assert_eq!(
        offsets,
        json!({"offsets": [{"partition": {"path": input.display().to_string()},
                            "offset": {"position": 18}}]})
    );

    // A sink that cannot open its file: FAILED, with the trace; restarting only failed
    // instances answers with them shown RESTARTING.
    std::fs::write(ws.path("out/blocked"), "not a directory").unwrap();
    let broken_file = ws.path("broken.json");
    std::fs::write(
        &broken_file,
        json!({"name": "cli-broken", "config": {
            "connector.class": "headwater.file.FileSink",
            "topics": "elsewhere",
            "file": ws.path("out/blocked/events.jsonl").display().to_string(),
        }})
        .to_string(),
    )
    .unwrap();
    cli(port, &["create", broken_file.to_str().unwrap()]).ok();
    let status = host.wait_for("the broken sink to fail", || {
        let shown = cli(port, &["status", "cli-broken"]).ok();
        shown.contains("connector  FAILED").then_some(shown)
    });
    assert!(
        status.contains(&format!("task 0     FAILED  {worker}\n"))
            && status.contains("\nTrace (connector, task 0):\n  ")
            && status.contains("blocked"),
        "{status}"
    );
    let restarted = cli(
        port,
        &["restart", "cli-broken", "--include-tasks", "--only-failed"],
    )
    .ok();
    assert!(
        restarted.contains("connector  RESTARTING") && restarted.contains("task 0     RESTARTING"),
        "{restarted}"
    );
    assert_eq!(
        cli(port, &["delete", "cli-broken"]).ok(),
        "Connector cli-broken deleted.\n"
    );

    // An invalid config: every error in the API's message.
    let invalid_file = ws.path("invalid.json");
    std::fs::write(
        &invalid_file,
        json!({"name": "cli-invalid", "config": {"connector.class": "NoSuchConnector"}})
            .to_string(),
    )
    .unwrap();
    let invalid = cli(port, &["create", invalid_file.to_str().unwrap()]);
    assert_eq!(invalid.code, Some(1));
    assert!(
        invalid
            .stderr
            .starts_with("error: Connector configuration is invalid")
            && invalid.stderr.contains("NoSuchConnector"),
        "{}",
        invalid.stderr
    );

    // An unknown connector: the API's message on stderr, exit 1; with --json, the body too.
    let unknown = cli(port, &["status", "nope"]);
    assert_eq!(unknown.code, Some(1));
    assert_eq!(unknown.stderr, "error: Connector nope not found\n");
    assert!(unknown.stdout.is_empty(), "{}", unknown.stdout);
    let unknown = cli(port, &["--json", "config", "nope"]);
    assert_eq!(unknown.code, Some(1));
    assert_eq!(
        serde_json::from_str::<Value>(&unknown.stdout).unwrap(),
        json!({"error_code": 404, "message": "Connector nope not found"})
    );

    assert_eq!(
        cli(port, &["delete", "cli-source"]).ok(),
        "Connector cli-source deleted.\n"
    );
    let expected = "NAME      TYPE  STATE    TASKS\n\
                    cli-sink  sink  RUNNING  0: RUNNING\n";
    host.wait_for("the restarted sink alone in the list", || {
        (cli(port, &["list"]).ok() == expected).then_some(())
    });
    assert!(host.stop().success());

    // Nothing listens any more: the message names the URL and the likely causes.
    let refused = cli(port, &["list"]);
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.stderr.contains(&format!(
            "cannot connect to Headwater's REST API at http://127.0.0.1:{port} \
             (connection refused)"
        )) && refused.stderr.contains("`headwater run`")
            && refused.stderr.contains("--url"),
        "{}",
        refused.stderr
    );
}
