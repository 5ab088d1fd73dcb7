//! A locked-down host: the REST API over TLS for a real client (curl), clients that hold
//! connections without finishing a request, and secrets that appear nowhere the host writes or
//! answers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{PATIENCE, Service, Workspace, rest_port};
use crate::postgres_cdc::{cdc_config, psql};
use crate::rest::http;

/// A CA and a certificate for 127.0.0.1 signed by it, made by openssl in `dir`: `ca.crt`,
/// `rest.crt`, `rest.key`.
fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=headwater-test-ca",
                "-days",
                "2",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                "rest.key",
                "-out",
                "rest.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "rest.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "rest.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

/// curl's exit code, its HTTP status and its body.
fn curl(args: &[&str]) -> (i32, u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        out.status.code().unwrap_or(-1),
        status.trim().parse().unwrap_or(0),
        body.to_owned(),
    )
}

/// Whether the server closed `conn` (a read returns end of file or a reset) within `wait`.
fn closed_by_server(conn: &mut TcpStream, wait: Duration) -> bool {
    conn.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            // A 408 or similar before closing is fine; keep reading to the end.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn the_api_serves_https_to_curl_with_its_ca_and_drops_silent_clients() {
    let ws = Workspace::new();
    certificates(&ws.path(""));
    ws.put_worker_config(
        "[rest]\ntls_cert = \"rest.crt\"\ntls_key = \"rest.key\"\nclient_timeout_secs = 2\n",
    );
    let host = ws.start();
    let port = rest_port(&host);
    let ready: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path("ready.json")).unwrap()).unwrap();
    let url = format!("https://127.0.0.1:{port}");
    assert_eq!(
        ready["url"],
        url.as_str(),
        "the ready file gives the https URL"
    );

    let cacert = ws.path("ca.crt").display().to_string();
    let (code, status, body) = curl(&["--cacert", &cacert, &format!("{url}/connectors")]);
    assert_eq!(
        (code, status, body.as_str()),
        (0, 200, "[]"),
        "curl with the CA"
    );

    // A connector created over HTTPS runs.
    std::fs::write(ws.path("in/events.jsonl"), "{\"n\":1}\n{\"n\":2}\n").unwrap();
    for (name, config) in [
        ("sink", ws.file_sink("sink", "events", "out/events.jsonl")),
        (
            "source",
            json!({"name": "source", "config": {
                "connector.class": "headwater.file.FileSource",
                "path": ws.path("in/events.jsonl"), "topic": "events", "poll.interval.ms": "50"}}),
        ),
    ] {
        let (code, status, body) = curl(&[
            "--cacert",
            &cacert,
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            &config.to_string(),
            &format!("{url}/connectors"),
        ]);
        assert_eq!((code, status), (0, 201), "creating {name}: {body}");
    }
    host.wait_for("two records over the HTTPS-created pipeline", || {
        let n = std::fs::read_to_string(ws.path("out/events.jsonl"))
            .unwrap_or_default()
            .lines()
            .count();
        (n == 2).then_some(())
    });

    // Headwater's own client, with the CA.
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_headwater"))
            .args(["connectors", "--url", &url])
            .args(args)
            .env_remove("HEADWATER_REST_TOKEN")
            .output()
            .expect("run headwater connectors")
    };
    let listed = cli(&["--cacert", &cacert, "list"]);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success() && stdout.contains("source") && stdout.contains("RUNNING"),
        "headwater connectors list over HTTPS: {stdout} {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let untrusted = cli(&["list"]);
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        !untrusted.status.success() && stderr.contains("certificate"),
        "without --cacert the private CA is not trusted: {stderr}"
    );

    // Without the CA curl refuses the certificate (60: peer certificate cannot be
    // authenticated); plain HTTP gets no answer.
    let (code, _, _) = curl(&[&format!("{url}/connectors")]);
    assert_eq!(
        code, 60,
        "curl without the CA must not trust the certificate"
    );
    let (code, status, _) = curl(&[&format!("http://127.0.0.1:{port}/connectors")]);
    assert!(
        code != 0 && status != 200,
        "plain HTTP on the TLS port: curl {code}, {status}"
    );

    // A client that connects and never starts its handshake is dropped after
    // client_timeout_secs, and meanwhile the API answers others.
    let mut silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let (code, status, _) = curl(&["--cacert", &cacert, &format!("{url}/health")]);
    assert_eq!(
        (code, status),
        (0, 200),
        "the API answers beside silent clients"
    );
    for conn in &mut silent {
        assert!(
            closed_by_server(conn, PATIENCE),
            "a client that never completes its TLS handshake is disconnected"
        );
    }
    host.stop();
}

