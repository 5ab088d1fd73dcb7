//! What a WASM guest returns (the out-batch wire form): nothing in it is trusted. Any spans,
//! indexes, timestamps and error lists become records or a "malformed output" error, never a
//! panic or a read outside the arenas.

use proptest::prelude::*;

use crate::api::record::{Payload, Record};
use crate::wasm::bindings::types::{OutBatch, RecordError};
use crate::wasm::wire::{decode, encode};

const NULL: u32 = u32::MAX;
const INPUT: u32 = 0x8000_0000;

/// A span word: small offsets and lengths, the null and input markers, or anything.
fn word() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..64,
        Just(NULL),
        (0u32..64).prop_map(|v| v | INPUT),
        any::<u32>(),
    ]
}

fn inputs() -> impl Strategy<Value = Vec<Record>> {
    prop::collection::vec((super::tricky_string(), super::json_value()), 1..4).prop_map(|records| {
        records
            .into_iter()
            .map(|(topic, value)| {
                Record::new(
                    topic,
                    Payload::data(crate::api::record::Data::from_json(value)),
                )
            })
            .collect()
    })
}

fn out_batch(inputs: usize) -> impl Strategy<Value = OutBatch> {
    let m = 0usize..5;
    m.prop_flat_map(move |m| {
        (
            prop::collection::vec(any::<u8>(), 0..96),
            // Mostly the right number of span words, sometimes not.
            prop_oneof![
                4 => prop::collection::vec(word(), m * 8),
                1 => prop::collection::vec(word(), 0..48),
            ],
            prop::collection::vec(any::<i64>(), m..=m + 1),
            prop::collection::vec(0u32..(inputs as u32 + 2), m..=m + 1),
            prop::collection::vec((0u32..(inputs as u32 + 2), ".{0,8}"), 0..3),
        )
    })
    .prop_map(|(arena, spans, timestamps, sources, errors)| OutBatch {
        arena,
        spans,
        timestamps,
        sources,
        errors: errors
            .into_iter()
            .map(|(index, message)| RecordError { index, message })
            .collect(),
    })
}

proptest! {
    #![proptest_config(super::cases())]

    #[test]
    fn any_output_decodes_or_is_refused_whole(
        (records, out) in inputs().prop_flat_map(|records| {
            let n = records.len();
            (Just(records), out_batch(n))
        }),
    ) {
        let n = records.len();
        let batch = encode(&records);
        match decode(records, &batch, out) {
            Ok(decoded) => {
                prop_assert!(decoded.origins.iter().all(|&i| i < n));
            }
            Err((back, _)) => prop_assert_eq!(back.len(), n, "the inputs come back"),
        }
    }
}
