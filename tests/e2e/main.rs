//! End-to-end tests: the `headwater` binary on real files, and the real services the later
//! connectors need (PostgreSQL, Redis, a Kafka-protocol broker), all on loopback.
//!
//! One test binary with a module per area (wasmtime's `tests/all` layout).

#![allow(clippy::unwrap_used)]

mod bad_input;
mod batch;
mod cdc_demo;
mod cdc_ops;
mod cdc_recovery;
mod cdc_signals;
mod cli_client;
mod console;
mod crash;
mod dlq_replay;
mod features_example;
mod file_to_parquet;
mod flink_parity;
mod harness;
mod kafka;
mod kafka_scale_out;
mod kafka_windows;
mod locked_down;
mod online_store;
mod postgres_cdc;
mod postgres_query;
mod redis_sink;
mod rest;
#[path = "../support/service.rs"]
mod service;
mod services;
mod sink_tasks;
mod validate;
mod wasm;
mod wasm_state;
mod watcher;
mod windows;
