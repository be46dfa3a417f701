//! Latency and batch-size histograms for metrics: fixed log-linear buckets of relaxed atomic
//! counters, one set per thread. A recording thread adds to its own shard (its own cache
//! lines, so event loops and queue workers on many cores never contend), and a scrape merges
//! the shards without stopping anything. Shards are allocated on the first observation, so a
//! command or model version nobody uses costs one pointer.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Latency bucket upper bounds in microseconds: 1, 2.5 and 5 per decade, 10 µs to 10 s.
pub const LATENCY_BOUNDS_US: [u64; 19] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Finer latency bounds in nanoseconds, 100 ns to 10 s at two significant digits (100, 110,
/// …, 990, 1000, 1100, …): at most 10% apart, as HdrHistogram's two-digit precision that Redis
/// uses. Command latencies are read back as percentiles from these (INFO latencystats) and
/// exported on [`LATENCY_BOUNDS_US`], every one of which is among them.
pub const FINE_BOUNDS_NS: [u64; 721] = fine_bounds();

const fn fine_bounds() -> [u64; 721] {
    let mut out = [0u64; 721];
    let mut scale = 10; // the first decade: 10..99 tens of nanoseconds
    let mut i = 0;
    while i < 720 {
        out[i] = (10 + (i % 90) as u64) * scale;
        if i % 90 == 89 {
            scale *= 10;
        }
        i += 1;
    }
    out[720] = 10_000_000_000;
    out
}

/// Batch-size bucket upper bounds (requests per run).
pub const BATCH_BOUNDS: [u64; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// Whether histograms record at all: off only in a build without the `metrics` feature, which
/// exists to measure what recording costs (benches/compare.py's metrics section).
const RECORD: bool = cfg!(feature = "metrics");

/// Shards per histogram: the machine's parallelism as a power of two, at most 16. Threads past
/// that share shards round-robin, which stays correct (the counters are atomic) and rarely
/// contends.
fn shard_count() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .next_power_of_two()
            .min(16)
    })
}

/// This thread's shard index, handed out in order of first use.
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static SLOT: Cell<usize> = const { Cell::new(usize::MAX) });
    SLOT.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT.fetch_add(1, Ordering::Relaxed);
        s.set(v);
        v
    })
}

/// A histogram over fixed bounds, with an overflow bucket, a count and a sum.
pub struct Histogram {
    bounds: &'static [u64],
    /// `shard_count()` runs of `stride` counters: the buckets, then count and sum, then
    /// padding so that no two shards share a cache line.
    cells: OnceLock<Box<[AtomicU64]>>,
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
            cells: OnceLock::new(),
        }
    }

    pub fn latency() -> Histogram {
        Histogram::new(&LATENCY_BOUNDS_US)
    }

    /// Command latencies in nanoseconds (see [`FINE_BOUNDS_NS`]).
    pub fn fine_latency() -> Histogram {
        Histogram::new(&FINE_BOUNDS_NS)
    }

    pub fn batch() -> Histogram {
        Histogram::new(&BATCH_BOUNDS)
    }

    /// Counters per shard: buckets (bounds and overflow), count, sum, rounded up to whole
    /// cache lines plus one line of padding.
    fn stride(&self) -> usize {
        (self.bounds.len() + 3).div_ceil(8) * 8 + 8
    }

    /// This thread's shard: (buckets, count, sum).
    fn shard(&self) -> (&[AtomicU64], &AtomicU64, &AtomicU64) {
        let stride = self.stride();
        let cells = self.cells.get_or_init(|| {
            (0..stride * shard_count())
                .map(|_| AtomicU64::new(0))
                .collect()
        });
        let at = (thread_slot() & (shard_count() - 1)) * stride;
        let n = self.bounds.len() + 1;
        (&cells[at..at + n], &cells[at + n], &cells[at + n + 1])
    }

    pub fn observe(&self, v: u64) {
        self.observe_n(v, 1);
    }

    /// Records `n` observations of `v` at once (every request of a batch shares its run time).
    pub fn observe_n(&self, v: u64, n: u64) {
        if !RECORD || n == 0 {
            return;
        }
        let i = self.bounds.partition_point(|&b| b < v);
        let (buckets, count, sum) = self.shard();
        buckets[i].fetch_add(n, Ordering::Relaxed);
        count.fetch_add(n, Ordering::Relaxed);
        sum.fetch_add(v.saturating_mul(n), Ordering::Relaxed);
    }

    /// Records many values with one atomic add per bucket they touch, not one per value.
    pub fn observe_all(&self, values: impl Iterator<Item = u64>) {
        if !RECORD {
            return;
        }
        let mut local = [0u64; 24];
        if self.bounds.len() >= local.len() {
            values.for_each(|v| self.observe(v));
            return;
        }
        let (mut n, mut total) = (0, 0u64);
        for v in values {
            let i = self.bounds.partition_point(|&b| b < v);
            local[i.min(local.len() - 1)] += 1;
            n += 1;
            total = total.saturating_add(v);
        }
        if n == 0 {
            return;
        }
        let (buckets, count, sum) = self.shard();
        for (b, k) in buckets.iter().zip(local.iter()) {
            if *k > 0 {
                b.fetch_add(*k, Ordering::Relaxed);
            }
        }
        count.fetch_add(n, Ordering::Relaxed);
        sum.fetch_add(total, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        if let Some(cells) = self.cells.get() {
            for c in cells.iter() {
                c.store(0, Ordering::Relaxed);
            }
        }
    }

    /// The shards merged.
    pub fn snapshot(&self) -> Snapshot {
        let n = self.bounds.len() + 1;
        let mut counts = vec![0u64; n];
        let (mut count, mut sum) = (0, 0u64);
        if let Some(cells) = self.cells.get() {
            for shard in cells.chunks(self.stride()) {
                for (c, cell) in counts.iter_mut().zip(&shard[..n]) {
                    *c += cell.load(Ordering::Relaxed);
                }
                count += shard[n].load(Ordering::Relaxed);
                sum = sum.wrapping_add(shard[n + 1].load(Ordering::Relaxed));
            }
        }
        let mut acc = 0;
        let cumulative = counts
            .into_iter()
            .map(|c| {
                acc += c;
                acc
            })
            .collect();
        Snapshot {
            bounds: self.bounds,
            cumulative,
            count,
            sum,
        }
    }
}

