//! Kafka end to end on tansu (a real Kafka-protocol broker): records written by Kafka's own
//! Python client (`confluent-kafka`, JSON and Avro through Headwater's embedded schema
//! registry) reach a sink; poison records land in a dead-letter topic with Kafka Connect's
//! headers; two hosts split a topic's partitions and one dying loses nothing; the KafkaSink
//! writes what the Python consumer reads.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Host, Service, Workspace, jsonl, rest_port};

/// Runs `host/testdata/kafka/client.py` and returns its output.
pub fn client(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/kafka/client.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("run client.py");
    assert!(
        out.status.success(),
        "client.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The messages of `topic` as the Python consumer reads them.
pub fn consume(broker: &Service, topic: &str, count: usize) -> Vec<Value> {
    client(&["consume", &broker.url, topic, &count.to_string()])
        .lines()
        .map(|l| serde_json::from_str(l).expect("client.py prints JSON lines"))
        .collect()
}

/// A workspace whose host reaches `broker` (embedded bus).
pub fn kafka_workspace(broker: &Service) -> Workspace {
    let ws = Workspace::new();
    ws.put_worker_config(&format!(
        "[kafka]\nbootstrap_servers = \"{}\"\n",
        broker.url
    ));
    ws
}

pub fn file_sink(ws: &Workspace, name: &str, topics: &str, file: &str, extra: Value) -> Value {
    let mut config = json!({
        "connector.class": "headwater.file.FileSink",
        "topics": topics,
        "file": ws.path(file).display().to_string(),
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        config[k] = v.clone();
    }
    json!({ "name": name, "config": config })
}

fn ids(lines: &[Value]) -> BTreeSet<i64> {
    lines
        .iter()
        .filter_map(|l| l["value"]["id"].as_i64())
        .collect()
}

fn wait_for_ids(host: &Host, path: &Path, expected: usize) -> Vec<Value> {
    host.wait_for(
        &format!("{expected} distinct ids in {}", path.display()),
        || {
            let lines = jsonl(path);
            (ids(&lines).len() >= expected).then_some(lines)
        },
    )
}

#[test]
fn json_and_avro_from_kafkas_python_client_reach_a_sink() {
    let broker = Service::start("tansu");
    client(&["create", &broker.url, "clicks", "4"]);
    client(&["create", &broker.url, "clicks-avro", "2"]);
    client(&["produce-json", &broker.url, "clicks", "500"]);
    let ws = kafka_workspace(&broker);
    ws.put_config(
        "json.json",
        &file_sink(&ws, "clicks-json", "clicks", "out/json.jsonl", json!({})),
    );
    let host = ws.start();
    let port = rest_port(&host);
    let registry = format!("http://127.0.0.1:{port}");
    ws.put_config(
        "avro.json",
        &file_sink(
            &ws,
            "clicks-avro",
            "clicks-avro",
            "out/avro.jsonl",
            json!({
                "value.converter": "io.confluent.connect.avro.AvroConverter",
                "value.converter.schema.registry.url": registry,
            }),
        ),
    );
    client(&["produce-avro", &broker.url, "clicks-avro", "300", &registry]);

    let lines = wait_for_ids(&host, &ws.path("out/json.jsonl"), 500);
    assert_eq!(lines.len(), 500, "each record once");
    let first = lines.iter().find(|l| l["value"]["id"] == 7).unwrap();
    assert_eq!(first["key"], "u7");
    assert_eq!(
        first["value"],
        json!({"id": 7, "user_id": "u7", "page": "/p/2", "ts": 1700000000007i64})
    );
    let partitions: BTreeSet<i64> = lines
        .iter()
        .filter_map(|l| l["partition"].as_i64())
        .collect();
    assert_eq!(partitions.len(), 4, "all four partitions read");

    let avro = wait_for_ids(&host, &ws.path("out/avro.jsonl"), 300);
    let r = avro
        .iter()
        .find(|l| l["value"]["id"] == 1234 % 300)
        .unwrap();
    // id 34: price 0.34 as Connect's Decimal (base64 of the unscaled 34), day 2024-01-05,
    // uuid 34, referrer "/home" for even ids.
    assert_eq!(r["value"]["price"], "Ig==");
    assert_eq!(r["value"]["day"], 19727);
    assert_eq!(
        r["value"]["session"],
        "00000000-0000-0000-0000-000000000022"
    );
    assert_eq!(r["value"]["referrer"], "/home");
    assert_eq!(r["value"]["ts"], 1700000000034i64);

    // The registry Python registered with is the host's own, with Confluent's answers.
    let subjects = crate::rest::http(port, "GET", "/subjects", None);
    assert_eq!(subjects.1, json!(["clicks-avro-value"]));
    let latest = crate::rest::http(
        port,
        "GET",
        "/subjects/clicks-avro-value/versions/latest",
        None,
    );
    assert_eq!(latest.1["version"], 1);
    assert_eq!(latest.1["id"], 1);
    // An incompatible change (a new field without default) is refused under BACKWARD.
    let v2 = json!({"schema": json!({"type": "record", "name": "Click", "namespace": "shop",
        "fields": [{"name": "id", "type": "long"}, {"name": "must", "type": "string"}]}).to_string()});
    let refused = crate::rest::http(
        port,
        "POST",
        "/subjects/clicks-avro-value/versions",
        Some(&v2),
    );
    assert_eq!(refused.0, 409, "{}", refused.1);
    assert_eq!(refused.1["error_code"], 409);
    host.stop();

    // Offsets were committed after the flushes: a restart reads nothing twice.
    client(&["produce-json", &broker.url, "clicks", "20", "500"]);
    let host = ws.start();
    let lines = wait_for_ids(&host, &ws.path("out/json.jsonl"), 520);
    host.stop();
    assert_eq!(jsonl(&ws.path("out/json.jsonl")).len(), 520, "{lines:?}");
}

/// The header `key` of a message `consume` printed.
fn kafka_header<'a>(message: &'a Value, key: &str) -> Option<&'a str> {
    message["headers"]
        .as_array()?
        .iter()
        .find(|h| h[0] == key)?[1]
        .as_str()
}

#[test]
fn poison_records_land_in_the_dead_letter_topic_with_their_bytes_and_reasons() {
    let broker = Service::start("tansu");
    client(&["create", &broker.url, "events", "1"]);
    client(&["create", &broker.url, "events-avro", "1"]);
    let ws = kafka_workspace(&broker);
    let host = ws.start();
    let port = rest_port(&host);
    let registry = format!("http://127.0.0.1:{port}");
    let dlq = json!({
        "errors.tolerance": "all",
        "errors.deadletterqueue.topic.name": "dead-letters",
        "errors.deadletterqueue.topic.replication.factor": "1",
        "errors.deadletterqueue.context.headers.enable": "true",
    });
    ws.put_config(
        "json.json",
        &file_sink(&ws, "events-json", "events", "out/json.jsonl", dlq.clone()),
    );
    let mut avro_extra = dlq.clone();
    avro_extra["value.converter"] = json!("io.confluent.connect.avro.AvroConverter");
    avro_extra["value.converter.schema.registry.url"] = json!(registry);
    ws.put_config(
        "avro.json",
        &file_sink(
            &ws,
            "events-avro",
            "events-avro",
            "out/avro.jsonl",
            avro_extra,
        ),
    );

    // One good Avro record registers the schema (id 1); then three poisoned ones and a JSON one.
    client(&["produce-avro", &broker.url, "events-avro", "1", &registry]);
    client(&[
        "produce-raw",
        &broker.url,
        "events-avro",
        "k1",
        &hex(b"not avro"),
    ]);
    client(&[
        "produce-raw",
        &broker.url,
        "events-avro",
        "k2",
        "00000003e70102",
    ]);
    client(&[
        "produce-raw",
        &broker.url,
        "events-avro",
        "k3",
        "0000000001ff",
    ]);
    client(&[
        "produce-raw",
        &broker.url,
        "events",
        "k4",
        &hex(b"{\"id\": "),
    ]);
    client(&["produce-json", &broker.url, "events", "2"]);
    client(&[
        "produce-avro",
        &broker.url,
        "events-avro",
        "1",
        &registry,
        "1",
    ]);

    // Good records on both sides of the poison ones are written.
    wait_for_ids(&host, &ws.path("out/json.jsonl"), 2);
    wait_for_ids(&host, &ws.path("out/avro.jsonl"), 2);
    let letters = consume(&broker, "dead-letters", 4);
    let by_key = |k: &str| {
        letters
            .iter()
            .find(|m| m["key"] == k)
            .unwrap_or_else(|| panic!("no dead letter {k}: {letters:?}"))
    };

    let not_avro = by_key("k1");
    assert_eq!(not_avro["value"], "not avro", "the original bytes");
    assert_eq!(
        kafka_header(not_avro, "__connect.errors.topic"),
        Some("events-avro")
    );
    assert_eq!(
        kafka_header(not_avro, "__connect.errors.partition"),
        Some("0")
    );
    assert_eq!(kafka_header(not_avro, "__connect.errors.offset"), Some("1"));
    assert_eq!(
        kafka_header(not_avro, "__connect.errors.connector.name"),
        Some("events-avro")
    );
    assert_eq!(
        kafka_header(not_avro, "__connect.errors.task.id"),
        Some("0")
    );
    assert_eq!(
        kafka_header(not_avro, "__connect.errors.stage"),
        Some("VALUE_CONVERTER")
    );
    assert_eq!(
        kafka_header(not_avro, "__connect.errors.class.name"),
        Some("io.confluent.connect.avro.AvroConverter")
    );
    assert_eq!(
        kafka_header(not_avro, "__connect.errors.exception.class.name"),
        Some("org.apache.kafka.connect.errors.DataException")
    );
    assert!(
        kafka_header(not_avro, "__connect.errors.exception.message")
            .unwrap()
            .contains("Unknown magic byte")
    );

    let unknown_id = by_key("k2");
    assert_eq!(unknown_id["value"]["hex"], "00000003e70102");
    let message = kafka_header(unknown_id, "__connect.errors.exception.message").unwrap();
    assert!(
        message.contains("schema for id 999") && message.contains("40403"),
        "{message}"
    );

    let mismatch = by_key("k3");
    assert!(
        kafka_header(mismatch, "__connect.errors.exception.message")
            .unwrap()
            .contains("Error deserializing Avro message")
    );

    let bad_json = by_key("k4");
    assert_eq!(bad_json["value"], "{\"id\": ");
    assert_eq!(
        kafka_header(bad_json, "__connect.errors.connector.name"),
        Some("events-json")
    );
    assert!(
        kafka_header(bad_json, "__connect.errors.exception.message")
            .unwrap()
            .contains("invalid JSON")
    );
    host.stop();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Produces click events `start..start+count` (as `client.py produce-json` does) with Rust's
/// rdkafka, for brokers the Python client is not pointed at (the in-process mock cluster).
/// A little over the consumers' `session.timeout.ms`: a killed member has left its group.
pub const SESSION_EXPIRY: Duration = Duration::from_secs(12);
/// Waits until the group has given `host` some partitions. On tansu a member joining while
/// the topic is being written was seen to be assigned nothing at first, until a later
/// rebalance; the tests produce once the host owns partitions.
pub fn wait_for_partitions(host: &Host) {
    wait_for_partitions_of(host, "");
}

/// Waits until consumer group `group` has given `host` some partitions.
pub fn wait_for_partitions_of(host: &Host, group: &str) {
    host.wait_for("partitions assigned", || {
        host.log()
            .lines()
            .any(|l| {
                l.contains("Partitions assigned")
                    && l.contains(group)
                    && !l.contains("partitions=0")
            })
            .then_some(())
    });
}

/// How long a test producer waits for the broker to acknowledge what it sent.
pub const DELIVERY_PATIENCE: Duration = Duration::from_secs(180);

/// Sends `record`, waiting while the producer's queue is full.
fn send_waiting<'a>(
    producer: &rdkafka::producer::BaseProducer,
    mut record: rdkafka::producer::BaseRecord<'a, String, String>,
) {
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((_, back)) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
        }
    }
    producer.poll(Duration::ZERO);
}

