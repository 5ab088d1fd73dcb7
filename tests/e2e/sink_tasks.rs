//! A sink run as several tasks in one host (`tasks.max`): each task a consumer in the sink's
//! group with its share of the partitions and its own writer; nothing written twice or lost,
//! across a crash too. On librdkafka's mock cluster (a consumer resuming mid-batch on tansu 0.6
//! skips the rest of the batch, see `crate::kafka::produce_one_per_batch`).

use std::collections::BTreeMap;

use serde_json::json;

use crate::harness::{Host, Workspace, parquet_rows, rest_port};
use crate::kafka::{file_sink, produce_clicks};
use crate::rest::http;

/// How many times each click id is in the Parquet store, and whether the second task wrote
/// any of the files.
fn written(ws: &Workspace) -> (BTreeMap<i64, usize>, bool) {
    let mut counts = BTreeMap::new();
    let mut second_task = false;
    for (path, row) in parquet_rows(&ws.path("out/store")) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        second_task |= name.starts_with("part-clicks-store~t1-");
        *counts.entry(row["id"].as_i64().unwrap()).or_insert(0) += 1;
    }
    (counts, second_task)
}

/// Waits until `expected` distinct ids are written; every id once.
fn wait_for_each_once(host: &Host, ws: &Workspace, expected: i64) -> bool {
    let (counts, second_task) = host.wait_for("every click in the store", || {
        let written = written(ws);
        (written.0.len() as i64 >= expected).then_some(written)
    });
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        (0..expected).collect::<Vec<_>>()
    );
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "written more than once: {twice:?}");
    second_task
}

type Mock = rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

/// A mock cluster with `topic` of `partitions`, and a workspace whose host reaches it.
fn mock_workspace(topic: &str, partitions: i32) -> (Mock, String, Workspace) {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("start a mock Kafka cluster");
    mock.create_topic(topic, partitions, 1)
        .expect("create topic");
    let bootstrap = mock.bootstrap_servers();
    let ws = Workspace::new();
    ws.put_worker_config(&format!("[kafka]\nbootstrap_servers = \"{bootstrap}\"\n"));
    (mock, bootstrap, ws)
}

/// A ParquetSink `name` of `topic` into `out/<dir>` with `tasks.max` 2, reading JSON values.
fn parquet_sink_of_two_tasks(
    ws: &Workspace,
    name: &str,
    topic: &str,
    dir: &str,
) -> serde_json::Value {
    json!({"name": name, "config": {
        "connector.class": "headwater.parquet.ParquetSink",
        "topics": topic,
        "tasks.max": "2",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "path": ws.path(&format!("out/{dir}")).display().to_string(),
        "flush.size": "300",
        "rotate.interval.ms": "200",
    }})
}

#[test]
fn a_sink_with_two_tasks_splits_its_partitions_and_writes_each_record_once() {
    let (_mock, bootstrap, ws) = mock_workspace("clicks", 4);
    ws.put_config(
        "store.json",
        &parquet_sink_of_two_tasks(&ws, "clicks-store", "clicks", "store"),
    );
    // A FileSink writes one file: it runs one task whatever tasks.max says.
    ws.put_config(
        "copy.json",
        &file_sink(
            &ws,
            "clicks-copy",
            "clicks",
            "out/copy.jsonl",
            json!({"tasks.max": "2"}),
        ),
    );
    let host = ws.start();
    for task in 0..2 {
        host.wait_for_log(&format!(
            "Partitions assigned. connector=clicks-store group=connect-clicks-store partitions=2 task={task}"
        ));
    }
    host.wait_for_log("connector=clicks-copy");
    assert!(
        host.log().contains(
            "The connector runs one task here. connector=clicks-copy tasks_max=2 why=its sink class writes one output"
        ),
        "{}",
        host.log()
    );
    let port = rest_port(&host);
    let (_, status) = http(port, "GET", "/connectors/clicks-store/status", None);
    let states: Vec<_> = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].clone(), t["state"].clone()))
        .collect();
    assert_eq!(
        states,
        [(json!(0), json!("RUNNING")), (json!(1), json!("RUNNING"))],
        "{status}"
    );
    let (code, task) = http(port, "GET", "/connectors/clicks-store/tasks/1/status", None);
    assert_eq!((code, &task["id"]), (200, &json!(1)), "{task}");
    let (code, _) = http(port, "GET", "/connectors/clicks-store/tasks/2/status", None);
    assert_eq!(code, 404);
    let (_, copy) = http(port, "GET", "/connectors/clicks-copy/status", None);
    assert_eq!(copy["tasks"].as_array().map(Vec::len), Some(1), "{copy}");

    produce_clicks(&bootstrap, "clicks", 0, 3000);
    let second_task_wrote = wait_for_each_once(&host, &ws, 3000);
    assert!(second_task_wrote, "the second task wrote files of its own");
    // A crash mid-stream: the files both tasks committed say what is written, whichever task
    // reads a partition after the restart.
    produce_clicks(&bootstrap, "clicks", 3000, 3000);
    host.kill9();
    let host = ws.start();
    produce_clicks(&bootstrap, "clicks", 6000, 1000);
    wait_for_each_once(&host, &ws, 7000);
    host.stop();
}

/// A record no task can convert, on each partition (`errors.tolerance` none): the connector
/// fails once — one task reports it, the other stops with it — and both tasks show FAILED.
#[test]
fn a_failing_task_stops_the_others_and_the_failure_is_reported_once() {
    let (_mock, bootstrap, ws) = mock_workspace("orders", 2);
    ws.put_config(
        "sink.json",
        &parquet_sink_of_two_tasks(&ws, "orders-sink", "orders", "orders"),
    );
    let host = ws.start();
    for task in 0..2 {
        host.wait_for_log(&format!("partitions=1 task={task}"));
    }
    crate::kafka::produce_one_per_batch(
        &bootstrap,
        "orders",
        (0..2).map(|p| (p, format!("k{p}"), "not json".to_owned(), None)),
    );
    let port = rest_port(&host);
    let status = host.wait_for("both tasks FAILED", || {
        let (_, status) = http(port, "GET", "/connectors/orders-sink/status", None);
        let states: Vec<_> = status["tasks"]
            .as_array()?
            .iter()
            .map(|t| t["state"].clone())
            .collect();
        (states == [json!("FAILED"), json!("FAILED")]).then_some(status)
    });
    assert!(
        status["tasks"][1]["trace"]
            .as_str()
            .unwrap_or("")
            .contains("value is not JSON"),
        "{status}"
    );
    // Both tasks' consumers leave the group (each commits what it had written).
    host.wait_for("both consumers stopped", || {
        (host.log().matches("Partitions revoked").count() >= 2).then_some(())
    });
    assert_eq!(
        host.log().matches("Connector task failed.").count(),
        1,
        "{}",
        host.log()
    );
    host.stop();
}
