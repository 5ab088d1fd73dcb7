//! Scale-out with state: a sink keeping window state per partition (`tasks.max` 2) on several
//! hosts, whose partitions move between them — a host killed, a host added — with their state,
//! through the connector's changelog topic. On librdkafka's mock cluster, whose group drops a
//! killed member once its session expires (tansu 0.6 keeps it).

use std::collections::BTreeMap;

use serde_json::json;

use rdkafka::mocking::MockCluster;

use crate::harness::{Host, Workspace};
use crate::kafka_windows::{
    Windows, differing, file_windows, partitioned_workspace_at, partitioned_workspace_with,
    produce_by_user, reference_per_partition,
};

const PARTITIONS: i32 = 4;
/// Clicks per phase: ~450 s of event time, so windows straddle each phase's end.
const PHASE: i64 = 3_000;

fn mock_cluster() -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    let mock = MockCluster::new(1).expect("start a mock Kafka cluster");
    mock.create_topic("click-events", PARTITIONS, 1)
        .expect("create topic");
    // The mock cluster answers no CreateTopics request: the changelog is made beforehand, as
    // an operator may make it.
    mock.create_topic(
        "headwater-clicks-audit-click-events-changelog",
        PARTITIONS,
        1,
    )
    .expect("create the changelog topic");
    let bootstrap = mock.bootstrap_servers();
    (mock, bootstrap)
}

/// Two hosts' workspaces for the same sink (state per partition) on the broker at `bootstrap`.
fn two_workspaces(bootstrap: &str) -> (Workspace, Workspace) {
    (
        partitioned_workspace_at(bootstrap),
        partitioned_workspace_at(bootstrap),
    )
}

/// Starts a host on `ws` and waits until the group gives it partitions.
fn start_with_partitions(ws: &Workspace) -> Host {
    let host = ws.start();
    crate::kafka::wait_for_partitions(&host);
    host
}

/// Produces the first phase's clicks and waits until `host` has windowed some of them.
fn first_phase(bootstrap: &str, host: &Host, ws: &Workspace) {
    produce_by_user(bootstrap, "click-events", PARTITIONS, 0..PHASE);
    host.wait_for("windows of the first phase", || {
        (!file_windows(ws).is_empty()).then_some(())
    });
}

/// The windows the hosts wrote into `outputs`: a window in two files has the same counts in
/// each (a replay re-emits what the state holds), and together they are `expected`. `host`,
/// still running, is waited on.
fn assert_hosts_emit(expected: &Windows, host: &Host, outputs: &[&Workspace]) {
    let got = host.wait_for("every window from the hosts", || {
        let mut got = Windows::new();
        for ws in outputs {
            got.extend(file_windows(ws));
        }
        (got.len() >= expected.len()).then_some(got)
    });
    let mut seen: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
    for ws in outputs {
        for (key, counts) in file_windows(ws) {
            if let Some(other) = seen.insert(key.clone(), counts) {
                assert_eq!(
                    other,
                    counts,
                    "window {key:?} differs between hosts\n{}",
                    host.log()
                );
            }
        }
    }
    let wrong = differing(expected, &got);
    assert!(
        wrong.is_empty() && got.len() == expected.len(),
        "windows differ from the reference: {wrong:?}\n{}",
        host.log()
    );
}

/// The sink's metrics on `host` now, by name.
fn metric_of(host: &Host) -> impl Fn(&str) -> u64 + use<> {
    let metrics = crate::wasm::http_text(crate::harness::rest_port(host), "/metrics");
    move |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{{connector=\"clicks-audit\"}} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in\n{metrics}"))
    }
}

/// Waits until `host` has restored a partition's state from the changelog (changes applied).
fn wait_for_restore_from_changelog(host: &Host) {
    host.wait_for("a partition restored from the changelog", || {
        host.log()
            .lines()
            .any(|l| l.contains("Partition state restored") && !l.contains("changes_applied=0"))
            .then_some(())
    });
}

