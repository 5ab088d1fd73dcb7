//! Bad records go to the dead-letter queue with the reason, or fail the task under
//! `errors.tolerance=none`.

use std::fs;

use serde_json::{Value, json};

use crate::harness::{Workspace, jsonl, parquet_rows};

fn header<'a>(dead_letter: &'a Value, key: &str) -> &'a str {
    crate::harness::header(dead_letter, key)
        .unwrap_or_else(|| panic!("no header {key} in {dead_letter}"))
}

#[test]
fn malformed_lines_and_wrong_types_land_in_the_dlq_with_the_reason() {
    let ws = Workspace::new();
    let input = ws.path("in/tx.jsonl");
    fs::write(
        &input,
        concat!(
            "{\"id\": 1, \"amount\": 10.5}\n",
            "{\"id\": 2, \"amount\": \n",
            "{\"id\": 3, \"amount\": \"n/a\"}\n",
            "{\"id\": 4, \"amount\": 7.25}\n",
        ),
    )
    .unwrap();
    ws.put_config(
        "source.json",
        &json!({"name": "bad-source", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": input.display().to_string(),
            "topic": "tx",
            "errors.tolerance": "all",
        }}),
    );
    ws.put_config(
        "sink.json",
        &json!({"name": "bad-sink", "config": {
            "connector.class": "headwater.parquet.ParquetSink",
            "topics": "tx",
            "path": ws.path("out/tx").display().to_string(),
            "rotate.interval.ms": "200",
            "errors.tolerance": "all",
            "schema": json!({"type": "struct", "fields": [
                {"field": "id", "type": "int64", "optional": false},
                {"field": "amount", "type": "double", "optional": true}
            ]}).to_string(),
        }}),
    );
    let host = ws.start();
    let out = ws.path("out/tx");
    host.wait_for("the good rows", || {
        (parquet_rows(&out).len() >= 2).then_some(())
    });
    let source_dlq = ws.path("var/dlq/bad-source.jsonl");
    let sink_dlq = ws.path("var/dlq/bad-sink.jsonl");
    host.wait_for("both dead letters", || {
        (jsonl(&source_dlq).len() == 1 && jsonl(&sink_dlq).len() == 1).then_some(())
    });
    assert!(host.stop().success());

    let ids: Vec<i64> = parquet_rows(&out)
        .iter()
        .map(|(_, r)| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 4]);

    let malformed = &jsonl(&source_dlq)[0];
    assert_eq!(
        malformed["value"],
        json!("{\"id\": 2, \"amount\": "),
        "original bytes kept"
    );
    assert_eq!(
        header(malformed, "__connect.errors.stage"),
        "VALUE_CONVERTER"
    );
    assert_eq!(
        header(malformed, "__connect.errors.connector.name"),
        "bad-source"
    );
    assert!(header(malformed, "__connect.errors.exception.message").contains("invalid JSON"));

    let wrong_type = &jsonl(&sink_dlq)[0];
    assert_eq!(
        wrong_type["value"],
        json!("{\"id\": 3, \"amount\": \"n/a\"}")
    );
    assert_eq!(header(wrong_type, "__connect.errors.stage"), "TASK_PUT");
    assert_eq!(
        header(wrong_type, "__connect.errors.class.name"),
        "headwater.parquet.ParquetSink"
    );
    let message = header(wrong_type, "__connect.errors.exception.message");
    assert!(
        message.contains("does not fit the Parquet schema") && message.contains("n/a"),
        "{message}"
    );
}

#[test]
fn tolerance_none_fails_the_task_and_keeps_the_position_before_the_bad_record() {
    let ws = Workspace::new();
    let input = ws.path("in/tx.jsonl");
    fs::write(&input, "{\"id\": 1}\n{\"id\": \n{\"id\": 3}\n").unwrap();
    ws.put_config(
        "source.json",
        &json!({"name": "strict-source", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": input.display().to_string(),
            "topic": "tx",
            "batch.max.records": "1",
        }}),
    );
    ws.put_config(
        "sink.json",
        &json!({"name": "strict-sink", "config": {
            "connector.class": "headwater.file.FileSink",
            "topics": "tx",
            "file": ws.path("out/tx.jsonl").display().to_string(),
        }}),
    );
    let host = ws.start();
    host.wait_for_log("Tolerance exceeded in error handler");
    let log = host.log();
    assert!(
        log.contains("connector=strict-source") && log.contains("Connector task failed"),
        "{log}"
    );
    assert!(
        log.contains("invalid JSON"),
        "the trace names the cause: {log}"
    );
    assert!(host.stop().success());
    let out = jsonl(&ws.path("out/tx.jsonl"));
    assert_eq!(out.len(), 1, "nothing after the bad record was delivered");
    let offsets: Value =
        serde_json::from_slice(&fs::read(ws.path("var/offsets/strict-source.json")).unwrap())
            .unwrap();
    assert_eq!(
        offsets["offsets"][0]["offset"]["position"],
        json!(10),
        "position stays before the bad line"
    );
    assert!(!ws.path("var/dlq/strict-source.jsonl").exists());
}