#[test]
fn a_certificate_that_cannot_be_used_stops_the_host_with_the_file_named() {
    let ws = Workspace::new();
    std::fs::write(ws.path("rest.crt"), "not a certificate\n").unwrap();
    std::fs::write(ws.path("rest.key"), "not a key\n").unwrap();
    ws.put_worker_config("[rest]\ntls_cert = \"rest.crt\"\ntls_key = \"rest.key\"\n");
    let mut host = ws.start();
    let status = host.wait_for_exit();
    assert!(!status.success());
    let log = host.log();
    assert!(
        log.contains("[rest] tls_cert rest.crt: no certificate in it"),
        "the error names the file and what was expected: {log}"
    );

    ws.put_worker_config("[rest]\ntls_cert = \"rest.crt\"\n");
    let mut host = ws.start();
    assert!(!host.wait_for_exit().success());
    assert!(
        host.log()
            .contains("[rest] tls_cert and tls_key go together"),
        "{}",
        host.log()
    );
}

#[test]
fn slow_clients_neither_block_the_api_nor_keep_their_connections() {
    let ws = Workspace::new();
    ws.put_worker_config("[rest]\nclient_timeout_secs = 2\nmax_connections = 40\n");
    let host = ws.start();
    let port = rest_port(&host);

    // Thirty clients send half a request's headers and stop; ten send headers announcing a
    // body they never send.
    let mut slow: Vec<TcpStream> = Vec::new();
    for _ in 0..30 {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.write_all(b"GET /connectors HTTP/1.1\r\nHost: loc")
            .unwrap();
        slow.push(conn);
    }
    for _ in 0..10 {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.write_all(
            b"POST /connectors HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"name\":",
        )
        .unwrap();
        slow.push(conn);
    }
    // The cap (40) is reached: the next client waits in the backlog until the slow ones are
    // dropped, then gets its answer.
    let (status, body) = http(port, "GET", "/connectors", None);
    assert_eq!((status, body), (200, json!([])));
    for conn in &mut slow {
        assert!(
            closed_by_server(conn, PATIENCE),
            "a client slower than client_timeout_secs is disconnected"
        );
    }
    let log = host.log();
    assert!(
        log.contains("as many connections open as it allows"),
        "reaching the cap is logged: {log}"
    );
    host.stop();
}

/// Every file under `dir` (but `skip`) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str, skip: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path != skip
                && std::fs::read(&path)
                    .unwrap_or_default()
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes())
            {
                found.push(path);
            }
        }
    }
    found
}

