//! `mint handover`: host frames stream into the real (emulated) e1000
//! while node 0's interrupt layer hands it back and forth between two
//! nodes, R times; every frame is accounted for across both owners.
//!
//! The plan gives the e1000 to `--from` and makes `--to` a standby node
//! (`e1000-standby`: its registers mapped there too; the ring lives in the
//! shared region's NIC area). The host sends from the moment node 0 says
//! both receivers armed (`MINT-HANDOVER-ARMED`) until it says the rounds
//! are done (`MINT-HANDOVER-ROUNDS-DONE`), plus a short tail, so every
//! hand-over happens under traffic; then it tells node 0 how many frames
//! it sent. QEMU's socket is one mint binds and passes to it
//! (`local.type=fd`, as `mint nic` does). Node 0 reports each round (`MINT-HANDOVER-ROUND {json}`: the
//! layer's state-machine steps with TSC stamps) and the sum
//! (`MINT-HANDOVER {json}`). Frames the host's kernel dropped on QEMU's
//! socket are `lost_before_nic` (as in `mint nic`); the NIC's own misses
//! (MPC) are `missed_by_nic`. The exit status is non-zero when anything is
//! unaccounted, duplicated or misrouted, or a round failed.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use mint_plan::{Device, NodeId};
use mint_traffic::GenConfig;
use serde_json::{Value, json};

use crate::machine::{Echo, Event, Machine, Node0Input, Options};
use crate::nic::{HostLink, Sent, Stop, check_qemu, host_frames, send_frames};
use crate::{MachineArgs, flags, plan};

/// Most frames a run may have (the kernel's seen maps).
const MAX_FRAMES: u32 = mint_abi::real_nic::SEEN_FRAMES;

#[derive(Args)]
pub struct HandoverArgs {
    #[command(flatten)]
    pub machine: MachineArgs,
    /// The device to hand over (the plan's e1000 is nic0).
    #[arg(long, default_value = "nic0")]
    pub device: String,
    /// The node that owns the device at boot.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = flags::u8_value)]
    pub from: u8,
    /// The node it is handed to first (then back, and so on).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true, value_parser = flags::u8_value)]
    pub to: u8,
    /// Hand-overs (alternating directions).
    #[arg(long, default_value_t = 20, allow_negative_numbers = true, value_parser = flags::u64_value)]
    pub rounds: u64,
    /// Time between two hand-overs, in ms (traffic flows throughout).
    #[arg(long, default_value_t = 100, allow_negative_numbers = true, value_parser = flags::u64_value)]
    pub spacing_ms: u64,
    /// Frames per second the host sends (0: as fast as it can).
    #[arg(long, default_value_t = 2000, allow_negative_numbers = true, value_parser = flags::u64_value)]
    pub rate: u64,
    /// Frame size in bytes (60..=1514, without FCS).
    #[arg(long, default_value = "1514", allow_negative_numbers = true, value_parser = flags::non_negative_text)]
    pub size: String,
    /// udp (through each owner's UDP/IP stack) or raw (Ethernet).
    #[arg(long, default_value = "udp")]
    pub kind: String,
    /// Seed of the payloads.
    #[arg(long, default_value = "1", allow_negative_numbers = true, value_parser = flags::non_negative_text)]
    pub seed: String,
    /// Print the result as JSON on stdout (consoles go to stderr).
    #[arg(long)]
    pub json: bool,
}

/// The run's frames: enough for the rounds at the rate, plus slack (the
/// host stops early once the rounds are done).
fn config(args: &HandoverArgs) -> Result<GenConfig> {
    if args.device != "nic0" {
        bail!(
            "--device {}: unknown device (the plan's e1000 is nic0)",
            args.device
        );
    }
    if args.from == args.to {
        bail!(
            "--from and --to are both node {}: a hand-over needs two nodes",
            args.from
        );
    }
    if !(1..=1000).contains(&args.rounds) {
        bail!("--rounds {}: must be 1..=1000", args.rounds);
    }
    if !(1..=60_000).contains(&args.spacing_ms) {
        bail!("--spacing-ms {}: must be 1..=60000", args.spacing_ms);
    }
    // Rounds, each up to a few hundred ms under emulation, plus 10 s.
    let seconds = args.rounds * (args.spacing_ms + 500) / 1000 + 10;
    let count = if args.rate == 0 {
        MAX_FRAMES
    } else {
        u32::try_from(args.rate.saturating_mul(seconds))
            .unwrap_or(MAX_FRAMES)
            .min(MAX_FRAMES)
    };
    host_frames(&args.size, count, args.rate, &args.kind, &args.seed)
}