#[test]
fn a_failed_sink_holds_its_sources_back_and_gets_every_record_once_fixed() {
    let ws = Workspace::new();
    let input = ws.path("in/events.jsonl");
    fs::write(&input, "{\"n\": 1}\n{\"n\": 2}\n{\"n\": 3}\n").unwrap();
    // The sink's output directory cannot be created: a file stands in its place.
    fs::write(ws.path("out/blocked"), "not a directory").unwrap();
    let sink = |file: &str| {
        json!({"name": "fragile-sink", "config": {
            "connector.class": "headwater.file.FileSink",
            "topics": "events",
            "file": ws.path(file).display().to_string(),
        }})
    };
    ws.put_config("sink.json", &sink("out/blocked/events.jsonl"));
    ws.put_config(
        "source.json",
        &json!({"name": "steady-source", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": input.display().to_string(),
            "topic": "events",
            "poll.interval.ms": "50",
        }}),
    );
    let host = ws.start();
    host.wait_for_log("Connector task failed. connector=fragile-sink");
    // The source read its input, but nothing was acknowledged: no committed position.
    let offsets = ws.path("var/offsets/steady-source.json");
    assert!(!offsets.exists(), "offsets committed past a failed sink");

    ws.put_config("sink.json", &sink("out/events.jsonl"));
    host.wait_for_log(
        "Replaying records a failed sink never acknowledged. connector=steady-source",
    );
    let out = ws.path("out/events.jsonl");
    host.wait_for("all three records", || {
        (jsonl(&out).len() >= 3).then_some(())
    });
    host.wait_for("the committed position", || {
        let value: Value = serde_json::from_slice(&fs::read(&offsets).ok()?).ok()?;
        (value["offsets"][0]["offset"]["position"] == json!(27)).then_some(())
    });
    assert!(host.stop().success());
    let values: Vec<Value> = jsonl(&out)
        .into_iter()
        .map(|l| l["value"]["payload"].clone())
        .collect();
    assert_eq!(values, [json!({"n": 1}), json!({"n": 2}), json!({"n": 3})]);
}

/// A FileSource `<name>-source` reading `path` to topic `name` (dead letters on, `extra` keys
/// added) and a FileSink `<name>-sink` writing it to `out/<name>.jsonl`.
fn file_pipeline(ws: &Workspace, name: &str, path: &std::path::Path, extra: Value) {
    let mut config = json!({
        "connector.class": "headwater.file.FileSource",
        "path": path.display().to_string(),
        "topic": name,
        "errors.tolerance": "all",
        "poll.interval.ms": "100",
    });
    for (key, value) in extra.as_object().into_iter().flatten() {
        config[key] = value.clone();
    }
    ws.put_config(
        &format!("{name}-source.json"),
        &json!({"name": format!("{name}-source"), "config": config}),
    );
    ws.put_config(
        &format!("{name}-sink.json"),
        &ws.file_sink(&format!("{name}-sink"), name, &format!("out/{name}.jsonl")),
    );
}

