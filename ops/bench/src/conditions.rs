//! The state of the machine during a run, recorded beside every result so that a reader can
//! tell a slow server from a busy machine: CPU steal, the load other processes put on the
//! cores, the 1-minute load average, short probes of the disk's fsync latency and of the
//! CPU's speed, and baselines measured before and after a phase.
//!
//! A run is **busy** (its verdicts are printed as "inconclusive: machine busy", never "met"
//! or "not met") when
//! - other processes kept more runnable tasks than there are cores, on average over the run
//!   (`/proc/stat` `procs_running`, sampled every 250 ms, minus the running threads of the
//!   driver and the server: the benchmark's own load does not count against it; the
//!   1-minute load average, which includes it, is recorded beside it),
//! - steal time exceeded 5 % of the CPU time of the run (`/proc/stat`), or
//! - a baseline measured right before and right after a phase (CPU probe, fsync probe, or a
//!   scenario's own, such as the raw hash rate) differs by more than 10 % (fsync medians
//!   under 1 ms count as 1 ms: below that the probe's own noise is larger).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Steal above this share of CPU time makes a run busy.
pub const STEAL_LIMIT: f64 = 0.05;
/// A baseline that moved more than this between before and after a phase makes a run busy.
pub const BASELINE_LIMIT: f64 = 0.10;
/// fsync medians below this count as this much when compared: on a quiet machine the same
/// disk's sub-millisecond median moves by 20-60 % from one probe to the next (0.14-0.23 ms),
/// while the swings that decide a latency figure are of whole milliseconds.
pub const FSYNC_FLOOR_MS: f64 = 1.0;
/// Interval of the load sampler.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// fsyncs per probe.
const FSYNC_PROBE_N: usize = 60;
/// Bytes appended before each fsync (a WAL frame of a small commit is about this size).
const FSYNC_PROBE_BYTES: usize = 4096;
/// Units of fixed CPU work per probe; the probe reports the median time of one.
const CPU_PROBE_UNITS: usize = 15;
/// SHA-256 input per unit of CPU work.
const CPU_PROBE_BYTES: usize = 1 << 20;

/// The aggregate CPU times of `/proc/stat` (first line), in clock ticks.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTimes {
    total: u64,
    steal: u64,
}

fn cpu_times() -> Option<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_times(&stat)
}

fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
    // already counted in user and nice.
    let total = f.iter().take(8).sum();
    Some(CpuTimes {
        total,
        steal: f.get(7).copied().unwrap_or(0),
    })
}

/// `procs_running` of `/proc/stat`: tasks running or runnable right now, system-wide.
fn procs_running(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("procs_running "))
        .and_then(|v| v.trim().parse().ok())
}

/// Threads of process `pid` in state R (running or runnable).
fn running_threads(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter(|s| {
            s.rfind(')')
                .and_then(|i| s[i + 1..].split_whitespace().next())
                == Some("R")
        })
        .count() as u64
}

/// The 1-minute load average.
pub fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// fsync latency of the disk under `dir`: appends of 4 KiB, each followed by `fdatasync`
/// (what a SQLite commit in WAL mode with `synchronous=FULL` asks of the disk).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FsyncProbe {
    pub n: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// fsyncs per second of the whole probe.
    pub per_s: f64,
}

pub fn fsync_probe(dir: &Path) -> std::io::Result<FsyncProbe> {
    use std::io::Write;
    let path = dir.join(format!(".fsync-probe-{}", std::process::id()));
    let mut file = std::fs::File::create(&path)?;
    let block = [0x5au8; FSYNC_PROBE_BYTES];
    let mut took = Vec::with_capacity(FSYNC_PROBE_N);
    let started = Instant::now();
    let result = (|| {
        for _ in 0..FSYNC_PROBE_N {
            let t = Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            took.push(t.elapsed());
        }
        Ok::<_, std::io::Error>(())
    })();
    let total = started.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    result?;
    took.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(FsyncProbe {
        n: took.len(),
        p50_ms: ms(crate::stats::percentile(&took, 50.0)),
        p99_ms: ms(crate::stats::percentile(&took, 99.0)),
        max_ms: took.last().map_or(0.0, |d| ms(*d)),
        per_s: took.len() as f64 / total.as_secs_f64().max(1e-9),
    })
}

