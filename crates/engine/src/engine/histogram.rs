//! Latency and batch-size histograms for metrics: fixed log-linear buckets of relaxed atomic
//! counters. Only a queue's workers record into a model's histograms, so the counters are not
//! contended, and a scrape reads them without stopping anything.

use std::sync::atomic::{AtomicU64, Ordering};

/// Latency bucket upper bounds in microseconds: 1, 2.5 and 5 per decade, 10 µs to 10 s.
pub const LATENCY_BOUNDS_US: [u64; 19] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Batch-size bucket upper bounds (requests per run).
pub const BATCH_BOUNDS: [u64; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// Whether histograms record at all: off only in a build without the `metrics` feature, which
/// exists to measure what recording costs (benches/compare.py's metrics section).
const RECORD: bool = cfg!(feature = "metrics");

/// A histogram over fixed bounds, with an overflow bucket, a count and a sum.
pub struct Histogram {
    bounds: &'static [u64],
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
}

/// What a scrape reads: cumulative counts per bound (the last is +Inf), count and sum.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub bounds: &'static [u64],
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    pub fn latency() -> Histogram {
        Histogram::new(&LATENCY_BOUNDS_US)
    }

    pub fn batch() -> Histogram {
        Histogram::new(&BATCH_BOUNDS)
    }

    pub fn observe(&self, v: u64) {
        if !RECORD {
            return;
        }
        let i = self.bounds.partition_point(|&b| b < v);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
    }

    /// Records `n` observations of `v` at once (every request of a batch shares its run time).
    pub fn observe_n(&self, v: u64, n: u64) {
        if !RECORD {
            return;
        }
        let i = self.bounds.partition_point(|&b| b < v);
        self.buckets[i].fetch_add(n, Ordering::Relaxed);
        self.count.fetch_add(n, Ordering::Relaxed);
        self.sum.fetch_add(v * n, Ordering::Relaxed);
    }

    /// Records many values with one atomic add per bucket they touch, not one per value.
    pub fn observe_all(&self, values: impl Iterator<Item = u64>) {
        if !RECORD {
            return;
        }
        let mut local = [0u64; 24];
        let (mut count, mut sum) = (0, 0);
        for v in values {
            let i = self.bounds.partition_point(|&b| b < v);
            local[i.min(local.len() - 1)] += 1;
            count += 1;
            sum += v;
        }
        for (i, n) in local.iter().enumerate().take(self.buckets.len()) {
            if *n > 0 {
                self.buckets[i].fetch_add(*n, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(count, Ordering::Relaxed);
        self.sum.fetch_add(sum, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        for b in self.buckets.iter() {
            b.store(0, Ordering::Relaxed);
        }
        self.count.store(0, Ordering::Relaxed);
        self.sum.store(0, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut acc = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                acc += b.load(Ordering::Relaxed);
                acc
            })
            .collect();
        Snapshot {
            bounds: self.bounds,
            cumulative,
            count: self.count.load(Ordering::Relaxed),
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

impl Snapshot {
    /// The q-quantile, interpolated linearly within its bucket as Prometheus's
    /// `histogram_quantile` does; 0 when empty. Values past the last bound read as that bound.
    pub fn quantile(&self, q: f64) -> f64 {
        let total = *self.cumulative.last().unwrap_or(&0);
        if total == 0 {
            return 0.0;
        }
        let rank = q * total as f64;
        let i = self
            .cumulative
            .iter()
            .position(|&c| c as f64 >= rank)
            .unwrap_or(self.cumulative.len() - 1);
        if i >= self.bounds.len() {
            return *self.bounds.last().unwrap_or(&0) as f64;
        }
        let (lo, below) = if i == 0 {
            (0.0, 0)
        } else {
            (self.bounds[i - 1] as f64, self.cumulative[i - 1])
        };
        let hi = self.bounds[i] as f64;
        let in_bucket = (self.cumulative[i] - below) as f64;
        if in_bucket == 0.0 {
            return hi;
        }
        lo + (hi - lo) * ((rank - below as f64) / in_bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_quantiles() {
        let h = Histogram::latency();
        for v in [5, 10, 11, 30, 30, 30, 200, 20_000_000] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 8);
        assert_eq!(s.cumulative[0], 2, "<= 10 µs");
        assert_eq!(s.cumulative[1], 3, "<= 25 µs");
        assert_eq!(s.cumulative[2], 6, "<= 50 µs");
        assert_eq!(*s.cumulative.last().unwrap(), 8);
        assert_eq!(s.cumulative[s.cumulative.len() - 2], 7, "one past 10 s");
        // Median: rank 4 of 8, in the 25..50 bucket (3 below, 3 inside).
        assert!((s.quantile(0.5) - (25.0 + 25.0 / 3.0)).abs() < 1e-9);
        let g = Histogram::latency();
        for v in [5, 10, 11, 30, 30, 30, 200, 20_000_000] {
            g.observe_all(std::iter::once(v));
        }
        assert_eq!(g.snapshot(), s);
        let g = Histogram::latency();
        g.observe_all([5, 10, 11, 30, 30, 30, 200, 20_000_000].into_iter());
        assert_eq!(g.snapshot(), s);
        h.reset();
        assert_eq!(h.snapshot().count, 0);
        assert_eq!(h.snapshot().quantile(0.99), 0.0);
    }
}
