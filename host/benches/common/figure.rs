//! The headline figures of a bench, for `scripts/bench.sh`'s one table.
//!
//! Each bench prints its own report for a reader; when `HEADWATER_BENCH_RESULTS` names a file,
//! it also appends each headline figure there as one JSON line — the path measured, Headwater's
//! value, the ceiling measured beside it in the same run and the goal — which `scripts/bench.sh`
//! gathers into one table and compares with the previous run's.

// Each bench uses the part it needs.
#![allow(dead_code)]

use std::io::Write;

/// Which way a figure improves.
#[derive(Clone, Copy)]
pub enum Better {
    /// Throughput: events/s, rows/s.
    Higher,
    /// Cost: ns/record, MiB, seconds.
    Lower,
}

/// One headline figure.
pub struct Figure<'a> {
    /// What was measured, with its size: "file → Parquet, date partitions (500,000 rows)".
    pub path: &'a str,
    pub value: f64,
    pub unit: &'a str,
    pub better: Better,
    /// The peer or ceiling measured in the same run, in the same unit: (what it is, its value).
    pub ceiling: Option<(&'a str, f64)>,
    /// The goal: on the ratio to the ceiling when there is one, else on the value.
    pub goal: Option<f64>,
}

impl Figure<'_> {
    /// Headwater's throughput beside a ceiling's: the ratio is Headwater / ceiling.
    pub fn beside<'a>(
        path: &'a str,
        unit: &'a str,
        value: f64,
        ceiling: (&'a str, f64),
        goal: Option<f64>,
    ) -> Figure<'a> {
        Figure {
            path,
            value,
            unit,
            better: Better::Higher,
            ceiling: Some(ceiling),
            goal,
        }
    }

    /// A figure with no peer in the run (a cost, a rate of its own).
    pub fn alone<'a>(
        path: &'a str,
        unit: &'a str,
        value: f64,
        better: Better,
        goal: Option<f64>,
    ) -> Figure<'a> {
        Figure {
            path,
            value,
            unit,
            better,
            ceiling: None,
            goal,
        }
    }

    /// Appends the figure to `HEADWATER_BENCH_RESULTS`, when it is set.
    pub fn record(&self) {
        let Ok(file) = std::env::var("HEADWATER_BENCH_RESULTS") else {
            return;
        };
        let line = serde_json::json!({
            "path": self.path,
            "value": self.value,
            "unit": self.unit,
            "better": match self.better { Better::Higher => "higher", Better::Lower => "lower" },
            "ceiling_name": self.ceiling.map(|(name, _)| name),
            "ceiling": self.ceiling.map(|(_, value)| value),
            // Above 1 is better than the ceiling, whichever way the figure improves.
            "ratio": self.ceiling.map(|(_, ceiling)| match self.better {
                Better::Higher => self.value / ceiling,
                Better::Lower => ceiling / self.value,
            }),
            "goal": self.goal,
        });
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .unwrap_or_else(|e| panic!("open HEADWATER_BENCH_RESULTS {file}: {e}"));
        writeln!(out, "{line}").unwrap_or_else(|e| panic!("write {file}: {e}"));
    }
}

/// `n` with thousands separators, for the paths' sizes: 1,000,000.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
