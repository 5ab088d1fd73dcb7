//! Passes every record on unchanged. The baseline for measuring what a WASM step costs.

use headwater_sdk::prelude::*;

#[transform(description = "Passes every record on unchanged.")]
fn pass(rec: &Record, out: &mut Emitter) -> Result<()> {
    out.forward(rec);
    Ok(())
}