/// The median wall time, in milliseconds, of one unit of fixed single-threaded CPU work
/// (SHA-256 of 1 MiB): how fast a core is for us right now.
pub fn cpu_probe() -> f64 {
    let input = vec![0xa5u8; CPU_PROBE_BYTES];
    let mut took: Vec<Duration> = (0..CPU_PROBE_UNITS)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(Sha256::digest(std::hint::black_box(&input)));
            t.elapsed()
        })
        .collect();
    took.sort_unstable();
    crate::stats::percentile(&took, 50.0).as_secs_f64() * 1000.0
}

/// Both probes at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub label: String,
    pub fsync: Option<FsyncProbe>,
    pub cpu_unit_ms: f64,
}

/// A figure measured right before and right after a phase.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub name: String,
    pub before: f64,
    pub after: f64,
    /// |after - before| / the smaller of the two.
    pub change: f64,
}

impl Baseline {
    pub fn new(name: impl Into<String>, before: f64, after: f64) -> Self {
        let low = before.min(after);
        let change = if low > 0.0 {
            (after - before).abs() / low
        } else if before == after {
            0.0
        } else {
            f64::INFINITY
        };
        Self {
            name: name.into(),
            before,
            after,
            change,
        }
    }
}

/// What was recorded about the machine during one run.
#[derive(Debug, Clone, Serialize)]
pub struct ConditionsReport {
    pub cores: usize,
    pub seconds: f64,
    /// Steal time as a share of all CPU time during the run.
    pub steal: Option<f64>,
    /// Runnable tasks of other processes (not the driver's or the server's), mean and
    /// highest of the samples.
    pub others_runnable_mean: Option<f64>,
    pub others_runnable_max: Option<f64>,
    /// The 1-minute load average (includes the benchmark itself): at start, end, highest.
    pub loadavg_1m_start: Option<f64>,
    pub loadavg_1m_end: Option<f64>,
    pub loadavg_1m_max: Option<f64>,
    pub probes: Vec<Probe>,
    pub baselines: Vec<Baseline>,
    /// Why the run counts as busy; empty when it does not.
    pub busy: Vec<String>,
}

impl ConditionsReport {
    pub fn is_busy(&self) -> bool {
        !self.busy.is_empty()
    }

    /// Applies the rules of the module documentation.
    fn judge(&mut self) {
        let mut busy = Vec::new();
        if let Some(o) = self.others_runnable_mean
            && o > self.cores as f64
        {
            busy.push(format!(
                "load: {o:.1} runnable tasks of other processes on average > {} cores",
                self.cores
            ));
        }
        if let Some(s) = self.steal
            && s > STEAL_LIMIT
        {
            busy.push(format!(
                "steal {:.1} % > {:.0} %",
                s * 100.0,
                STEAL_LIMIT * 100.0
            ));
        }
        for b in &self.baselines {
            if b.change > BASELINE_LIMIT {
                busy.push(format!(
                    "baseline {} moved {:.0} % ({:.3} -> {:.3})",
                    b.name,
                    b.change * 100.0,
                    b.before,
                    b.after
                ));
            }
        }
        self.busy = busy;
    }

    /// One line for the console.
    pub fn line(&self) -> String {
        let f = |v: Option<f64>, scale: f64| v.map_or("?".into(), |v| format!("{:.1}", v * scale));
        let verdict = if self.busy.is_empty() {
            "quiet".to_owned()
        } else {
            format!("BUSY: {}", self.busy.join("; "))
        };
        format!(
            "steal {} %, other runnable {} (max {}), loadavg {}..{} (max {}), {} probes, {} baselines: {verdict}",
            f(self.steal, 100.0),
            f(self.others_runnable_mean, 1.0),
            f(self.others_runnable_max, 1.0),
            f(self.loadavg_1m_start, 1.0),
            f(self.loadavg_1m_end, 1.0),
            f(self.loadavg_1m_max, 1.0),
            self.probes.len(),
            self.baselines.len()
        )
    }
}

#[derive(Default)]
struct Samples {
    others: Vec<f64>,
    loadavg: Vec<f64>,
}

/// Records the machine's conditions during one run. Probes and baselines are added by the
/// scenario at its phase boundaries; the sampler thread runs until [`Conditions::finish`].
pub struct Conditions {
    dir: PathBuf,
    cores: usize,
    started: Instant,
    times: Option<CpuTimes>,
    loadavg_start: Option<f64>,
    /// Processes whose running threads are the benchmark's own (the driver, the server).
    own: Arc<Mutex<Vec<u32>>>,
    samples: Arc<Mutex<Samples>>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
    probes: Mutex<Vec<Probe>>,
    baselines: Mutex<Vec<Baseline>>,
}

