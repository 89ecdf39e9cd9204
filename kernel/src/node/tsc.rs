//! How fast the TSC runs and whether every node's TSC agrees with node 0's.
//!
//! - [`calibrate`] (node 0, at boot): PIT windows, CPUID leaves 0x15, 0x16
//!   and 0x40000010, and the host's own figure (`mint.host_tsc_hz=`) go
//!   through `mint_timing::decide`; a refusal ends the boot, a warning is a
//!   `WARNING` line on node 0's console; the report carries every source.
//! - [`sync_with`] (node 0) and [`serve_sync`] (every other node, right
//!   after it reports running): TSC stamps exchanged through one shared
//!   cache line, [`SYNC_ROUNDS`] rounds, the offset bounded by
//!   `mint_timing::OffsetTracker`. A node whose offset may exceed
//!   [`SKEW_LIMIT_NS`] has its cross-core latencies flagged.

use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

use mint_abi::NodeId;
use mint_abi::shared::{MAX_NODES, TSC_SYNC_DONE};
use mint_timing::{Decision, Exchange, OffsetBound, OffsetTracker, Source, Sources, Status};

use crate::arch::{cpu, pit};
use crate::{println, shared};

/// PIT windows and their length.
const PIT_WINDOWS: usize = 5;
const PIT_WINDOW_MS: u64 = 20;
/// Rounds of the cross-core exchange per node: at least the first, at
/// most the second; it stops in between once the bound is within
/// [`SYNC_GOOD_ENOUGH_NS`], or after [`SYNC_BUDGET_MS`]. On a loaded host
/// the two virtual CPUs are not always running at once: the exchange
/// waits for a moment when they are, rather than settle for the first 64.
pub const SYNC_ROUNDS: u32 = 64;
const SYNC_MAX_ROUNDS: u32 = 20_000;
const SYNC_GOOD_ENOUGH_NS: u64 = 250;
const SYNC_BUDGET_MS: u64 = 500;
/// A node whose TSC may be this far from node 0's (worst case of the
/// bound) has its cross-core latency figures flagged.
pub const SKEW_LIMIT_NS: u64 = 2_000;
/// How long either side waits for the other in one round.
const SYNC_ROUND_TIMEOUT_MS: u64 = 1_000;

/// Node 0's calibration, for the report.
pub struct Calibration {
    pub sources: Sources,
    pub decision: Decision,
    pub pit_error: Option<pit::PitError>,
    pub hypervisor_vendor: [u8; 12],
    pub max_leaf: u32,
    pub max_hypervisor_leaf: u32,
}

static CALIBRATION: spin::Once<Calibration> = spin::Once::new();

/// Node 0's calibration (after [`calibrate`]).
pub fn calibration() -> Option<&'static Calibration> {
    CALIBRATION.get()
}

/// Calibrates the TSC on node 0: every source, cross-checked. Returns the
/// rate to use, or why the boot must stop.
pub fn calibrate(cmdline: &str) -> Result<u64, String> {
    let word = |key: &str| cmdline.split_whitespace().find_map(|w| w.strip_prefix(key));
    let host = match word("mint.host_tsc_hz=") {
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| alloc::format!("mint.host_tsc_hz={v}: not a number"))?,
        ),
        None => None,
    };
    let allow_mismatch = word("mint.tsc_mismatch=") == Some("warn");
    let id = cpu::cpuid_tsc();
    let pit = pit::calibrate_tsc(PIT_WINDOW_MS, PIT_WINDOWS);
    let sources = Sources {
        hypervisor: id.hypervisor,
        cpuid15: id.cpuid15,
        cpuid16: id.cpuid16,
        pit: pit.ok(),
        host,
    };
    let decision = mint_timing::decide(&sources, allow_mismatch);
    let cal = CALIBRATION.call_once(|| Calibration {
        sources,
        decision,
        pit_error: pit.err(),
        hypervisor_vendor: id.hypervisor_vendor,
        max_leaf: id.max_leaf,
        max_hypervisor_leaf: id.max_hypervisor_leaf,
    });
    let summary = sources_line(cal);
    match decision.status {
        Status::Refuse => Err(alloc::format!(
            "TSC calibration refused: {}; sources: {summary}",
            decision.reason
        )),
        Status::Warn => {
            println!(
                "WARNING node0: TSC: {}; sources: {summary}",
                decision.reason
            );
            Ok(decision.hz().unwrap_or(1))
        }
        Status::Agree => {
            println!("node0: TSC: {summary}");
            Ok(decision.hz().unwrap_or(1))
        }
    }
}