/// Produces `records`, each (partition, key, value, timestamp in ms or the producer's clock),
/// one record per batch: tansu 0.6 answers a
/// fetch from an offset inside a record batch with the next batch, so a consumer resuming
/// mid-batch (after a checkpoint, or a group's commit) would skip the rest of that batch.
pub fn produce_one_per_batch(
    bootstrap: &str,
    topic: &str,
    records: impl IntoIterator<Item = (i32, String, String, Option<i64>)>,
) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("batch.num.messages", "1")
        .set("linger.ms", "0")
        .create()
        .expect("create a test producer");
    for (partition, key, value, timestamp) in records {
        let mut record = BaseRecord::to(topic)
            .partition(partition)
            .key(&key)
            .payload(&value);
        if let Some(ms) = timestamp {
            record = record.timestamp(ms);
        }
        send_waiting(&producer, record);
    }
    // One record per produce request is slow on a loaded 2-core machine (CI took over 30 s
    // for 6,000 while the host consumed), so give delivery minutes rather than seconds.
    producer
        .flush(DELIVERY_PATIENCE)
        .expect("test records delivered");
}

pub fn produce_clicks(bootstrap: &str, topic: &str, start: i64, count: i64) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .expect("create a test producer");
    for i in start..start + count {
        let key = format!("u{}", i % 17);
        let value = json!({"id": i, "user_id": key, "page": format!("/p/{}", i % 5), "ts": 1700000000000i64 + i}).to_string();
        send_waiting(&producer, BaseRecord::to(topic).key(&key).payload(&value));
    }
    producer
        .flush(std::time::Duration::from_secs(30))
        .expect("test records delivered");
}

