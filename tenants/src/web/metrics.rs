//! Prometheus metrics of the node, rendered as text on the operator listener.
//!
//! Request counts and latencies and the store's gauges are built in; gauges and counters
//! of the apps and the sign-in are registered by their owners at composition time
//! ([`Metrics::register`]): `tenants` names no app.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A histogram of whole numbers with fixed upper bounds (cumulative buckets as Prometheus
/// renders them), lock-free so hot paths can observe into a `static` one.
pub struct Histogram<const N: usize> {
    bounds: [u64; N],
    buckets: [AtomicU64; N],
    count: AtomicU64,
    sum: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    /// `bounds` ascending: bucket i counts values `<= bounds[i]`.
    pub const fn new(bounds: [u64; N]) -> Self {
        Self {
            bounds,
            buckets: [const { AtomicU64::new(0) }; N],
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: u64) {
        for (le, bucket) in self.bounds.iter().zip(&self.buckets) {
            if value <= *le {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Values observed so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends the histogram in the Prometheus text format.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (le, bucket) in self.bounds.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{le}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    registered: RwLock<Vec<Gauge>>,
}

/// The store's gauges, read at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    pub open_practices: usize,
    pub open_databases: usize,
    pub open_connections: usize,
    pub practices_known: i64,
}

/// Whether a registered value is a gauge or a counter (Prometheus `# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaugeKind {
    Gauge,
    Counter,
}

impl GaugeKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Gauge => "gauge",
            Self::Counter => "counter",
        }
    }
}

/// A value its owner registers, read at every scrape.
pub struct Gauge {
    /// Full metric name (`kollegium_…`).
    pub name: &'static str,
    pub help: &'static str,
    pub kind: GaugeKind,
    pub read: Box<dyn Fn() -> i64 + Send + Sync>,
}

impl Gauge {
    pub fn new(
        name: &'static str,
        help: &'static str,
        kind: GaugeKind,
        read: impl Fn() -> i64 + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            help,
            kind,
            read: Box::new(read),
        }
    }
}

impl std::fmt::Debug for Gauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauge")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Adds gauges to what `/metrics` shows, after the built-in ones, in order. A name
    /// already registered is replaced (a process may compose several servers in tests).
    pub fn register(&self, gauges: impl IntoIterator<Item = Gauge>) {
        let Ok(mut r) = self.registered.write() else {
            tracing::error!("metrics registry lock poisoned; gauges not registered");
            return;
        };
        for g in gauges {
            r.retain(|old| old.name != g.name);
            r.push(g);
        }
    }

    pub fn record(&self, class: &'static str, status: u16, elapsed: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((class, status)).or_insert(0) += 1;
        }
        let secs = elapsed.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP kollegium_http_requests_total HTTP requests by route class and status.\n",
        );
        out.push_str("# TYPE kollegium_http_requests_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((class, status), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "kollegium_http_requests_total{{class=\"{class}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP kollegium_http_request_duration_seconds Request latency.\n");
        out.push_str("# TYPE kollegium_http_request_duration_seconds histogram\n");
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "kollegium_http_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "kollegium_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "kollegium_http_request_duration_seconds_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "kollegium_http_request_duration_seconds_count {count}");
        for (name, help, v) in [
            (
                "kollegium_open_practices",
                "Practices with open databases.",
                g.open_practices as i64,
            ),
            (
                "kollegium_open_practice_databases",
                "Open practice database files.",
                g.open_databases as i64,
            ),
            (
                "kollegium_open_db_connections",
                "Open SQLite connections to practice databases.",
                g.open_connections as i64,
            ),
            (
                "kollegium_practices_known",
                "Practices in the registry (not deleted).",
                g.practices_known,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        if let Ok(r) = self.registered.read() {
            for g in r.iter() {
                let (name, help, kind) = (g.name, g.help, g.kind.as_str());
                let v = (g.read)();
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
                );
            }
        }
        crate::group_commit::BATCH_SIZES.render(
            &mut out,
            "kollegium_group_commit_batch_size",
            "Write jobs per group-commit transaction (all practice databases).",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histogram() {
        let m = Metrics::default();
        m.record("platform", 200, Duration::from_millis(3));
        m.record("platform", 200, Duration::from_millis(30));
        m.record("node", 404, Duration::from_micros(200));
        let text = m.render(&Gauges {
            practices_known: 5,
            ..Gauges::default()
        });
        assert!(
            text.contains("kollegium_http_requests_total{class=\"platform\",status=\"200\"} 2")
        );
        assert!(text.contains("kollegium_http_requests_total{class=\"node\",status=\"404\"} 1"));
        assert!(text.contains("kollegium_http_request_duration_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("kollegium_http_request_duration_seconds_count 3"));
        assert!(text.contains("kollegium_practices_known 5"));
        assert!(text.contains("# TYPE kollegium_group_commit_batch_size histogram"));
    }

    #[test]
    fn owners_register_gauges_and_counters() {
        let m = Metrics::default();
        let n = std::sync::Arc::new(AtomicU64::new(3));
        let read = n.clone();
        m.register([
            Gauge::new(
                "kollegium_widgets",
                "Widgets.",
                GaugeKind::Gauge,
                move || read.load(Ordering::Relaxed) as i64,
            ),
            Gauge::new("kollegium_spins_total", "Spins.", GaugeKind::Counter, || 7),
        ]);
        n.store(4, Ordering::Relaxed);
        let text = m.render(&Gauges::default());
        assert!(
            text.contains("# HELP kollegium_widgets Widgets.\n# TYPE kollegium_widgets gauge\nkollegium_widgets 4\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE kollegium_spins_total counter\nkollegium_spins_total 7\n"));
        m.register([Gauge::new(
            "kollegium_spins_total",
            "Spins.",
            GaugeKind::Counter,
            || 8,
        )]);
        let text = m.render(&Gauges::default());
        assert_eq!(text.matches("kollegium_spins_total 8").count(), 1, "{text}");
        assert!(!text.contains("kollegium_spins_total 7"));
    }

    #[test]
    fn histogram_counts_cumulatively() {
        let h = Histogram::new([1, 4, 16]);
        for v in [1, 3, 4, 20] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"4\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"16\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_sum 28\n"), "{out}");
        assert!(out.contains("x_count 4\n"), "{out}");
    }
}
