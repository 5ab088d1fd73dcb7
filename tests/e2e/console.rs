//! The web console (`/ui`) in a real headless browser: Debian's Chromium driven through its
//! chromedriver by selenium (`host/testdata/console/console_test.py`, which checks what the
//! pages show against the REST API). The tests write a screenshot of each page to
//! `target/tmp/console-screenshots/`, or to `$HEADWATER_SCREENSHOTS_DIR` (the book's images are
//! refreshed with `HEADWATER_SCREENSHOTS_DIR=docs/src/images/console`).

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Host, Workspace, rest_port};
use crate::rest::http;

/// Where screenshots go.
fn screenshots_dir() -> PathBuf {
    let dir = std::env::var_os("HEADWATER_SCREENSHOTS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots"),
        |d| {
            // Relative to the repository, where the command was typed.
            let d = PathBuf::from(d);
            if d.is_relative() {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(d)
            } else {
                d
            }
        },
    );
    std::fs::create_dir_all(&dir).expect("create the screenshots dir");
    dir
}

/// Runs one scenario of the console script against `host`; fails with its output and the
/// host's log unless every check passed.
fn run_console_script(host: &Host, args: &[&str]) {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/console/console_test.py");
    let url = format!("http://127.0.0.1:{}", rest_port(host));
    let out = Command::new("python3")
        .arg(script)
        .arg(args[0])
        .arg(&url)
        .arg(screenshots_dir())
        .args(&args[1..])
        .output()
        .expect("run console_test.py");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
        "the console check {} failed:\n{}\n{}\nhost log:\n{}",
        args[0],
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        host.log()
    );
}

/// A FileSink of topic `events` that casts `n` to int32: a value that is no number becomes a
/// dead letter.
fn casting_sink(ws: &Workspace) -> Value {
    json!({
        "connector.class": "headwater.file.FileSink",
        "topics": "events",
        "file": ws.path("out/sink.jsonl").display().to_string(),
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "errors.tolerance": "all",
        "transforms": "cast",
        "transforms.cast.type": "org.apache.kafka.connect.transforms.Cast$Value",
        "transforms.cast.spec": "n:int32",
    })
}

fn counter(port: u16, name: &str, key: &str) -> u64 {
    let (_, status) = http(port, "GET", &format!("/connectors/{name}/status"), None);
    status["tasks"][0]["counters"][key].as_u64().unwrap_or(0)
}

/// Lists connectors failed first (a refused config file among them, until it is removed), shows a
/// failure's trace, pauses and resumes, shows a dead letter as it arrives, refuses a bad config edit key by key, saves a good one, keeps a
/// planted password off every page, and fits a 390-px screen with every control labelled and
/// reachable by keyboard.
#[test]
fn the_console_shows_connectors_and_acts_on_them() {
    let ws = Workspace::new();
    let events = ws.path("in/events.jsonl");
    std::fs::write(&events, "").unwrap();
    ws.put_config(
        "source.json",
        &json!({"name": "events", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": events.display().to_string(),
            "topic": "events",
        }}),
    );
    // A source whose topic no sink reads: it waits, and says so.
    std::fs::write(ws.path("in/orphan.jsonl"), "{\"n\": 1}\n").unwrap();
    ws.put_config(
        "orphan.json",
        &json!({"name": "orphan", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": ws.path("in/orphan.jsonl").display().to_string(),
            "topic": "nobody",
        }}),
    );
    let host = ws.start();
    let port = rest_port(&host);
    host.wait_for("the file-defined source", || {
        (http(port, "GET", "/connectors/events/status", None).0 == 200).then_some(())
    });
    let (code, _) = http(
        port,
        "POST",
        "/connectors",
        Some(&json!({"name": "casting", "config": casting_sink(&ws)})),
    );
    assert_eq!(code, 201);
    // A sink that cannot open its file (a plain file stands where its directory should be).
    std::fs::write(ws.path("out/blocked"), "not a directory").unwrap();
    let (code, _) = http(
        port,
        "POST",
        "/connectors",
        Some(&json!({"name": "broken", "config": {
            "connector.class": "headwater.file.FileSink",
            "topics": "elsewhere",
            "file": ws.path("out/blocked/events.jsonl").display().to_string(),
        }})),
    );
    assert_eq!(code, 201);
    // A Redis sink whose URI holds a password (and no Redis to reach: it fails).
    let planted = "planted-s3cret-7781";
    let (code, _) = http(
        port,
        "POST",
        "/connectors",
        Some(&json!({"name": "features", "config": {
            "connector.class": "headwater.redis.RedisSink",
            "topics": "elsewhere",
            "redis.uri": format!("redis://:{planted}@127.0.0.1:1"),
        }})),
    );
    assert_eq!(code, 201);
    // Records while the sink is there: one becomes a dead letter.
    ws.append_jsonl(
        "in/events.jsonl",
        &[json!({"n": "1"}), json!({"n": "abc"}), json!({"n": "2"})],
    );
    host.wait_for("the first dead letter and the failures", || {
        let failed = |name: &str| {
            http(port, "GET", &format!("/connectors/{name}/status"), None).1["connector"]["state"]
                == "FAILED"
        };
        (counter(port, "casting", "dead_letters") == 1 && failed("broken") && failed("features"))
            .then_some(())
    });

    // A file in connectors.d/ that runs nothing: listed as FAILED with its reason.
    ws.put_config(
        "bad-file.json",
        &json!({"name": "bad-file", "config": {
            "connector.class": "headwater.file.FileSink",
            "topics": "events",
        }}),
    );
    // A steady trickle while the pages are open, as in production: rates and sparklines move.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickle = std::thread::spawn({
        let stop = std::sync::Arc::clone(&stop);
        let events = events.clone();
        move || {
            use std::io::Write;
            let mut n = 100;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // One write per batch of lines: the script appends to the same file.
                let mut lines = String::new();
                for _ in 0..25 {
                    lines.push_str(&format!("{}\n", json!({"n": n.to_string()})));
                    n += 1;
                }
                let mut file = std::fs::File::options().append(true).open(&events).unwrap();
                file.write_all(lines.as_bytes()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    });
    run_console_script(
        &host,
        &[
            "actions",
            events.to_str().unwrap(),
            planted,
            ws.connectors_dir().join("bad-file.json").to_str().unwrap(),
        ],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    trickle.join().unwrap();
    // The console saved the Redis sink's config with its URI as `[hidden]`: the stored
    // password is the planted one still.
    let stored = std::fs::read_to_string(ws.path("var/connectors.json")).unwrap();
    assert!(
        stored.contains(&format!("redis://:{planted}@127.0.0.1:1")) && stored.contains("more"),
        "{stored}"
    );
    assert!(host.stop().success());
}

/// With tokens set, the console asks for one and shows nothing without it; the read-only
/// token views but cannot act; the full token acts.
#[test]
fn the_console_asks_for_a_token_and_the_read_only_one_cannot_act() {
    let ws = Workspace::new();
    ws.put_config(
        "casting.json",
        &json!({"name": "casting", "config": casting_sink(&ws)}),
    );
    let (full, read) = ("console-full-token", "console-read-token");
    let host = ws.start_with_env(&[
        ("HEADWATER_REST_TOKEN", full),
        ("HEADWATER_REST_READ_TOKEN", read),
    ]);
    let port = rest_port(&host);
    // Without a token the API refuses, the page itself is served.
    assert_eq!(http(port, "GET", "/connectors", None).0, 401);
    assert_eq!(http(port, "GET", "/ui/", None).0, 200);
    run_console_script(&host, &["tokens", full, read]);
    assert!(host.stop().success());
}