/// Passwords given to connectors created over REST — directly, through `${env:...}`, in a
/// Kafka client override — used by running pipelines, failing ones and a refused one: none of
/// them is in anything the host answered (REST, metrics) or wrote (its log at debug level,
/// dead letters, offsets, state, output), except the connector store, which is its owner's
/// only.
#[test]
fn planted_passwords_appear_nowhere_the_host_wrote_or_answered() {
    let redis_password = "planted-redis-93f1";
    let pg_password = "planted-pg-4c2e";
    let jaas = "planted-jaas-7a61";
    let env_password = "planted-env-0d5b";
    let uri_password = "planted-uri-5e88";
    let validate_password = "planted-validate-2b90";
    let planted = [
        redis_password,
        pg_password,
        jaas,
        env_password,
        uri_password,
        validate_password,
    ];

    let redis = Service::start("redis");
    let mut conn = crate::redis_sink::connect(&redis);
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(redis_password)
        .exec(&mut conn)
        .unwrap();
    let pg = Service::start("postgres");
    psql(
        &pg,
        "postgres",
        "CREATE TABLE public.accounts (id int PRIMARY KEY, owner text)",
    );
    psql(
        &pg,
        "postgres",
        "INSERT INTO public.accounts VALUES (1, 'ada')",
    );

    let ws = Workspace::new();
    ws.put_worker_config(
        "[files]\nallowed_paths = [\"in\", \"out\", \"var\"]\n[providers]\nallowed_env = [\"HW_TEST_*\"]\n",
    );
    std::fs::write(
        ws.path("in/events.jsonl"),
        "{\"user\":\"u1\",\"n\":\"7\"}\n{\"user\":\"u2\",\"n\":\"seven\"}\n",
    )
    .unwrap();
    let host = ws.start_confined(&[("HW_TEST_DB_PASSWORD", env_password)]);
    let port = rest_port(&host);
    let path = |rel: &str| ws.path(rel).display().to_string();
    let mut cdc = cdc_config(&pg, "accounts", "pg", "public.accounts", json!({}));
    cdc["config"]["database.password"] = json!(pg_password);
    let connectors = [
        json!({"name": "casting", "config": {
            "connector.class": "headwater.file.FileSink", "topics": "events",
            "file": path("out/cast.jsonl"), "errors.tolerance": "all",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "transforms": "cast",
            "transforms.cast.type": "org.apache.kafka.connect.transforms.Cast$Value",
            "transforms.cast.spec": "n:int32",
            "consumer.override.sasl.jaas.config": jaas}}),
        json!({"name": "online", "config": {
            "connector.class": "headwater.redis.RedisSink", "topics": "events",
            "redis.uri": format!("redis://:{redis_password}@127.0.0.1:{}", redis.port),
            "key.prefix": "user:", "key.fields": "user"}}),
        cdc,
        json!({"name": "accounts-out", "config": {
            "connector.class": "headwater.file.FileSink", "topics": "pg.public.accounts",
            "file": path("out/accounts.jsonl")}}),
        json!({"name": "unreachable-db", "config": {
            "connector.class": "headwater.postgres.QuerySource",
            "connection.url": "jdbc:postgresql://127.0.0.1:1/postgres",
            "connection.user": "postgres",
            "connection.password": "${env:HW_TEST_DB_PASSWORD}",
            "mode": "bulk", "query": "SELECT 1 AS one", "topic.prefix": "q",
            "topic.unsubscribed": "discard"}}),
        json!({"name": "unreachable-redis", "config": {
            "connector.class": "headwater.redis.RedisSink", "topics": "events",
            "redis.uri": format!("redis://:{uri_password}@127.0.0.1:1")}}),
        // The source last: a sink subscribed later would not see what it already sent.
        json!({"name": "events", "config": {
            "connector.class": "headwater.file.FileSource", "path": path("in/events.jsonl"),
            "topic": "events", "poll.interval.ms": "50"}}),
    ];
    for config in &connectors {
        let (status, body) = http(port, "POST", "/connectors", Some(config));
        assert_eq!(status, 201, "{config}: {body}");
    }
    // A refused config that holds a password: the validation answer hides it.
    let refused = json!({"connector.class": "headwater.redis.RedisSink", "topics": "events",
        "redis.uri": format!("redis://:{validate_password}@127.0.0.1:1"),
        "redis.layout": "nonsense"});
    let mut answers = Vec::new();
    answers.push(
        http(
            port,
            "PUT",
            "/connector-plugins/headwater.redis.RedisSink/config/validate",
            Some(&refused),
        )
        .1,
    );
    answers.push(http(port, "PUT", "/connectors/refused/config", Some(&refused)).1);

    let lines = |rel: &str| {
        std::fs::read_to_string(ws.path(rel))
            .unwrap_or_default()
            .lines()
            .count()
    };
    host.wait_for("a record cast", || {
        (lines("out/cast.jsonl") == 1).then_some(())
    });
    host.wait_for("a dead letter", || {
        (lines("var/dlq/casting.jsonl") == 1).then_some(())
    });
    host.wait_for("the CDC row", || {
        (lines("out/accounts.jsonl") == 1).then_some(())
    });
    let mut conn = redis::Client::open(format!(
        "redis://:{redis_password}@127.0.0.1:{}",
        redis.port
    ))
    .unwrap()
    .get_connection()
    .unwrap();
    host.wait_for("the online store", || {
        let online: Option<String> = redis::cmd("HGET")
            .arg("user:u2")
            .arg("n")
            .query(&mut conn)
            .ok();
        (online.as_deref() == Some("seven")).then_some(())
    });
    host.wait_for("the unreachable connectors to report their errors", || {
        let log = host.log();
        (log.contains("connector=unreachable-db") && log.contains("connector=unreachable-redis"))
            .then_some(())
    });
    // A little more time for retries to log what they log.
    std::thread::sleep(Duration::from_secs(2));

    for path in [
        "/connectors?expand=status&expand=info",
        "/connectors/unreachable-db/status",
        "/connectors/unreachable-redis/status",
        "/connectors/unreachable-db/tasks",
        "/connectors/online/config",
        "/connectors/accounts/tasks/0/status",
        "/connectors/casting/offsets",
        "/worker",
    ] {
        let (status, body) = http(port, "GET", path, None);
        assert_eq!(status, 200, "{path}: {body}");
        answers.push(body);
    }
    let text = crate::rest::raw_get(port, "/metrics");
    host.stop();

    let store = ws.path("var/connectors.json");
    let stored = std::fs::read_to_string(&store).unwrap();
    assert!(
        stored.contains(redis_password),
        "the store keeps what it restores"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&store).unwrap().permissions().mode() & 0o777,
        0o600,
        "the store is its owner's only"
    );
    // The search does find what the host wrote: the dead letter's value.
    let found = files_containing(&ws.path(""), "seven", &store);
    assert!(
        found.contains(&ws.path("var/dlq/casting.jsonl")),
        "{found:?}"
    );
    let answered = format!("{answers:?}\n{text}");
    for secret in planted {
        assert!(
            !answered.contains(secret),
            "{secret} in an answer: {answered}"
        );
        let files = files_containing(&ws.path(""), secret, &store);
        assert!(files.is_empty(), "{secret} written to {files:?}");
    }
    assert!(
        answered.contains("[hidden]"),
        "the answers show the keys, hidden: {answered}"
    );
}
