//! A partition's state moving between hosts through its changelog, on tansu: how fast a
//! checkpoint changing N window entries of one partition is written to the changelog (beside
//! the same checkpoint written to the local store, the cost without a changelog), and how fast
//! another host restores the partition from it; then how fast a third host's warm standby copy
//! follows the changelog, and how long taking the partition over from that copy takes.
//!
//!     cargo bench --bench changelog                         # 1,000,000 entries
//!     HEADWATER_BENCH_ROWS=200000 cargo bench --bench changelog

use std::sync::Arc;
use std::time::Instant;

use headwater::api::metrics::ConnectorMetrics;
use headwater::api::offsets::SourceOffsets;
use headwater::runtime::changelog::{Changelog, Standby};
use headwater::runtime::kafka_bus::link::KafkaLink;
use headwater::runtime::partitioned::Ownership;
use headwater::state::StateStore;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[path = "../../tests/support/service.rs"]
mod service;
use service::{Service, repo_root};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/rss.rs"]
mod rss;

#[path = "common/figure.rs"]
mod figure;
#[path = "common/run.rs"]
mod run;
use figure::{Better, Figure, thousands};
use rss::peak_rss_mib;

const TOPIC: &str = "bench-clicks";
const SCOPE: &str = "bench-clicks-0";
const TABLE: &str = "window:window@bench-clicks-0";

/// A window's key as the window step writes it: its end (8 bytes) and the group.
fn key(i: u64) -> Vec<u8> {
    let mut key = (1_748_765_100_000u64 ^ (1 << 63)).to_be_bytes().to_vec();
    key.extend_from_slice(format!("[\"user{i}\"]").as_bytes());
    key
}

/// A window's state: about the size of a count and three distinct pages, encoded.
fn value(i: u64) -> Vec<u8> {
    format!("{i:08}/page/1/page/22/page/333/count").into_bytes()
}

fn main() {
    if run::listing_only() {
        return;
    }
    let rows = run::rows(1_000_000);
    let broker = Service::start("tansu");
    let status = std::process::Command::new("python3")
        .arg(repo_root().join("host/testdata/kafka/client.py"))
        .args(["create", &broker.url, TOPIC, "1"])
        .status()
        .expect("create the topic");
    assert!(status.success());
    let link = Arc::new(KafkaLink::new(
        headwater::kafka::KafkaSettings::new(&broker.url),
        false,
    ));
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let metrics = headwater::api::metrics::ConnectorMetrics::default();
    rt.block_on(async {
        // The host that owns the partition: claims it, then checkpoints `rows` changed windows.
        let store = StateStore::open(&dir.path().join("a.redb")).expect("store");
        let changelog = Changelog::new("bench", Arc::clone(&link)).expect("changelog");
        changelog
            .restore(&store, SCOPE, None, &metrics)
            .await
            .expect("claim the partition");
        let changes: Vec<_> = (0..rows).map(|i| (key(i), Some(value(i)))).collect();
        let mut snapshot = store
            .snapshot(|w| w.apply_changes(TABLE, Arc::new(changes)))
            .expect("snapshot");
        let positions = vec![(json!({"topic": TOPIC, "partition": 0}), rows)];
        let started = Instant::now();
        changelog
            .write(&store, &mut snapshot, &positions)
            .await
            .expect("write the changelog");
        let to_changelog = started.elapsed();
        let started = Instant::now();
        store
            .write_snapshot(&SourceOffsets::default(), snapshot)
            .expect("write the checkpoint");
        let to_store = started.elapsed();
        println!(
            "changelog: checkpoint of {rows} changed windows to the changelog: {:>9.0} entries/s \
             ({:.2} s); the same to the local store: {:>9.0} entries/s ({:.2} s)",
            rows as f64 / to_changelog.as_secs_f64(),
            to_changelog.as_secs_f64(),
            rows as f64 / to_store.as_secs_f64(),
            to_store.as_secs_f64(),
        );

        let size = thousands(rows);
        Figure::beside(
            &format!("state checkpoint to the changelog ({size} windows)"),
            "entries/s",
            rows as f64 / to_changelog.as_secs_f64(),
            (
                "the same to the local store",
                rows as f64 / to_store.as_secs_f64(),
            ),
            None,
        )
        .record();

        // Another host, assigned the partition, restores it.
        let other = StateStore::open(&dir.path().join("b.redb")).expect("store");
        let changelog = Changelog::new("bench", Arc::clone(&link)).expect("changelog");
        let started = Instant::now();
        let restored = changelog
            .restore(
                &other,
                SCOPE,
                Some(i64::try_from(rows).unwrap_or(i64::MAX)),
                &metrics,
            )
            .await
            .expect("restore");
        let restore = started.elapsed();
        assert_eq!(restored.applied, rows, "every entry restored");
        assert_eq!(
            other.get(TABLE, &key(rows - 1)).expect("read"),
            Some(value(rows - 1))
        );
        println!(
            "changelog: restore of a partition holding {rows} windows on another host: \
             {:>9.0} entries/s ({:.2} s), peak RSS of the bench process {:.0} MiB",
            rows as f64 / restore.as_secs_f64(),
            restore.as_secs_f64(),
            peak_rss_mib()
        );

        Figure::alone(
            &format!("state restore from the changelog on another host ({size} windows)"),
            "entries/s",
            rows as f64 / restore.as_secs_f64(),
            Better::Higher,
            None,
        )
        .record();

        // A third host keeps a warm copy of the partition (state.standby.enabled), then takes
        // it over: the restore starts from the copy and reads only what the copy lacks.
        let third = StateStore::open(&dir.path().join("c.redb")).expect("store");
        let changelog = Arc::new(
            Changelog::new("bench", Arc::clone(&link))
                .expect("changelog")
                .with_standby(),
        );
        let ownership = Ownership::new();
        ownership.set_topics(vec![TOPIC.to_owned()]);
        let standby_metrics = Arc::new(ConnectorMetrics::default());
        let cancel = CancellationToken::new();
        let started = Instant::now();
        let follow = tokio::spawn(
            Standby::new(
                Arc::clone(&changelog),
                Arc::clone(&third),
                ownership,
                Arc::clone(&standby_metrics),
            )
            .run(cancel.clone()),
        );
        while standby_metrics.snapshot().standby_updates < rows {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(600),
                "the warm copy did not catch up"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let caught_up = started.elapsed();
        cancel.cancel();
        follow.await.expect("the standby task");
        let started = Instant::now();
        let restored = changelog
            .restore(
                &third,
                SCOPE,
                Some(i64::try_from(rows).unwrap_or(i64::MAX)),
                &metrics,
            )
            .await
            .expect("restore from the warm copy");
        let failover = started.elapsed();
        assert_eq!(
            restored.applied, 0,
            "nothing left to read from the changelog"
        );
        assert!(restored.from_standby >= rows, "the copy holds every entry");
        assert_eq!(
            third.get(TABLE, &key(rows - 1)).expect("read"),
            Some(value(rows - 1))
        );
        println!(
            "changelog: a warm standby copy follows the {rows} changes at {:>9.0} entries/s \
             ({:.2} s); taking the partition over from it: {:.2} s ({} entries from the copy, \
             {} from the changelog)",
            rows as f64 / caught_up.as_secs_f64(),
            caught_up.as_secs_f64(),
            failover.as_secs_f64(),
            restored.from_standby,
            restored.applied,
        );
        Figure::alone(
            &format!("state takeover from a warm standby copy ({size} windows)"),
            "s",
            failover.as_secs_f64(),
            Better::Lower,
            None,
        )
        .record();
    });
}