/// `kill -9` of one of two hosts mid-stream: the other takes its partitions, restores their
/// windows from the changelog, and every window equals the reference — none counted twice or
/// restarted from zero.
#[test]
fn a_killed_hosts_partitions_move_with_their_windows() {
    let (_mock, bootstrap) = mock_cluster();
    let (ws_a, ws_b) = two_workspaces(&bootstrap);
    let a = start_with_partitions(&ws_a);
    let b = start_with_partitions(&ws_b);
    first_phase(&bootstrap, &a, &ws_a);
    // Past the checkpoint interval (1 s): the changelog holds the open windows.
    std::thread::sleep(std::time::Duration::from_secs(2));
    a.kill9();
    produce_by_user(&bootstrap, "click-events", PARTITIONS, PHASE..2 * PHASE);
    wait_for_restore_from_changelog(&b);
    let expected = reference_per_partition(0..2 * PHASE, PARTITIONS);
    assert_hosts_emit(&expected, &b, &[&ws_a, &ws_b]);
    // The restores show in the metrics: changes applied, none still under way.
    let value = metric_of(&b);
    assert!(value("headwater_connector_state_restored_changes_total") > 0);
    assert!(value("headwater_connector_state_restores_total") >= 4);
    assert_eq!(value("headwater_connector_state_partitions_restoring"), 0);
    assert_eq!(
        value("headwater_connector_state_restore_records_remaining"),
        0
    );
    assert_eq!(value("headwater_connector_state_standby_updates_total"), 0);
    assert!(b.stop().success());
}

/// Warm standbys (`state.standby.enabled`): each host follows the changelog of the partitions
/// it does not own, so the host taking a killed host's partitions restores them from its own
/// copy, and every window equals the reference.
#[test]
fn a_warm_standby_takes_over_a_killed_hosts_partitions_from_its_copy() {
    let (_mock, bootstrap) = mock_cluster();
    let standby =
        || partitioned_workspace_with(&bootstrap, json!({"state.standby.enabled": "true"}));
    let (ws_a, ws_b) = (standby(), standby());
    let a = start_with_partitions(&ws_a);
    let b = start_with_partitions(&ws_b);
    first_phase(&bootstrap, &a, &ws_a);
    // Past a checkpoint (1 s) and a round of the copies (1 s).
    std::thread::sleep(std::time::Duration::from_secs(3));
    a.kill9();
    produce_by_user(&bootstrap, "click-events", PARTITIONS, PHASE..2 * PHASE);
    b.wait_for("a partition restored from the warm copy", || {
        b.log()
            .lines()
            .any(|l| l.contains("Partition state restored") && !l.contains("from_standby=0"))
            .then_some(())
    });
    let expected = reference_per_partition(0..2 * PHASE, PARTITIONS);
    assert_hosts_emit(&expected, &b, &[&ws_a, &ws_b]);
    assert!(metric_of(&b)("headwater_connector_state_standby_updates_total") > 0);
    assert!(b.stop().success());
}

/// A third host joins two mid-stream: the group moves partitions to it, their windows come
/// along (their owners checkpoint them to the changelog as they let them go), and every window
/// of the three hosts equals the reference.
#[test]
fn a_third_host_joins_and_takes_partitions_with_their_windows() {
    let (_mock, bootstrap) = mock_cluster();
    let (ws_a, ws_b) = two_workspaces(&bootstrap);
    let ws_c = partitioned_workspace_at(&bootstrap);
    let a = start_with_partitions(&ws_a);
    let b = start_with_partitions(&ws_b);
    first_phase(&bootstrap, &a, &ws_a);
    let c = start_with_partitions(&ws_c);
    wait_for_restore_from_changelog(&c);
    produce_by_user(&bootstrap, "click-events", PARTITIONS, PHASE..2 * PHASE);
    let expected = reference_per_partition(0..2 * PHASE, PARTITIONS);
    assert_hosts_emit(&expected, &c, &[&ws_a, &ws_b, &ws_c]);
    for host in [a, b, c] {
        assert!(host.stop().success());
    }
}