/// A host dying is a fault: this runs on librdkafka's mock cluster, whose group coordinator
/// evicts a member that stops heartbeating (tansu 0.6 keeps it in the group).
#[test]
fn two_hosts_split_partitions_and_a_killed_one_loses_nothing() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("start a mock Kafka cluster");
    mock.create_topic("split", 4, 1).expect("create topic");
    let bootstrap = mock.bootstrap_servers();
    let workspace = || {
        let ws = Workspace::new();
        ws.put_worker_config(&format!("[kafka]\nbootstrap_servers = \"{bootstrap}\"\n"));
        ws.put_config(
            "sink.json",
            &file_sink(&ws, "splitter", "split", "out/s.jsonl", json!({})),
        );
        ws
    };
    let (a, b) = (workspace(), workspace());
    let host_a = a.start();
    host_a.wait_for_log(
        "Partitions assigned. connector=splitter group=connect-splitter partitions=4",
    );
    let host_b = b.start();
    host_b.wait_for_log(
        "Partitions assigned. connector=splitter group=connect-splitter partitions=2",
    );
    host_a.wait_for_log(
        "Partitions assigned. connector=splitter group=connect-splitter partitions=2",
    );

    produce_clicks(&bootstrap, "split", 0, 2000);
    let (path_a, path_b) = (a.path("out/s.jsonl"), b.path("out/s.jsonl"));
    host_a.wait_for("both hosts writing", || {
        (ids(&jsonl(&path_a)).len() + ids(&jsonl(&path_b)).len() >= 2000).then_some(())
    });
    // B dies without any cleanup; more records arrive meanwhile.
    host_b.kill9();
    produce_clicks(&bootstrap, "split", 2000, 2000);
    // A takes B's partitions once the group evicts B, from B's last committed offsets.
    let all = host_a.wait_for("every id in A or B", || {
        let mut seen = ids(&jsonl(&path_a));
        seen.extend(ids(&jsonl(&path_b)));
        (seen.len() == 4000).then_some(seen)
    });
    assert_eq!(all, (0..4000).collect());
    assert!(
        host_a
            .log()
            .matches("Partitions assigned. connector=splitter group=connect-splitter partitions=4")
            .count()
            >= 2,
        "A took over all four partitions:\n{}",
        host_a.log()
    );
    host_a.stop();
}

