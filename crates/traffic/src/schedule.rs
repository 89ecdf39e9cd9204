//! Send schedule: each packet's offset from the run start, reproducible from the seed.
//!
//! [`Schedule`] is an iterator of exactly `count` offsets in nanoseconds,
//! monotonic non-decreasing, the first one always 0:
//!
//! - **fixed**: packet *i* at `i × interval`;
//! - **poisson**: exponential inter-arrival times with mean `interval`, drawn
//!   by inverse transform, `gap = −interval · ln(u)` with `u` uniform in
//!   `(0, 1]` from [`Xoshiro256StarStar`] seeded with the run seed
//!   (`libm::log`, since `f64::ln` needs `std`);
//! - **burst:K**: groups of K packets sent back to back (same offset), group
//!   *g* at `g × K × interval` — the same mean rate as the others.
//!
//! `interval = 0` means back to back (all offsets 0) for every pattern.
//! The same config (and so the same seed) always yields the same offsets.

use core::iter::FusedIterator;

use crate::config::{GenConfig, Pattern};
use crate::rng::Xoshiro256StarStar;

/// Iterator over send offsets (ns from the run start); see the module docs.
#[derive(Clone, Debug)]
pub struct Schedule {
    pattern: Pattern,
    interval_ns: u64,
    count: u32,
    /// Index of the next packet to yield.
    next: u32,
    /// Poisson only: offset of the previous packet.
    last: u64,
    /// Poisson only: sub-nanosecond remainder carried between gaps, so that
    /// truncating each gap to whole ns does not drag the mean rate down.
    carry: f64,
    rng: Xoshiro256StarStar,
}

impl Schedule {
    /// A schedule for `cfg` (its size and kind are irrelevant here). The
    /// config is expected to be valid; out-of-range values are not
    /// rejected but can't panic either (offsets saturate, `burst:0` acts
    /// as `burst:1`).
    pub fn new(cfg: &GenConfig) -> Self {
        Schedule {
            pattern: cfg.pattern,
            interval_ns: cfg.interval_ns,
            count: cfg.count,
            next: 0,
            last: 0,
            carry: 0.0,
            rng: Xoshiro256StarStar::new(cfg.seed),
        }
    }

    /// Total number of offsets this schedule yields (= `count`).
    pub const fn count_total(&self) -> u32 {
        self.count
    }

    fn poisson_gap(&mut self) -> u64 {
        let u = self.rng.next_open01();
        // u ∈ (0, 1] ⇒ −ln(u) ∈ [0, 36.8]: finite and non-negative.
        let exact = -(self.interval_ns as f64) * libm::log(u) + self.carry;
        let whole = libm::floor(exact);
        self.carry = exact - whole;
        // At most 36.8 × 10 s, far below u64::MAX; `as` saturates anyway.
        whole as u64
    }
}

impl Iterator for Schedule {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.next >= self.count {
            return None;
        }
        let i = u64::from(self.next);
        let offset = match self.pattern {
            Pattern::Fixed => i.saturating_mul(self.interval_ns),
            Pattern::Burst(k) => {
                let k = u64::from(k.max(1));
                (i / k).saturating_mul(k).saturating_mul(self.interval_ns)
            }
            Pattern::Poisson if i == 0 || self.interval_ns == 0 => self.last,
            Pattern::Poisson => {
                let gap = self.poisson_gap();
                self.last = self.last.saturating_add(gap);
                self.last
            }
        };
        self.next += 1;
        Some(offset)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.count - self.next.min(self.count)) as usize;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Schedule {}
impl FusedIterator for Schedule {}

/// A digest of a schedule's offsets (FNV-1a over each offset's 8 bytes,
/// little-endian): the generator folds in every offset it actually waited
/// for and reports the digest, so the host can check the run followed the
/// schedule its config names, not merely some schedule.
pub const DIGEST_SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// Folds one offset into a [`DIGEST_SEED`]-started digest.
pub fn digest_step(acc: u64, offset_ns: u64) -> u64 {
    offset_ns.to_le_bytes().iter().fold(acc, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The digest of a whole schedule.
pub fn digest(offsets: impl IntoIterator<Item = u64>) -> u64 {
    offsets.into_iter().fold(DIGEST_SEED, digest_step)
}