/// `pit 2596.1 MHz (5/5 windows, spread 120 ppm), host 2596.0 MHz, ... ->
/// pit` for the console.
fn sources_line(cal: &Calibration) -> String {
    let mut s = String::new();
    for (i, src) in Source::ALL.into_iter().enumerate() {
        let _ = write!(s, "{}{} ", if i > 0 { ", " } else { "" }, src.as_str());
        match cal.sources.get(src) {
            Some(hz) => {
                let _ = write!(s, "{}.{} MHz", hz / 1_000_000, hz / 100_000 % 10);
            }
            None => s.push_str("absent"),
        }
        if let (Source::Pit, Some(p)) = (src, cal.sources.pit) {
            let _ = write!(
                s,
                " ({}/{} windows, spread {} ppm)",
                p.kept, p.windows, p.spread_ppm
            );
        }
        if let (Source::Pit, Some(e)) = (src, cal.pit_error) {
            let _ = write!(s, " ({e})");
        }
    }
    match cal.decision.chosen {
        Some((src, _)) => {
            let _ = write!(s, "; using {}", src.as_str());
        }
        None => s.push_str("; none usable"),
    }
    if let Some((src, ppm)) = cal.decision.worst {
        let _ = write!(
            s,
            ", farthest {} at {}.{:02} %",
            src.as_str(),
            ppm / 10_000,
            ppm / 100 % 100
        );
    }
    s
}

/// The source node 0 published with the rate, for other nodes' lines.
pub fn published_source() -> Option<Source> {
    let raw = shared::header().tsc_source.load(Ordering::Acquire) as usize;
    raw.checked_sub(1).and_then(|i| Source::ALL.get(i).copied())
}

/// The value node 0 publishes in `Header::tsc_source`.
pub fn source_code(source: Option<Source>) -> u32 {
    source
        .and_then(|s| Source::ALL.iter().position(|&x| x == s))
        .map_or(0, |i| i as u32 + 1)
}

/// Per node: the bound node 0 measured (`SYNC_STATE` 0 = none).
static SYNC_STATE: [AtomicU32; MAX_NODES] = [const { AtomicU32::new(0) }; MAX_NODES];
static SYNC_LO: [AtomicI64; MAX_NODES] = [const { AtomicI64::new(0) }; MAX_NODES];
static SYNC_HI: [AtomicI64; MAX_NODES] = [const { AtomicI64::new(0) }; MAX_NODES];
static SYNC_ROUNDS_DONE: [AtomicU32; MAX_NODES] = [const { AtomicU32::new(0) }; MAX_NODES];
static SYNC_MIN_RTT: [AtomicU64; MAX_NODES] = [const { AtomicU64::new(0) }; MAX_NODES];
const STATE_CONSISTENT: u32 = 1;
const STATE_INCONSISTENT: u32 = 2;

/// The offset of `node`'s TSC from node 0's, if node 0 measured one.
pub fn sync_result(node: NodeId) -> Option<OffsetBound> {
    let i = node.index();
    let state = SYNC_STATE[i].load(Ordering::Acquire);
    (state != 0).then(|| OffsetBound {
        lo: SYNC_LO[i].load(Ordering::Relaxed),
        hi: SYNC_HI[i].load(Ordering::Relaxed),
        rounds: SYNC_ROUNDS_DONE[i].load(Ordering::Relaxed),
        min_round_trip: SYNC_MIN_RTT[i].load(Ordering::Relaxed),
        consistent: state == STATE_CONSISTENT,
    })
}

