//! A real service for a benchmark (PostgreSQL, Redis, tansu), started on a free loopback port
//! by `scripts/service.sh` and stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (benches run from `host/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

// Each bench compiles this module on its own and reads one of the two fields.
#[allow(dead_code)]
pub struct Service {
    pub port: u16,
    /// `URL=` of `service.sh` (a connection URL, or `host:port` for tansu).
    pub url: String,
    state: tempfile::TempDir,
}

impl Service {
    /// Starts `kind` with extra environment for `service.sh` (e.g. `REDIS_PERSIST=no`);
    /// panics with the script's reason if it cannot.
    pub fn start(kind: &str, env: &[(&str, &str)]) -> Self {
        let state = tempfile::tempdir().expect("temp dir");
        let out = Command::new(repo_root().join("scripts/service.sh"))
            .envs(env.iter().copied())
            .args(["start", kind])
            .arg(state.path())
            .output()
            .expect("run scripts/service.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("service.sh printed no {key}"))
                .to_owned()
        };
        Self {
            port: get("PORT=")
                .parse()
                .expect("service.sh prints a numeric PORT"),
            url: get("URL="),
            state,
        }
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
