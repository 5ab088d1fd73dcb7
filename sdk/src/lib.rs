//! Write Headwater feature transforms and data-quality checks in Rust, run them as
//! WebAssembly components in any connector's transform chain.
//!
//! You write one function. The SDK turns it into a component that speaks Headwater's plugin
//! contract (`wit/headwater-plugin.wit`): batches cross the boundary as one byte arena, and
//! your function sees one [`Record`] at a time with zero-copy access to its topic, key, value,
//! headers and timestamp, and lazy JSON access to the value.
//!
//! # A transform
//!
//! ```no_run
//! use headwater_sdk::prelude::*;
//!
//! const PARAMS: &[Param] = &[
//!     Param::required("rate", ParamType::Float, "Multiplier to the base currency."),
//!     Param::optional("field", ParamType::String, "amount", "Field holding the amount."),
//! ];
//!
//! struct Settings {
//!     rate: f64,
//!     field: String,
//! }
//!
//! fn settings(config: Config) -> Result<Settings> {
//!     Ok(Settings { rate: config.float("rate")?, field: config.string("field").to_owned() })
//! }
//!
//! /// Adds `amount_base` to every record; records without a numeric amount go to the
//! /// dead-letter queue with the message.
//! #[transform(params = PARAMS, init = settings)]
//! fn to_base_currency(rec: &Record, out: &mut Emitter, s: &Settings) -> Result<()> {
//!     let amount = rec.require_f64(&s.field)?;
//!     let mut value = rec.json()?.clone();
//!     value["amount_base"] = (amount * s.rate).into();
//!     metrics::counter("converted", 1.0, &[]);
//!     out.emit(rec.output().value_json(&value));
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! Emit nothing to drop a record, several to split it; [`Emitter::forward`] passes a record on
//! unchanged without copying it. An `Err` sends that record (only) to the connector's
//! dead-letter queue with your message; a panic is caught by the host, which retries the batch
//! record by record to find the culprit.
//!
//! # A check
//!
//! ```no_run
//! use headwater_sdk::prelude::*;
//!
//! #[check]
//! fn positive_amount(rec: &Record) -> Result<Vec<Violation>> {
//!     Ok(match rec.get_f64("amount") {
//!         Some(a) if a > 0.0 => vec![],
//!         _ => vec![Violation::error("amount.positive", "amount must be a positive number")],
//!     })
//! }
//! # fn main() {}
//! ```
//!
//! The connector decides what each severity does (`violations.error=dlq`,
//! `violations.warning=tag`, ...).
//!
//! # Attribute arguments
//!
//! - `params = CONST`: a `&[Param]` declaring the accepted `config.*` keys, their types and
//!   defaults; `headwater plugin inspect` shows them and the SDK checks them before `init`.
//! - `init = path`: `fn(Config) -> Result<S>`, run once per instance; the function then takes
//!   `&S` as its last argument. Without `init`, a function taking a third argument gets the
//!   [`Config`].
//! - `description = "..."`: shown by `inspect` (defaults to the crate's description).
//!
//! # Building and testing
//!
//! ```text
//! headwater plugin new my-features     # a crate with this SDK, ready to build
//! headwater plugin build               # cargo build --release --target wasm32-wasip2
//! headwater plugin test target/wasm32-wasip2/release/my_features.wasm --input sample.jsonl
//! ```
//!
//! Plain `cargo test` works too: call your function with [`Record::for_test`] and an
//! [`Emitter::new`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod check;
mod config;
mod emitter;
mod error;
pub mod log;
pub mod metrics;
mod record;
#[doc(hidden)]
pub mod rt;
pub mod state;
mod wire;

pub use check::{Severity, Violation};
pub use config::{ANY_UNDER, Config, Param, ParamType};
pub use emitter::{Emitter, Output};
pub use error::{Error, Result};
pub use headwater_sdk_macros::{check, transform};
pub use record::Record;
pub use serde_json::{self, Value, json};

/// The version of the WIT contract this SDK builds against.
pub const WIT_VERSION: &str = "0.1.0";

/// Everything a plugin usually needs.
pub mod prelude {
    pub use crate::{
        Config, Emitter, Error, Param, ParamType, Record, Result, Severity, Value, Violation,
        check, json, log, metrics, state, transform,
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::wire::{INPUT, NO_TIMESTAMP, NULL};
    pub use wit_bindgen;
}
