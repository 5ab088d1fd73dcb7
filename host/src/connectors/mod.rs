//! Connectors, one directory each. This module's [`registry`] is the one list of connector
//! classes (Arroyo's `connectors()`); only `lib.rs` hands it to the runtime.

pub mod blackhole;
pub mod file;
pub mod kafka;
pub mod parquet;
pub mod postgres;
pub mod postgres_cdc;
pub mod redis;

use std::sync::Arc;

use crate::api::registry::Registry;

/// Every connector class this build knows.
pub fn registry() -> Registry {
    Registry::new(vec![
        Arc::new(blackhole::BlackholeSinkPlugin),
        Arc::new(file::FileSourcePlugin),
        Arc::new(file::FileSinkPlugin),
        Arc::new(kafka::KafkaSinkPlugin),
        Arc::new(parquet::ParquetSinkPlugin),
        Arc::new(postgres::QuerySourcePlugin),
        Arc::new(postgres_cdc::PostgresCdcPlugin),
        Arc::new(redis::RedisSinkPlugin),
    ])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::config::connector::parse_json;
    use crate::runtime::host::Origin;
    use crate::runtime::prepare::{COMMON_KEYS, SINK_KEYS, SOURCE_KEYS};
    use crate::runtime::status::State;

    #[test]
    fn every_key_has_a_documentation_sentence() {
        // The book's reference pages are generated from these (see `cli/docs.rs`).
        let registry = registry();
        let keys = registry
            .plugins()
            .iter()
            .flat_map(|p| p.keys().iter().map(move |k| (p.class(), k)))
            .chain(
                COMMON_KEYS
                    .iter()
                    .chain(SINK_KEYS)
                    .chain(SOURCE_KEYS)
                    .map(|k| ("common", k)),
            );
        for (class, key) in keys {
            assert!(
                key.doc.trim().ends_with('.') && key.doc.len() > 10,
                "{class} key {} needs a documentation sentence",
                key.name
            );
        }
    }

    fn config(value: serde_json::Value) -> crate::config::connector::ConnectorConfig {
        parse_json(&value.to_string(), "test", None).unwrap()
    }

    async fn wait_for_lines(path: &std::path::Path, n: usize) {
        for _ in 0..600 {
            let lines = std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .count();
            if lines >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{} never reached {n} lines", path.display());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn paused_connectors_hold_records_and_resume_delivers_them() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        let output = dir.path().join("out.jsonl");
        std::fs::write(&input, "{\"n\":1}\n").unwrap();
        let runtime = crate::runtime(&dir.path().join("var")).with_allowed_paths(
            crate::api::allowed_paths::AllowedPaths::new(&[dir.path().to_path_buf()]).unwrap(),
        );
        runtime
            .apply(
                config(json!({"name": "sink", "config": {
                "connector.class": "headwater.file.FileSink",
                "topics": "t", "file": output.display().to_string()}})),
                Origin::Rest,
            )
            .await
            .unwrap();
        runtime
            .apply(
                config(json!({"name": "source", "config": {
                "connector.class": "headwater.file.FileSource",
                "path": input.display().to_string(), "topic": "t", "poll.interval.ms": "20"}})),
                Origin::Rest,
            )
            .await
            .unwrap();
        wait_for_lines(&output, 1).await;

        runtime.pause("source").await.unwrap();
        assert_eq!(runtime.status("source").unwrap().state, State::Paused);
        std::fs::write(&input, "{\"n\":1}\n{\"n\":2}\n").unwrap();
        // The source reads the new line but holds it while paused.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let held = std::fs::read_to_string(&output).unwrap().lines().count();
        assert_eq!(held, 1, "nothing is delivered while paused");

        runtime.resume("source").await.unwrap();
        wait_for_lines(&output, 2).await;
        assert_eq!(runtime.metrics("sink").unwrap().records_out, 2);
        runtime.shutdown().await;
        let offsets = crate::offsets::OffsetStore::new(&dir.path().join("var"))
            .load("source")
            .unwrap();
        let (_, offset) = offsets.iter().next().unwrap();
        assert_eq!(
            offset,
            &json!({"position": 16}),
            "shutdown committed everything"
        );
    }
}
