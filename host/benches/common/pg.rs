//! The benches' PostgreSQL client: psql against the server `scripts/service.sh` started.

use std::process::Command;

/// Runs psql with `args` (`-c SQL`, `-f FILE`, ...) on database `db` of the server on `port`;
/// panics with psql's errors if it fails.
pub fn psql(port: u16, db: &str, args: &[&str]) {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-p", &port.to_string(), "-d", db])
        .args(args)
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
