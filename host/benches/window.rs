//! Windowed features: events/s through `headwater.window.Aggregate` (5-minute tumbling
//! windows, `count` + exact `count_distinct`), with its durable state store, and the peak RSS.
//!
//!     cargo bench --bench window
//!     HEADWATER_BENCH_ROWS=1000000 cargo bench --bench window
//!
//! Two runs, each in its own process so each peak RSS (VmHWM) is its own:
//! - 100,000 groups (users), the default cache of 100,000 windows;
//! - 1,000,000 groups with the same cache: state spills to disk, memory stays bounded.
//!
//! Records are raw JSON bytes, as a file or Kafka source hands them over; batches of 1,000;
//! event time advances 1 ms per event, 20 pages, so windows close as the stream goes on.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use headwater::api::options::Options;
use headwater::api::record::{Payload, Record};
use headwater::api::transform::BatchTransform;
use headwater::state::{StateStore, StatefulStep};
use headwater::window::WindowStep;

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

const BATCH: usize = 1000;

fn run(groups: u64, events: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = StateStore::open(&dir.path().join("state.redb")).expect("state store");
    let options: BTreeMap<String, String> = [
        ("group.by", "user_id"),
        ("window.size.ms", "300000"),
        ("time.field", "ts"),
        ("watermark.delay.ms", "5000"),
        (
            "aggregates",
            "click_count_5min:count,unique_pages_5min:count_distinct(page)",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut options = Options::new(options);
    let ctx = headwater::api::transform::ChainContext {
        connector: "bench".into(),
        data_dir: dir.path().to_path_buf(),
        inputs: headwater::api::transform::Inputs::One,
        state_scope: None,
        per_partition: false,
        kafka: false,
        bounded: false,
    };
    let step = WindowStep::new("bench", &mut options, &ctx).expect("valid window config");
    step.restore(&store).expect("restore");
    let mut emitted = 0usize;
    let mut max_resident = 0usize;
    let started = Instant::now();
    let mut i = 0u64;
    while i < events {
        let mut batch = Vec::with_capacity(BATCH);
        for _ in 0..BATCH.min((events - i) as usize) {
            // Groups visited in a scrambled order, so the cache sees no neat locality.
            let user = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % groups;
            let json = format!(
                "{{\"user_id\":\"u{user}\",\"page\":\"/p/{}\",\"ts\":{}}}",
                (i * 7) % 20,
                1_767_225_600_000u64 + i
            );
            batch.push(Record::new(
                "clicks",
                Payload::json_bytes(Bytes::from(json)),
            ));
            i += 1;
        }
        let out = step.apply_batch(batch);
        assert!(out.fatal.is_none(), "{:?}", out.fatal);
        emitted += out.kept.len();
        max_resident = max_resident.max(step.resident());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = events as f64 / elapsed;
    let rss = peak_rss_mib();
    let path = format!(
        "window aggregate, {} groups ({} events)",
        thousands(groups),
        thousands(events)
    );
    // The goals are for 1,000,000 groups.
    let million = groups >= 1_000_000;
    Figure::alone(
        &path,
        "events/s",
        rate,
        Better::Higher,
        million.then_some(300_000.0),
    )
    .record();
    Figure::alone(
        &format!("{path}, peak RSS"),
        "MiB",
        rss,
        Better::Lower,
        million.then_some(200.0),
    )
    .record();
    println!(
        "{groups:>9} groups {events:>9} events: {:>9.0} events/s  {emitted:>8} windows emitted  \
         peak RSS {:>6.0} MiB  max windows in memory {max_resident}",
        rate, rss,
    );
}

fn main() {
    if run::listing_only() {
        return;
    }
    let events = run::rows(3_000_000);
    if let Ok(groups) = std::env::var("HEADWATER_BENCH_WINDOW_GROUPS") {
        // As `headwater run` sets the process up (transparent huge pages off).
        headwater::runtime::host::prepare_process().expect("turning transparent huge pages off");
        run(groups.parse().expect("group count"), events);
        return;
    }
    let me = std::env::current_exe().expect("own path");
    for groups in ["100000", "1000000"] {
        let status = std::process::Command::new(&me)
            .arg("--bench")
            .env("HEADWATER_BENCH_WINDOW_GROUPS", groups)
            .env("HEADWATER_BENCH_ROWS", events.to_string())
            .status()
            .expect("run the bench child");
        assert!(status.success());
    }
}
