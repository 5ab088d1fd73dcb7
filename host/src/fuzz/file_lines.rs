//! A FileSource's JSONL and CSV files: any bytes are read into valid records or invalid ones
//! (dead letters), in order, every byte accounted for, from any position and with any limits.

use std::io::Write;

use proptest::prelude::*;

use crate::connectors::file::reader::{
    Content, CsvOptions, Limits, read_csv, read_csv_header, read_jsonl,
};

/// Lines of JSON (valid or broken), blank lines, CRs, long lines, and raw bytes.
fn file_bytes() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        super::json_value().prop_map(|v| v.to_string().into_bytes()),
        super::tricky_string().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..64),
        Just(b"   ".to_vec()),
        Just(b"a,\"b\"\"c\",\xff".to_vec()),
        Just(vec![b'x'; 300]),
    ];
    (
        prop::collection::vec(line, 0..12),
        prop::sample::select(vec!["\n", "\r\n"]),
        any::<bool>(),
    )
        .prop_map(|(lines, eol, trailing)| {
            let mut bytes = lines.join(eol.as_bytes());
            if trailing {
                bytes.extend(eol.as_bytes());
            }
            bytes
        })
}

fn limits() -> impl Strategy<Value = Limits> {
    (1usize..20, 1usize..400).prop_map(|(max_records, max_line_bytes)| Limits {
        max_records,
        max_line_bytes,
    })
}

proptest! {
    #![proptest_config(super::cases())]

    #[test]
    fn jsonl_reads_every_byte_into_records_or_dead_letters(
        bytes in file_bytes(),
        limits in limits(),
        final_tail in any::<bool>(),
        field in prop::option::of("[a-z]{1,3}"),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::File::create(&path).unwrap().write_all(&bytes).unwrap();
        let mut position = 0;
        // Read as a source does: chunk after chunk, from where the last one ended.
        for _ in 0..bytes.len() + 2 {
            let chunk = read_jsonl(&path, position, limits, 64, final_tail, field.as_deref())
                .expect("a readable file reads");
            prop_assert!(chunk.end >= position && chunk.end <= bytes.len() as u64);
            let mut last = position;
            for item in &chunk.items {
                prop_assert!(item.start >= last && item.end <= chunk.end && item.start <= item.end);
                last = item.end;
                if let Content::Json(text, _) = &item.content {
                    prop_assert!(serde_json::from_slice::<serde_json::Value>(text).is_ok());
                }
            }
            prop_assert!(chunk.items.len() <= limits.max_records);
            if chunk.end == position {
                break;
            }
            position = chunk.end;
        }
    }

    #[test]
    fn csv_reads_every_row_or_refuses_it(
        bytes in file_bytes(),
        limits in limits(),
        delimiter in prop::sample::select(vec![b',', b';', b'\t', b'"']),
        infer_types in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::File::create(&path).unwrap().write_all(&bytes).unwrap();
        let Ok(Some((header, start))) = read_csv_header(&path, delimiter, limits.max_line_bytes)
        else {
            return Ok(());
        };
        let options = CsvOptions { delimiter, infer_types };
        let mut position = start;
        for _ in 0..bytes.len() + 2 {
            let chunk = read_csv(&path, &header, position, limits, 64, true, options)
                .expect("a readable file reads");
            prop_assert!(chunk.end >= position && chunk.end <= bytes.len() as u64);
            if chunk.end == position {
                break;
            }
            position = chunk.end;
        }
    }
}