/// Whether cross-core figures taken with `node`'s TSC against node 0's
/// are in doubt: no bound, an inconsistent one, or one wider than the limit.
pub fn is_skewed(bound: Option<OffsetBound>) -> bool {
    bound.is_none_or(|b| {
        !b.consistent || mint_timing::ticks_to_ns(b.worst_abs(), super::tsc_hz()) > SKEW_LIMIT_NS
    })
}

/// Node 0: exchanges stamps with `node` (which is in [`serve_sync`]) and
/// records the offset bound; prints it.
pub fn sync_with(node: NodeId) {
    let line = &shared::slot(node).tsc_sync;
    let mut tracker = OffsetTracker::new();
    let hz = super::tsc_hz();
    let budget_end = cpu::rdtsc() + super::ms_to_ticks(SYNC_BUDGET_MS);
    x86_64::instructions::interrupts::without_interrupts(|| {
        for round in 1..=u64::from(SYNC_MAX_ROUNDS) {
            if round > u64::from(SYNC_ROUNDS)
                && (cpu::rdtsc() > budget_end
                    || tracker.bound().is_some_and(|b| {
                        b.consistent
                            && mint_timing::ticks_to_ns(b.uncertainty(), hz) <= SYNC_GOOD_ENOUGH_NS
                    }))
            {
                break;
            }
            let timeout = super::ms_to_ticks(SYNC_ROUND_TIMEOUT_MS);
            let local_before = cpu::rdtsc();
            line.request.store(round, Ordering::Release);
            let answered = loop {
                // Acquire, then an ordered stamp: `local_after` is read
                // only once the answer (and `remote_tsc` before it) is seen.
                if line.answer.load(Ordering::Acquire) == round {
                    break true;
                }
                if cpu::rdtsc() - local_before > timeout {
                    break false;
                }
                core::hint::spin_loop();
            };
            let local_after = cpu::rdtsc();
            if !answered {
                break;
            }
            tracker.add(Exchange {
                local_before,
                remote: line.remote_tsc.load(Ordering::Relaxed),
                local_after,
            });
        }
        line.request.store(TSC_SYNC_DONE, Ordering::Release);
    });
    let i = node.index();
    let Some(b) = tracker.bound() else {
        println!(
            "WARNING node0: {node} did not answer the TSC sync: its cross-core figures are unchecked"
        );
        return;
    };
    SYNC_LO[i].store(b.lo, Ordering::Relaxed);
    SYNC_HI[i].store(b.hi, Ordering::Relaxed);
    SYNC_ROUNDS_DONE[i].store(b.rounds, Ordering::Relaxed);
    SYNC_MIN_RTT[i].store(b.min_round_trip, Ordering::Relaxed);
    SYNC_STATE[i].store(
        if b.consistent {
            STATE_CONSISTENT
        } else {
            STATE_INCONSISTENT
        },
        Ordering::Release,
    );
    let ns = |t: i64| mint_timing::signed_ticks_to_ns(t, hz);
    let skewed = is_skewed(Some(b));
    println!(
        "{}node0: {node}'s TSC is {:+} ns +/- {} ns from node 0's ({} exchanges, fastest round trip {} ns{}){}",
        if skewed { "WARNING " } else { "" },
        ns(b.estimate()),
        mint_timing::ticks_to_ns(b.uncertainty(), hz),
        b.rounds,
        mint_timing::ticks_to_ns(b.min_round_trip, hz),
        if b.consistent {
            ""
        } else {
            ", inconsistent: drifting?"
        },
        if skewed {
            alloc::format!(
                "; cross-core latencies with it may be off by up to {} ns",
                ns(b.worst_abs() as i64)
            )
        } else {
            String::new()
        }
    );
}