impl Conditions {
    /// Starts recording; fsync probes write into `dir` (the disk of the data directory).
    pub fn start(dir: &Path) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let own = Arc::new(Mutex::new(vec![std::process::id()]));
        let samples = Arc::new(Mutex::new(Samples::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (own, samples, stop) = (Arc::clone(&own), Arc::clone(&samples), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("conditions".into())
                .spawn(move || sample_until(&stop, &own, &samples))
                .ok()
        };
        Self {
            dir: dir.to_path_buf(),
            cores,
            started: Instant::now(),
            times: cpu_times(),
            loadavg_start: loadavg_1m(),
            own,
            samples,
            stop,
            sampler,
            probes: Mutex::new(Vec::new()),
            baselines: Mutex::new(Vec::new()),
        }
    }

    /// Counts the running threads of `pid` (the server) as the benchmark's own load.
    pub fn watch_pid(&self, pid: u32) {
        if let Ok(mut own) = self.own.lock() {
            own.push(pid);
        }
    }

    /// Probes the disk and the CPU now (about 0.1 s on a quiet machine) and records it.
    pub fn probe(&self, label: impl Into<String>) -> Probe {
        let dir = self.dir.clone();
        let p = Probe {
            label: label.into(),
            fsync: fsync_probe(&dir).ok(),
            cpu_unit_ms: cpu_probe(),
        };
        if let Ok(mut probes) = self.probes.lock() {
            probes.push(p.clone());
        }
        p
    }

    /// Records a baseline (before and after a phase).
    pub fn baseline(&self, name: impl Into<String>, before: f64, after: f64) {
        if let Ok(mut b) = self.baselines.lock() {
            b.push(Baseline::new(name, before, after));
        }
    }

    /// Records the CPU probes around a phase as a baseline (time of one unit of work).
    pub fn compare_cpu(&self, phase: &str, before: &Probe, after: &Probe) {
        self.baseline(
            format!("CPU probe around {phase} (ms per unit)"),
            before.cpu_unit_ms,
            after.cpu_unit_ms,
        );
    }

    /// Records the fsync probes around a phase as a baseline (median fsync, at least
    /// [`FSYNC_FLOOR_MS`]).
    pub fn compare_disk(&self, phase: &str, before: &Probe, after: &Probe) {
        if let (Some(a), Some(b)) = (before.fsync, after.fsync) {
            self.baseline(
                format!("fsync p50 around {phase} (ms, at least {FSYNC_FLOOR_MS})"),
                a.p50_ms.max(FSYNC_FLOOR_MS),
                b.p50_ms.max(FSYNC_FLOOR_MS),
            );
        }
    }

    /// The probe before `phase`.
    pub fn before(&self, phase: &str) -> Probe {
        self.probe(format!("before {phase}"))
    }

    /// The probe after `phase`, compared with the one before it (CPU and disk).
    pub fn after(&self, phase: &str, before: &Probe) -> Probe {
        let after = self.probe(format!("after {phase}"));
        self.compare_cpu(phase, before, &after);
        self.compare_disk(phase, before, &after);
        after
    }

    /// Probes now, runs `phase`, probes again and records the CPU baseline only (for phases
    /// judged per CPU-second, which the disk's speed does not move).
    pub async fn around_cpu<T>(&self, phase: &str, f: impl Future<Output = T>) -> T {
        let before = self.before(phase);
        let out = f.await;
        let after = self.probe(format!("after {phase}"));
        self.compare_cpu(phase, &before, &after);
        out
    }

    /// Stops the sampler and judges the run.
    pub fn finish(mut self) -> ConditionsReport {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.sampler.take() {
            let _ = h.join();
        }
        let steal = match (self.times, cpu_times()) {
            (Some(a), Some(b)) if b.total > a.total => {
                Some((b.steal.saturating_sub(a.steal)) as f64 / (b.total - a.total) as f64)
            }
            _ => None,
        };
        let (others_mean, others_max, load_max) = match self.samples.lock() {
            Ok(s) => (
                mean(&s.others),
                s.others.iter().copied().reduce(f64::max),
                s.loadavg.iter().copied().reduce(f64::max),
            ),
            Err(_) => (None, None, None),
        };
        let mut report = ConditionsReport {
            cores: self.cores,
            seconds: self.started.elapsed().as_secs_f64(),
            steal,
            others_runnable_mean: others_mean,
            others_runnable_max: others_max,
            loadavg_1m_start: self.loadavg_start,
            loadavg_1m_end: loadavg_1m(),
            loadavg_1m_max: load_max,
            probes: self.probes.lock().map(|p| p.clone()).unwrap_or_default(),
            baselines: self.baselines.lock().map(|b| b.clone()).unwrap_or_default(),
            busy: Vec::new(),
        };
        report.judge();
        report
    }
}

impl Drop for Conditions {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn sample_until(stop: &AtomicBool, own: &Mutex<Vec<u32>>, samples: &Mutex<Samples>) {
    while !stop.load(Ordering::Relaxed) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let pids = own.lock().map(|o| o.clone()).unwrap_or_default();
        let ours: u64 = pids.iter().map(|p| running_threads(*p)).sum();
        if let (Some(all), Ok(mut s)) = (procs_running(&stat), samples.lock()) {
            s.others.push(all.saturating_sub(ours) as f64);
            if let Some(l) = loadavg_1m() {
                s.loadavg.push(l);
            }
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        let stat = "cpu  100 5 50 800 10 1 2 32 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nprocs_running 3\n";
        let t = parse_cpu_times(stat).unwrap();
        assert_eq!(t.total, 100 + 5 + 50 + 800 + 10 + 1 + 2 + 32);
        assert_eq!(t.steal, 32);
        assert_eq!(procs_running(stat), Some(3));
    }