/// A host paused (SIGSTOP) long enough for the group to give its partitions to the other,
/// then resumed: it writes no changelog record for them once the other has claimed them, its
/// task restarts and rejoins the group, and every window equals the reference.
#[test]
fn a_paused_host_writes_nothing_for_partitions_it_lost() {
    let (_mock, bootstrap) = mock_cluster();
    let (ws_a, ws_b) = two_workspaces(&bootstrap);
    let a = start_with_partitions(&ws_a);
    let b = start_with_partitions(&ws_b);
    first_phase(&bootstrap, &a, &ws_a);
    // Clicks the paused host holds unprocessed or uncheckpointed when it stops.
    produce_by_user(&bootstrap, "click-events", PARTITIONS, PHASE..PHASE + 200);
    a.pause();
    wait_for_restore_from_changelog(&b);
    produce_by_user(
        &bootstrap,
        "click-events",
        PARTITIONS,
        PHASE + 200..2 * PHASE,
    );
    b.wait_for("the second phase windowed", || {
        (file_windows(&ws_b).len() > 20).then_some(())
    });
    a.resume();
    // The resumed host finds its partitions claimed at its next checkpoint, writes nothing of
    // that checkpoint, and its task restarts and rejoins the group (not FAILED).
    a.wait_for("the resumed host fenced", || {
        a.log()
            .contains("another host has written it")
            .then_some(())
    });
    a.wait_for("the fenced host's task restarted", || {
        a.log()
            .contains("Restarting the connector's task to rejoin its group")
            .then_some(())
    });
    let port = crate::harness::rest_port(&a);
    a.wait_for("the fenced host RUNNING again", || {
        let (_, status) = crate::rest::http(port, "GET", "/connectors/clicks-audit/status", None);
        (status["connector"]["state"] == "RUNNING").then_some(())
    });
    // Both hosts share the partitions again: what the group gives back to the rejoined host
    // comes with the windows the other host added meanwhile (its restores before the pause
    // applied nothing: it started first, on an empty changelog).
    wait_for_restore_from_changelog(&a);
    produce_by_user(&bootstrap, "click-events", PARTITIONS, 2 * PHASE..3 * PHASE);
    let expected = reference_per_partition(0..3 * PHASE, PARTITIONS);
    assert_hosts_emit(&expected, &b, &[&ws_a, &ws_b]);
    for partition in 0..PARTITIONS {
        assert_no_write_after_a_claim(&bootstrap, partition);
    }
    assert!(b.stop().success());
    assert!(a.stop().success());
}

/// Once a host claimed changelog partition `partition`, every later record is of its epoch or
/// a newer one: no host that lost the partition wrote to it.
fn assert_no_write_after_a_claim(bootstrap: &str, partition: i32) {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers;
    let topic = "headwater-clicks-audit-click-events-changelog";
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "changelog-check")
        .create()
        .unwrap();
    let (_, end) = consumer
        .fetch_watermarks(topic, partition, std::time::Duration::from_secs(10))
        .unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&list).unwrap();
    let (mut claimed, mut next) = (0u64, 0i64);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while next < end {
        assert!(
            std::time::Instant::now() < deadline,
            "changelog read stalled"
        );
        let Some(Ok(m)) = consumer.poll(std::time::Duration::from_millis(200)) else {
            continue;
        };
        next = m.offset() + 1;
        let epoch: u64 = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "headwater.epoch"))
            .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
            .expect("every changelog record names its epoch");
        assert!(
            epoch >= claimed,
            "partition {partition} offset {}: a record of epoch {epoch} after a claim of epoch {claimed}",
            m.offset()
        );
        let is_claim = m.key() == Some(&[0u8][..])
            && m.payload()
                .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                .is_some_and(|v| v.get("positions").is_none());
        if is_claim {
            claimed = epoch;
        }
    }
}

