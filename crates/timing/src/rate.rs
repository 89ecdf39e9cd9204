//! A TSC rate from windows against a reference clock.
//!
//! One window is two [`Stamp`]s: each reads the TSC, then the reference
//! (the PIT's counter, the host's `CLOCK_MONOTONIC_RAW`), then the TSC
//! again. What happens *between* the two stamps does not matter (a
//! descheduled virtual CPU, a long poll: both clocks keep running); only a
//! stamp's own width (`tsc_after - tsc_before`) is uncertainty, and the
//! caller keeps the narrowest of several tries. This is what makes a
//! window robust on a loaded host, where a "wait until the reference says
//! N ms passed, then read the TSC" loop reads the TSC late whenever the
//! host runs something else in between (5-6 GHz for a 2.6 GHz TSC).
//!
//! Several windows then give a [`RateEstimate`]: the median, with every
//! window more than [`OUTLIER_PPM`] off it rejected, and the spread of the
//! rest.

/// One reading of the reference clock bracketed by two TSC reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// TSC just before the reference was read.
    pub tsc_before: u64,
    /// The reference clock's value, in its own ticks, counting up.
    pub reference: u64,
    /// TSC just after the reference was read.
    pub tsc_after: u64,
}

impl Stamp {
    /// TSC ticks the reading took: its uncertainty.
    pub fn width(&self) -> u64 {
        self.tsc_after.saturating_sub(self.tsc_before)
    }

    /// The TSC at the midpoint of the reading, doubled (exact integer).
    fn mid2(&self) -> u128 {
        u128::from(self.tsc_before) + u128::from(self.tsc_after)
    }
}

/// The narrowest of `tries` (at least one) readings of a reference clock,
/// each bracketed by two reads of the TSC: `tsc` reads the TSC,
/// `reference` the other clock (in its own ticks, counting up). The
/// narrowest reading is the one least disturbed (an interrupt, a
/// descheduled virtual CPU between the three reads).
pub fn narrowest_stamp<E>(
    tries: usize,
    mut tsc: impl FnMut() -> u64,
    mut reference: impl FnMut() -> Result<u64, E>,
) -> Result<Stamp, E> {
    let mut best: Option<Stamp> = None;
    for _ in 0..tries.max(1) {
        let tsc_before = tsc();
        let reference = reference()?;
        let tsc_after = tsc();
        let s = Stamp {
            tsc_before,
            reference,
            tsc_after,
        };
        if best.is_none_or(|b| s.width() < b.width()) {
            best = Some(s);
        }
    }
    Ok(best.expect("at least one try"))
}

/// TSC ticks per second over the window `start..end` against a reference
/// running at `reference_hz`. `None` when the window is empty or runs
/// backwards on either clock, or a stamp is malformed.
pub fn window_rate(start: Stamp, end: Stamp, reference_hz: u64) -> Option<u64> {
    if start.tsc_after < start.tsc_before || end.tsc_after < end.tsc_before {
        return None;
    }
    let reference = end.reference.checked_sub(start.reference)?;
    let tsc2 = end.mid2().checked_sub(start.mid2())?;
    if reference == 0 || tsc2 == 0 {
        return None;
    }
    let hz = tsc2 * u128::from(reference_hz) / (2 * u128::from(reference));
    u64::try_from(hz).ok()
}

/// A window more than this far from the median (parts per million) is an
/// outlier.
pub const OUTLIER_PPM: u32 = 10_000;

/// Windows a [`robust_rate`] looks at, at most.
pub const MAX_WINDOWS: usize = 16;

/// What several windows say about the rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateEstimate {
    /// The median of the windows, ticks per second.
    pub hz: u64,
    /// Windows measured.
    pub windows: u8,
    /// Windows within [`OUTLIER_PPM`] of the median.
    pub kept: u8,
    /// (max - min) / median of the kept windows, in ppm.
    pub spread_ppm: u32,
}

impl RateEstimate {
    /// Whether a majority of the windows agree with the median and among
    /// themselves within `limit_ppm`: the estimate can be trusted.
    pub fn is_consistent(&self, limit_ppm: u32) -> bool {
        2 * u32::from(self.kept) > u32::from(self.windows) && self.spread_ppm <= limit_ppm
    }
}

