//! Repeated runs: every scenario runs `--repeat N` times (default 3), each on a fresh server
//! and data directory. The verdict of a goal is taken on the median of the runs, and is
//! "inconclusive: machine busy" when any run was busy (see `conditions`). The results file
//! `bench-results/<scenario>[-<variant>].json` keeps every run in full, beside a summary
//! with min / median / max of every numeric figure.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::report::{Goal, Machine, Report, git, workspace_root};

/// The median of `values` (for an even count the mean of the middle two); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match (
        v.len() % 2,
        v.get(mid),
        mid.checked_sub(1).and_then(|i| v.get(i)),
    ) {
        (1, Some(m), _) => *m,
        (_, Some(hi), Some(lo)) => (hi + lo) / 2.0,
        _ => f64::NAN,
    }
}

/// What the runs say about one goal.
#[derive(Debug, Clone, Serialize)]
pub struct GoalSummary {
    pub name: String,
    pub goal: String,
    pub unit: &'static str,
    pub values: Vec<f64>,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    /// Whether the median meets the goal, whatever the machine's state.
    pub median_meets: bool,
    /// A figure without a goal ([`Goal::measured`]).
    pub goal_is_measured: bool,
    /// `met`, `not met`, `measured` (a figure without a goal) or `inconclusive: machine
    /// busy`.
    pub verdict: String,
}

impl GoalSummary {
    fn of(first: &Goal, values: Vec<f64>, busy: bool) -> Self {
        let median = median(&values);
        let finite = || values.iter().copied().filter(|v| !v.is_nan());
        let min = finite().reduce(f64::min).unwrap_or(f64::NAN);
        let max = finite().reduce(f64::max).unwrap_or(f64::NAN);
        let median_meets = first.meets(median);
        let verdict = if busy {
            "inconclusive: machine busy"
        } else if first.is_measured() {
            "measured"
        } else if median_meets {
            "met"
        } else {
            "not met"
        };
        Self {
            name: first.name.clone(),
            goal: first.goal.clone(),
            unit: first.unit,
            values,
            min,
            median,
            max,
            median_meets,
            goal_is_measured: first.is_measured(),
            verdict: verdict.to_owned(),
        }
    }
}

/// Everything written to `bench-results/<scenario>[-<variant>].json`.
#[derive(Debug, Serialize)]
pub struct Repeated {
    pub scenario: &'static str,
    pub variant: Option<String>,
    pub command: String,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub machine: Machine,
    pub repeat: usize,
    /// Runs whose machine was busy, and why.
    pub busy_runs: Vec<(usize, Vec<String>)>,
    pub goals: Vec<GoalSummary>,
    /// min / median / max of every numeric figure over the runs (a figure equal in every
    /// run is given once).
    pub figures: Value,
    pub runs: Vec<Report>,
}

