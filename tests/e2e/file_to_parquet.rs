//! Files in, typed Parquet out: JSONL, CSV and Parquet inputs, checked row by row.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use serde_json::{Value, json};

use crate::harness::{Workspace, parquet_files, parquet_rows, read_batches};

fn tx(id: i64, day: u32, amount: f64, ok: bool) -> Value {
    json!({
        "id": id,
        "user": format!("u{}", id % 7),
        "amount": amount,
        "ok": ok,
        "ts": format!("2024-01-{day:02}T{:02}:15:00Z", id % 24),
    })
}

fn write_parquet_input(path: &std::path::Path, rows: &[Value]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("user", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("ok", DataType::Boolean, false),
        Field::new("ts", DataType::Utf8, false),
    ]));
    let mut decoder = arrow_json::ReaderBuilder::new(Arc::clone(&schema))
        .build_decoder()
        .unwrap();
    decoder.serialize(rows).unwrap();
    let batch = decoder.flush().unwrap().unwrap();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut writer = ArrowWriter::try_new(fs::File::create(path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn source_and_sink(ws: &Workspace, path_fields: bool) {
    ws.put_config(
        "source.json",
        &json!({"name": "tx-source", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": ws.path("in/tx/date=*/*").display().to_string(),
            "topic": "transactions",
            "timestamp.field": "ts",
            "path.partition.fields": path_fields.to_string(),
            "poll.interval.ms": "100",
        }}),
    );
    let sink = json!({
        "connector.class": "headwater.parquet.ParquetSink",
        "topics": "transactions",
        "path": ws.path("out/offline").display().to_string(),
        "rotate.interval.ms": "300",
    });
    ws.put_config("sink.json", &json!({"name": "offline", "config": sink}));
}

#[test]
fn jsonl_csv_and_parquet_inputs_become_typed_date_partitioned_rows() {
    let ws = Workspace::new();
    let day1: Vec<Value> = (0..300)
        .map(|i| tx(i, 1, i as f64 + 0.5, i % 2 == 0))
        .collect();
    let day2: Vec<Value> = (300..600)
        .map(|i| tx(i, 2, i as f64 + 0.25, i % 3 == 0))
        .collect();
    let day3: Vec<Value> = (600..900)
        .map(|i| tx(i, 3, i as f64 + 0.75, false))
        .collect();
    let d1 = ws.path("in/tx/date=2024-01-01/part-0.jsonl");
    fs::create_dir_all(d1.parent().unwrap()).unwrap();
    fs::write(
        &d1,
        day1.iter().map(|v| format!("{v}\n")).collect::<String>(),
    )
    .unwrap();
    let d2 = ws.path("in/tx/date=2024-01-02/part-0.csv");
    fs::create_dir_all(d2.parent().unwrap()).unwrap();
    let mut csv = String::from("id,user,amount,ok,ts\n");
    for v in &day2 {
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            v["id"],
            v["user"].as_str().unwrap(),
            v["amount"],
            v["ok"],
            v["ts"].as_str().unwrap()
        ));
    }
    fs::write(&d2, csv).unwrap();
    write_parquet_input(&ws.path("in/tx/date=2024-01-03/part-0.parquet"), &day3);

    source_and_sink(&ws, true);
    let host = ws.start();
    let out = ws.path("out/offline");
    let rows = host.wait_for("900 rows in Parquet", || {
        let rows = parquet_rows(&out);
        (rows.len() >= 900).then_some(rows)
    });
    assert!(host.stop().success());

    assert_eq!(rows.len(), 900, "every input row exactly once");
    let expected: BTreeMap<i64, &Value> = day1
        .iter()
        .chain(&day2)
        .chain(&day3)
        .map(|v| (v["id"].as_i64().unwrap(), v))
        .collect();
    for (path, row) in &rows {
        let id = row["id"].as_i64().expect("id is an integer column");
        let want = expected[&id];
        for field in ["user", "amount", "ok", "ts"] {
            assert_eq!(row[field], want[field], "row {id} field {field}");
        }
        let date = &want["ts"].as_str().unwrap()[..10];
        assert!(
            path.to_string_lossy()
                .contains(&format!("/transactions/date={date}/")),
            "row {id} is in {path:?}, expected partition date={date}"
        );
        // The Hive partition of the input path becomes a field.
        assert_eq!(row["date"], json!(date));
    }
    for file in parquet_files(&out) {
        let batches = read_batches(&file);
        let schema = batches[0].schema();
        assert_eq!(
            schema.field_with_name("id").unwrap().data_type(),
            &DataType::Int64
        );
        assert_eq!(
            schema.field_with_name("amount").unwrap().data_type(),
            &DataType::Float64
        );
        assert_eq!(
            schema.field_with_name("ok").unwrap().data_type(),
            &DataType::Boolean
        );
        assert_eq!(
            schema.field_with_name("user").unwrap().data_type(),
            &DataType::Utf8
        );
    }
}

#[test]
fn connect_envelopes_give_logical_types_and_the_codec_is_zstd() {
    let ws = Workspace::new();
    let schema = json!({
        "type": "struct", "name": "tx", "optional": false,
        "fields": [
            {"field": "id", "type": "int64", "optional": false},
            {"field": "at", "type": "int64", "optional": false, "name": "org.apache.kafka.connect.data.Timestamp"},
            {"field": "day", "type": "int32", "optional": true, "name": "org.apache.kafka.connect.data.Date"},
            {"field": "price", "type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal",
             "parameters": {"scale": "2", "connect.decimal.precision": "10"}}
        ]
    });
    // price 12345 (0x3039) at scale 2 = 123.45; at = 2024-03-05T00:00:00Z.
    let lines: String = (0..50)
        .map(|i| {
            json!({"schema": schema, "payload": {"id": i, "at": 1_709_596_800_000i64, "day": 19787, "price": "MDk="}})
                .to_string()
                + "\n"
        })
        .collect();
    let input = ws.path("in/envelopes.jsonl");
    fs::write(&input, lines).unwrap();
    ws.put_config(
        "source.json",
        &json!({"name": "env-source", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": input.display().to_string(),
            "topic": "typed",
        }}),
    );
    ws.put_config(
        "sink.json",
        &json!({"name": "typed-sink", "config": {
            "connector.class": "headwater.parquet.ParquetSink",
            "topics": "typed",
            "path": ws.path("out/typed").display().to_string(),
            "partition.field": "at",
            "rotate.interval.ms": "300",
        }}),
    );
    let host = ws.start();
    let out = ws.path("out/typed");
    host.wait_for("50 typed rows", || {
        (parquet_rows(&out).len() >= 50).then_some(())
    });
    assert!(host.stop().success());
    let files = parquet_files(&out);
    assert!(
        files
            .iter()
            .all(|f| f.to_string_lossy().contains("/typed/date=2024-03-05/"))
    );
    let batch = &read_batches(&files[0])[0];
    let schema = batch.schema();
    assert_eq!(
        schema.field_with_name("at").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into()))
    );
    assert_eq!(
        schema.field_with_name("day").unwrap().data_type(),
        &DataType::Date32
    );
    assert_eq!(
        schema.field_with_name("price").unwrap().data_type(),
        &DataType::Decimal128(10, 2)
    );
    assert!(!schema.field_with_name("id").unwrap().is_nullable());
    let rows = parquet_rows(&out);
    assert_eq!(rows[0].1["price"], json!(123.45));
    assert_eq!(rows[0].1["day"], json!("2024-03-05"));
    // zstd by default.
    let reader =
        parquet::file::reader::SerializedFileReader::new(fs::File::open(&files[0]).unwrap())
            .unwrap();
    use parquet::file::reader::FileReader;
    let codec = reader.metadata().row_group(0).column(0).compression();
    assert!(
        matches!(codec, parquet::basic::Compression::ZSTD(_)),
        "{codec:?}"
    );
}

#[test]
fn a_topics_date_partitions_share_its_columns() {
    // A field only the first day has: the second day's file has its column too (null), so a
    // reader taking one file's schema (Spark without mergeSchema, duckdb) sees every column.
    let ws = Workspace::new();
    let mut lines = String::new();
    for i in 0..50 {
        let mut row = tx(i, 1, 2.5, true);
        row["coupon"] = json!(format!("C{i}"));
        lines.push_str(&format!("{row}\n"));
    }
    for i in 50..100 {
        lines.push_str(&format!("{}\n", tx(i, 2, 2.5, true)));
    }
    let input = ws.path("in/tx/date=2024-01-01/part-0.jsonl");
    fs::create_dir_all(input.parent().unwrap()).unwrap();
    fs::write(&input, lines).unwrap();
    source_and_sink(&ws, false);
    let host = ws.start();
    let out = ws.path("out/offline");
    let rows = host.wait_for("100 rows", || {
        let rows = parquet_rows(&out);
        (rows.len() >= 100).then_some(rows)
    });
    assert!(host.stop().success());
    assert_eq!(rows.len(), 100);
    for (path, row) in &rows {
        let id = row["id"].as_i64().unwrap();
        let day = if id < 50 { "2024-01-01" } else { "2024-01-02" };
        assert!(path.to_string_lossy().contains(&format!("date={day}")));
        let coupon = if id < 50 {
            json!(format!("C{id}"))
        } else {
            Value::Null
        };
        assert_eq!(row["coupon"], coupon, "row {id}");
    }
    let files = parquet_files(&out);
    let first = read_batches(&files[0])[0].schema();
    assert!(first.field_with_name("coupon").is_ok(), "{first:?}");
    for file in &files {
        assert_eq!(read_batches(file)[0].schema(), first, "{file:?}");
    }
}

#[test]
fn output_is_readable_by_pyarrow_and_duckdb() {
    let ws = Workspace::new();
    let rows: Vec<Value> = (0..200).map(|i| tx(i, 1, 1.5, true)).collect();
    let input = ws.path("in/tx/date=2024-01-01/part-0.jsonl");
    fs::create_dir_all(input.parent().unwrap()).unwrap();
    fs::write(
        &input,
        rows.iter().map(|v| format!("{v}\n")).collect::<String>(),
    )
    .unwrap();
    source_and_sink(&ws, false);
    let host = ws.start();
    let out = ws.path("out/offline");
    host.wait_for("200 rows", || {
        (parquet_rows(&out).len() >= 200).then_some(())
    });
    assert!(host.stop().success());
    let script = r#"
import sys, pyarrow.dataset as ds, duckdb
root = sys.argv[1]
t = ds.dataset(root + "/transactions", format="parquet", partitioning="hive").to_table()
con = duckdb.connect()
n, total, days = con.execute(
    "select count(*), sum(amount), count(distinct date) from read_parquet(?, hive_partitioning=true)",
    [root + "/transactions/*/*.parquet"]).fetchone()
print(t.num_rows, n, total, days)
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&out)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "pyarrow/duckdb could not read the output (run scripts/setup.sh):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "200 200 300.0 1"
    );
}

#[test]
fn an_unreadable_parquet_input_waits_and_a_deleted_file_is_let_go() {
    let ws = Workspace::new();
    let dir = ws.path("in/tx/date=2024-01-05");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("a.jsonl"), format!("{}\n", tx(1, 5, 1.0, true))).unwrap();
    // Still being copied in: not a Parquet file yet.
    fs::write(dir.join("b.parquet"), b"PAR1 half a file").unwrap();
    source_and_sink(&ws, false);
    let host = ws.start();
    let out = ws.path("out/offline");
    host.wait_for("the JSONL row", || {
        (!parquet_rows(&out).is_empty()).then_some(())
    });
    host.wait_for_log("Cannot open a Parquet file yet; will retry.");
    // The copy completes (atomically, as copy tools do).
    write_parquet_input(&ws.path("in/b.tmp"), &[tx(2, 5, 2.0, false)]);
    fs::rename(ws.path("in/b.tmp"), dir.join("b.parquet")).unwrap();
    host.wait_for("the Parquet row", || {
        (parquet_rows(&out).len() >= 2).then_some(())
    });
    fs::remove_file(dir.join("a.jsonl")).unwrap();
    host.wait_for_log("Input file disappeared; no longer reading it.");
    assert!(host.stop().success());
    let mut ids: Vec<i64> = parquet_rows(&out)
        .iter()
        .map(|(_, r)| r["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2]);
}