    #[test]
    fn baseline_change_is_relative_to_the_smaller() {
        assert!((Baseline::new("x", 100.0, 110.0).change - 0.1).abs() < 1e-12);
        assert!((Baseline::new("x", 110.0, 100.0).change - 0.1).abs() < 1e-12);
        assert_eq!(Baseline::new("x", 0.0, 0.0).change, 0.0);
        assert!(Baseline::new("x", 0.0, 1.0).change.is_infinite());
    }

    fn report() -> ConditionsReport {
        ConditionsReport {
            cores: 2,
            seconds: 1.0,
            steal: Some(0.01),
            others_runnable_mean: Some(0.5),
            others_runnable_max: Some(3.0),
            loadavg_1m_start: Some(4.0),
            loadavg_1m_end: Some(4.0),
            loadavg_1m_max: Some(5.0),
            probes: Vec::new(),
            baselines: vec![Baseline::new("cpu", 1.0, 1.05)],
            busy: Vec::new(),
        }
    }

    #[test]
    fn judges_each_rule() {
        let mut quiet = report();
        quiet.judge();
        assert!(
            !quiet.is_busy(),
            "own load and a 5 % move are fine: {:?}",
            quiet.busy
        );

        let mut loaded = report();
        loaded.others_runnable_mean = Some(2.5);
        loaded.judge();
        assert!(loaded.is_busy());
        assert!(loaded.busy[0].starts_with("load"));

        let mut stolen = report();
        stolen.steal = Some(0.06);
        stolen.judge();
        assert!(stolen.busy[0].starts_with("steal"));

        let mut moved = report();
        moved.baselines.push(Baseline::new("raw", 100.0, 111.0));
        moved.judge();
        assert_eq!(moved.busy.len(), 1);
        assert!(moved.busy[0].contains("raw"), "{:?}", moved.busy);
    }

    #[test]
    fn probes_run() {
        let dir = tempfile::tempdir().unwrap();
        let f = fsync_probe(dir.path()).unwrap();
        assert_eq!(f.n, FSYNC_PROBE_N);
        assert!(f.p50_ms <= f.p99_ms && f.p99_ms <= f.max_ms);
        assert!(cpu_probe() > 0.0);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "probe file removed"
        );
        let c = Conditions::start(dir.path());
        c.watch_pid(std::process::id());
        let a = c.probe("a");
        let b = c.probe("b");
        c.compare_cpu("x", &a, &b);
        c.compare_disk("x", &a, &b);
        let r = c.finish();
        assert_eq!(r.probes.len(), 2);
        assert_eq!(r.baselines.len(), 2);
        assert!(r.steal.is_some());
    }
}
