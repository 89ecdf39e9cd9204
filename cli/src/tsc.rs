//! The host's own TSC rate, as a cross-check of node 0's calibration.
//!
//! Under TCG the guest's TSC is the host's (QEMU reads the host counter),
//! and under KVM without TSC scaling as well; so the host measures its own
//! TSC against `CLOCK_MONOTONIC_RAW` (not slewed by NTP) and passes the
//! figure on the kernel command line (`mint.host_tsc_hz=`), where node 0
//! cross-checks it with its PIT windows and the CPUID leaves
//! (`mint_timing::decide`). Each window is two bracketed stamps
//! (`mint_timing::window_rate`), so this process being descheduled in
//! between costs nothing; the windows go through the same median and
//! outlier rejection as the PIT's.

use std::time::Duration;

use anyhow::{Result, bail};
use mint_timing::{RateEstimate, Stamp};
use serde_json::{Value, json};

/// Windows and their length.
const WINDOWS: usize = 5;
const WINDOW: Duration = Duration::from_millis(50);
/// Tries per stamp; the narrowest is kept.
const STAMP_TRIES: usize = 5;

/// The host's measurement, or the figure given with `--host-tsc-hz`.
#[derive(Clone, Debug)]
pub struct HostTsc {
    /// What node 0 is told (`None`: nothing usable to tell).
    pub hz: Option<u64>,
    /// The measurement behind it (`None` when overridden or impossible).
    pub estimate: Option<RateEstimate>,
    /// Given with `--host-tsc-hz` rather than measured.
    pub overridden: bool,
    /// Why nothing is passed, if so.
    pub problem: Option<String>,
}

impl HostTsc {
    /// The kernel command-line word, if any.
    pub fn cmdline(&self) -> Option<String> {
        self.hz.map(|hz| format!("mint.host_tsc_hz={hz}"))
    }

    /// The report's `"host_measurement"` object.
    pub fn to_json(&self) -> Value {
        json!({
            "hz": self.hz,
            "overridden": self.overridden,
            "windows": self.estimate.map(|e| e.windows),
            "kept": self.estimate.map(|e| e.kept),
            "spread_ppm": self.estimate.map(|e| e.spread_ppm),
            "window_ms": WINDOW.as_millis() as u64,
            "reference": "CLOCK_MONOTONIC_RAW",
            "problem": self.problem,
        })
    }
}

/// `--host-tsc-hz` if given, else a fresh measurement.
pub fn host_tsc(overridden: Option<u64>) -> HostTsc {
    if let Some(hz) = overridden {
        return HostTsc {
            hz: Some(hz),
            estimate: None,
            overridden: true,
            problem: None,
        };
    }
    match measure() {
        Ok(e) if e.is_consistent(mint_timing::policy::AGREE_PPM) => HostTsc {
            hz: Some(e.hz),
            estimate: Some(e),
            overridden: false,
            problem: None,
        },
        Ok(e) => HostTsc {
            hz: None,
            estimate: Some(e),
            overridden: false,
            problem: Some(format!(
                "the host's TSC windows disagree ({} of {} near the median, spread {} ppm); not passed to node 0",
                e.kept, e.windows, e.spread_ppm
            )),
        },
        Err(e) => HostTsc {
            hz: None,
            estimate: None,
            overridden: false,
            problem: Some(format!("{e:#}")),
        },
    }
}

fn stamp() -> Result<Stamp> {
    mint_timing::narrowest_stamp(STAMP_TRIES, crate::os::rdtsc, crate::os::monotonic_raw_ns)
}

/// The host's TSC rate over [`WINDOWS`] windows of [`WINDOW`].
pub fn measure() -> Result<RateEstimate> {
    if !cfg!(target_arch = "x86_64") {
        bail!("the host is not x86-64");
    }
    let mut rates = Vec::with_capacity(WINDOWS);
    for _ in 0..WINDOWS {
        let start = stamp()?;
        std::thread::sleep(WINDOW);
        let end = stamp()?;
        if let Some(hz) = mint_timing::window_rate(start, end, 1_000_000_000) {
            rates.push(hz);
        }
    }
    match mint_timing::robust_rate(&mut rates) {
        Some(e) => Ok(e),
        None => bail!("no host TSC window gave a rate"),
    }
}

