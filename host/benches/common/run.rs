//! What every bench reads from its command line and environment.

/// `cargo test --benches` (and `cargo bench -- --list`) only lists the benches: nothing runs.
pub fn listing_only() -> bool {
    std::env::args().any(|a| a == "--list")
}

/// The rows (records, events, clicks) the bench runs: `HEADWATER_BENCH_ROWS`, else `default`.
pub fn rows(default: u64) -> u64 {
    std::env::var("HEADWATER_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
