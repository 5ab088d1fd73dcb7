//! The services later connectors test against start from `scripts/service.sh` and answer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use crate::harness::Service;

#[test]
fn postgres_starts_with_logical_replication() {
    let pg = Service::start("postgres");
    let output = Command::new("psql")
        .args(["-X", "-A", "-t", "-c", "show wal_level", &pg.url])
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "logical");
}

#[test]
fn redis_answers_ping() {
    let redis = Service::start("redis");
    let mut conn = TcpStream::connect(("127.0.0.1", redis.port)).expect("connect to redis");
    conn.write_all(b"PING\r\n").unwrap();
    let mut reply = [0u8; 7];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
}

#[test]
fn tansu_answers_a_kafka_api_versions_request() {
    let broker = Service::start("tansu");
    let mut conn = TcpStream::connect(("127.0.0.1", broker.port)).expect("connect to tansu");
    // ApiVersions v0: api_key 18, version 0, correlation id 7, null client id.
    let body: [u8; 10] = [0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];
    conn.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    conn.write_all(&body).unwrap();
    let mut size = [0u8; 4];
    conn.read_exact(&mut size).unwrap();
    let mut response = vec![0u8; u32::from_be_bytes(size) as usize];
    conn.read_exact(&mut response).unwrap();
    assert_eq!(&response[..4], &7i32.to_be_bytes(), "correlation id echoed");
    assert_eq!(&response[4..6], &[0, 0], "error code NONE");
}