#[test]
fn the_kafka_sink_writes_keyed_records_with_their_headers() {
    let broker = Service::start("tansu");
    client(&["create", &broker.url, "clicks", "1"]);
    client(&["produce-json", &broker.url, "clicks", "10"]);
    let ws = kafka_workspace(&broker);
    let events: Vec<Value> = (0..50)
        .map(|i| json!({"user_id": format!("f{i}"), "id": 100 + i}))
        .collect();
    ws.append_jsonl("in/features.jsonl", &events);
    ws.put_config(
        "source.json",
        &json!({"name": "features", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": ws.path("in/features.jsonl").display().to_string(),
            "topic": "features",
        }}),
    );
    // One sink, two inputs: `features` from the local source, `clicks` from Kafka.
    ws.put_config(
        "sink.json",
        &json!({"name": "to-kafka", "config": {
            "connector.class": "headwater.kafka.KafkaSink",
            "topics": "features,clicks",
            "topic": "features-out",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "transforms": "key,extract",
            "transforms.key.type": "org.apache.kafka.connect.transforms.ValueToKey",
            "transforms.key.fields": "user_id",
            "transforms.extract.type": "org.apache.kafka.connect.transforms.ExtractField$Key",
            "transforms.extract.field": "user_id",
            "producer.override.compression.type": "gzip",
        }}),
    );
    let host = ws.start();
    let out = consume(&broker, "features-out", 60);
    host.stop();
    let mut seen = BTreeSet::new();
    for m in &out {
        let value: Value = serde_json::from_str(m["value"].as_str().unwrap()).unwrap();
        assert_eq!(value["user_id"], m["key"], "keyed by user_id: {m}");
        let from_python = value["id"].as_i64().unwrap() < 100;
        let origin = kafka_header(m, "origin");
        assert_eq!(origin, from_python.then_some("python"), "headers kept: {m}");
        seen.insert(value["id"].as_i64().unwrap());
    }
    assert_eq!(seen, (0..10).chain(100..150).collect());
}

