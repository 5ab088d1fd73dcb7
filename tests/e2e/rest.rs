//! The REST API over a real socket: a connector created over HTTP runs, and comes back with
//! its target state after the host restarts.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};

use crate::harness::{Workspace, jsonl, rest_port, sink_values};

/// One HTTP/1.1 request; returns the status code and the JSON body (Null if none).
pub fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect to the REST API");
    let payload = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    );
    conn.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().expect("status code");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    // Chunked bodies: take the JSON between the first '{' or '[' and the last '}' or ']'.
    let start = body.find(['{', '[']);
    let end = body.rfind(['}', ']']);
    let value = match (start, end) {
        (Some(s), Some(e)) => serde_json::from_str(&body[s..=e]).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, value)
}

#[test]
fn connectors_created_over_http_run_and_persist_across_restarts() {
    let ws = Workspace::new();
    let input = ws.path("in/events.jsonl");
    std::fs::write(&input, "{\"n\": 1}\n").unwrap();
    let host = ws.start();
    let port = rest_port(&host);

    let sink = json!({"name": "http-sink", "config": {
        "connector.class": "headwater.file.FileSink",
        "topics": "events",
        "file": ws.path("out/events.jsonl").display().to_string(),
    }});
    let (status, body) = http(port, "POST", "/connectors", Some(&sink));
    assert_eq!(status, 201, "{body}");
    let source = json!({
        "connector.class": "headwater.file.FileSource",
        "path": input.display().to_string(),
        "topic": "events",
        "poll.interval.ms": "50",
    });
    let (status, _) = http(port, "PUT", "/connectors/http-source/config", Some(&source));
    assert_eq!(status, 201);
    let out = ws.path("out/events.jsonl");
    host.wait_for("the first record", || {
        (jsonl(&out).len() == 1).then_some(())
    });
    let (status, _) = http(port, "PUT", "/connectors/http-source/stop", None);
    assert_eq!(status, 204);
    assert!(host.stop().success());

    // Both come back; the source stays STOPPED, so a new line is not read until resumed.
    std::fs::write(&input, "{\"n\": 1}\n{\"n\": 2}\n").unwrap();
    let host = ws.start();
    let port = rest_port(&host);
    let (_, names) = http(port, "GET", "/connectors", None);
    assert_eq!(names, json!(["http-sink", "http-source"]));
    let (_, status) = http(port, "GET", "/connectors/http-source/status", None);
    assert_eq!(status["connector"]["state"], "STOPPED");
    assert_eq!(jsonl(&out).len(), 1);
    let (code, _) = http(port, "PUT", "/connectors/http-source/resume", None);
    assert_eq!(code, 202);
    host.wait_for("the second record", || {
        (jsonl(&out).len() == 2).then_some(())
    });
    let (code, body) = http(port, "GET", "/connectors/nope", None);
    assert_eq!((code, body["error_code"].clone()), (404, json!(404)));
    assert!(host.stop().success());
}

