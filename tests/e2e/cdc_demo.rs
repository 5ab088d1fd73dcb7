//! The CDC demo's configs (`examples/cdc/`), exactly as shipped: users and orders captured from
//! PostgreSQL, routed to `<table>-cdc`, mirrored to a file and unwrapped into the Parquet
//! offline store.

use std::path::PathBuf;

use serde_json::json;

use crate::harness::{Service, Workspace, jsonl, parquet_rows};
use crate::postgres_cdc::psql;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/cdc")
}

#[test]
fn the_cdc_demo_configs_run_as_shipped() {
    let pg = Service::start("postgres");
    psql(&pg, "postgres", "CREATE DATABASE app");
    psql(
        &pg,
        "app",
        &example().join("schema.sql").display().to_string(),
    );
    let ws = Workspace::new();
    for entry in std::fs::read_dir(example().join("connectors.d")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, ws.connectors_dir().join(path.file_name().unwrap())).unwrap();
    }
    let port = pg.port.to_string();
    let host = ws.start_with_env(&[
        ("HEADWATER_PG_PORT", port.as_str()),
        ("HEADWATER_PG_PASSWORD", "postgres"),
    ]);
    let users = ws.path("var/cdc/users-cdc.jsonl");
    host.wait_for("the users snapshot", || {
        (jsonl(&users).len() >= 3).then_some(())
    });
    psql(
        &pg,
        "app",
        &example().join("changes.sql").display().to_string(),
    );
    // 3 snapshot rows + insert + update + delete + tombstone.
    host.wait_for("the users changes", || {
        (jsonl(&users).len() >= 7).then_some(())
    });
    let orders = ws.path("var/cdc/orders");
    // 3 snapshot rows + insert + update + delete (rewritten with __deleted); the tombstone of
    // the delete is dropped by ExtractNewRecordState.
    host.wait_for("the orders in the offline store", || {
        (parquet_rows(&orders).len() >= 6).then_some(())
    });
    let log = host.log();
    assert!(host.stop().success());
    assert!(!log.contains("Connector task failed"), "{log}");

    let user_ops: Vec<String> = jsonl(&users)
        .iter()
        .map(|l| {
            l["value"]["payload"]["op"]
                .as_str()
                .unwrap_or("tombstone")
                .to_owned()
        })
        .collect();
    assert_eq!(user_ops, ["r", "r", "r", "c", "u", "d", "tombstone"]);
    let lines = jsonl(&users);
    assert!(lines.iter().all(|l| l["topic"] == "users-cdc"));
    assert_eq!(
        lines[4]["value"]["payload"]["after"]["name"],
        "Ada Lovelace"
    );

    let rows: Vec<serde_json::Value> = parquet_rows(&orders).into_iter().map(|(_, r)| r).collect();
    let paid = rows
        .iter()
        .find(|r| r["id"] == json!(2) && r["__op"] == "u")
        .expect("the update of order 2");
    assert_eq!(paid["status"], "paid");
    let deleted = rows
        .iter()
        .find(|r| r["id"] == json!(3) && r["__op"] == "d")
        .expect("the delete of order 3");
    assert_eq!(deleted["__deleted"], "true");
}
