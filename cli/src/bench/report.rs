//! The bench's result object (`results.json`, `--json`) and its tables.
//!
//! The object follows issue 8's schema. Keys this build measures are
//! filled from raw samples (each summary names its CSV and row count);
//! keys it cannot measure yet are `null`, never a made-up number, and
//! `not_measured` says which and why.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use mint_abi::debug_nic::DropReason;

use super::native::{self, SpscRep};
use super::stats::{self, Series};
use super::target::RunOut;
use super::{CYCLE_INTERVALS_NS, Experiment, MODERATIONS, Measured, SUCCESS_SIZES};

/// The paper's figures (seeds/003 section 6, Core-i7-era machine): send
/// processing time (us) and throughput (Gbps) per size.
pub const PAPER: [(usize, f64, f64); 6] = [
    (1024, 0.175, 4.6),
    (1514, 0.205, 6.3),
    (4096, 0.766, 17.4),
    (8192, 1.462, 22.7),
    (12288, 2.131, 29.6),
    (16384, 3.664, 30.6),
];

/// The paper's figures as the result shows them (both modes).
pub fn paper_json() -> Value {
    PAPER
        .iter()
        .map(|&(size, us, gbps)| json!({"size": size, "send_time_ns": us * 1000.0, "gbps": gbps}))
        .collect()
}

/// What the result is made of.
pub struct Inputs<'a> {
    pub experiment: Experiment,
    pub quick: bool,
    pub measured: &'a Measured,
    pub tsc: Value,
    pub tsc_warning: Option<String>,
    pub cpu: String,
    pub out_dir: &'a Path,
    pub elapsed: Duration,
}

/// The model name of `cpu` in /proc/cpuinfo (of the first CPU listed if
/// that one is not found), or "unknown".
pub fn cpu_model(cpu: usize) -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut current: Option<usize> = None;
    let mut first: Option<String> = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "processor" => current = value.trim().parse().ok(),
            "model name" => {
                let name = value.trim().to_string();
                if current == Some(cpu) {
                    return name;
                }
                first.get_or_insert(name);
            }
            _ => {}
        }
    }
    first.unwrap_or_else(|| "unknown".into())
}

/// The latency run's two series: signal to handler, injection to the
/// application.
pub fn latency_series(m: &Measured) -> Option<[Series; 2]> {
    let run = m.latency.as_ref()?;
    Some([
        Series::new("signal_to_handler", run.signal_to_handler.clone()),
        Series::new("inject_to_app", run.inject_to_app.clone()),
    ])
}

/// Every whole native run, in the order run: (experiment, run).
fn all_runs(m: &Measured) -> Vec<(&'static str, &RunOut)> {
    let mut out = Vec::new();
    for (lossless, back) in m.deliveries.iter().flatten() {
        out.push(("throughput", lossless));
        out.push(("throughput", back));
    }
    for (handling, cycles) in m.success.iter().flatten() {
        out.push(("handling", handling));
        out.extend(cycles.iter().map(|c| ("success_rate", c)));
    }
    out.extend(
        m.success_discarded
            .iter()
            .map(|c| ("success_rate_discarded", c)),
    );
    out.extend(m.latency.iter().map(|r| ("latency", r)));
    out
}

const RUNS_CSV: &str = "raw/runs.csv";

/// Whole runs (kept or discarded) with a frame neither delivered nor
/// dropped with a reason.
pub fn unaccounted_runs(m: &Measured) -> usize {
    all_runs(m)
        .iter()
        .filter(|(_, r)| r.unaccounted != 0)
        .count()
}

/// Every whole run as a CSV row (`raw/runs.csv`): its spec, its
/// accounting, its ticks; the rows behind every delivery figure.
pub fn runs_csv(m: &Measured) -> String {
    let mut text = String::from(
        "experiment,path,size,count,pace,interval_ns,moderation,attempt,disturbed,sent,delivered,delivered_bytes,unaccounted,elapsed_ticks,busy_ticks,handled,signals,interrupts,throttled",
    );
    for r in DropReason::ALL {
        text.push(',');
        text.push_str(r.as_str());
    }
    text.push('\n');
    for (exp, r) in all_runs(m) {
        let (pace, interval) = pace_of(r);
        text.push_str(&format!(
            "{exp},{},{},{},{pace},{interval},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.spec.path.as_str(),
            r.spec.size,
            r.spec.count,
            r.spec.moderation,
            r.attempt,
            r.disturbed,
            r.sent,
            r.delivered,
            r.delivered_bytes,
            r.unaccounted,
            r.elapsed_ticks,
            r.busy_ticks,
            r.handled,
            r.signals,
            r.interrupts,
            r.throttled
        ));
        for d in r.drops {
            text.push_str(&format!(",{d}"));
        }
        text.push('\n');
    }
    text
}

