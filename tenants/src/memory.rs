//! Giving freed heap back to the system.
//!
//! glibc's allocator returns memory to the system only from the top of each arena; pages
//! freed below a live allocation stay resident. A node that opened and closed hundreds of
//! practices (each open practice holds SQLite connections with their page caches) keeps
//! tens of megabytes of such freed pages: the density benchmark measured 20–28 MB of its
//! RSS at the quiet point as freed heap (`malloc_stats`, then `malloc_trim(0)`; see
//! BENCHMARKS.md). [`Trimmer`] asks the allocator to release them on an interval, off the
//! async runtime's threads, and counts what it cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::web::metrics::{Gauge, GaugeKind};

/// Asks the allocator to return the free pages of every arena to the system. Returns
/// whether it gave anything back. Elsewhere than glibc it does nothing (musl, macOS and
/// Windows allocators return memory themselves or have no such call).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(
    unsafe_code,
    reason = "the one FFI call of the project: glibc's malloc_trim"
)]
pub fn release_freed() -> bool {
    // SAFETY: `malloc_trim` takes no pointers and has no caller-side invariants; glibc
    // serializes it with every other allocator call (it takes each arena's lock in turn).
    unsafe { libc::malloc_trim(0) == 1 }
}

/// No-op where the allocator has no trim call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed() -> bool {
    false
}

/// What the trims cost, for `/metrics`.
#[derive(Debug, Default)]
pub struct TrimStats {
    trims: AtomicU64,
    released: AtomicU64,
    micros: AtomicU64,
}

impl TrimStats {
    fn record(&self, released: bool, took: Duration) {
        self.trims.fetch_add(1, Ordering::Relaxed);
        if released {
            self.released.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(us, Ordering::Relaxed);
    }

    /// Trims so far, trims that gave memory back, and their total time in microseconds.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.trims.load(Ordering::Relaxed),
            self.released.load(Ordering::Relaxed),
            self.micros.load(Ordering::Relaxed),
        )
    }

    /// The counters `/metrics` shows.
    pub fn gauges(self: &Arc<Self>) -> Vec<Gauge> {
        let count = |s: &Arc<Self>, f: fn(&Self) -> u64| {
            let s = s.clone();
            move || i64::try_from(f(&s)).unwrap_or(i64::MAX)
        };
        vec![
            Gauge::new(
                "kollegium_memory_trims_total",
                "Times the node asked the allocator to return freed heap to the system.",
                GaugeKind::Counter,
                count(self, |s| s.trims.load(Ordering::Relaxed)),
            ),
            Gauge::new(
                "kollegium_memory_trims_released_total",
                "Trims that returned memory to the system.",
                GaugeKind::Counter,
                count(self, |s| s.released.load(Ordering::Relaxed)),
            ),
            Gauge::new(
                "kollegium_memory_trim_microseconds_total",
                "Time spent in allocator trims, in microseconds.",
                GaugeKind::Counter,
                count(self, |s| s.micros.load(Ordering::Relaxed)),
            ),
        ]
    }
}

/// Trims on an interval until dropped (the task ends with the runtime or on abort).
pub struct Trimmer {
    task: tokio::task::JoinHandle<()>,
}

impl Trimmer {
    /// Starts trimming every `every` on the current runtime; a zero interval disables it.
    pub fn spawn(every: Duration, stats: Arc<TrimStats>) -> Option<Self> {
        if every.is_zero() {
            return None;
        }
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let stats = stats.clone();
                let done = tokio::task::spawn_blocking(move || {
                    let start = Instant::now();
                    let released = release_freed();
                    stats.record(released, start.elapsed());
                })
                .await;
                if let Err(e) = done {
                    tracing::warn!(error = %e, "allocator trim failed");
                }
            }
        });
        Some(Self { task })
    }
}

impl Drop for Trimmer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_after_freeing_a_fragmented_heap_is_counted() {
        // Many small blocks, every other one kept: the freed ones sit below live ones.
        let mut blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 2048]).collect();
        let kept: Vec<Vec<u8>> = blocks
            .drain(..)
            .enumerate()
            .filter_map(|(i, b)| (i % 64 == 0).then_some(b))
            .collect();
        let stats = TrimStats::default();
        let start = Instant::now();
        let released = release_freed();
        stats.record(released, start.elapsed());
        let (trims, rel, _) = stats.snapshot();
        assert_eq!(trims, 1);
        assert_eq!(rel, u64::from(released));
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(
                released,
                "glibc should give back the freed pages between kept blocks"
            );
        }
        assert_eq!(kept.len(), 20_000 / 64 + 1);
    }
}
