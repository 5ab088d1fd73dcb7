//! A test fixture for the host's failure handling. Each record's `action` field says what to do:
//! `panic`, `loop` (forever), `bomb` (allocate until the memory cap), `error` (a bad-record
//! error), `grow` (use 12 MiB for a moment, then pass), `hello` (log a line through the host,
//! then pass); anything else passes. `tag` (a param) is added to passing records so tests can tell
//! reloaded versions apart.

use headwater_sdk::prelude::*;

const PARAMS: &[Param] = &[Param::optional(
    "tag",
    ParamType::String,
    "v1",
    "Written to the `plugin_tag` field of records that pass.",
)];

#[transform(params = PARAMS)]
fn misbehave(rec: &Record, out: &mut Emitter, config: &Config) -> Result<()> {
    match rec.get_str("action") {
        Some("panic") => panic!(
            "asked to panic by record {}",
            rec.get_str("id").unwrap_or("?")
        ),
        Some("loop") => loop {
            std::hint::black_box(rec.index());
        },
        Some("bomb") => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        Some("error") => Err(Error::new("this record asked for an error")),
        Some("hello") => {
            log::info(&format!(
                "hello from record {}",
                rec.get_str("id").unwrap_or("?")
            ));
            out.forward(rec);
            Ok(())
        }
        Some("grow") => {
            let scratch = vec![1u8; 12 << 20];
            std::hint::black_box(&scratch);
            drop(scratch);
            out.forward(rec);
            Ok(())
        }
        _ => {
            let mut value = rec.json()?.clone();
            value["plugin_tag"] = config.string("tag").into();
            out.emit(rec.output().value_json(&value));
            Ok(())
        }
    }
}
