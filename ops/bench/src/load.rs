//! Closed-loop load: N clients, each doing one operation after the other (the next starts
//! when the previous answer was read), for a time window or until each client's work is
//! done; completions, per-request latencies, failures, and the CPU time the server process
//! and the driver spent meanwhile.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::Serialize;

use crate::stats::{Grouped, Named, Samples, Summary};

/// Linux reports process CPU times in clock ticks of `USER_HZ`, 100 on every architecture
/// this runs on (x86-64, arm64).
const USER_HZ: f64 = 100.0;

/// User + system CPU seconds of process `pid` (`self` for the driver).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// User + system CPU seconds of each live thread of process `pid`, summed by thread name
/// with trailing digits dropped (`tokio-runtime-worker`, `db-writer`, `thrd-tantivy-index`),
/// so two readings around a phase show where its CPU went. Threads that ended in between
/// are in neither reading; the process total ([`cpu_seconds`]) still counts them.
pub fn thread_cpu_seconds(pid: u32) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let (Ok(stat), Ok(comm)) = (
            std::fs::read_to_string(dir.join("stat")),
            std::fs::read_to_string(dir.join("comm")),
        ) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let (Some(Ok(u)), Some(Ok(s))) = (
            f.get(11).map(|v| v.parse::<f64>()),
            f.get(12).map(|v| v.parse::<f64>()),
        ) else {
            continue;
        };
        let name = comm
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .to_owned();
        *out.entry(name).or_insert(0.0) += (u + s) / USER_HZ;
    }
    out
}

/// Per thread name, the CPU seconds spent between two [`thread_cpu_seconds`] readings
/// (threads started in between count from zero), largest first.
pub fn thread_cpu_delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// Nanoseconds on CPU of each live thread of process `pid`, by thread id
/// (`/proc/<pid>/task/<tid>/schedstat`, first field): exact for a thread that is not running
/// at the moment (a running one's current slice is added at the next scheduler tick, a few
/// ms), where `/proc/<pid>/stat` counts in 10 ms ticks; for phases whose CPU is a few
/// milliseconds.
pub fn thread_cpu_ns(pid: u32) -> BTreeMap<u32, u64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let tid = task.file_name().to_string_lossy().parse::<u32>().ok();
        let ns = std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| schedstat_ns(&s));
        if let (Some(tid), Some(ns)) = (tid, ns) {
            out.insert(tid, ns);
        }
    }
    out
}