impl Repeated {
    pub fn new(runs: Vec<Report>) -> anyhow::Result<Self> {
        let first = runs.first().context("no runs")?;
        let busy_runs: Vec<(usize, Vec<String>)> = runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let c = r.conditions.as_ref()?;
                c.is_busy().then(|| (i + 1, c.busy.clone()))
            })
            .collect();
        let busy = !busy_runs.is_empty();
        let goals = first
            .goals
            .iter()
            .map(|g| {
                let values = runs
                    .iter()
                    .map(|r| {
                        r.goals
                            .iter()
                            .find(|o| o.name == g.name)
                            .map_or(f64::NAN, |o| o.value)
                    })
                    .collect();
                GoalSummary::of(g, values, busy)
            })
            .collect();
        let figures: Vec<&Value> = runs.iter().map(|r| &r.figures).collect();
        Ok(Self {
            scenario: first.scenario,
            variant: first.variant.clone(),
            command: first.command.clone(),
            git_commit: git(&["rev-parse", "--short", "HEAD"]),
            git_dirty: git(&["status", "--porcelain"]).map(|s| !s.is_empty()),
            machine: first.machine.clone(),
            repeat: runs.len(),
            busy_runs,
            goals,
            figures: aggregate(&figures),
            runs,
        })
    }

    /// Prints the summary and writes the results file; returns its path.
    pub fn finish(&self) -> anyhow::Result<PathBuf> {
        println!(
            "\n=== {} — {} run(s), commit {}{} ===",
            self.scenario,
            self.repeat,
            self.git_commit.as_deref().unwrap_or("?"),
            if self.git_dirty == Some(true) {
                " (uncommitted changes)"
            } else {
                ""
            }
        );
        for (i, r) in self.runs.iter().enumerate() {
            if let Some(c) = &r.conditions {
                println!("  run {}: {}", i + 1, c.line());
            }
        }
        if !self.goals.is_empty() {
            println!("  goal | median (min–max) | verdict");
            for g in &self.goals {
                let verdict = if g.verdict.starts_with("inconclusive") && g.goal_is_measured {
                    g.verdict.clone()
                } else if g.verdict.starts_with("inconclusive") {
                    let would = if g.median_meets { "met" } else { "not met" };
                    format!("{} (median: {would})", g.verdict)
                } else {
                    g.verdict.clone()
                };
                println!(
                    "  {}: {} {} ({}–{}), goal {} | {verdict}",
                    g.name,
                    fmt_num(g.median),
                    g.unit,
                    fmt_num(g.min),
                    fmt_num(g.max),
                    g.goal,
                );
            }
        }
        let dir = workspace_root().join("bench-results");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let name = match &self.variant {
            Some(v) => format!("{}-{v}.json", self.scenario),
            None => format!("{}.json", self.scenario),
        };
        let path = dir.join(name);
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(&path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "\nMachine: {} × {}",
            self.machine.nproc, self.machine.cpu_model
        );
        println!("Results (every run in full) written to {}", path.display());
        Ok(path)
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// min / median / max of the numeric leaves of the runs' figures, recursively; values equal
/// in every run once; values that differ and are not numbers as the list of the runs' values.
pub fn aggregate(values: &[&Value]) -> Value {
    let Some(first) = values.first() else {
        return Value::Null;
    };
    if values.iter().all(|v| *v == *first) {
        return (*first).clone();
    }
    if let Some(nums) = values
        .iter()
        .map(|v| v.as_f64())
        .collect::<Option<Vec<f64>>>()
    {
        let min = nums.iter().copied().reduce(f64::min).unwrap_or(f64::NAN);
        let max = nums.iter().copied().reduce(f64::max).unwrap_or(f64::NAN);
        return json!({ "min": min, "median": median(&nums), "max": max });
    }
    if let Some(objs) = values
        .iter()
        .map(|v| v.as_object())
        .collect::<Option<Vec<&Map<String, Value>>>>()
    {
        let mut out = Map::new();
        for key in objs.iter().flat_map(|o| o.keys()) {
            if out.contains_key(key) {
                continue;
            }
            let present: Vec<&Value> = objs.iter().filter_map(|o| o.get(key)).collect();
            out.insert(key.clone(), aggregate(&present));
        }
        return Value::Object(out);
    }
    if let Some(arrays) = values
        .iter()
        .map(|v| v.as_array())
        .collect::<Option<Vec<&Vec<Value>>>>()
        && arrays.iter().all(|a| a.len() == arrays[0].len())
    {
        return Value::Array(
            (0..arrays[0].len())
                .map(|i| aggregate(&arrays.iter().map(|a| &a[i]).collect::<Vec<_>>()))
                .collect(),
        );
    }
    json!({ "runs": values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[f64::NAN, 1.0, 3.0]), 2.0);
    }

    #[test]
    fn aggregates_every_numeric_figure() {
        let a = json!({"rss_mb": 140.0, "n": 1000, "label": "x", "p": [1.0, 2.0], "s": "a"});
        let b = json!({"rss_mb": 160.0, "n": 1000, "label": "x", "p": [3.0, 2.0], "s": "b"});
        let c = json!({"rss_mb": 150.0, "n": 1000, "label": "x", "p": [2.0, 2.0], "s": "a"});
        let out = aggregate(&[&a, &b, &c]);
        assert_eq!(
            out["rss_mb"],
            json!({"min": 140.0, "median": 150.0, "max": 160.0})
        );
        assert_eq!(out["n"], json!(1000));
        assert_eq!(out["label"], json!("x"));
        assert_eq!(out["p"][0]["median"], json!(2.0));
        assert_eq!(out["p"][1], json!(2.0));
        assert_eq!(out["s"], json!({"runs": ["a", "b", "a"]}));
    }

    fn goal_values(values: &[f64], busy: bool) -> GoalSummary {
        let g = Goal::at_most("rss", values[0], 150.0, "MB");
        GoalSummary::of(&g, values.to_vec(), busy)
    }

    #[test]
    fn verdict_on_the_median_not_the_best_run() {
        let g = goal_values(&[162.7, 136.1, 152.0], false);
        assert_eq!(g.median, 152.0);
        assert_eq!(g.min, 136.1);
        assert_eq!(g.verdict, "not met", "the best run alone would meet it");
        let g = goal_values(&[149.0, 162.0, 140.0], false);
        assert_eq!(g.verdict, "met");
    }

    #[test]
    fn a_figure_without_a_goal_is_measured_or_busy() {
        let g = Goal::measured("time", 2.0, "s");
        let s = GoalSummary::of(&g, vec![2.0, 1.0, 3.0], false);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(s.verdict, "measured");
        let s = GoalSummary::of(&g, vec![2.0, 1.0, 3.0], true);
        assert_eq!(s.verdict, "inconclusive: machine busy");
    }

    #[test]
    fn a_busy_machine_gives_no_verdict() {
        let g = goal_values(&[140.0, 141.0, 139.0], true);
        assert_eq!(g.verdict, "inconclusive: machine busy");
        assert!(g.median_meets);
    }
}