/// The Kafka bus (`bus.kind = "kafka"`): a local source produces to Kafka and the sink reads it
/// back through its consumer group. The broker goes down mid-stream: producer and consumer
/// retry, and once it is back every record arrives, once.
#[test]
fn the_kafka_bus_rides_out_a_broker_outage() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("start a mock Kafka cluster");
    let bootstrap = mock.bootstrap_servers();
    let ws = Workspace::new();
    ws.put_worker_config(&format!(
        "[bus]\nkind = \"kafka\"\n[kafka]\nbootstrap_servers = \"{bootstrap}\"\ntopic_partitions = 3\n"
    ));
    let retry_forever = json!({"errors.retry.timeout": "-1", "errors.retry.delay.max.ms": "1000"});
    let mut source = json!({"name": "events-in", "config": {
        "connector.class": "headwater.file.FileSource",
        "path": ws.path("in/events.jsonl").display().to_string(),
        "topic": "events",
    }});
    for (k, v) in retry_forever.as_object().unwrap() {
        source["config"][k] = v.clone();
    }
    ws.put_config("source.json", &source);
    ws.put_config(
        "sink.json",
        &file_sink(
            &ws,
            "events-out",
            "events",
            "out/events.jsonl",
            retry_forever,
        ),
    );
    let first: Vec<Value> = (0..1000).map(|i| json!({"id": i})).collect();
    ws.append_jsonl("in/events.jsonl", &first);
    let host = ws.start();
    wait_for_ids(&host, &ws.path("out/events.jsonl"), 1000);

    mock.broker_down(1).expect("take the broker down");
    let second: Vec<Value> = (1000..2000).map(|i| json!({"id": i})).collect();
    ws.append_jsonl("in/events.jsonl", &second);
    std::thread::sleep(std::time::Duration::from_secs(3));
    mock.broker_up(1).expect("bring the broker back");

    let lines = wait_for_ids(&host, &ws.path("out/events.jsonl"), 2000);
    assert_eq!(ids(&lines), (0..2000).collect());
    assert_eq!(lines.len(), 2000, "no record twice");
    host.stop();
}