/// A FileSource held back by a paused sink reports the bytes of its file it has not read, in
/// its status and `/metrics`; they fall to 0 once the sink resumes and the file is read.
#[test]
fn a_file_sources_unread_bytes_show_while_its_sink_is_paused() {
    let ws = Workspace::new();
    let input = ws.path("in/big.jsonl");
    let line = |i: usize| format!("{{\"id\":{i},\"pad\":\"{}\"}}\n", "x".repeat(100));
    let text: String = (0..300_000).map(line).collect();
    let size = text.len() as u64;
    std::fs::write(&input, text).unwrap();
    let host = ws.start();
    let port = rest_port(&host);
    let sink = json!({"name": "slow-sink", "initial_state": "PAUSED", "config": {
        "connector.class": "headwater.file.FileSink",
        "topics": "big",
        "file": ws.path("out/big.jsonl").display().to_string(),
    }});
    assert_eq!(http(port, "POST", "/connectors", Some(&sink)).0, 201);
    let source = json!({
        "connector.class": "headwater.file.FileSource",
        "path": input.display().to_string(),
        "topic": "big",
    });
    assert_eq!(
        http(port, "PUT", "/connectors/big-source/config", Some(&source)).0,
        201
    );
    let unread = |host: &crate::harness::Host| {
        let (_, status) = http(
            rest_port(host),
            "GET",
            "/connectors/big-source/status",
            None,
        );
        status["tasks"][0]["source_lag"]["bytes"].as_u64()
    };
    // The sink's inbox fills, the source waits: most of the file is still unread, and stays so.
    let behind = host.wait_for("the source to be held back", || {
        let first = unread(&host).filter(|b| *b > 0 && *b < size)?;
        std::thread::sleep(std::time::Duration::from_millis(500));
        (unread(&host) == Some(first)).then_some(first)
    });
    assert!(behind > size / 2, "{behind} of {size} bytes unread");
    let metrics = crate::wasm::http_text(port, "/metrics");
    assert!(
        metrics.contains(&format!(
            "headwater_connector_source_lag_bytes{{connector=\"big-source\"}} {behind}"
        )),
        "{metrics}"
    );
    assert_eq!(
        http(port, "PUT", "/connectors/slow-sink/resume", None).0,
        202
    );
    host.wait_for("the whole file read", || {
        (unread(&host) == Some(0)).then_some(())
    });
    host.wait_for("every line written", || {
        (jsonl(&ws.path("out/big.jsonl")).len() == 300_000).then_some(())
    });
    assert!(host.stop().success());
}

/// kafka-connect-py (a Kafka Connect REST client from PyPI) runs its whole client API against
/// Headwater: every call of its `KafkaConnect` class, checked by
/// `host/testdata/rest/kafka_connect_py.py`.
#[test]
fn kafka_connect_py_runs_its_whole_client_api() {
    let ws = Workspace::new();
    std::fs::write(
        ws.path("in/events.jsonl"),
        "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n",
    )
    .unwrap();
    let host = ws.start();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/rest/kafka_connect_py.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(format!("http://127.0.0.1:{}", rest_port(&host)))
        .arg(ws.path(""))
        .output()
        .expect("run kafka_connect_py.py");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("\"ok\""),
        "kafka-connect-py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        host.log()
    );
    assert!(host.stop().success());
}

/// The status of `name`'s first task.
pub fn task_status(port: u16, name: &str) -> Value {
    let (code, status) = http(port, "GET", &format!("/connectors/{name}/status"), None);
    assert_eq!(code, 200, "{status}");
    status["tasks"][0].clone()
}

/// The whole answer (status line, headers, body) to `GET path`.
pub fn raw_get(port: u16, path: &str) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect to the REST API");
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    text
}