fn pace_of(r: &RunOut) -> (&'static str, u64) {
    match r.spec.pace {
        super::target::Pace::Interval(ns) => ("interval", ns),
        super::target::Pace::BackToBack => ("back-to-back", 0),
        super::target::Pace::Lossless => ("lossless", 0),
    }
}

/// Drops by reason, every reason named.
fn drops_json(r: &RunOut) -> Value {
    DropReason::ALL
        .iter()
        .map(|&d| (d.as_str().to_string(), json!(r.drops[d as usize])))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// One whole run's figures.
fn run_json(r: &RunOut, hz: f64) -> Value {
    let (pace, interval) = pace_of(r);
    let per_frame = |n: u64| {
        if r.sent == 0 {
            Value::Null
        } else {
            json!(n as f64 / r.sent as f64)
        }
    };
    json!({
        "pace": pace,
        "interval_ns": interval,
        "moderation": r.spec.moderation.to_string(),
        "frames": r.spec.count,
        "sent": r.sent,
        "delivered": r.delivered,
        "delivered_bytes": r.delivered_bytes,
        "dropped": r.drops.iter().sum::<u64>(),
        "drops": drops_json(r),
        "unaccounted": r.unaccounted,
        "gbps": finite(r.gbps(hz)),
        "success_rate": finite(r.success_rate()),
        "elapsed_ns": stats::to_ns(r.elapsed_ticks as f64, hz),
        "handling_ns": finite(stats::to_ns(r.handling_ticks(), hz)),
        "handling_driver_ns": finite(if r.handled == 0 {
            f64::NAN
        } else {
            stats::to_ns(r.driver_ticks as f64 / r.handled as f64, hz)
        }),
        "interrupts": r.interrupts,
        "interrupts_per_frame": per_frame(r.interrupts),
        "signals": r.signals,
        "throttled": r.throttled,
        "attempt": r.attempt,
        "disturbed": r.disturbed,
        "csv": RUNS_CSV,
    })
}

/// The smallest interval from which every longer one delivered every
/// frame (`None` if the longest did not).
pub fn min_full_interval(rates: &[(u64, f64)]) -> Option<u64> {
    let mut sorted = rates.to_vec();
    sorted.sort_by_key(|&(i, _)| i);
    let mut best = None;
    for &(interval, rate) in sorted.iter().rev() {
        if rate < 1.0 || !rate.is_finite() {
            break;
        }
        best = Some(interval);
    }
    best
}

fn finite(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

/// Every series whose raw samples the run keeps.
pub fn all_series(m: &Measured) -> Vec<&Series> {
    let mut out = vec![&m.timer, &m.rtt_before, &m.rtt_after];
    for (send, signal, _) in m.sends.iter().flatten() {
        out.push(send);
        out.push(signal);
    }
    for (one, x) in m.copies.iter().flatten() {
        out.push(one);
        out.push(x);
    }
    out.extend(m.send_rtt.iter().flatten());
    out.extend(m.throughput_rtt.iter().flatten());
    out
}

/// The SPSC repetitions of one size as a CSV: `rep,frames,bytes,ticks,ns,gbps`.
pub fn spsc_csv(reps: &[SpscRep], tsc_hz: f64) -> String {
    let mut text = String::from("rep,reuse,frames,bytes,ticks,ns,gbps\n");
    for (i, r) in reps.iter().enumerate() {
        let ns = stats::to_ns(r.ticks as f64, tsc_hz);
        text.push_str(&format!(
            "{i},{},{},{},{},{ns:.1},{:.4}\n",
            reuse_name(r.reuse),
            r.frames,
            r.bytes,
            r.ticks,
            gbps(r, tsc_hz)
        ));
    }
    text
}

/// The name of a buffer-reuse order in results and CSV files.
fn reuse_name(reuse: mint_skb::Reuse) -> &'static str {
    match reuse {
        mint_skb::Reuse::LastReleased => "last_released",
        mint_skb::Reuse::OldestReleased => "oldest_released",
    }
}

/// The CSV file of one size's SPSC repetitions in one reuse order.
fn spsc_csv_path(size: usize, reuse: mint_skb::Reuse) -> String {
    format!("raw/spsc_{size}_{}.csv", reuse_name(reuse))
}

/// The SPSC floor of one size: each reuse order's repetitions summarised,
/// and the faster order's summary (by median), with its name.
fn spsc_floor(reps: &[SpscRep], hz: f64, size: usize) -> (Value, Value, &'static str) {
    let mut by_reuse = serde_json::Map::new();
    let mut best: Option<(f64, Value, &'static str)> = None;
    for reuse in native::SPSC_REUSE {
        let rates: Vec<f64> = reps
            .iter()
            .filter(|r| r.reuse == reuse)
            .map(|r| gbps(r, hz))
            .collect();
        let summary = float_summary(&rates, &spsc_csv_path(size, reuse));
        let p50 = summary["p50"].as_f64();
        by_reuse.insert(reuse_name(reuse).into(), summary.clone());
        if let Some(p50) = p50
            && best.as_ref().is_none_or(|(b, _, _)| p50 > *b)
        {
            best = Some((p50, summary, reuse_name(reuse)));
        }
    }
    let (_, floor, name) = best.unwrap_or((
        0.0,
        float_summary(&[], &spsc_csv_path(size, native::SPSC_REUSE[0])),
        "none",
    ));
    (floor, Value::Object(by_reuse), name)
}

fn gbps(r: &SpscRep, tsc_hz: f64) -> f64 {
    r.bytes as f64 * 8.0 / stats::to_ns(r.ticks as f64, tsc_hz)
}

/// p50, p99 (nearest rank), mean, min and max of `values`.
fn float_summary(values: &[f64], csv: &str) -> Value {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return json!({"count": 0, "p50": null, "p99": null, "mean": null, "min": null, "max": null, "csv": csv});
    }
    v.sort_by(f64::total_cmp);
    let rank = |per_mille: usize| v[(v.len() * per_mille).div_ceil(1000).max(1) - 1];
    json!({
        "count": v.len(),
        "p50": rank(500),
        "p99": rank(990),
        "mean": v.iter().sum::<f64>() / v.len() as f64,
        "min": v[0],
        "max": v[v.len() - 1],
        "csv": csv,
    })
}

/// The TSC's visible step: the greatest common divisor of `ticks` (0
/// without samples). Some CPUs advance it by more than one per read (AMD
/// parts add their multiplier at the 100 MHz reference rate), which sets
/// the resolution of every sample.
pub fn tsc_step(ticks: &[u64]) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    ticks.iter().fold(0, |g, &t| gcd(g, t))
}