/// The time on CPU (first field, ns) of a `schedstat` line.
pub fn schedstat_ns(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Nanoseconds on CPU of the calling thread so far.
pub fn own_thread_cpu_ns() -> Option<u64> {
    schedstat_ns(&std::fs::read_to_string("/proc/thread-self/schedstat").ok()?)
}

/// CPU nanoseconds spent between two [`thread_cpu_ns`] readings of one process: each thread's
/// growth, threads started in between from zero. A thread that ended in between is in
/// neither reading; its CPU in the phase is lost (the process total in ticks,
/// [`cpu_seconds`], still counts it).
pub fn cpu_ns_between(before: &BTreeMap<u32, u64>, after: &BTreeMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// CPU time spent by the server and the driver between `start` and `stop`.
pub struct CpuMeter {
    pid: String,
    started: Instant,
    server: f64,
    driver: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuUse {
    pub wall_s: f64,
    pub server_cpu_s: f64,
    pub driver_cpu_s: f64,
}

impl CpuUse {
    pub fn add(self, other: Self) -> Self {
        Self {
            wall_s: self.wall_s + other.wall_s,
            server_cpu_s: self.server_cpu_s + other.server_cpu_s,
            driver_cpu_s: self.driver_cpu_s + other.driver_cpu_s,
        }
    }
}

impl CpuMeter {
    pub fn start(server_pid: u32) -> Self {
        let pid = server_pid.to_string();
        Self {
            server: cpu_seconds(&pid).unwrap_or(f64::NAN),
            driver: cpu_seconds("self").unwrap_or(f64::NAN),
            pid,
            started: Instant::now(),
        }
    }

    pub fn stop(&self) -> CpuUse {
        CpuUse {
            wall_s: self.started.elapsed().as_secs_f64(),
            server_cpu_s: cpu_seconds(&self.pid).unwrap_or(f64::NAN) - self.server,
            driver_cpu_s: cpu_seconds("self").unwrap_or(f64::NAN) - self.driver,
        }
    }
}

/// What one client recorded.
#[derive(Default)]
pub struct Record {
    /// Finish time and latency of each completed operation.
    done: Vec<(Instant, Duration)>,
    /// Latency of each request inside the operations, by name.
    parts: Grouped,
    failures: Vec<String>,
}

/// Each operation returns the named requests it made and how long each took.
pub type Parts = Vec<(&'static str, Duration)>;

/// Runs every client's loop concurrently on the current task: each client calls `op` again
/// and again until `until` has passed or `op` says the client has no more work (`None`).
/// A failed operation is recorded and the loop goes on.
pub async fn closed_loop<S, F>(clients: &mut [S], until: Option<Instant>, op: F) -> Vec<Record>
where
    F: AsyncFn(&mut S) -> anyhow::Result<Option<Parts>>,
{
    let op = &op;
    join_all(clients.iter_mut().map(|c| async move {
        let mut rec = Record::default();
        while until.is_none_or(|u| Instant::now() < u) {
            let started = Instant::now();
            match op(c).await {
                Ok(Some(parts)) => {
                    let now = Instant::now();
                    rec.done.push((now, now - started));
                    for (name, d) in parts {
                        rec.parts.push(name, d);
                    }
                }
                Ok(None) => break,
                Err(e) => rec
                    .failures
                    .push(format!("{e:#}").chars().take(200).collect()),
            }
        }
        rec
    }))
    .await
}

/// One measured phase, all clients together.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub clients: usize,
    /// Operations completed inside the window.
    pub completed: usize,
    pub window_s: f64,
    pub per_s: f64,
    /// Whole operation, and each request on its own.
    pub latency_ms: Option<Summary>,
    pub requests_ms: Vec<Named>,
    pub failures: usize,
    /// Failure messages and how often each occurred.
    pub failure_reasons: BTreeMap<String, usize>,
    pub cpu: CpuUse,
    /// Operations per CPU second of the server process: what one fully busy core gives.
    pub per_server_cpu_s: f64,
}

impl Phase {
    /// Summarises `records` of a window from `start` to `end`: operations finishing after
    /// `end` (in flight at the deadline) are not counted.
    pub fn of(records: &[Record], start: Instant, end: Instant, cpu: CpuUse) -> Self {
        let window_s = end.duration_since(start).as_secs_f64();
        Self::summarise(records, |at| at <= end, window_s, cpu)
    }

    /// Summarises `records` of work that was let finish (slices run until their deadline and
    /// then until the operations in flight are done): every completed operation counts, and
    /// the window is the metered wall time.
    pub fn complete(records: &[Record], cpu: CpuUse) -> Self {
        Self::summarise(records, |_| true, cpu.wall_s, cpu)
    }

    fn summarise(
        records: &[Record],
        counts: impl Fn(Instant) -> bool,
        window_s: f64,
        cpu: CpuUse,
    ) -> Self {
        let mut latency = Samples::default();
        let mut parts = Grouped::default();
        let mut failure_reasons = BTreeMap::new();
        let mut completed = 0;
        for r in records {
            for (at, took) in &r.done {
                if counts(*at) {
                    completed += 1;
                    latency.push(*took);
                }
            }
            parts.extend(&r.parts);
            for f in &r.failures {
                *failure_reasons.entry(f.clone()).or_insert(0) += 1;
            }
        }
        Self {
            clients: records.len(),
            completed,
            window_s,
            per_s: completed as f64 / window_s,
            latency_ms: latency.summary(),
            requests_ms: parts.summaries(),
            failures: failure_reasons.values().sum(),
            failure_reasons,
            per_server_cpu_s: completed as f64 / cpu.server_cpu_s,
            cpu,
        }
    }

    /// The end of a phase without a deadline: when its last operation finished.
    pub fn last_finish(records: &[Record]) -> Option<Instant> {
        records
            .iter()
            .filter_map(|r| r.done.last().map(|d| d.0))
            .max()
    }

    /// Several phases of the same kind as one (counts and times added).
    pub fn merge(phases: &[Phase], records: &[Record]) -> Option<Self> {
        let first = phases.first()?;
        let cpu = phases[1..].iter().fold(first.cpu, |a, p| a.add(p.cpu));
        let window_s: f64 = phases.iter().map(|p| p.window_s).sum();
        let completed: usize = phases.iter().map(|p| p.completed).sum();
        let mut latency = Samples::default();
        let mut parts = Grouped::default();
        for r in records {
            for (_, took) in &r.done {
                latency.push(*took);
            }
            parts.extend(&r.parts);
        }
        let mut failure_reasons = BTreeMap::new();
        for p in phases {
            for (k, v) in &p.failure_reasons {
                *failure_reasons.entry(k.clone()).or_insert(0) += v;
            }
        }
        Some(Self {
            clients: first.clients,
            completed,
            window_s,
            per_s: completed as f64 / window_s,
            latency_ms: latency.summary(),
            requests_ms: parts.summaries(),
            failures: failure_reasons.values().sum(),
            failure_reasons,
            per_server_cpu_s: completed as f64 / cpu.server_cpu_s,
            cpu,
        })
    }

    pub fn print(&self, label: &str) {
        println!(
            "  {label}: {} clients, {} done in {:.1} s = {:.1}/s ({:.1} per server CPU-second; \
             server CPU {:.1} s, driver CPU {:.1} s), {} failed",
            self.clients,
            self.completed,
            self.window_s,
            self.per_s,
            self.per_server_cpu_s,
            self.cpu.server_cpu_s,
            self.cpu.driver_cpu_s,
            self.failures
        );
        if let Some(l) = &self.latency_ms {
            println!("      whole operation {l}");
        }
        for n in &self.requests_ms {
            let s = n.summary;
            println!(
                "      {:<28} p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                n.name, s.p50_ms, s.p99_ms, s.max_ms
            );
        }
        for (reason, n) in &self.failure_reasons {
            println!("      FAILED {n}×: {reason}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_counts_growth_and_new_threads_only() {
        assert_eq!(schedstat_ns("123456789 2000 17\n"), Some(123_456_789));
        assert_eq!(schedstat_ns(""), None);
        let before = BTreeMap::from([(1, 1_000), (2, 5_000), (3, 7_000)]);
        // 1 grew by 500, 2 by 0, 3 ended, 4 is new.
        let after = BTreeMap::from([(1, 1_500), (2, 5_000), (4, 300)]);
        assert_eq!(cpu_ns_between(&before, &after), 800);
        let me = std::process::id();
        let a = thread_cpu_ns(me);
        assert!(!a.is_empty());
        // The kernel adds a running thread's time at scheduler ticks: spin for 50 ms.
        let t0 = own_thread_cpu_ns().unwrap();
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        assert!(own_thread_cpu_ns().unwrap() > t0, "{x}");
        assert!(cpu_ns_between(&a, &thread_cpu_ns(me)) > 0);
    }

    #[test]
    fn reads_own_cpu_time() {
        let t = cpu_seconds("self").unwrap();
        assert!(t >= 0.0);
    }

    #[test]
    fn phase_counts_only_inside_the_window() {
        let start = Instant::now();
        let end = start + Duration::from_secs(10);
        let mut r = Record::default();
        r.done
            .push((start + Duration::from_secs(1), Duration::from_millis(5)));
        r.done
            .push((start + Duration::from_secs(9), Duration::from_millis(7)));
        r.done
            .push((start + Duration::from_secs(11), Duration::from_millis(9)));
        r.failures.push("boom".into());
        let cpu = CpuUse {
            wall_s: 10.0,
            server_cpu_s: 4.0,
            driver_cpu_s: 1.0,
        };
        let p = Phase::of(&[r], start, end, cpu);
        assert_eq!(p.completed, 2);
        assert!((p.per_s - 0.2).abs() < 1e-9);
        assert!((p.per_server_cpu_s - 0.5).abs() < 1e-9);
        assert_eq!(p.failures, 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn closed_loop_stops_when_work_is_done() {
        let mut clients = vec![3usize, 1];
        let records = closed_loop(&mut clients, None, async |left: &mut usize| {
            if *left == 0 {
                return Ok(None);
            }
            *left -= 1;
            Ok(Some(vec![("op", Duration::from_millis(1))]))
        })
        .await;
        assert_eq!(records[0].done.len(), 3);
        assert_eq!(records[1].done.len(), 1);
        assert_eq!(clients, vec![0, 0]);
    }
}