/// The median of `windows` (sorted in place; at most [`MAX_WINDOWS`]
/// are used), the windows near it, and their spread. `None` for no windows.
pub fn robust_rate(windows: &mut [u64]) -> Option<RateEstimate> {
    let n = windows.len().min(MAX_WINDOWS);
    let windows = &mut windows[..n];
    if windows.is_empty() {
        return None;
    }
    windows.sort_unstable();
    // Lower median for an even count: always one of the windows.
    let median = windows[(n - 1) / 2];
    let mut kept = 0u8;
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for &w in windows.iter() {
        if crate::deviation_ppm(w, median) <= OUTLIER_PPM {
            kept += 1;
            lo = lo.min(w);
            hi = hi.max(w);
        }
    }
    Some(RateEstimate {
        hz: median,
        windows: n as u8,
        kept,
        spread_ppm: crate::deviation_ppm(median + (hi - lo), median),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_narrowest_reading_is_kept() {
        // TSC reads 0,10 | 20,21 | 30,35: the second try is the narrowest.
        let mut t = [0u64, 10, 20, 21, 30, 35].into_iter();
        let mut r = [100u64, 200, 300].into_iter();
        let s = narrowest_stamp::<()>(3, || t.next().unwrap(), || Ok(r.next().unwrap())).unwrap();
        assert_eq!((s.tsc_before, s.reference, s.tsc_after), (20, 200, 21));
        let e = narrowest_stamp(2, || 0, || Err::<u64, &str>("no clock"));
        assert_eq!(e, Err("no clock"));
    }

    fn stamp(tsc: u64, width: u64, reference: u64) -> Stamp {
        Stamp {
            tsc_before: tsc,
            reference,
            tsc_after: tsc + width,
        }
    }

    #[test]
    fn window_rate_uses_stamp_midpoints() {
        // 2.596 GHz against the PIT: 59_659 PIT ticks = 50 ms.
        let start = stamp(1_000, 200, 0);
        let end = stamp(1_000 + 129_800_000, 200, 59_659);
        let hz = window_rate(start, end, 1_193_182).unwrap();
        assert!(crate::deviation_ppm(hz, 2_596_000_000) < 100, "{hz}");
        // Asymmetric widths shift the midpoint, not the edges.
        let wide_end = stamp(1_000 + 129_800_000 - 1_000, 2_200, 59_659);
        assert_eq!(window_rate(start, wide_end, 1_193_182), Some(hz));
    }

    #[test]
    fn window_rate_refuses_empty_and_backward_windows() {
        let s = stamp(100, 10, 5);
        assert_eq!(window_rate(s, s, 1_000), None);
        assert_eq!(window_rate(stamp(200, 10, 6), s, 1_000), None);
        assert_eq!(window_rate(s, stamp(90, 10, 9), 1_000), None);
        let broken = Stamp {
            tsc_before: 500,
            reference: 9,
            tsc_after: 400,
        };
        assert_eq!(window_rate(s, broken, 1_000), None);
    }

    #[test]
    fn a_late_tsc_read_between_stamps_does_not_matter() {
        // The window's own length is what it is; only the stamps count.
        let start = stamp(0, 100, 1_000_000_000);
        let end = stamp(259_600_000, 100, 1_100_000_000);
        assert_eq!(window_rate(start, end, 1_000_000_000), Some(2_596_000_000));
    }

    #[test]
    fn median_rejects_outliers_and_reports_spread() {
        let mut w = [
            2_596_000_000,
            2_597_000_000,
            5_200_000_000,
            2_595_000_000,
            2_596_500_000,
        ];
        let e = robust_rate(&mut w).unwrap();
        assert_eq!(e.hz, 2_596_500_000);
        assert_eq!((e.windows, e.kept), (5, 4));
        // 2.595 .. 2.597 GHz: 2 MHz over 2.596 GHz.
        assert!((760..=780).contains(&e.spread_ppm), "{}", e.spread_ppm);
        assert!(e.is_consistent(20_000));
    }

    #[test]
    fn no_majority_is_not_consistent() {
        let mut w = [1_000, 2_000, 3_000, 4_000];
        let e = robust_rate(&mut w).unwrap();
        assert_eq!(e.hz, 2_000);
        assert_eq!(e.kept, 1);
        assert!(!e.is_consistent(20_000));
        assert_eq!(robust_rate(&mut []), None);
    }

    #[test]
    fn one_window_is_its_own_median() {
        let e = robust_rate(&mut [42]).unwrap();
        assert_eq!((e.hz, e.windows, e.kept, e.spread_ppm), (42, 1, 1, 0));
    }
}
