//! Machine facts, goals and the results of one run (see `repeat` for the results file).

use std::path::{Path, PathBuf};

use kollegium_tenants::{Clock, SystemClock, clock};
use serde::Serialize;

use crate::conditions::ConditionsReport;

/// The workspace root (where `bench-results/` and `BENCHMARKS.md` live).
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The machine the figures were taken on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_mb: Option<u64>,
    pub kernel: Option<String>,
}

impl Machine {
    pub fn detect() -> Self {
        let nproc = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = proc_field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_total_mb = proc_kb(&meminfo, "MemTotal").map(|kb| kb / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_owned());
        Self {
            nproc,
            cpu_model,
            mem_total_mb,
            kernel,
        }
    }
}

/// The value of `key: value` in a `/proc` text file.
pub fn proc_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

/// A `key:   1234 kB` field of a `/proc` file, in kB.
pub fn proc_kb(text: &str, key: &str) -> Option<u64> {
    proc_field(text, key)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Which side of its limit a figure must stay on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    AtMost,
    AtLeast,
    /// A figure without a goal: reported like the others (median (min–max)), never judged.
    Measured,
}

/// A goal from the design and whether the measured figure meets it.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub name: String,
    pub goal: String,
    pub limit: f64,
    pub direction: Direction,
    pub value: f64,
    pub unit: &'static str,
    pub met: bool,
}

impl Goal {
    fn new(name: String, direction: Direction, value: f64, limit: f64, unit: &'static str) -> Self {
        let goal = match direction {
            Direction::AtMost => format!("<= {limit} {unit}"),
            Direction::AtLeast => format!(">= {limit} {unit}"),
            Direction::Measured => "none (measured)".to_owned(),
        };
        let mut g = Self {
            goal: goal.trim_end().to_owned(),
            name,
            limit,
            direction,
            value,
            unit,
            met: false,
        };
        g.met = g.meets(value);
        g
    }

    pub fn at_most(name: impl Into<String>, value: f64, limit: f64, unit: &'static str) -> Self {
        Self::new(name.into(), Direction::AtMost, value, limit, unit)
    }

    pub fn at_least(name: impl Into<String>, value: f64, limit: f64, unit: &'static str) -> Self {
        Self::new(name.into(), Direction::AtLeast, value, limit, unit)
    }

    /// A figure reported without a goal (no issue sets one): median (min–max) over the runs
    /// and the machine's state, verdict "measured".
    pub fn measured(name: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Self::new(name.into(), Direction::Measured, value, f64::NAN, unit)
    }

    pub fn is_measured(&self) -> bool {
        self.direction == Direction::Measured
    }

    /// Whether `value` meets this goal (NaN never does; a measured figure has no goal to
    /// meet and counts as meeting it when it is a number).
    pub fn meets(&self, value: f64) -> bool {
        match self.direction {
            Direction::AtMost => value <= self.limit,
            Direction::AtLeast => value >= self.limit,
            Direction::Measured => !value.is_nan(),
        }
    }
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_measured() {
            return write!(
                f,
                "{}: {:.2} {} (measured, no goal)",
                self.name, self.value, self.unit
            );
        }
        let verdict = if self.met { "met" } else { "not met" };
        write!(
            f,
            "{}: {:.2} {} (goal {}) — {verdict} in this run",
            self.name, self.value, self.unit, self.goal
        )
    }
}

/// Everything written to `bench-results/<scenario>.json`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    /// Non-default settings of this run; also part of the results file name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub command: String,
    pub timestamp_unix: i64,
    pub timestamp_utc: String,
    pub git_commit: Option<String>,
    /// The working tree differed from `git_commit` (uncommitted changes were measured).
    pub git_dirty: Option<bool>,
    pub machine: Machine,
    pub method: String,
    pub figures: serde_json::Value,
    pub goals: Vec<Goal>,
    /// The machine's state during the run (steal, load, probes, baselines).
    pub conditions: Option<ConditionsReport>,
}

impl Report {
    pub fn new(
        scenario: &'static str,
        method: String,
        figures: serde_json::Value,
        goals: Vec<Goal>,
    ) -> Self {
        let now = SystemClock.now();
        let args: Vec<String> = std::env::args().skip(1).collect();
        Self {
            scenario,
            variant: None,
            command: format!(
                "cargo run --release -p kollegium-bench -- {}",
                args.join(" ")
            ),
            timestamp_unix: now,
            timestamp_utc: clock::format_utc(now),
            git_commit: git(&["rev-parse", "--short", "HEAD"]),
            git_dirty: git(&["status", "--porcelain"]).map(|s| !s.is_empty()),
            machine: Machine::detect(),
            method,
            figures,
            goals,
            conditions: None,
        }
    }

    /// Marks a run with non-default settings (`bench-results/<scenario>-<variant>.json`).
    pub fn variant(mut self, variant: Option<String>) -> Self {
        self.variant = variant;
        self
    }

    /// Prints this run's goals and the machine's conditions.
    pub fn print_run(&self) {
        if !self.goals.is_empty() {
            println!("\nGoals (this run):");
            for g in &self.goals {
                println!("  {g}");
            }
        }
        if let Some(c) = &self.conditions {
            println!("Machine during this run: {}", c.line());
        }
    }
}

pub fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(workspace_root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_fields() {
        let text = "Name:\tkollegium\nVmRSS:\t   51234 kB\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(proc_kb(text, "VmRSS"), Some(51234));
        assert_eq!(
            proc_field(text, "model name").as_deref(),
            Some("AMD EPYC 7B13")
        );
        assert_eq!(proc_kb(text, "VmHWM"), None);
    }

    #[test]
    fn goal_verdicts() {
        assert!(Goal::at_most("rss", 150.0, 150.0, "MB").met);
        assert!(!Goal::at_most("rss", 150.1, 150.0, "MB").met);
        assert!(Goal::at_least("rate", 0.9, 0.9, "x").met);
        assert!(!Goal::at_least("rate", 0.89, 0.9, "x").met);
        let m = Goal::measured("entries/s", 1234.0, "/s");
        assert!(m.met && m.is_measured());
        assert_eq!(m.goal, "none (measured)");
        assert!(m.to_string().contains("measured, no goal"), "{m}");
        assert!(!Goal::measured("x", f64::NAN, "").met);
    }
}
