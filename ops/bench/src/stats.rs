//! Latency samples and their percentiles.

use std::time::Duration;

use serde::Serialize;

/// Durations collected by one measurement.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// Mean of each of `parts` consecutive slices, in milliseconds, in sample order (shows
    /// whether a figure drifts over a run, e.g. as the registry grows).
    pub fn trend(&self, parts: usize) -> Vec<f64> {
        let size = self.0.len().div_ceil(parts.max(1)).max(1);
        self.0
            .chunks(size)
            .map(|c| c.iter().sum::<Duration>().as_secs_f64() * 1000.0 / c.len() as f64)
            .collect()
    }

    /// Percentiles and extremes, in milliseconds. `None` when there are no samples.
    pub fn summary(&self) -> Option<Summary> {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let first = *sorted.first()?;
        let last = *sorted.last()?;
        let total: Duration = sorted.iter().sum();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Some(Summary {
            n: sorted.len(),
            min_ms: ms(first),
            p50_ms: ms(percentile(&sorted, 50.0)),
            p95_ms: ms(percentile(&sorted, 95.0)),
            p99_ms: ms(percentile(&sorted, 99.0)),
            max_ms: ms(last),
            mean_ms: ms(total) / sorted.len() as f64,
            total_ms: ms(total),
        })
    }
}

/// Samples grouped by a name (e.g. the endpoint of a request), in first-seen order.
#[derive(Debug, Default, Clone)]
pub struct Grouped(Vec<(String, Samples)>);

impl Grouped {
    pub fn push(&mut self, name: &str, d: Duration) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, s)) => s.push(d),
            None => {
                let mut s = Samples::default();
                s.push(d);
                self.0.push((name.to_owned(), s));
            }
        }
    }

    /// Adds every sample of `other`.
    pub fn extend(&mut self, other: &Grouped) {
        for (name, samples) in &other.0 {
            for d in &samples.0 {
                self.push(name, *d);
            }
        }
    }

    /// One summary per name, in first-seen order.
    pub fn summaries(&self) -> Vec<Named> {
        self.0
            .iter()
            .filter_map(|(name, s)| {
                Some(Named {
                    name: name.clone(),
                    summary: s.summary()?,
                })
            })
            .collect()
    }
}

/// A summary with the name of what it summarises.
#[derive(Debug, Clone, Serialize)]
pub struct Named {
    pub name: String,
    #[serde(flatten)]
    pub summary: Summary,
}

/// Nearest-rank percentile of ascending `sorted` (`p` in 0..=100); zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    sorted.get(idx).copied().unwrap_or(Duration::ZERO)
}

/// What a scenario reports about one set of samples (all times in milliseconds).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    pub n: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub total_ms: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} p50={:.2} ms  p95={:.2} ms  p99={:.2} ms  (min {:.2}, max {:.2}, mean {:.2})",
            self.n, self.p50_ms, self.p95_ms, self.p99_ms, self.min_ms, self.max_ms, self.mean_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 50.0), ms(50));
        assert_eq!(percentile(&sorted, 99.0), ms(99));
        assert_eq!(percentile(&sorted, 100.0), ms(100));
        assert_eq!(percentile(&sorted, 0.0), ms(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
        assert_eq!(percentile(&[ms(7)], 99.0), ms(7));
    }

    #[test]
    fn summary_of_unsorted_samples() {
        let mut s = Samples::default();
        for v in [30, 10, 20] {
            s.push(ms(v));
        }
        let sum = s.summary().unwrap();
        assert_eq!(sum.n, 3);
        assert!((sum.p50_ms - 20.0).abs() < 1e-9);
        assert!((sum.max_ms - 30.0).abs() < 1e-9);
        assert!((sum.mean_ms - 20.0).abs() < 1e-9);
        assert!(Samples::default().summary().is_none());
        assert_eq!(s.trend(3), vec![30.0, 10.0, 20.0]);
        assert_eq!(s.trend(2), vec![20.0, 20.0]);
        assert!(Samples::default().trend(10).is_empty());
    }

    #[test]
    fn grouped_keeps_first_seen_order() {
        let mut g = Grouped::default();
        g.push("/b", ms(2));
        g.push("/a", ms(1));
        g.push("/b", ms(4));
        let s = g.summaries();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "/b");
        assert_eq!(s[0].summary.n, 2);
        assert_eq!(s[1].name, "/a");
    }
}