/// Adds the host's side to a node-0 report's `"tsc"` object; with
/// `to_stderr` (`--json`: the summary for people is not printed) repeats
/// its warnings there.
pub fn annotate(report: &mut Value, host: &HostTsc, to_stderr: bool) {
    if report["tsc"].is_object() {
        report["tsc"]["host_measurement"] = host.to_json();
    }
    if to_stderr {
        for w in warnings(report) {
            errln!("mint: WARNING: {w}");
        }
    }
}

/// `2596 MHz (pit; agree)` for people.
pub fn describe(report: &Value) -> String {
    let tsc = &report["tsc"];
    let mhz = report["tsc_hz"].as_f64().unwrap_or(0.0) / 1e6;
    let sources: Vec<String> = tsc["sources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, v)| {
            let hz = v.as_u64().or_else(|| v["hz"].as_u64())?;
            Some(format!("{name} {:.1}", hz as f64 / 1e6))
        })
        .collect();
    format!(
        "{mhz:.0} MHz (from {}; {}: {} MHz)",
        tsc["chosen"].as_str().unwrap_or("?"),
        tsc["status"].as_str().unwrap_or("?"),
        sources.join(", ")
    )
}

/// Warnings a report carries about its timing: TSC sources that disagree,
/// nodes whose TSC offset puts cross-core figures in doubt.
pub fn warnings(report: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let tsc = &report["tsc"];
    if tsc["status"] == "warn" {
        out.push(format!(
            "TSC: {} (using {}; farthest source {} off by {} ppm)",
            tsc["reason"].as_str().unwrap_or("?"),
            tsc["chosen"].as_str().unwrap_or("?"),
            tsc["farthest"].as_str().unwrap_or("?"),
            tsc["disagreement_ppm"]
        ));
    }
    for n in report["nodes"].as_array().into_iter().flatten() {
        let sync = &n["tsc_sync"];
        if sync["skewed"] == true {
            out.push(format!(
                "node{}'s TSC may be up to {} ns off node 0's (limit {} ns): cross-core latencies with it are in doubt",
                n["id"], sync["worst_abs_ns"], report["tsc_skew_limit_ns"]
            ));
        } else if sync.is_null() && n["state"] == "running" {
            out.push(format!(
                "node{}'s TSC was not checked against node 0's: cross-core latencies with it are unchecked",
                n["id"]
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_name_a_disagreement_and_every_doubtful_node() {
        let report = json!({
            "tsc_skew_limit_ns": 2000,
            "tsc": {"status": "warn", "reason": "sources disagree", "chosen": "pit",
                    "farthest": "host", "disagreement_ppm": 1003081},
            "nodes": [
                {"id": 0, "state": "running", "tsc_sync": {"reference": true, "skewed": false}},
                {"id": 1, "state": "running", "tsc_sync": {"skewed": true, "worst_abs_ns": 408219}},
                {"id": 2, "state": "running", "tsc_sync": null},
                {"id": 3, "state": "crashed", "tsc_sync": null},
            ],
        });
        let w = warnings(&report);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].starts_with(
            "TSC: sources disagree (using pit; farthest source host off by 1003081 ppm)"
        ));
        assert!(w[1].starts_with("node1's TSC may be up to 408219 ns off"));
        assert!(w[2].starts_with("node2's TSC was not checked"));
        let calm = json!({"tsc": {"status": "agree"}, "nodes": []});
        assert!(warnings(&calm).is_empty());
    }

    #[test]
    fn an_override_is_passed_as_is() {
        let h = host_tsc(Some(5_200_000_000));
        assert_eq!(h.cmdline().as_deref(), Some("mint.host_tsc_hz=5200000000"));
        assert_eq!(h.to_json()["overridden"], true);
        assert!(h.to_json()["windows"].is_null());
    }
}