/// The connector's status once its task failed: the state and the trace.
fn failed_trace(host: &Host) -> String {
    let port = crate::harness::rest_port(host);
    host.wait_for("the connector FAILED", || {
        let (_, status) = crate::rest::http(port, "GET", "/connectors/clicks-audit/status", None);
        (status["connector"]["state"] == "FAILED").then(|| {
            status["connector"]["trace"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
    })
}

/// The group has read the topic (committed offsets) but the changelog holds no state — as
/// when it was deleted: the connector fails naming the changelog and partition, rather than
/// take an empty state as the truth.
#[test]
fn state_the_changelog_lost_fails_the_connector_with_its_name() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    let (_mock, bootstrap) = mock_cluster();
    produce_by_user(&bootstrap, "click-events", PARTITIONS, 0..400);
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "connect-clicks-audit")
        .create()
        .unwrap();
    let mut read = rdkafka::TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        read.add_partition_offset("click-events", partition, rdkafka::Offset::Offset(50))
            .unwrap();
    }
    consumer.commit(&read, CommitMode::Sync).unwrap();
    drop(consumer);
    let ws = partitioned_workspace_at(&bootstrap);
    let host = ws.start();
    let trace = failed_trace(&host);
    assert!(
        trace.contains("changelog topic headwater-clicks-audit-click-events-changelog partition")
            && trace.contains("the state is lost")
            && trace.contains("up to offset 50"),
        "{trace}"
    );
    assert!(
        file_windows(&ws).is_empty(),
        "no window from an empty state"
    );
    assert!(host.stop().success());
}

/// A changelog holding records Headwater did not write fails the connector, naming it.
#[test]
fn a_foreign_record_in_the_changelog_fails_the_connector_with_its_name() {
    let (_mock, bootstrap) = mock_cluster();
    for partition in 0..PARTITIONS {
        produce_to_changelog(&bootstrap, partition, b"not ours");
    }
    let trace = trace_of_a_failed_start(&bootstrap);
    assert!(
        trace.contains("changelog topic headwater-clicks-audit-click-events-changelog partition")
            && trace.contains("has no headwater.epoch header"),
        "{trace}"
    );
}

/// A changelog whose log starts past what a restore needs — its first records deleted, as
/// retention does to a topic that is not compacted — fails the connector naming the topic and
/// partition, rather than restore part of the state. (The mock cluster keeps 5 MiB per
/// partition: writing more moves its log start.)
#[test]
fn a_changelog_trimmed_by_retention_fails_the_connector_with_its_name() {
    let (_mock, bootstrap) = mock_cluster();
    let filler = vec![b'x'; 900_000];
    for _ in 0..7 {
        produce_to_changelog(&bootstrap, 1, &filler);
    }
    let trace = trace_of_a_failed_start(&bootstrap);
    assert!(
        trace.contains("changelog topic headwater-clicks-audit-click-events-changelog partition 1")
            && trace.contains("the log starts at offset")
            && trace.contains("needs it from offset 0"),
        "{trace}"
    );
}

/// Writes `payload` to partition `partition` of the sink's changelog, in a batch of its own.
fn produce_to_changelog(bootstrap: &str, partition: i32, payload: &[u8]) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    producer
        .send(
            BaseRecord::<[u8], [u8]>::to("headwater-clicks-audit-click-events-changelog")
                .partition(partition)
                .key(b"k".as_slice())
                .payload(payload),
        )
        .unwrap();
    producer.flush(std::time::Duration::from_secs(10)).unwrap();
}

/// Starts a host running the sink and returns the trace its connector fails with.
fn trace_of_a_failed_start(bootstrap: &str) -> String {
    let ws = partitioned_workspace_at(bootstrap);
    let host = ws.start();
    let trace = failed_trace(&host);
    assert!(host.stop().success());
    trace
}