/// A 100 MB line, a CSV row with a 20 MB cell and a line without end (a file that is one
/// endless line) are not held in memory: the long line and the long row become dead letters
/// saying how long they were, reading goes on after them, and the endless file holds nothing up
/// for the other connectors.
#[test]
fn a_hundred_megabyte_line_is_a_dead_letter_and_an_endless_line_stops_nothing() {
    use std::io::Write;
    let ws = Workspace::new();
    let input = ws.path("in/big.jsonl");
    let mut file = fs::File::create(&input).unwrap();
    file.write_all(b"{\"n\": 1}\n{\"pad\": \"").unwrap();
    let block = vec![b'x'; 1 << 20];
    for _ in 0..100 {
        file.write_all(&block).unwrap();
    }
    file.write_all(b"\"}\n{\"n\": 2}\n").unwrap();
    drop(file);
    // No newline, ever: a writer that never finishes its line.
    let endless = ws.path("in/endless.jsonl");
    let mut file = fs::File::create(&endless).unwrap();
    for _ in 0..40 {
        file.write_all(&block).unwrap();
    }
    drop(file);
    let csv = ws.path("in/wide.csv");
    let mut file = fs::File::create(&csv).unwrap();
    file.write_all(b"id,blob\n1,small\n2,\"").unwrap();
    for _ in 0..20 {
        file.write_all(&block).unwrap();
    }
    file.write_all(b"\"\n3,after\n").unwrap();
    drop(file);
    for (name, path) in [("big", &input), ("endless", &endless), ("wide", &csv)] {
        file_pipeline(&ws, name, path, json!({}));
    }
    let host = ws.start();
    let got = host.wait_for("the lines around the long one", || {
        let got = crate::harness::sink_values(&ws.path("out/big.jsonl"));
        (got.len() == 2).then_some(got)
    });
    assert_eq!(got, [json!({"n": 1}), json!({"n": 2})]);
    let dlq = ws.path("var/dlq/big-source.jsonl");
    let letter = host.wait_for("the dead letter", || jsonl(&dlq).into_iter().next());
    let message = header(&letter, "__connect.errors.exception.message");
    let length = 100 * (1 << 20) + 11;
    assert!(
        message.contains(&format!("a line of {length} bytes"))
            && message.contains("max.record.bytes (16777216)"),
        "{message}"
    );
    assert_eq!(
        letter["value"].as_str().map(str::len),
        Some(1024),
        "the dead letter keeps the line's first bytes"
    );
    let rows = host.wait_for("the CSV rows around the wide one", || {
        let got = crate::harness::sink_values(&ws.path("out/wide.jsonl"));
        (got.len() == 2).then_some(got)
    });
    assert_eq!(
        rows.iter().map(|r| r["blob"].clone()).collect::<Vec<_>>(),
        [json!("small"), json!("after")]
    );
    let letter = host.wait_for("the wide row's dead letter", || {
        jsonl(&ws.path("var/dlq/wide-source.jsonl"))
            .into_iter()
            .next()
    });
    let message = header(&letter, "__connect.errors.exception.message");
    assert!(
        message.contains(&format!("a line of {} bytes", 20 * (1 << 20) + 4)),
        "{message}"
    );
    assert!(jsonl(&ws.path("out/endless.jsonl")).is_empty());
    assert!(host.stop().success());
}

/// Deeply nested JSON, a million-field object and a Parquet file with a corrupt footer: the
/// nesting is a dead letter with the reason, the wide object goes through whole, the corrupt
/// file is reported with the reason (and retried, as a file still being copied in would be),
/// and a connector beside them keeps running.
#[test]
fn deep_nesting_a_million_fields_and_a_corrupt_parquet_footer_stop_nothing() {
    let ws = Workspace::new();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let fields: Vec<String> = (0..1_000_000).map(|i| format!("\"f{i}\":{i}")).collect();
    let wide = format!("{{{}}}", fields.join(","));
    fs::write(
        ws.path("in/odd.jsonl"),
        format!("{deep}\n{wide}\n{{\"n\": 1}}\n"),
    )
    .unwrap();
    // A Parquet file cut short: its footer is gone.
    let mut parquet = b"PAR1".to_vec();
    parquet.extend(std::iter::repeat_n(7u8, 4096));
    parquet.extend(b"\x00\x10\x00\x00PAR1");
    fs::write(ws.path("in/cut.parquet"), &parquet).unwrap();
    fs::write(ws.path("in/fine.jsonl"), "{\"ok\": true}\n").unwrap();
    for (name, file) in [
        ("odd", "in/odd.jsonl"),
        ("cut", "in/cut.parquet"),
        ("fine", "in/fine.jsonl"),
    ] {
        // The wide object is 16.8 MB: over the default limit.
        file_pipeline(
            &ws,
            name,
            &ws.path(file),
            json!({"max.record.bytes": "67108864"}),
        );
    }
    let host = ws.start();
    let odd = host.wait_for("the wide object and the last line", || {
        let got = crate::harness::sink_values(&ws.path("out/odd.jsonl"));
        (got.len() == 2).then_some(got)
    });
    assert_eq!(odd[0].as_object().map(|o| o.len()), Some(1_000_000));
    assert_eq!(odd[0]["f999999"], json!(999_999));
    assert_eq!(odd[1], json!({"n": 1}));
    let letter = host.wait_for("the nesting's dead letter", || {
        jsonl(&ws.path("var/dlq/odd-source.jsonl"))
            .into_iter()
            .next()
    });
    let message = header(&letter, "__connect.errors.exception.message");
    assert!(message.contains("recursion limit"), "{message}");
    host.wait_for_log("Cannot open a Parquet file yet; will retry.");
    assert!(host.log().contains("cut.parquet"), "the file is named");
    host.wait_for("the connector beside them", || {
        (crate::harness::sink_values(&ws.path("out/fine.jsonl")) == [json!({"ok": true})])
            .then_some(())
    });
    assert!(host.stop().success());
}