/// The plan: `--config` as given (it must give the e1000 to `--from` and
/// make `--to` stand by), or `--nodes` (default: enough for both) with
/// the e1000 on `--from` and a standby on `--to`.
fn handover_plan(args: &HandoverArgs) -> Result<mint_plan::Plan> {
    let (from, to) = (NodeId(args.from), NodeId(args.to));
    let has = |plan: &mint_plan::Plan, id: NodeId, d: Device| {
        plan.nodes
            .iter()
            .any(|n| n.id == id && n.devices.contains(&d))
    };
    if args.machine.plan.config.is_some() {
        let (plan, _) = plan::load(&args.machine.plan)?;
        if !has(&plan, from, Device::E1000) {
            bail!("--from {}: the plan does not give it the e1000", args.from);
        }
        if !has(&plan, to, Device::E1000Standby) {
            bail!(
                "--to {}: the plan does not list e1000-standby on it",
                args.to
            );
        }
        return Ok(plan);
    }
    let need = args.from.max(args.to).saturating_add(1).max(2);
    let n = args.machine.plan.nodes.unwrap_or(need);
    if n < need {
        bail!(
            "--from {} --to {}: the plan has {n} nodes",
            args.from,
            args.to
        );
    }
    let mut plan = mint_plan::Plan::default_nodes(n)?;
    plan.nodes[usize::from(args.from)]
        .devices
        .push(Device::E1000);
    plan.nodes[usize::from(args.to)]
        .devices
        .push(Device::E1000Standby);
    plan.validate().context("partition plan rejected")?;
    Ok(plan)
}

