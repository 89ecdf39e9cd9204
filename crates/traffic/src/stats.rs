//! Latency statistics: exact summaries from raw samples, and a fixed log2 histogram for streaming.
//!
//! [`Summary::from_samples`] sorts the caller's sample array in place (no
//! allocation) and reports min, max, mean and nearest-rank percentiles.
//! When keeping every sample is too costly, [`Histogram`] records each one
//! in O(1) into 64 power-of-two buckets (560 bytes, no allocation) and gives
//! exact count/min/max/mean plus bucket-resolution percentile bounds.
//!
//! Percentiles use the nearest-rank definition: the p-th percentile of n
//! sorted samples is the one at rank ⌈p·n/100⌉ (1-based), so it is always
//! an actual sample — no interpolation, no floats. They are given in per
//! mille so that p99.9 (999‰) is expressible.

use core::fmt;

/// Nearest-rank percentile of `sorted` (ascending) at `permille` ‰
/// (500 = median, 990 = p99, 999 = p99.9; values above 1000 act as 1000).
/// `None` for an empty slice.
pub fn nearest_rank(sorted: &[u64], permille: u32) -> Option<u64> {
    let n = sorted.len() as u128;
    if n == 0 {
        return None;
    }
    let p = u128::from(permille.min(1000));
    // ⌈p·n/1000⌉, at least rank 1.
    let rank = (p * n).div_ceil(1000).max(1);
    sorted.get((rank - 1) as usize).copied()
}

/// Summary of a set of samples (e.g. latencies in TSC cycles or ns).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    pub min: u64,
    /// Largest sample.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median (nearest rank).
    pub p50: u64,
    /// 99th percentile (nearest rank).
    pub p99: u64,
}

impl Summary {
    /// The summary of no samples: everything 0. Those zeros are not
    /// measurements: show an empty summary as "n/a" (or JSON `null`),
    /// never as 0 ([`Summary::non_empty`] makes that hard to forget).
    pub const fn empty() -> Self {
        Summary {
            count: 0,
            min: 0,
            max: 0,
            mean: 0.0,
            p50: 0,
            p99: 0,
        }
    }

    /// Sorts `samples` in place (unstable sort: no allocation) and summarises them.
    pub fn from_samples(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::empty();
        }
        samples.sort_unstable();
        // u128: 10M samples of up to 2^64 cannot overflow it.
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Summary {
            count: samples.len() as u64,
            min: samples[0],
            max: samples[samples.len() - 1],
            mean: sum as f64 / samples.len() as f64,
            p50: nearest_rank(samples, 500).unwrap_or(0),
            p99: nearest_rank(samples, 990).unwrap_or(0),
        }
    }

    /// Whether there were no samples.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `None` for the summary of no samples, whose figures mean nothing.
    pub const fn non_empty(self) -> Option<Self> {
        if self.is_empty() { None } else { Some(self) }
    }
}

impl Default for Summary {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("n=0");
        }
        write!(
            f,
            "n={} min={} p50={} p99={} max={} mean={:.1}",
            self.count, self.min, self.p50, self.p99, self.max, self.mean
        )
    }
}

/// Number of histogram buckets: one per power of two of a `u64`.
pub const BUCKETS: usize = 64;

/// Log2 histogram: bucket `i` counts samples in `[2^i, 2^(i+1))`, except
/// bucket 0 which also takes 0 (so `[0, 2)`). Fixed size, O(1) per sample,
/// usable in an interrupt handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    buckets: [u64; BUCKETS],
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Histogram {
            buckets: [0; BUCKETS],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// The bucket a value falls in: ⌊log2(v)⌋, with 0 in bucket 0.
    pub const fn bucket_of(value: u64) -> usize {
        (63 - (value | 1).leading_zeros()) as usize
    }

    /// Inclusive value range `(low, high)` of bucket `index` (< 64).
    pub const fn bucket_range(index: usize) -> (u64, u64) {
        let low = if index == 0 { 0 } else { 1u64 << index };
        let high = if index >= 63 {
            u64::MAX
        } else {
            (1u64 << (index + 1)) - 1
        };
        (low, high)
    }

    /// Records one sample.
    pub fn record(&mut self, value: u64) {
        self.buckets[Self::bucket_of(value)] += 1;
        self.count += 1;
        self.sum += u128::from(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Adds all of `other`'s samples (e.g. per-core histograms).
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Forgets every sample.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Samples recorded.
    pub const fn count(&self) -> u64 {
        self.count
    }

    /// Per-bucket counts.
    pub const fn buckets(&self) -> &[u64; BUCKETS] {
        &self.buckets
    }

    /// Smallest sample, if any.
    pub const fn min(&self) -> Option<u64> {
        if self.count == 0 {
            None
        } else {
            Some(self.min)
        }
    }

    /// Largest sample, if any.
    pub const fn max(&self) -> Option<u64> {
        if self.count == 0 {
            None
        } else {
            Some(self.max)
        }
    }

    /// Exact mean, if any samples.
    pub fn mean(&self) -> Option<f64> {
        if self.count == 0 {
            None
        } else {
            Some(self.sum as f64 / self.count as f64)
        }
    }

    /// An upper bound of the nearest-rank percentile at `permille` ‰: the top
    /// of the bucket holding that rank, tightened by the exact max. The true
    /// value lies in that bucket, i.e. within a factor 2 below the bound.
    pub fn percentile_upper_bound(&self, permille: u32) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let p = u128::from(permille.min(1000));
        let rank = (p * u128::from(self.count)).div_ceil(1000).max(1) as u64;
        let mut seen = 0u64;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::bucket_range(i).1.min(self.max));
            }
        }
        Some(self.max)
    }

    /// Non-empty buckets as `(low, high, count)`, ascending — for printing.
    pub fn nonempty(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c != 0)
            .map(|(i, &c)| {
                let (lo, hi) = Self::bucket_range(i);
                (lo, hi, c)
            })
    }
}