/// Avro both ways through Headwater's own registry, on the Kafka bus: a source's records are
/// written with a configured schema (registered under `<topic>-value`, logical types kept) and
/// read back by a sink's AvroConverter that knows only the registry.
#[test]
fn avro_written_by_headwater_reads_back_through_its_registry() {
    let broker = Service::start("tansu");
    let ws = Workspace::new();
    ws.put_worker_config(&format!(
        "[bus]\nkind = \"kafka\"\n[kafka]\nbootstrap_servers = \"{}\"\n",
        broker.url
    ));
    let host = ws.start();
    let port = rest_port(&host);
    let registry = format!("http://127.0.0.1:{port}");
    let schema = json!({"type": "record", "name": "Payment", "namespace": "shop", "fields": [
        {"name": "id", "type": "long"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "note", "type": ["null", "string"], "default": null}
    ]});
    let rows: Vec<Value> = (0..20)
        .map(|i| json!({"id": i, "amount": (i * 100 + 5) as f64 / 100.0, "at": 1700000000000i64 + i, "note": if i % 2 == 0 { json!("even") } else { Value::Null }}))
        .collect();
    ws.append_jsonl("in/payments.jsonl", &rows);
    ws.put_config(
        "sink.json",
        &file_sink(
            &ws,
            "payments-out",
            "payments",
            "out/payments.jsonl",
            json!({
                "value.converter": "io.confluent.connect.avro.AvroConverter",
                "value.converter.schema.registry.url": registry,
            }),
        ),
    );
    ws.put_config(
        "source.json",
        &json!({"name": "payments-in", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": ws.path("in/payments.jsonl").display().to_string(),
            "topic": "payments",
            "value.converter": "io.confluent.connect.avro.AvroConverter",
            "value.converter.schema.registry.url": registry,
            "value.converter.schema.json": schema.to_string(),
        }}),
    );
    let lines = wait_for_ids(&host, &ws.path("out/payments.jsonl"), 20);
    let three = lines.iter().find(|l| l["value"]["id"] == 3).unwrap();
    // 3.05 as a Connect Decimal: base64 of the unscaled 305 (0x0131).
    assert_eq!(
        three["value"],
        json!({"id": 3, "amount": "ATE=", "at": 1700000000003i64, "note": null})
    );
    let registered = crate::rest::http(
        port,
        "GET",
        "/subjects/payments-value/versions/1/schema",
        None,
    )
    .1;
    assert_eq!(registered["fields"][1]["type"]["logicalType"], "decimal");
    assert_eq!(registered["fields"][3]["default"], Value::Null);
    host.stop();
}

/// A client property librdkafka does not know fails the connector with librdkafka's reason,
/// instead of a sink that silently reads nothing.
#[test]
fn a_bad_consumer_override_fails_the_connector_with_the_reason() {
    let broker = Service::start("tansu");
    let ws = kafka_workspace(&broker);
    ws.put_config(
        "sink.json",
        &file_sink(
            &ws,
            "overridden",
            "clicks",
            "out/o.jsonl",
            json!({
                "consumer.override.max.poll.records": "10",
            }),
        ),
    );
    let host = ws.start();
    let port = rest_port(&host);
    let status = host.wait_for("the connector to fail", || {
        let (_, body) = crate::rest::http(port, "GET", "/connectors/overridden/status", None);
        (body["connector"]["state"] == "FAILED").then_some(body)
    });
    let trace = status["connector"]["trace"].as_str().unwrap();
    assert!(trace.contains("max.poll.records"), "{trace}");
    host.stop();
}