pub fn run(args: HandoverArgs) -> Result<ExitCode> {
    let cfg = config(&args).context("bad handover settings")?;
    let plan = handover_plan(&args)?;
    let mut link = HostLink::new()?;
    let qemu_port = link.qemu_port;
    let prepared = crate::machine::prepare(&args.machine, args.json)?;
    check_qemu(&prepared.qemu)?;
    let timeout = args
        .machine
        .timeout_or(180 + args.rounds * (args.spacing_ms + 2_000) / 1000);
    let log_dir = prepared.log_dir.clone();
    let kv = format!(
        "size={},count={},interval=0,pattern=fixed,kind={},seed={}",
        cfg.size,
        cfg.count,
        cfg.kind.as_str(),
        cfg.seed
    );
    errln!(
        "mint: handover: nic0 between node {} and node {}, {} rounds {} ms apart, {}-byte frames at {}",
        args.from,
        args.to,
        args.rounds,
        args.spacing_ms,
        cfg.size,
        if args.rate == 0 {
            "the host's pace".to_string()
        } else {
            format!("{} frames/s", args.rate)
        }
    );
    let machine = Machine::start(Options {
        prepared: &prepared,
        plan: &plan,
        cmdline: vec![
            "mint.mode=handover".into(),
            format!("mint.gen={kv}"),
            format!(
                "mint.handover={}:{}:{}:{}",
                args.from, args.to, args.rounds, args.spacing_ms
            ),
        ],
        echo: if args.json {
            Echo::Stderr
        } else {
            Echo::Stdout
        },
        netdevs: vec![link.netdev()],
        inherit: link.inherit(),
    })?;
    let console: Node0Input = machine.node0_input();
    let (sent_tx, sent_rx) = mpsc::channel::<Result<Sent>>();
    let stop = Arc::new(AtomicBool::new(false));
    // After the last round: 200 ms of traffic more (at least 20 frames).
    let tail = (args.rate / 5).clamp(20, 10_000) as u32;
    let mut sender: Option<std::thread::JoinHandle<()>> = None;
    let mut rounds: Vec<Value> = Vec::new();
    let mut record: Option<Value> = None;
    let mut error: Option<String> = None;
    let mut socket_at_start: Option<(u64, u64)> = None;
    let mut socket_at_end: Option<(u64, u64)> = None;
    let mut bad_lines = 0u32;
    let outcome = machine.finish(timeout, |ev| {
        let Event::Line { node, text } = ev else {
            return;
        };
        if node != NodeId(0) {
            return;
        }
        if let Some(run) = text
            .strip_prefix("MINT-HANDOVER-ARMED run=")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|r| r.parse::<u32>().ok())
        {
            socket_at_start = link.stats();
            let (Some(socket), None) = (link.host.take(), &sender) else {
                return;
            };
            let (cfg, console, tx, stop) = (cfg, console.clone(), sent_tx.clone(), stop.clone());
            sender = Some(std::thread::spawn(move || {
                let result = send_frames(
                    &socket,
                    qemu_port,
                    &cfg,
                    run,
                    Some(Stop { flag: &stop, tail }),
                );
                // Node 0 waits for this line to close the injection; a
                // sender that failed before sending says 0, so the run ends
                // and the error (below) is reported, not a timeout.
                let n = result.as_ref().map_or(0, |s| s.sent);
                let _ = console.write(format!("sent {n}\n").as_bytes());
                let _ = tx.send(result);
            }));
        } else if let Some(j) = text.strip_prefix("MINT-HANDOVER-ROUND ") {
            match serde_json::from_str::<Value>(j) {
                Ok(v) => rounds.push(v),
                Err(_) => bad_lines += 1,
            }
        } else if text.starts_with("MINT-HANDOVER-ROUNDS-DONE") {
            stop.store(true, Ordering::Release);
        } else if let Some(j) = text.strip_prefix("MINT-HANDOVER ") {
            socket_at_end = link.stats();
            record = serde_json::from_str(j).ok();
            if record.is_none() {
                bad_lines += 1;
            }
        } else if let Some(e) = text.strip_prefix("MINT-ERROR ") {
            error = Some(e.to_string());
            stop.store(true, Ordering::Release);
        }
    });
    // Whatever happened, the sender must not outlive the machine.
    stop.store(true, Ordering::Release);
    outcome.check_stopped()?;
    if outcome.timed_out {
        bail!(
            "stopped the machine after the {} s timeout; consoles in {}",
            timeout.as_secs(),
            log_dir.display()
        );
    }
    if let Some(e) = error {
        bail!("node 0: {e}; consoles in {}", log_dir.display());
    }
    if bad_lines > 0 {
        bail!(
            "{bad_lines} hand-over records from node 0 were not valid JSON; consoles in {}",
            log_dir.display()
        );
    }
    let Some(record) = record else {
        bail!(
            "the machine ended without a hand-over record (QEMU exit {:?}); QEMU said: {}; consoles in {}",
            outcome.status.and_then(|s| s.code()),
            outcome.qemu_stderr.trim(),
            log_dir.display()
        );
    };
    let sent = sent_rx
        .recv_timeout(Duration::from_secs(5))
        .context("the sender never finished")??;
    if let Some(h) = sender {
        let _ = h.join();
    }
    drop(link);
    let report = summarize(
        &args,
        &record,
        rounds,
        &sent,
        socket_at_start,
        socket_at_end,
        prepared.accel.as_str(),
        &log_dir,
    )?;
    crate::emit(&report, args.json, print_summary)
}

