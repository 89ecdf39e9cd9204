//! The TSC rate a native bench converts its ticks with, and its
//! cross-checks.
//!
//! The rate is the host's own measurement (`crate::tsc::measure`: five
//! windows of 50 ms against `CLOCK_MONOTONIC_RAW`, each bracketed, median
//! with outlier rejection), put through the same policy as a boot's
//! (`mint_timing::decide`) with whatever CPUID offers here (the hypervisor
//! leaf 0x40000010, leaf 0x15, the nominal 0x16). A second check spans the
//! whole bench: one stamp before the first experiment, one after the last;
//! the rate between them must agree with the windows' within
//! `mint_timing::policy::AGREE_PPM`, or the result says it does not.

use anyhow::{Result, bail};
use mint_timing::policy::{AGREE_PPM, Sources, Status};
use mint_timing::{RateEstimate, Stamp};
use serde_json::{Value, json};

/// The calibrated clock of one bench run.
pub struct Clock {
    pub hz: u64,
    start: Stamp,
    estimate: RateEstimate,
    sources: Sources,
    chosen: &'static str,
    status: Status,
    reason: &'static str,
}

fn stamp() -> Result<Stamp> {
    mint_timing::narrowest_stamp(5, crate::os::rdtsc, crate::os::monotonic_raw_ns)
}

/// TSC rates CPUID states on this CPU: (hypervisor leaf, leaf 0x15, leaf
/// 0x16), each `None` where the leaf is absent or empty.
fn cpuid_rates() -> (Option<u64>, Option<u64>, Option<u64>) {
    use core::arch::x86_64::__cpuid;
    let max = __cpuid(0).eax;
    let leaf15 = (max >= 0x15).then(|| __cpuid(0x15)).and_then(|r| {
        (r.eax != 0 && r.ebx != 0 && r.ecx != 0)
            .then(|| u64::from(r.ecx) * u64::from(r.ebx) / u64::from(r.eax))
    });
    let leaf16 = (max >= 0x16)
        .then(|| __cpuid(0x16).eax & 0xffff)
        .filter(|&mhz| mhz != 0)
        .map(|mhz| u64::from(mhz) * 1_000_000);
    // CPUID.1:ECX bit 31: running under a hypervisor, whose leaves start
    // at 0x40000000.
    let hypervisor = (__cpuid(1).ecx >> 31) & 1 == 1;
    let hv = hypervisor
        .then(|| __cpuid(0x4000_0000).eax)
        .filter(|&max_hv| max_hv >= 0x4000_0010)
        .map(|_| __cpuid(0x4000_0010).eax)
        .filter(|&khz| khz != 0)
        .map(|khz| u64::from(khz) * 1000);
    (hv, leaf15, leaf16)
}

impl Clock {
    /// Measures the rate, cross-checks it with CPUID, and takes the
    /// whole-run check's first stamp. Refuses when the sources disagree
    /// and nothing says which is right (every ns figure would be off).
    pub fn calibrate() -> Result<Clock> {
        let start = stamp()?;
        let estimate = crate::tsc::measure()?;
        let (hypervisor, cpuid15, cpuid16) = cpuid_rates();
        let sources = Sources {
            hypervisor,
            cpuid15,
            cpuid16,
            pit: None,
            host: estimate.is_consistent(AGREE_PPM).then_some(estimate.hz),
        };
        let decision = mint_timing::decide(&sources, false);
        let Some((source, hz)) = decision.chosen else {
            bail!(
                "no usable TSC rate: the host's windows disagree ({} of {} near the median, spread {} ppm) and CPUID gives none; is the machine very loaded?",
                estimate.kept,
                estimate.windows,
                estimate.spread_ppm
            );
        };
        if decision.status == Status::Refuse {
            bail!("TSC rate: {}", decision.reason);
        }
        Ok(Clock {
            hz,
            start,
            estimate,
            sources,
            chosen: source.as_str(),
            status: decision.status,
            reason: decision.reason,
        })
    }

    /// The result's `"tsc"` object, with the whole-run check (a stamp taken
    /// now against the one taken at calibration), and any warning about it.
    pub fn finish(&self) -> Result<(Value, Option<String>)> {
        let end = stamp()?;
        let whole = mint_timing::window_rate(self.start, end, 1_000_000_000);
        let ppm = whole.map(|w| mint_timing::deviation_ppm(w, self.hz));
        let span_ms = end.reference.saturating_sub(self.start.reference) / 1_000_000;
        let warning = match ppm {
            Some(p) if p > AGREE_PPM => Some(format!(
                "the TSC ran at {} Hz over the whole bench ({span_ms} ms) against {} Hz calibrated: {p} ppm apart, every ns figure is in doubt",
                whole.unwrap_or(0),
                self.hz
            )),
            None => Some("the whole-bench TSC check gave no rate".to_string()),
            _ => None,
        };
        let tsc = json!({
            "hz": self.hz,
            "chosen": self.chosen,
            "status": self.status.as_str(),
            "reason": self.reason,
            "sources": {
                "host": {
                    "hz": self.estimate.hz,
                    "windows": self.estimate.windows,
                    "kept": self.estimate.kept,
                    "spread_ppm": self.estimate.spread_ppm,
                    "window_ms": 50,
                    "reference": "CLOCK_MONOTONIC_RAW",
                },
                "cpuid_0x40000010": self.sources.hypervisor,
                "cpuid_0x15": self.sources.cpuid15,
                "cpuid_0x16": self.sources.cpuid16,
            },
            "whole_run": {
                "hz": whole,
                "span_ms": span_ms,
                "deviation_ppm": ppm,
                "agree": ppm.is_some_and(|p| p <= AGREE_PPM),
            },
        });
        Ok((tsc, warning))
    }
}

/// The host's TSC at its calibrated rate, as the support side's clock.
pub struct HostTsc(pub u64);

impl mint_support::Clock for HostTsc {
    fn now(&self) -> u64 {
        crate::os::rdtsc()
    }

    fn hz(&self) -> u64 {
        self.0
    }
}