impl Snapshot {
    /// The same observations on coarser bounds, each `scale` times this one's unit: every
    /// `bounds[i] * scale` should be one of this snapshot's bounds, so that counts stay exact
    /// (otherwise a bound counts what lies below the nearest finer bound under it).
    pub fn regrid(&self, bounds: &'static [u64], scale: u64) -> Snapshot {
        let scale = scale.max(1);
        let mut cumulative: Vec<u64> = bounds
            .iter()
            .map(|&b| {
                let i = self
                    .bounds
                    .partition_point(|&f| f <= b.saturating_mul(scale));
                if i == 0 {
                    0
                } else {
                    self.cumulative[i - 1]
                }
            })
            .collect();
        cumulative.push(*self.cumulative.last().unwrap_or(&0));
        Snapshot {
            bounds,
            cumulative,
            count: self.count,
            sum: self.sum / scale,
        }
    }

    /// The upper bound of the bucket holding the q-quantile: a value at least as large as
    /// that share of the observations, as HdrHistogram's value-at-percentile reads (INFO
    /// latencystats). Overflow reads as the last bound; 0 when empty.
    pub fn upper_at(&self, q: f64) -> u64 {
        let total = *self.cumulative.last().unwrap_or(&0);
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let i = self.cumulative.partition_point(|&c| c < rank);
        self.bounds
            .get(i)
            .or(self.bounds.last())
            .copied()
            .unwrap_or(0)
    }

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
        assert_eq!(s.upper_at(0.5), 50);
        assert_eq!(s.upper_at(0.0), 10, "the smallest observation's bucket");
        assert_eq!(
            s.upper_at(1.0),
            10_000_000,
            "overflow reads as the last bound"
        );
        h.reset();
        assert_eq!(h.snapshot().count, 0);
        assert_eq!(h.snapshot().quantile(0.99), 0.0);
    }

    #[test]
    fn fine_bounds_hold_the_exported_ones() {
        assert_eq!(FINE_BOUNDS_NS[0], 100);
        assert_eq!(FINE_BOUNDS_NS[1], 110);
        assert_eq!(FINE_BOUNDS_NS[89], 990);
        assert_eq!(FINE_BOUNDS_NS[90], 1_000);
        assert_eq!(FINE_BOUNDS_NS[719], 9_900_000_000);
        assert!(FINE_BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
        assert!(FINE_BOUNDS_NS
            .windows(2)
            .all(|w| w[1] as f64 / w[0] as f64 <= 1.1 + 1e-9));
        for b in LATENCY_BOUNDS_US {
            assert!(FINE_BOUNDS_NS.contains(&(b * 1000)), "{b} µs");
        }
    }

    #[test]
    fn regrid_keeps_counts_exact() {
        let h = Histogram::fine_latency();
        for ns in [
            150,
            9_000,
            10_000,
            10_001,
            24_000,
            60_000_000,
            20_000_000_000,
        ] {
            h.observe(ns);
        }
        let fine = h.snapshot();
        let s = fine.regrid(&LATENCY_BOUNDS_US, 1000);
        assert_eq!(s.bounds, &LATENCY_BOUNDS_US[..]);
        assert_eq!(s.cumulative.len(), LATENCY_BOUNDS_US.len() + 1);
        assert_eq!(s.cumulative[0], 3, "<= 10 µs");
        assert_eq!(s.cumulative[1], 5, "<= 25 µs");
        assert_eq!(s.cumulative[11], 5, "<= 50 ms");
        assert_eq!(s.cumulative[12], 6, "<= 100 ms");
        assert_eq!(s.cumulative[18], 6, "<= 10 s");
        assert_eq!(*s.cumulative.last().unwrap(), 7);
        assert_eq!(s.count, 7);
        assert_eq!(s.sum, fine.sum / 1000);
        // 50 ms is 50,000,000 ns: the p50 of one such value reads at least that.
        let d = Histogram::fine_latency();
        d.observe(50_100_000);
        assert_eq!(d.snapshot().upper_at(0.5), 51_000_000);
    }

    /// Many threads record at once; the merged snapshot has every observation.
    #[test]
    fn shards_merge() {
        let h = std::sync::Arc::new(Histogram::fine_latency());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        h.observe(100 + (i + t) % 5_000);
                    }
                    h.observe_n(1_000_000, 5);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = h.snapshot();
        assert_eq!(s.count, 8 * 10_005);
        assert_eq!(*s.cumulative.last().unwrap(), 8 * 10_005);
        let expected: u64 = (0..8u64)
            .map(|t| (0..10_000u64).map(|i| 100 + (i + t) % 5_000).sum::<u64>() + 5_000_000)
            .sum();
        assert_eq!(s.sum, expected);
        h.reset();
        assert_eq!(h.snapshot().count, 0);
    }

    #[test]
    fn unused_histograms_allocate_nothing() {
        let h = Histogram::latency();
        assert!(h.cells.get().is_none());
        assert_eq!(
            h.snapshot().cumulative,
            vec![0; LATENCY_BOUNDS_US.len() + 1]
        );
        h.observe(5);
        assert!(h.cells.get().is_some());
    }
}