/// p50 / p99 / max of `v` (nearest rank), or nulls.
fn percentiles(v: &mut [f64]) -> Value {
    if v.is_empty() {
        return json!({"count": 0, "p50": null, "p99": null, "max": null});
    }
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[(((p * v.len() as f64).ceil() as usize).max(1) - 1).min(v.len() - 1)];
    json!({"count": v.len(), "p50": rank(0.50), "p99": rank(0.99), "max": v[v.len() - 1]})
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    args: &HandoverArgs,
    rec: &Value,
    rounds: Vec<Value>,
    sent: &Sent,
    socket_at_start: Option<(u64, u64)>,
    socket_at_end: Option<(u64, u64)>,
    accel: &str,
    log_dir: &std::path::Path,
) -> Result<Value> {
    let node_sent = rec["sent"].as_u64().unwrap_or(0);
    if node_sent != sent.sent {
        bail!(
            "node 0 recorded {node_sent} frames sent, the host sent {}",
            sent.sent
        );
    }
    let lost_before_nic = match (socket_at_start, socket_at_end) {
        (Some((_, a)), Some((_, b))) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let node_unaccounted = rec["unaccounted"].as_i64().unwrap_or(i64::MAX);
    let unaccounted = node_unaccounted.saturating_sub(lost_before_nic.unwrap_or(0) as i64);
    let duplicates = rec["duplicates"].as_u64().unwrap_or(u64::MAX);
    let misrouted = rec["misrouted_interrupts"].as_u64().unwrap_or(u64::MAX);
    let bad_notices = rec["bad_notices"].as_u64().unwrap_or(u64::MAX);
    let completed = rec["completed"].as_bool() == Some(true);
    let done = rec["rounds"].as_u64().unwrap_or(0);
    let mut times: Vec<f64> = rounds
        .iter()
        .filter_map(|r| r["handover_us"].as_f64())
        .collect();
    let mut layer_times: Vec<f64> = rounds
        .iter()
        .filter_map(|r| r["layer_us"].as_f64())
        .collect();
    let ok = completed
        && done == args.rounds
        && rounds.len() as u64 == args.rounds
        && unaccounted == 0
        && duplicates == 0
        && misrouted == 0
        && bad_notices == 0
        && rec["maps_agree"] == true
        && lost_before_nic.is_some()
        && rec.get("failure").is_none();
    let verdict = if ok {
        format!(
            "{done} hand-overs under traffic: every frame accounted for, none twice, no interrupt misrouted"
        )
    } else {
        format!(
            "FAILED: {done} of {} rounds, {unaccounted} unaccounted, {duplicates} duplicates, {misrouted} misrouted, {bad_notices} bad notices{}",
            args.rounds,
            rec["failure"]
                .as_str()
                .map_or(String::new(), |f| format!("; {f}"))
        )
    };
    let achieved =
        (sent.elapsed.as_secs_f64() > 0.0).then(|| sent.sent as f64 / sent.elapsed.as_secs_f64());
    let delivered = rec["delivered"].clone();
    let trace_path = log_dir.join(format!("handover-trace-run{}.json", rec["run"]));
    std::fs::write(&trace_path, serde_json::to_vec_pretty(&rounds)?)
        .with_context(|| format!("cannot write {}", trace_path.display()))?;
    Ok(json!({
        "accel": accel,
        "device": args.device,
        "from": args.from,
        "to": args.to,
        "rounds": done,
        "rounds_asked": args.rounds,
        "spacing_ms": args.spacing_ms,
        "config": rec["config"],
        "rate": {
            "requested_pps": args.rate,
            "achieved_pps": achieved,
            "late_sends": sent.late,
            "send_seconds": sent.elapsed.as_secs_f64(),
        },
        "frames_sent": sent.sent,
        "send_errors": sent.send_errors,
        "delivered": delivered,
        "delivered_unique": rec["delivered_unique"],
        "seen_maps": {
            "by_both": rec["seen_by_both"],
            "by_either": rec["seen_by_either"],
            "agree_with_counts": rec["maps_agree"],
        },
        "dropped": rec["dropped"],
        "missed_by_nic": rec["missed_by_nic"],
        "lost_before_nic": lost_before_nic,
        "unaccounted": unaccounted,
        "duplicates": duplicates,
        "misrouted_interrupts": misrouted,
        "bad_notices": bad_notices,
        "handover_us": percentiles(&mut times),
        "layer_us": percentiles(&mut layer_times),
        "interrupts": rec["interrupts"],
        "irq": rec["irq"],
        "tsc_hz": rec["tsc_hz"],
        "completed": completed,
        "failure": rec.get("failure").cloned().unwrap_or(Value::Null),
        "trace": rounds,
        "trace_file": trace_path.display().to_string(),
        "verdict": verdict,
        "ok": ok,
        "log_dir": log_dir.display().to_string(),
    }))
}

fn print_summary(r: &Value) {
    let f = |v: &Value| v.as_f64().map_or("n/a".to_string(), |x| format!("{x:.1}"));
    outln!();
    outln!(
        "handover: {} between node {} and node {}, {} of {} rounds {} ms apart (accel {})",
        r["device"].as_str().unwrap_or("?"),
        r["from"],
        r["to"],
        r["rounds"],
        r["rounds_asked"],
        r["spacing_ms"],
        r["accel"].as_str().unwrap_or("?")
    );
    let per_node = |v: &Value| {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let drops: Vec<String> = r["dropped"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v.as_u64().is_some_and(|n| n > 0))
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    outln!(
        "frames: {} sent; delivered {} ({} unique); dropped {}; missed by the NIC (MPC) {}; lost before the NIC {}; unaccounted {}; duplicates {}",
        r["frames_sent"],
        per_node(&r["delivered"]),
        r["delivered_unique"],
        if drops.is_empty() {
            "none".to_string()
        } else {
            drops.join(", ")
        },
        r["missed_by_nic"],
        r["lost_before_nic"],
        r["unaccounted"],
        r["duplicates"]
    );
    let h = &r["handover_us"];
    outln!(
        "hand-over time (request to both notices acknowledged): p50 {} us, p99 {} us, max {} us; layer state machine p50 {} us",
        f(&h["p50"]),
        f(&h["p99"]),
        f(&h["max"]),
        f(&r["layer_us"]["p50"]),
    );
    for (node, c) in r["interrupts"].as_object().into_iter().flatten() {
        outln!(
            "{node}: {} interrupts serviced, {} deferred (taken while quiesced), {} stray, attached {} times, detached {} times",
            c["serviced"],
            c["deferred"],
            c["stray"],
            c["attached"],
            c["detached"]
        );
    }
    outln!("misrouted interrupts {}", r["misrouted_interrupts"]);
    outln!("trace: {}", r["trace_file"].as_str().unwrap_or("?"));
    outln!("{}", r["verdict"].as_str().unwrap_or("?"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: HandoverArgs,
    }

    fn args(extra: &[&str]) -> HandoverArgs {
        let mut v = vec!["mint"];
        v.extend_from_slice(extra);
        Cli::parse_from(v).args
    }

    #[test]
    fn bad_settings_are_named() {
        for (flags, want) in [
            (&["--device", "nic1"][..], "unknown device"),
            (&["--from", "1", "--to", "1"][..], "both node 1"),
            (&["--rounds", "0"][..], "--rounds 0"),
            (&["--spacing-ms", "0"][..], "--spacing-ms 0"),
            (&["--size", "4096"][..], "at most 1514"),
        ] {
            let e = config(&args(flags)).unwrap_err();
            assert!(format!("{e:#}").contains(want), "{flags:?}: {e:#}");
        }
    }

    #[test]
    fn the_plan_puts_the_owner_and_the_standby_where_asked() {
        let plan = handover_plan(&args(&["--from", "2", "--to", "0"])).unwrap();
        assert_eq!(plan.nodes.len(), 3);
        assert!(plan.nodes[2].devices.contains(&Device::E1000));
        assert!(plan.nodes[0].devices.contains(&Device::E1000Standby));
        let e = handover_plan(&args(&["--from", "0", "--to", "3", "--nodes", "2"])).unwrap_err();
        assert!(format!("{e:#}").contains("the plan has 2 nodes"), "{e:#}");
    }

    #[test]
    fn counts_cover_the_rounds_and_stay_in_the_seen_maps() {
        let c = config(&args(&["--rounds", "20", "--rate", "2000"])).unwrap();
        assert_eq!(c.count, 2000 * (20 * 600 / 1000 + 10));
        let c = config(&args(&["--rate", "0"])).unwrap();
        assert_eq!(c.count, MAX_FRAMES);
        let mut v = vec![3.0, 1.0, 2.0];
        let p = percentiles(&mut v);
        assert_eq!(
            (p["p50"].as_f64(), p["max"].as_f64()),
            (Some(2.0), Some(3.0))
        );
    }
}