/// While the schema registry is down, Avro records wait for it instead of becoming dead
/// letters; the registry (another Headwater host) comes back with its schemas from disk.
#[test]
fn avro_records_wait_out_a_registry_outage() {
    use std::process::{Child, Stdio};
    let broker = Service::start("tansu");
    client(&["create", &broker.url, "clicks-avro", "1"]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let registry_ws = Workspace::new();
    let start_registry = || -> Child {
        let child = Command::new(env!("CARGO_BIN_EXE_headwater"))
            .current_dir(registry_ws.path(""))
            .args([
                "run",
                "--data-dir",
                "var",
                "--connectors-dir",
                "connectors.d",
            ])
            .args(["--rest-listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        child
    };
    let registry = format!("http://127.0.0.1:{port}");
    let mut registry_host = start_registry();
    client(&["produce-avro", &broker.url, "clicks-avro", "50", &registry]);
    registry_host.kill().unwrap();
    registry_host.wait().unwrap();

    let ws = kafka_workspace(&broker);
    ws.put_config(
        "avro.json",
        &file_sink(
            &ws,
            "clicks-avro",
            "clicks-avro",
            "out/avro.jsonl",
            json!({
                "errors.tolerance": "all",
                "value.converter": "io.confluent.connect.avro.AvroConverter",
                "value.converter.schema.registry.url": registry,
            }),
        ),
    );
    let host = ws.start();
    host.wait_for_log("The schema registry is unreachable; waiting for it.");
    let mut registry_host = start_registry();
    let lines = wait_for_ids(&host, &ws.path("out/avro.jsonl"), 50);
    assert_eq!(lines.len(), 50);
    assert!(
        !ws.path("var/dlq/clicks-avro.jsonl").exists(),
        "no dead letters"
    );
    host.stop();
    registry_host.kill().unwrap();
    registry_host.wait().unwrap();
}

/// Produces `count` JSON records `{"id": n}` from `start` to partition 0 of `topic`, in
/// batches of 100.
pub fn produce_ids(bootstrap: &str, topic: &str, start: i64, count: i64) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("batch.num.messages", "100")
        .create()
        .expect("create a test producer");
    for i in start..start + count {
        let (key, value) = (i.to_string(), json!({"id": i}).to_string());
        send_waiting(
            &producer,
            BaseRecord::to(topic).partition(0).key(&key).payload(&value),
        );
    }
    producer
        .flush(DELIVERY_PATIENCE)
        .expect("test records delivered");
}

/// The sink's consumer lag on partition 0 of `topic`, from `/metrics`.
fn lag_of(host: &Host, connector: &str, topic: &str) -> Option<i64> {
    let metrics = crate::wasm::http_text(rest_port(host), "/metrics");
    let series = format!(
        "headwater_connector_consumer_lag{{connector=\"{connector}\",topic=\"{topic}\",partition=\"0\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
}

/// A paused Kafka-fed sink's lag grows with what is produced meanwhile, in `/metrics` and the
/// status, and falls to 0 once it is resumed and caught up. (tansu answers the log end up to
/// one batch short: hence the batch of slack.)
#[test]
fn a_paused_sinks_consumer_lag_shows_what_it_has_not_taken() {
    let broker = Service::start("tansu");
    client(&["create", &broker.url, "lagging", "1"]);
    let ws = kafka_workspace(&broker);
    ws.put_config(
        "sink.json",
        &file_sink(&ws, "lag-sink", "lagging", "out/lag.jsonl", json!({})),
    );
    let host = ws.start();
    wait_for_partitions(&host);
    produce_ids(&broker.url, "lagging", 0, 100);
    wait_for_ids(&host, &ws.path("out/lag.jsonl"), 100);
    host.wait_for("no lag once caught up", || {
        (lag_of(&host, "lag-sink", "lagging") == Some(0)).then_some(())
    });
    let port = rest_port(&host);
    let (code, _) = crate::rest::http(port, "PUT", "/connectors/lag-sink/pause", None);
    assert_eq!(code, 202);
    produce_ids(&broker.url, "lagging", 100, 10_000);
    let lag = host.wait_for(
        "the lag of the 10,000 records produced while paused",
        || lag_of(&host, "lag-sink", "lagging").filter(|lag| *lag >= 10_000 - 100),
    );
    assert!(lag <= 10_000, "lag {lag}");
    let (_, status) = crate::rest::http(port, "GET", "/connectors/lag-sink/status", None);
    let shown = &status["tasks"][0]["consumer_lag"][0];
    assert_eq!(
        (&shown["topic"], &shown["partition"]),
        (&json!("lagging"), &json!(0))
    );
    assert!(
        shown["lag"].as_i64().is_some_and(|l| l >= 10_000 - 100),
        "{status}"
    );
    let (code, _) = crate::rest::http(port, "PUT", "/connectors/lag-sink/resume", None);
    assert_eq!(code, 202);
    wait_for_ids(&host, &ws.path("out/lag.jsonl"), 10_100);
    host.wait_for("no lag once caught up again", || {
        (lag_of(&host, "lag-sink", "lagging") == Some(0)).then_some(())
    });
    assert!(host.stop().success());
}