/// The value of the Prometheus sample `name{connector="connector"}`, if shown.
pub fn metric(port: u16, name: &str, connector: &str) -> Option<f64> {
    let text = raw_get(port, "/metrics");
    let prefix = format!("{name}{{connector=\"{connector}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// A source created before its sink (as over REST, one call after the other) loses nothing:
/// it holds its records, offsets unmoved, saying which topic lacks a reader, until the sink
/// comes. Dropping them takes `topic.unsubscribed=discard`.
#[test]
fn a_source_created_before_its_sink_waits_for_it_and_loses_nothing() {
    let ws = Workspace::new();
    let input = ws.path("in/early.jsonl");
    let lines: String = (0..500).map(|n| format!("{{\"n\": {n}}}\n")).collect();
    std::fs::write(&input, &lines).unwrap();
    std::fs::write(ws.path("in/dropped.jsonl"), &lines).unwrap();
    let host = ws.start();
    let port = rest_port(&host);
    let source = |file: &str, topic: &str, extra: Value| {
        let mut config = json!({
            "connector.class": "headwater.file.FileSource",
            "path": ws.path(file).display().to_string(),
            "topic": topic,
            "poll.interval.ms": "50",
        });
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        config
    };
    let (code, _) = http(
        port,
        "PUT",
        "/connectors/early-source/config",
        Some(&source("in/early.jsonl", "early", json!({}))),
    );
    assert_eq!(code, 201);
    let (code, _) = http(
        port,
        "PUT",
        "/connectors/dropping-source/config",
        Some(&source(
            "in/dropped.jsonl",
            "nobody",
            json!({"topic.unsubscribed": "discard"}),
        )),
    );
    assert_eq!(code, 201);

    let waiting = host.wait_for("the source to say what it waits for", || {
        let task = task_status(port, "early-source");
        task.get("waiting_for_sink").cloned()
    });
    assert_eq!(waiting["topics"], json!(["early"]), "{waiting}");
    let message = waiting["message"].as_str().unwrap();
    assert!(
        message.contains("\"early\"") && message.contains("topic.unsubscribed=discard"),
        "{message}"
    );
    assert_eq!(task_status(port, "early-source")["state"], "RUNNING");
    assert_eq!(
        metric(port, "headwater_connector_unread_topics", "early-source"),
        Some(1.0)
    );
    // Nothing was let go: the offsets did not move.
    let (_, offsets) = http(port, "GET", "/connectors/early-source/offsets", None);
    assert_eq!(offsets["offsets"], json!([]), "{offsets}");
    // The source told to discard did, and moved on.
    host.wait_for("the discarding source to drop its records", || {
        let task = task_status(port, "dropping-source");
        (task["counters"]["dropped"] == json!(500)).then_some(())
    });
    assert!(
        task_status(port, "dropping-source")
            .get("waiting_for_sink")
            .is_none()
    );

    let out = ws.path("out/early.jsonl");
    let sink = json!({
        "connector.class": "headwater.file.FileSink",
        "topics": "early",
        "file": out.display().to_string(),
    });
    let (code, _) = http(port, "PUT", "/connectors/early-sink/config", Some(&sink));
    assert_eq!(code, 201);
    let got = host.wait_for("every record", || {
        let got = sink_values(&out);
        (got.len() >= 500).then_some(got)
    });
    let numbers: Vec<i64> = got.iter().map(|v| v["n"].as_i64().unwrap()).collect();
    assert_eq!(
        numbers,
        (0..500).collect::<Vec<_>>(),
        "every record once, in order"
    );
    host.wait_for("the wait to be over", || {
        let task = task_status(port, "early-source");
        task.get("waiting_for_sink").is_none().then_some(())
    });
    assert_eq!(
        metric(port, "headwater_connector_unread_topics", "early-source"),
        Some(0.0)
    );
    assert!(host.stop().success());
}

/// The peak resident memory of process `pid`, in bytes (`VmHWM`).
fn peak_rss(pid: u64) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kib * 1024
}

/// A request: method, path, body.
type Request = (&'static str, String, Option<Value>);

/// Sends `requests` from 8 client threads at once; the answers in the same order.
fn concurrently(port: u16, requests: Vec<Request>) -> Vec<(u16, Value)> {
    let chunks: Vec<Vec<(usize, Request)>> = {
        let mut chunks = vec![Vec::new(); 8];
        for (i, request) in requests.into_iter().enumerate() {
            chunks[i % 8].push((i, request));
        }
        chunks
    };
    let mut answers: Vec<(usize, (u16, Value))> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|(i, (method, path, body))| {
                            (i, http(port, method, &path, body.as_ref()))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    answers.sort_by_key(|(i, _)| *i);
    answers.into_iter().map(|(_, a)| a).collect()
}

/// A thousand connectors created at once over REST (500 FileSources, 500 sinks), amid
/// duplicates and invalid configs: each gets its answer, the sources' records all arrive, the
/// pipeline already running keeps running, memory stays bounded, and deleting them all leaves
/// the host as it was.
#[test]
fn a_thousand_connectors_created_at_once_all_run_beside_the_others() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in/many")).unwrap();
    for i in 0..500 {
        std::fs::write(
            ws.path(&format!("in/many/{i}.jsonl")),
            format!("{{\"i\":{i}}}\n"),
        )
        .unwrap();
    }
    std::fs::write(ws.path("in/steady.jsonl"), "{\"n\":1}\n").unwrap();
    ws.put_config(
        "collector.json",
        &ws.file_sink("collector", "many", "out/many.jsonl"),
    );
    ws.put_config(
        "steady-sink.json",
        &ws.file_sink("steady-sink", "steady", "out/steady.jsonl"),
    );
    ws.put_config(
        "steady-source.json",
        &json!({"name": "steady-source", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": ws.path("in/steady.jsonl"), "topic": "steady", "poll.interval.ms": "100"}}),
    );
    let host = ws.start();
    let port = rest_port(&host);
    host.wait_for("the steady pipeline", || {
        (sink_values(&ws.path("out/steady.jsonl")).len() == 1).then_some(())
    });

    let mut requests: Vec<Request> = Vec::new();
    for i in 0..500 {
        requests.push((
            "POST",
            "/connectors".into(),
            Some(json!({"name": format!("src-{i}"), "config": {
            "connector.class": "headwater.file.FileSource",
            "path": ws.path(&format!("in/many/{i}.jsonl")), "topic": "many",
            "poll.interval.ms": "500"}})),
        ));
        requests.push((
            "POST",
            "/connectors".into(),
            Some(json!({"name": format!("hole-{i}"), "config": {
            "connector.class": "headwater.blackhole.BlackholeSink", "topics": "many"}})),
        ));
        if i % 50 == 0 {
            requests.push((
                "POST",
                "/connectors".into(),
                Some(ws.file_sink("collector", "many", "out/x.jsonl")),
            ));
            requests.push((
                "POST",
                "/connectors".into(),
                Some(json!({"name": format!("bad-{i}"), "config": {
                "connector.class": "headwater.file.FileSource", "path": "in/x.jsonl"}})),
            ));
        }
    }
    let answers = concurrently(port, requests.clone());
    for ((_, _, body), (status, answer)) in requests.iter().zip(&answers) {
        let name = body.as_ref().unwrap()["name"].as_str().unwrap();
        let message = answer["message"].as_str().unwrap_or_default();
        match name {
            "collector" => assert!(
                *status == 409 && message.contains("collector"),
                "a taken name: {status} {answer}"
            ),
            bad if bad.starts_with("bad-") => assert!(
                *status == 400 && message.contains("topic: missing required key"),
                "an invalid config: {status} {answer}"
            ),
            _ => assert_eq!(*status, 201, "{name}: {answer}"),
        }
    }
    let (_, listed) = http(port, "GET", "/connectors", None);
    assert_eq!(listed.as_array().map(Vec::len), Some(1003));
    let ids = host.wait_for("every source's record", || {
        let mut ids: Vec<i64> = sink_values(&ws.path("out/many.jsonl"))
            .iter()
            .filter_map(|v| v["i"].as_i64())
            .collect();
        ids.sort_unstable();
        (ids.len() >= 500).then_some(ids)
    });
    assert_eq!(ids, (0..500).collect::<Vec<_>>(), "each record once");
    // The pipeline that was running still runs.
    std::fs::write(ws.path("in/steady.jsonl"), "{\"n\":1}\n{\"n\":2}\n").unwrap();
    host.wait_for("the steady pipeline's next record", || {
        (sink_values(&ws.path("out/steady.jsonl")).len() == 2).then_some(())
    });
    let (status, _) = http(port, "GET", "/health", None);
    assert_eq!(status, 200);
    let ready: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path("ready.json")).unwrap()).unwrap();
    let rss = peak_rss(ready["pid"].as_u64().unwrap());
    assert!(rss < 256 << 20, "1,000 connectors in {} MiB", rss >> 20);

    let deletes: Vec<Request> = (0..500)
        .flat_map(|i| [format!("src-{i}"), format!("hole-{i}")])
        .map(|name| ("DELETE", format!("/connectors/{name}"), None))
        .collect();
    for (status, answer) in concurrently(port, deletes) {
        assert_eq!(status, 204, "{answer}");
    }
    let (_, listed) = http(port, "GET", "/connectors", None);
    let mut names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["collector", "steady-sink", "steady-source"]);
    assert!(host.stop().success());
}
