//! The plugin API: what a connector, a transform and a converter are, and the vocabulary they
//! share — records and schemas, errors, config keys, source offsets, metrics.
//!
//! This module is the bottom layer: it depends on nothing else of ours (the layer test in
//! `code_rules.rs` fails on any arrow out of it). Everything above builds on these types; the
//! runtime drives the traits.
pub mod allowed_env;
pub mod allowed_paths;
pub mod confine;
pub mod connector;
pub mod convert;
pub mod error;
pub mod json_depth;
pub mod kafka;
pub mod logical;
pub mod metrics;
pub mod offsets;
pub mod options;
pub mod record;
pub mod registry;
pub mod retry;
pub mod time;
pub mod transform;
