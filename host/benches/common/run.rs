//! What every bench reads from its command line and environment.

/// `cargo test --benches` (and `cargo bench -- --list`) only lists the benches: nothing runs.
pub fn listing_only() -> bool {
    std::env::args().any(|a| a == "--list")
}

/// The rows (records, events, clicks) the bench runs: `HEADWATER_BENCH_ROWS`, else `default`.
pub fn rows(default: u64) -> u64 {
    env_number("HEADWATER_BENCH_ROWS", default)
}

/// A number from environment variable `key`, else `default`.
pub fn env_number<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The system's temp directory, where the benches keep their files, as a runtime's allowed
/// paths: connectors applied as over REST may only use files under them.
#[allow(dead_code)] // for the benches that run the pipeline in their own process
pub fn temp_dirs_allowed() -> headwater::api::allowed_paths::AllowedPaths {
    headwater::api::allowed_paths::AllowedPaths::new(&[std::env::temp_dir()])
        .expect("the temp dir as an allowed path")
}