/// The result object.
pub fn result(i: Inputs<'_>) -> Value {
    let m = i.measured;
    let hz = i.tsc["hz"].as_f64().unwrap_or(0.0);
    let mut tsc = i.tsc;
    let step = tsc_step(&m.timer.ticks);
    tsc["step_ticks"] = json!(step);
    tsc["step_ns"] = json!(stats::to_ns(step as f64, hz));
    let rtt = m.rtt_before.summary_ns(hz, 1.0);
    let rtt_after = m.rtt_after.summary_ns(hz, 1.0);
    let mut warnings: Vec<String> = i.tsc_warning.into_iter().collect();
    if let (Some(a), Some(b)) = (rtt["p50"].as_f64(), rtt_after["p50"].as_f64())
        && a.max(b) > 1.5 * a.min(b)
    {
        warnings.push(format!(
            "the two CPUs' ping-pong round trip moved from {a:.0} ns to {b:.0} ns during the run (the host moved them?): cross-core figures mix placements"
        ));
    }

    let preempted: serde_json::Map<String, Value> = m
        .preempted
        .iter()
        .map(|(part, [s, t])| (part.to_string(), json!({"support": s, "target": t})))
        .collect();
    let hit: Vec<String> = m
        .preempted
        .iter()
        .filter(|(_, [s, t])| s + t > 0)
        .map(|(part, [s, t])| format!("{part} (support {s}, target {t})"))
        .collect();
    if let Some([s, t]) = m.steal_ms
        && s + t > 0
    {
        warnings.push(format!(
            "the host ran something else on the two CPUs during the run (steal time: support {s} ms, target {t} ms): samples include those stalls"
        ));
    }
    if !hit.is_empty() {
        warnings.push(format!(
            "the measuring threads were preempted during {}: those samples include the time another task or the host held the CPU (is the machine busy?)",
            hit.join(", ")
        ));
    }
    let send_time = m.copies.as_ref().map(|per_size| {
        per_size
            .iter()
            .zip(native::SIZES)
            .enumerate()
            .map(|(k, ((one, x), size))| {
                let copy = one.summary_ns(hz, 1.0);
                let xcore = x.summary_ns(hz, 1.0);
                let sends = m.sends.as_ref().and_then(|s| s.get(k));
                let send = sends.map_or(Value::Null, |(s, _, _)| s.summary_ns(hz, 1.0));
                let signal = sends.map_or(Value::Null, |(_, s, _)| s.summary_ns(hz, 1.0));
                let rtt = m
                    .send_rtt
                    .as_ref()
                    .and_then(|r| r.get(k))
                    .map_or(Value::Null, |r| r.summary_ns(hz, 1.0));
                json!({
                    "size": size,
                    // The paper's figure: the mean of sends 1000-2000 of 3000.
                    "mean_ns": send["mean_1000_2000"],
                    "p50_ns": send["p50"],
                    "p99_ns": send["p99"],
                    "copy_ns": copy["mean_1000_2000"],
                    "xcore_copy_ns": xcore["mean_1000_2000"],
                    "send": send,
                    "send_signal": signal,
                    "ring_full": sends.map(|(_, _, r)| r.ring_full),
                    // The device's read-ahead of the next frame's place,
                    // between sends (idle time), per read-ahead: not in
                    // the send's figures.
                    "read_ahead_ns": sends.map(|(_, _, r)| if r.read_aheads.idle == 0 {
                        Value::Null
                    } else {
                        json!(stats::to_ns(r.read_aheads.idle_ticks as f64 / r.read_aheads.idle as f64, hz))
                    }),
                    "read_aheads": sends.map(|(_, _, r)| r.read_aheads.idle),
                    // Sends that came late and ran it themselves (in
                    // their own ticks).
                    "read_aheads_in_sends": sends.map(|(_, _, r)| r.read_aheads.in_sends),
                    "cleaned": sends.map(|(_, _, r)| r.cleaned),
                    "copy": copy,
                    "xcore_copy": xcore,
                    // This size's placement: taken right before its sends
                    // and floors.
                    "pingpong_rtt_ns": rtt["p50"],
                    "pingpong_rtt": rtt,
                })
            })
            .collect::<Vec<_>>()
    });
    let fit_of = |key: &str| {
        send_time.as_ref().map_or(Value::Null, |rows| {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| Some((r["size"].as_f64()?, r[key].as_f64()?)))
                .collect();
            stats::fit_json(&points)
        })
    };
    let send_time_fit = fit_of("mean_ns");
    let floor_fit = send_time.as_ref().map(|_| {
        json!({
            "copy": fit_of("copy_ns"),
            "xcore_copy": fit_of("xcore_copy_ns"),
        })
    });

    let throughput = m.spsc.as_ref().map(|per_size| {
        let mut rows = Vec::new();
        for (k, (reps, size)) in per_size.iter().zip(native::SIZES).enumerate() {
            let (floor, floor_by_reuse, floor_reuse) = spsc_floor(reps, hz, size);
            let rtt = m
                .throughput_rtt
                .as_ref()
                .and_then(|r| r.get(k))
                .map_or(Value::Null, |r| r.summary_ns(hz, 1.0));
            let paths = super::target::Path::ALL.len();
            for (lossless, back) in m.deliveries.iter().flatten().skip(k * paths).take(paths) {
                rows.push(json!({
                    "size": size,
                    "path": lossless.spec.path.as_str(),
                    // The pipeline's capacity: NAPI, the support side
                    // waiting for a free descriptor (nothing dropped).
                    "gbps": finite(lossless.gbps(hz)),
                    "floor_gbps": floor["p50"],
                    // Where frames go when the support side does not wait.
                    "drops": {
                        "ring_full": back.drops[DropReason::RingFull as usize],
                        "socket_buffer_full": back.drops[DropReason::SocketBufferFull as usize],
                        "stack": back.drops[DropReason::Stack as usize],
                        "other": back.drops.iter().sum::<u64>()
                            - back.drops[DropReason::RingFull as usize]
                            - back.drops[DropReason::SocketBufferFull as usize]
                            - back.drops[DropReason::Stack as usize],
                    },
                    "lossless": run_json(lossless, hz),
                    "back_to_back": run_json(back, hz),
                    "floor": floor,
                    "floor_reuse": floor_reuse,
                    "floor_by_reuse": floor_by_reuse,
                    "floor_frames_per_rep": m.counts.spsc_frames,
                    // This size's placement: taken right before its floor
                    // and runs.
                    "pingpong_rtt_ns": rtt["p50"],
                    "pingpong_rtt": rtt,
                }));
            }
        }
        rows
    });

    // Fig. 9: every cycle, then per size the smallest interval from which
    // every longer one delivered everything (one interrupt per frame, as
    // the paper's), and the target's handling time per frame.
    let success_rate = m.success.as_ref().map(|per_size| {
        per_size
            .iter()
            .flat_map(|(_, cycles)| cycles.iter())
            .map(|c| {
                let mut row = run_json(c, hz);
                row["size"] = json!(c.spec.size);
                row
            })
            .collect::<Vec<_>>()
    });
    let min_full = |m_: mint_traffic::Moderation| {
        m.success.as_ref().map(|per_size| {
            per_size
                .iter()
                .zip(SUCCESS_SIZES)
                .map(|((_, cycles), size)| {
                    let rates: Vec<(u64, f64)> = cycles
                        .iter()
                        .filter(|c| c.spec.moderation == m_)
                        .map(|c| (pace_of(c).1, c.success_rate()))
                        .collect();
                    (size.to_string(), json!(min_full_interval(&rates)))
                })
                .collect::<serde_json::Map<_, _>>()
        })
    };
    let min_full_interval_ns = min_full(mint_traffic::Moderation::None);
    let min_full_by_moderation = m.success.as_ref().map(|_| {
        MODERATIONS
            .iter()
            .map(|&md| (md.to_string(), json!(min_full(md))))
            .collect::<serde_json::Map<_, _>>()
    });
    // Where the target's time goes, per size: the driver's share of it.
    let handling_split = m.success.as_ref().map(|per_size| {
        per_size
            .iter()
            .zip(SUCCESS_SIZES)
            .map(|((h, _), size)| {
                let run = run_json(h, hz);
                (
                    size.to_string(),
                    json!({"total_ns": run["handling_ns"], "driver_ns": run["handling_driver_ns"]}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
    });
    let handling_ns = m.success.as_ref().map(|per_size| {
        per_size
            .iter()
            .zip(SUCCESS_SIZES)
            .map(|((h, _), size)| {
                (
                    size.to_string(),
                    finite(stats::to_ns(h.handling_ticks(), hz)),
                )
            })
            .collect::<serde_json::Map<_, _>>()
    });

    let latency = i.experiment.includes(Experiment::Latency).then(|| {
        let mut oneway = m.rtt_before.summary_ns(hz, 0.5);
        oneway["method"] = json!("half of each ping-pong round trip (pingpong_rtt.csv)");
        let series = latency_series(m);
        let summary = |k: usize| {
            series.as_ref().map_or(Value::Null, |s| {
                let mut v = s[k].summary_ns(hz, 1.0);
                // A stamp on the support CPU, read on the target CPU.
                v["cross_core"] = json!(true);
                v
            })
        };
        json!({
            "signal_to_handler_ns": summary(0),
            "inject_to_app_ns": summary(1),
            "pingpong_oneway_ns": oneway,
            "run": m.latency.as_ref().map(|r| run_json(r, hz)),
        })
    });

    let not_measured: Vec<&str> = Vec::new();

    let mut out = json!({
        "mode": "native",
        "accel": "none",
        "cpu": i.cpu,
        "experiment": i.experiment.as_str(),
        "quick": i.quick,
        "placement": {
            "support_cpu": m.pair.support,
            "target_cpu": m.pair.target,
            "pingpong_rtt_ns": rtt["p50"],
            "pingpong_rtt": rtt,
            "pingpong_rtt_after_ns": rtt_after["p50"],
            "pingpong_rtt_after": rtt_after,
        },
        "tsc": tsc,
        "timer_overhead_ns": m.timer.summary_ns(hz, 1.0),
        "preempted": preempted,
        "steal_ms": m.steal_ms.map(|[s, t]| json!({"support": s, "target": t})),
        "send_time": send_time,
        "send_time_fit": send_time_fit,
        "floor_fit": floor_fit,
        "throughput": throughput,
        "success_rate": success_rate,
        // Cycles measured again because the host took a CPU away while
        // they lost frames (their rows: raw/runs.csv, success_rate_discarded).
        "success_rate_discarded": m.success.as_ref().map(|_| m.success_discarded.len()),
        "min_full_interval_ns": min_full_interval_ns,
        "min_full_interval_ns_by_moderation": min_full_by_moderation,
        "handling_ns": handling_ns,
        "handling_split_ns": handling_split,
        "cycle_intervals_ns": CYCLE_INTERVALS_NS,
        "latency": latency,
        "not_measured": not_measured,
        "paper": paper_json(),
        "method": {
            "read_ahead": "mint_e1000::DeviceModel::read_ahead, from mint_support::Sender::tick in the support CPU's wait between sends: the next descriptor the device owns and as many bytes of its buffer as the last frame took, at most its first KiB (mint_e1000::READ_AHEAD_BYTES), taken for writing (prefetchw); read_ahead_ns is its mean per read-ahead run in that wait, which is in no send's ticks (a send with no wait before it runs the read-ahead itself, in its own ticks, not counted here); the send-time targets hold mean_ns + read_ahead_ns",
            "send": "mint_support::Sender::send, the kernel's per-frame function (kernel/src/nic/support.rs), on the support CPU into an e1000 RX ring of 256 x 16 KiB over host memory of the debug NIC's layout, a doorbell store in place of the IPI, one send every 10 us (absolute deadlines); the target CPU runs the kernel driver's interrupt work (mint_target::RxPath) on the driver-only path; mean_ns is the mean of sends 1000-2000 of 3000, as the paper's; send_signal is the part of the sends that raised the doorbell",
            "delivery": "whole runs (bench/target.rs): the support CPU runs mint_support::Sender, the target CPU the kernel's driver work (mint_target::RxPath) when the doorbell rings and the kernel's receive loop (mint_target::Receiver: smoltcp's UDP/IPv4 stack, the payload check, the run's accounting) in between; paths: driver (frames counted at the driver and released, no stack, no check), raw-checked (raw Ethernet past the stack to the payload check), udp-checked (through the UDP stack to the check); gbps = delivered payload bytes * 8 / (first send to the support CPU seeing the run Complete, on the support CPU) of the lossless run (NAPI, the support side waits for a free descriptor: the pipeline's capacity); drops are the back-to-back run's (one interrupt per posted edge, the support side never waits); every run's row is in raw/runs.csv",
            "success_rate": "cycles of cycle_frames UDP frames per size at each interval of cycle_intervals_ns (0 = back to back) under each moderation (none: one interrupt per posted edge, as the paper's; itr:4096: the device defers interrupts inside the ITR window; napi: masked polling); success_rate = delivered / sent; a cycle that lost frames while either thread was preempted or the host stole either CPU is run again, at most 3 times in all (attempt, disturbed per row; the discarded attempts in raw/runs.csv); min_full_interval_ns = the smallest interval from which every longer one delivered all (moderation none; by moderation beside); handling_ns = the target CPU's busy time (driver work and receive loop, not waiting) per frame handled, in a lossless NAPI run at that size",
            "latency": "one UDP frame of 1514 B every 20 us, moderation none: signal_to_handler = the support CPU's stamp as it rings the doorbell to the target CPU's handler entry; inject_to_app = the frame's injection stamp to the application's check; both cross cores (the TSC offset between the two CPUs is in them: the host keeps it 0 where its TSC is synchronised)",
            "clock": "lfence; rdtsc at both ends of every sample, on one CPU; ticks to ns at tsc.hz",
            "timer_overhead": "two back-to-back stamps; every sample includes it once",
            "copy": "one CPU, copy_from_slice of a frame into buffers rotating through 256 x 16 KiB (the debug NIC's ring); copy_ns is the mean of copies 1000-2000 of 3000, as the paper's send time",
            "xcore_copy": "the support CPU copies a frame into the one buffer of a mint-skb pool and publishes it (release store), right after the target CPU copied the previous frame out of it and released it; xcore_copy_ns as copy_ns",
            "spsc_floor": "frames copied in by the support CPU and out by the target CPU through a mint-skb pool of 256 x 16 KiB, its free buffers reused last-released-first and, in as many repetitions again, oldest-first (the ring's rotation); Gbps of one repetition = bytes * 8 / (first copy in to the last frame seen consumed, on the support CPU); floor_gbps is the median over one order's repetitions, of the faster order (floor_reuse; both in floor_by_reuse)",
            "pingpong": "a counter bounced between two 128-byte-aligned lines; round trip timed on the support CPU; before and after the experiments",
        },
        "warnings": warnings,
        "out_dir": i.out_dir.display().to_string(),
        "elapsed_s": i.elapsed.as_secs_f64(),
    });
    out["targets"] = super::targets::judge(&out);
    out
}

/// Writes the SPSC repetitions' CSV files (`raw/spsc_<size>_<reuse>.csv`).
pub fn write_spsc(m: &Measured, dir: &Path, tsc_hz: f64) -> anyhow::Result<()> {
    use anyhow::Context;
    for (reps, size) in m.spsc.iter().flatten().zip(native::SIZES) {
        for reuse in native::SPSC_REUSE {
            let mine: Vec<SpscRep> = reps.iter().filter(|r| r.reuse == reuse).copied().collect();
            let path = dir.join(spsc_csv_path(size, reuse));
            std::fs::write(&path, spsc_csv(&mine, tsc_hz))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(())
}

/// A figure for a table, with no, one or two decimals; `n/a` for `null`.
pub(super) fn f0(v: &Value) -> String {
    v.as_f64().map_or("n/a".into(), |x| format!("{x:.0}"))
}

pub(super) fn f1(v: &Value) -> String {
    v.as_f64().map_or("n/a".into(), |x| format!("{x:.1}"))
}

pub(super) fn f2(v: &Value) -> String {
    v.as_f64().map_or("n/a".into(), |x| format!("{x:.2}"))
}

/// A line fit for people: `N ns per KB, intercept M ns (R^2 X)`.
pub(super) fn fit_text(fit: &Value) -> String {
    format!(
        "{} ns per KB, intercept {} ns (R^2 {})",
        f1(&fit["ns_per_kb"]),
        f0(&fit["intercept_ns"]),
        fit["r2"]
            .as_f64()
            .map_or("n/a".into(), |x| format!("{x:.3}"))
    )
}

/// The tables for people, on stdout.
pub fn print(r: &Value) {
    let p = &r["placement"];
    outln!(
        "mint bench {} (native, accel none) on {}: support CPU {}, target CPU {}",
        r["experiment"].as_str().unwrap_or("?"),
        r["cpu"].as_str().unwrap_or("?"),
        p["support_cpu"],
        p["target_cpu"]
    );
    let tsc = &r["tsc"];
    outln!(
        "TSC {:.1} MHz ({}, {}; over the whole run {} ppm off); it advances in steps of {} ticks ({} ns)",
        tsc["hz"].as_f64().unwrap_or(0.0) / 1e6,
        tsc["chosen"].as_str().unwrap_or("?"),
        tsc["status"].as_str().unwrap_or("?"),
        tsc["whole_run"]["deviation_ppm"],
        tsc["step_ticks"],
        f1(&tsc["step_ns"])
    );
    outln!(
        "placement: ping-pong round trip p50 {} ns, p99 {} ns (after the run: p50 {} ns); timer overhead p50 {} ns",
        f0(&p["pingpong_rtt"]["p50"]),
        f0(&p["pingpong_rtt"]["p99"]),
        f0(&p["pingpong_rtt_after"]["p50"]),
        f0(&r["timer_overhead_ns"]["p50"])
    );
    if let Some(rows) = r["send_time"].as_array() {
        outln!();
        outln!(
            "send time (Table 1), ns: the kernel's send (mint_support), a doorbell for the IPI; beside it its floors"
        );
        outln!(
            "{:>7} {:>6} | {:>6} {:>6} {:>6} {:>5} {:>5} | {:>6} {:>6} {:>6} | {:>7} {:>6} {:>6}",
            "size B",
            "paper",
            "send",
            "p50",
            "p99",
            "full",
            "ahead",
            "copy",
            "p50",
            "p99",
            "x-core",
            "p50",
            "p99"
        );
        for (row, paper) in rows.iter().zip(PAPER) {
            outln!(
                "{:>7} {:>6.0} | {:>6} {:>6} {:>6} {:>5} {:>5} | {:>6} {:>6} {:>6} | {:>7} {:>6} {:>6}",
                paper.0,
                paper.1 * 1000.0,
                f0(&row["mean_ns"]),
                f0(&row["p50_ns"]),
                f0(&row["p99_ns"]),
                row["ring_full"].to_string(),
                f0(&row["read_ahead_ns"]),
                f0(&row["copy_ns"]),
                f0(&row["copy"]["p50"]),
                f0(&row["copy"]["p99"]),
                f0(&row["xcore_copy_ns"]),
                f0(&row["xcore_copy"]["p50"]),
                f0(&row["xcore_copy"]["p99"])
            );
        }
        outln!(
            "(send, copy, x-core: mean of 1000-2000 of 3000, as the paper's send time; full: frames the ring had no room for; ahead: the device's read-ahead of the next frame's place, mean ns, in the idle time between sends, not in them)"
        );
        outln!("send fit: {}", fit_text(&r["send_time_fit"]));
        let fit = &r["floor_fit"];
        for (name, key) in [("copy", "copy"), ("x-core copy", "xcore_copy")] {
            outln!("{name} fit: {}", fit_text(&fit[key]));
        }
    }
    if let Some(rows) = r["throughput"].as_array() {
        outln!();
        outln!(
            "throughput (Table 2), Gbps delivered: lossless (NAPI, the support side waits for a free descriptor); drops of the back-to-back run; beside it the SPSC floor"
        );
        outln!(
            "{:>7} {:>6} {:>12} | {:>7} {:>8} | {:>9} {:>9} {:>6} | {:>5}",
            "size B",
            "paper",
            "path",
            "Gbps",
            "x floor",
            "ring full",
            "skb full",
            "stack",
            "floor"
        );
        for row in rows {
            let size = row["size"].as_u64().unwrap_or(0) as usize;
            let paper = PAPER.iter().find(|p| p.0 == size).map_or(f64::NAN, |p| p.2);
            let ratio = match (row["gbps"].as_f64(), row["floor_gbps"].as_f64()) {
                (Some(g), Some(f)) if f > 0.0 => format!("{:.2}", g / f),
                _ => "n/a".into(),
            };
            outln!(
                "{:>7} {:>6.1} {:>12} | {:>7} {:>8} | {:>9} {:>9} {:>6} | {:>5}",
                size,
                paper,
                row["path"].as_str().unwrap_or("?"),
                f1(&row["gbps"]),
                ratio,
                row["drops"]["ring_full"],
                row["drops"]["socket_buffer_full"],
                row["drops"]["stack"],
                f1(&row["floor_gbps"])
            );
        }
        outln!(
            "(floor: SPSC two-copy queue, median over repetitions, the faster of two buffer-reuse orders; per-run rows in raw/runs.csv and raw/spsc_<size>_<order>.csv)"
        );
    }
    if let Some(rows) = r["success_rate"].as_array() {
        outln!();
        outln!(
            "success rate (Fig. 9): delivered / sent per cycle of {} frames, by interval (ns) and moderation",
            rows.first().map_or(Value::Null, |r| r["frames"].clone())
        );
        let intervals: Vec<u64> = CYCLE_INTERVALS_NS.to_vec();
        let mut head = format!("{:>6} {:>9} |", "size", "moderat.");
        for i in &intervals {
            head.push_str(&format!(" {:>5}", i));
        }
        outln!("{head} | {:>8} {:>8}", "full at", "handling");
        for size in SUCCESS_SIZES {
            for m in MODERATIONS {
                let m = m.to_string();
                let mut line = format!("{size:>6} {m:>9} |");
                for i in &intervals {
                    let cell = rows
                        .iter()
                        .find(|c| {
                            c["size"] == size
                                && c["moderation"] == m.as_str()
                                && c["interval_ns"] == *i
                        })
                        .and_then(|c| c["success_rate"].as_f64())
                        .map_or("n/a".into(), |x| format!("{x:.3}"));
                    line.push_str(&format!(" {cell:>5}"));
                }
                let full = &r["min_full_interval_ns_by_moderation"][m.as_str()][size.to_string()];
                outln!(
                    "{line} | {:>8} {:>8}",
                    full.as_u64().map_or("none".into(), |v| v.to_string()),
                    f0(&r["handling_ns"][size.to_string()])
                );
            }
        }
        outln!(
            "(full at: the smallest interval from which every longer one delivered all; handling: the target's busy ns per frame, lossless)"
        );
    }
    if r["latency"].is_object() {
        let l = &r["latency"];
        outln!();
        outln!(
            "latency, ns (p50 / p99): doorbell to handler {} / {}; injection to application {} / {}; ping-pong one way {} / {}",
            f0(&l["signal_to_handler_ns"]["p50"]),
            f0(&l["signal_to_handler_ns"]["p99"]),
            f0(&l["inject_to_app_ns"]["p50"]),
            f0(&l["inject_to_app_ns"]["p99"]),
            f0(&l["pingpong_oneway_ns"]["p50"]),
            f0(&l["pingpong_oneway_ns"]["p99"])
        );
    }
    super::targets::print(&r["targets"]);
    outln!();
    outln!(
        "results: {}/results.json (raw samples in raw/*.csv)",
        r["out_dir"].as_str().unwrap_or("?")
    );
    for w in r["warnings"].as_array().into_iter().flatten() {
        outln!("WARNING: {}", w.as_str().unwrap_or("?"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paper_rows_are_the_measured_sizes() {
        let sizes: Vec<usize> = PAPER.iter().map(|p| p.0).collect();
        assert_eq!(sizes, native::SIZES);
    }

    #[test]
    fn the_full_interval_is_where_every_longer_one_is_full() {
        let r = [(0, 0.2), (500, 1.0), (1000, 0.99), (2000, 1.0), (4000, 1.0)];
        assert_eq!(min_full_interval(&r), Some(2000));
        assert_eq!(min_full_interval(&[(0, 1.0), (10, 1.0)]), Some(0));
        assert_eq!(min_full_interval(&[(0, 1.0), (10, 0.5)]), None);
        assert_eq!(min_full_interval(&[]), None);
    }

    #[test]
    fn the_step_is_the_common_divisor() {
        assert_eq!(tsc_step(&[52, 26, 78]), 26);
        assert_eq!(tsc_step(&[7, 5]), 1);
        assert_eq!(tsc_step(&[]), 0);
    }

    #[test]
    fn float_summaries_use_nearest_rank() {
        let s = float_summary(&[3.0, 1.0, 2.0], "raw/x.csv");
        assert_eq!(s["p50"], 2.0);
        assert_eq!(s["p99"], 3.0);
        assert_eq!(s["min"], 1.0);
        assert_eq!(s["mean"], 2.0);
        assert!(float_summary(&[], "raw/x.csv")["p50"].is_null());
    }

    #[test]
    fn spsc_rows_carry_their_rate() {
        let rep = |reuse, ticks| SpscRep {
            reuse,
            frames: 10,
            bytes: 1000,
            ticks,
        };
        let reps = [
            rep(mint_skb::Reuse::LastReleased, 1000),
            rep(mint_skb::Reuse::LastReleased, 2000),
            rep(mint_skb::Reuse::OldestReleased, 500),
        ];
        // 8000 bits in 1000 ns at 1 GHz: 8 Gbps.
        let csv = spsc_csv(&reps, 1e9);
        assert_eq!(
            csv.lines().nth(1),
            Some("0,last_released,10,1000,1000,1000.0,8.0000")
        );
        // The faster order is the floor: 16 Gbps oldest-first against a
        // median of 4 and 8 last-released-first.
        let (floor, by_reuse, name) = spsc_floor(&reps, 1e9, 1000);
        assert_eq!(name, "oldest_released");
        assert_eq!(floor["csv"], "raw/spsc_1000_oldest_released.csv");
        assert_eq!(floor["p50"], 16.0);
        assert_eq!(by_reuse["last_released"]["p50"], 4.0);
        assert_eq!(by_reuse["oldest_released"]["p50"], 16.0);
    }
}