/// Every node but 0, once running: answers node 0's stamps until it says
/// done (or goes silent).
pub fn serve_sync(me: NodeId) {
    let line = &shared::slot(me).tsc_sync;
    let timeout = super::ms_to_ticks(SYNC_ROUND_TIMEOUT_MS);
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut last = 0u64;
        let mut waiting_since = cpu::rdtsc();
        loop {
            let round = line.request.load(Ordering::Acquire);
            if round == TSC_SYNC_DONE {
                return;
            }
            if round != last && round != 0 {
                // Ordered after the load that saw the request.
                let t = cpu::rdtsc();
                line.remote_tsc.store(t, Ordering::Relaxed);
                line.answer.store(round, Ordering::Release);
                last = round;
                waiting_since = t;
            } else if cpu::rdtsc() - waiting_since > 2 * timeout {
                return;
            }
            core::hint::spin_loop();
        }
    });
}

/// The report's `"tsc"` object: every source, the chosen one, the
/// disagreement.
pub fn report_json(out: &mut String) {
    let Some(cal) = calibration() else {
        out.push_str("null");
        return;
    };
    let d = &cal.decision;
    let _ = write!(
        out,
        "{{\"hz\":{},\"chosen\":{},\"status\":\"{}\",\"reason\":\"{}\",\"agree_ppm\":{},",
        super::tsc_hz(),
        d.chosen.map_or(String::from("null"), |c| alloc::format!(
            "\"{}\"",
            c.0.as_str()
        )),
        d.status.as_str(),
        d.reason,
        mint_timing::policy::AGREE_PPM,
    );
    match d.worst {
        Some((src, ppm)) => {
            let _ = write!(
                out,
                "\"disagreement_ppm\":{ppm},\"farthest\":\"{}\",",
                src.as_str()
            );
        }
        None => out.push_str("\"disagreement_ppm\":null,\"farthest\":null,"),
    }
    let vendor = core::str::from_utf8(&cal.hypervisor_vendor).unwrap_or("");
    let vendor: String = vendor.chars().filter(|c| c.is_ascii_graphic()).collect();
    let _ = write!(
        out,
        "\"hypervisor_vendor\":\"{vendor}\",\"cpuid_max_leaf\":{},\"cpuid_max_hypervisor_leaf\":{},\"sources\":{{",
        cal.max_leaf, cal.max_hypervisor_leaf
    );
    for (i, src) in Source::ALL.into_iter().enumerate() {
        let _ = write!(out, "{}\"{}\":", if i > 0 { "," } else { "" }, src.as_str());
        match (src, cal.sources.get(src)) {
            (Source::Pit, Some(_)) => {
                let p = cal.sources.pit.expect("present");
                let _ = write!(
                    out,
                    "{{\"hz\":{},\"windows\":{},\"kept\":{},\"spread_ppm\":{}}}",
                    p.hz, p.windows, p.kept, p.spread_ppm
                );
            }
            (_, Some(hz)) => {
                let _ = write!(out, "{hz}");
            }
            (_, None) => out.push_str("null"),
        }
    }
    out.push_str("}}");
}

/// A node's `"tsc_sync"` object in the report (node 0 is the reference).
pub fn sync_json(out: &mut String, node: NodeId) {
    let hz = super::tsc_hz();
    if node == NodeId(0) {
        out.push_str("{\"reference\":true,\"offset_ns\":0,\"uncertainty_ns\":0,\"worst_abs_ns\":0,\"rounds\":0,\"min_round_trip_ns\":null,\"consistent\":true,\"skewed\":false}");
        return;
    }
    match sync_result(node) {
        None => out.push_str("null"),
        Some(b) => {
            let _ = write!(
                out,
                "{{\"reference\":false,\"offset_ns\":{},\"uncertainty_ns\":{},\"worst_abs_ns\":{},\"rounds\":{},\"min_round_trip_ns\":{},\"consistent\":{},\"skewed\":{}}}",
                mint_timing::signed_ticks_to_ns(b.estimate(), hz),
                mint_timing::ticks_to_ns(b.uncertainty(), hz),
                mint_timing::ticks_to_ns(b.worst_abs(), hz),
                b.rounds,
                mint_timing::ticks_to_ns(b.min_round_trip, hz),
                b.consistent,
                is_skewed(Some(b)),
            );
        }
    }
}
