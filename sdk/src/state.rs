//! Durable keyed state for stateful transforms: `#[transform(stateful = true)]`.
//!
//! The host keeps it in the connector's state store and checkpoints it with the source's
//! offsets, so after a crash it is exactly as it was at the last checkpoint and the records
//! since are processed again: per-user aggregates are never counted twice or lost. The changes
//! a batch makes take effect only if the whole call succeeds.
//!
//! ```no_run
//! use headwater_sdk::prelude::*;
//!
//! /// Running total of `amount` per user.
//! #[transform(stateful = true)]
//! fn running_total(rec: &Record, out: &mut Emitter) -> Result<()> {
//!     let user = rec.require("user_id")?.to_string();
//!     let total = state::get_json(&user)?.and_then(|v| v.as_f64()).unwrap_or(0.0)
//!         + rec.require_f64("amount")?;
//!     state::put_json(&user, &json!(total));
//!     let mut value = rec.json()?.clone();
//!     value["amount_total"] = json!(total);
//!     out.emit(rec.output().value_json(&value));
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! Outside a host (the plugin's own unit tests) the same functions work on an in-memory map.

use crate::error::{Error, Result};
use crate::rt;
use serde_json::Value;

/// The value under `key`.
pub fn get(key: &[u8]) -> Option<Vec<u8>> {
    rt::state().get(key)
}

/// Sets `key` to `value`.
pub fn put(key: &[u8], value: &[u8]) {
    rt::state().put(key, value);
}

/// Removes `key`.
pub fn delete(key: &[u8]) {
    rt::state().delete(key);
}

/// Entries whose key starts with `prefix`, in key order.
pub fn scan(prefix: &[u8]) -> crate::rt::Entries {
    const PAGE: u32 = 1000;
    let mut out = Vec::new();
    let mut start = Vec::new();
    loop {
        let page = rt::state().scan(prefix, &start, PAGE);
        let done = page.len() < PAGE as usize;
        if let Some((last, _)) = page.last() {
            start = last.clone();
            start.push(0);
        }
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// The JSON value under a text key.
pub fn get_json(key: &str) -> Result<Option<Value>> {
    get(key.as_bytes())
        .map(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|e| Error::new(format!("state {key:?} is not JSON: {e}")))
        })
        .transpose()
}

/// Sets a text key to a JSON value.
pub fn put_json(key: &str, value: &Value) {
    put(key.as_bytes(), value.to_string().as_bytes());
}

/// The newest record timestamp the step saw before this batch (epoch ms), if any: timers at
/// or before it are due.
pub fn watermark() -> Option<i64> {
    Some(rt::state().watermark()).filter(|w| *w != i64::MIN)
}

/// Timers kept in the state: `set` one for a time and a name (a user id), and each batch
/// take the ones the watermark has passed with [`timers::due`], e.g. to expire idle users.
pub mod timers {
    use super::{delete, put, watermark};

    const PREFIX: &[u8] = b"\0timer\0";

    fn key(at: i64, name: &[u8]) -> Vec<u8> {
        let mut k = PREFIX.to_vec();
        // Sign flipped: byte order is time order.
        k.extend_from_slice(&((at as u64) ^ (1 << 63)).to_be_bytes());
        k.extend_from_slice(name);
        k
    }

    /// Fires `name` once the watermark reaches `at`.
    pub fn set(at: i64, name: &[u8]) {
        put(&key(at, name), b"");
    }

    /// Cancels a timer set for `at` and `name`.
    pub fn cancel(at: i64, name: &[u8]) {
        delete(&key(at, name));
    }

    /// Removes and returns the timers due (at or before the watermark), earliest first. The
    /// watermark moves once per batch: calls after the first in a batch find nothing new and
    /// cost nothing.
    pub fn due() -> Vec<(i64, Vec<u8>)> {
        let Some(now) = watermark() else {
            return Vec::new();
        };
        if CHECKED.get() == Some(now) {
            return Vec::new();
        }
        CHECKED.set(Some(now));
        let mut fired = Vec::new();
        let mut start = Vec::new();
        loop {
            let page = crate::rt::state().scan(PREFIX, &start, 100);
            let full = page.len() == 100;
            for (k, _) in page {
                let rest = &k[PREFIX.len()..];
                let Some(bytes) = rest.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
                    continue;
                };
                let at = (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64;
                if at > now {
                    return fired;
                }
                delete(&k);
                fired.push((at, rest[8..].to_vec()));
                start = k;
                start.push(0);
            }
            if !full {
                return fired;
            }
        }
    }

    thread_local! {
        /// The watermark `due` last looked at.
        static CHECKED: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
    }
}
