//! The online-store example (`examples/online-store/`), its configs as shipped, with real
//! PostgreSQL, Redis and a Kafka-protocol broker: users captured by CDC, unwrapped, given
//! features by the `user-features` plugin and mirrored as Redis hashes; click events from Kafka
//! kept per user, newest first, whatever order they arrive in.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use redis::Commands;
use serde_json::Value;

use crate::harness::{Service, Workspace};
use crate::postgres_cdc::psql;
use crate::redis_sink::connect;
use crate::wasm::plugins;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Copies the example's configs; plugin modules (relative to the repository, where the demo
/// runs) become absolute paths.
fn install_configs(ws: &Workspace) {
    let dir = repo().join("examples/online-store/connectors.d");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for (key, value) in config["config"].as_object_mut().unwrap() {
            if let Some(module) = key.ends_with(".module").then(|| value.as_str()).flatten() {
                let name = module.rsplit('/').next().unwrap();
                *value = plugins().join(name).display().to_string().into();
            }
        }
        ws.put_config(path.file_name().unwrap().to_str().unwrap(), &config);
    }
}

fn hash(conn: &mut redis::Connection, key: &str) -> HashMap<String, String> {
    conn.hgetall(key).unwrap()
}

#[test]
fn the_online_store_example_runs_as_shipped() {
    let pg = Service::start("postgres");
    let redis = Service::start("redis");
    let broker = Service::start("tansu");
    psql(&pg, "postgres", "CREATE DATABASE app");
    let sql = |file: &str| repo().join("examples/cdc").join(file).display().to_string();
    psql(&pg, "app", &sql("schema.sql"));
    psql(
        &pg,
        "app",
        "INSERT INTO users (id, email, name, country, created_at) \
         VALUES (5, 'kim@Gmail.com', 'Kim', 'KR', now() - interval '1000 days 1 hour')",
    );

    let ws = Workspace::new();
    ws.put_worker_config(&format!(
        "[kafka]\nbootstrap_servers = \"{}\"\n",
        broker.url
    ));
    install_configs(&ws);
    let pg_port = pg.port.to_string();
    let host = ws.start_with_env(&[
        ("HEADWATER_PG_PORT", pg_port.as_str()),
        ("HEADWATER_PG_PASSWORD", "postgres"),
        ("HEADWATER_REDIS_URI", redis.url.as_str()),
    ]);
    let mut conn = connect(&redis);

    host.wait_for("the users snapshot in Redis", || {
        (hash(&mut conn, "user:5").len() > 1 && hash(&mut conn, "user:1").len() > 1).then_some(())
    });
    let kim = hash(&mut conn, "user:5");
    assert_eq!(kim["email_domain"], "gmail.com");
    assert_eq!(kim["email_is_free"], "true");
    assert_eq!(kim["account_age_days"], "1000");
    assert_eq!(kim["name"], "Kim");
    let mut fields: Vec<String> = hash(&mut conn, "user:2").into_keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "account_age_days",
            "country",
            "created_at",
            "email_domain",
            "email_is_free",
            "id",
            "name"
        ],
        "the email (PII) is dropped before Redis"
    );

    psql(&pg, "app", &sql("changes.sql"));
    host.wait_for("the users changes in Redis", || {
        let ada = hash(&mut conn, "user:1");
        (hash(&mut conn, "user:3").is_empty()
            && !hash(&mut conn, "user:4").is_empty()
            && ada["name"] == "Ada Lovelace")
            .then_some(())
    });

    let out = Command::new("python3")
        .arg(repo().join("examples/online-store/clicks.py"))
        .args([broker.url.as_str(), "clicks", "200"])
        .output()
        .expect("run clicks.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let newest: HashMap<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    host.wait_for("every user's newest click in Redis", || {
        newest
            .iter()
            .all(|(user, click)| {
                hash(&mut conn, &format!("user_clicks:{user}"))
                    .get("last_click_ts")
                    .is_some_and(|ts| ts.parse::<i64>().ok() == click["ts"].as_i64())
            })
            .then_some(())
    });
    for (user, click) in &newest {
        let key = format!("user_clicks:{user}");
        let stored = hash(&mut conn, &key);
        assert_eq!(
            stored["last_page"],
            click["page"].as_str().unwrap(),
            "{key}"
        );
        assert!(!stored.contains_key("session"), "{key}: {stored:?}");
        let ttl: i64 = conn.ttl(&key).unwrap();
        assert!((604_000..=604_800).contains(&ttl), "{key}: ttl {ttl}");
    }
    let log = host.log();
    assert!(host.stop().success());
    assert!(!log.contains("Connector task failed"), "{log}");
}
