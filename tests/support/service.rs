//! A real service (PostgreSQL, Redis, tansu) started on a free loopback port by
//! `scripts/service.sh` and stopped when dropped: shared by the end-to-end tests and the
//! benchmarks (each includes this file with `#[path]`).

// Each test or bench binary uses a part of it.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (tests and benches run from `host/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// A real service started by `scripts/service.sh`, stopped on drop.
pub struct Service {
    pub port: u16,
    pub url: String,
    /// The CA certificate of a TLS service (`REDIS_TLS=yes`).
    pub ca: Option<PathBuf>,
    state: tempfile::TempDir,
}

impl Service {
    /// Starts `kind` (postgres, redis, tansu); fails the test with the script's reason if it
    /// cannot.
    pub fn start(kind: &str) -> Service {
        Self::start_with(kind, &[])
    }

    /// Starts `kind` with extra environment for `scripts/service.sh` (e.g. `REDIS_TLS=yes`).
    pub fn start_with(kind: &str, env: &[(&str, &str)]) -> Service {
        let state = tempfile::tempdir().expect("service state dir");
        let output = Command::new(repo_root().join("scripts/service.sh"))
            .envs(env.iter().copied())
            .args(["start", kind])
            .arg(state.path())
            .output()
            .expect("run scripts/service.sh");
        assert!(
            output.status.success(),
            "{kind} could not start:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let get = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("service.sh printed no {key}: {stdout}"))
                .to_owned()
        };
        let ca = stdout
            .lines()
            .find_map(|l| l.strip_prefix("CA="))
            .map(PathBuf::from);
        Service {
            port: get("PORT").parse().expect("numeric port"),
            url: get("URL"),
            ca,
            state,
        }
    }
}

impl Service {
    /// `kill -9`: the service dies without any cleanup.
    pub fn kill9(&self) {
        let pid = fs::read_to_string(self.state.path().join("pid")).expect("service pid file");
        let status = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -9 {pid} failed");
    }

    /// Starts the service again on the same port with its data.
    pub fn restart(&self) {
        let output = Command::new(repo_root().join("scripts/service.sh"))
            .arg("restart")
            .arg(self.state.path())
            .output()
            .expect("run scripts/service.sh restart");
        assert!(
            output.status.success(),
            "restart failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/service.sh"))
            .arg("stop")
            .arg(self.state.path())
            .output();
    }
}
