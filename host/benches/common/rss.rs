//! Resident memory of a process, for the benches that report it.

// Each bench uses the part it needs.
#![allow(dead_code)]

/// The process's peak RSS (VmHWM) in MiB; 0 where /proc is not available.
pub fn peak_rss_mib() -> f64 {
    status_mib("self", "VmHWM")
}

/// A memory field of `/proc/<process>/status` (`VmRSS`, `VmHWM`) in MiB, for `process` "self"
/// or a pid; 0 where it cannot be read.
pub fn status_mib(process: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
