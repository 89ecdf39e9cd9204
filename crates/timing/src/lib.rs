//! mint-timing: how fast the TSC runs, whether the sources saying so agree,
//! and how far apart two cores' TSCs are. Pure logic, shared by the node
//! kernel (PIT windows, cross-core exchange) and the host tool (its own
//! TSC against `CLOCK_MONOTONIC_RAW`); no hardware access here.
//!
//! - [`rate`]: one window's rate from two (TSC, reference) stamps, and a
//!   robust rate from several windows (median, outlier rejection, spread);
//! - [`policy`]: the sources of a TSC rate, which one wins, and when a
//!   boot is refused or warned about ([`policy::decide`]);
//! - [`sync`]: bounds on the offset between two cores' TSCs from stamp
//!   exchanges ([`sync::OffsetBound`]).
//!
//! What it does not do: read any clock. The callers do, and hand the
//! numbers in.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod policy;
pub mod rate;
pub mod sync;

pub use policy::{Decision, Source, Sources, Status, decide};
pub use rate::{RateEstimate, Stamp, narrowest_stamp, robust_rate, window_rate};
pub use sync::{Exchange, OffsetBound, OffsetTracker};

/// Parts per million of `value` off `reference` (absolute), saturating.
pub fn deviation_ppm(value: u64, reference: u64) -> u32 {
    if reference == 0 {
        return u32::MAX;
    }
    let diff = u128::from(value.abs_diff(reference));
    (diff * 1_000_000 / u128::from(reference)).min(u128::from(u32::MAX)) as u32
}

/// `ticks` of a clock running at `hz`, in nanoseconds (saturating; `hz`
/// 0 gives 0).
pub fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    (u128::from(ticks) * 1_000_000_000 / u128::from(hz)).min(u128::from(u64::MAX)) as u64
}

/// Like [`ticks_to_ns`] for a signed tick count.
pub fn signed_ticks_to_ns(ticks: i64, hz: u64) -> i64 {
    let ns = ticks_to_ns(ticks.unsigned_abs(), hz).min(i64::MAX as u64) as i64;
    if ticks < 0 { -ns } else { ns }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deviation_is_symmetric_in_sign_and_saturates() {
        assert_eq!(deviation_ppm(102, 100), 20_000);
        assert_eq!(deviation_ppm(98, 100), 20_000);
        assert_eq!(deviation_ppm(5_200_000_000, 2_596_000_000), 1_003_081);
        assert_eq!(deviation_ppm(1, 0), u32::MAX);
    }

    #[test]
    fn tick_conversions() {
        assert_eq!(ticks_to_ns(2_596, 2_596_000_000), 1_000);
        assert_eq!(ticks_to_ns(5, 0), 0);
        assert_eq!(signed_ticks_to_ns(-2_596, 2_596_000_000), -1_000);
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX);
    }
}
