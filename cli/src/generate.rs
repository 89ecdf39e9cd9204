//! `mint gen`: one run of the interrupt generator against the e1000 driver
//! on the target node, through the shared-memory debug NIC and real IPIs.
//! Every figure is computed here from the raw TSC samples the nodes print
//! (kept in the run's log directory); the counts come from the nodes'
//! accounting, and every injected frame must be delivered or dropped with a
//! counted reason.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use mint_traffic::{GenConfig, PacketKind, Pattern, Summary};
use serde_json::{Value, json};

use crate::machine::{Echo, Event, Machine, Options};
use crate::output::Bar;
use crate::preflight::OutputFile;
use crate::{MachineArgs, flags, plan};

#[derive(Args)]
pub struct GenArgs {
    #[command(flatten)]
    pub machine: MachineArgs,
    /// Frame size in bytes (60..=16384, without FCS).
    #[arg(long, default_value = "1514", allow_negative_numbers = true, value_parser = flags::non_negative_text)]
    pub size: String,
    /// Frames to inject.
    #[arg(long, default_value = "5000", allow_negative_numbers = true, value_parser = flags::non_negative_text)]
    pub count: String,
    /// Mean interval between frames in ns (0 = back to back; units ns/us/ms/s accepted).
    #[arg(
        long = "interval-ns",
        default_value = "200000",
        allow_hyphen_values = true,
        value_parser = flags::non_negative_text
    )]
    pub interval: String,
    /// fixed, poisson or burst:K.
    #[arg(long, default_value = "fixed")]
    pub pattern: String,
    /// udp (through the target's UDP/IP stack) or raw (Ethernet).
    #[arg(long, default_value = "udp")]
    pub kind: String,
    /// How the target's driver takes the NIC's interrupts: none (one per
    /// posted edge), itr:NS (the e1000's throttling, NS a multiple of 256)
    /// or napi (masked polling from the receive loop).
    #[arg(long, default_value = "none")]
    pub moderation: String,
    /// Where the target takes each frame: app (the stack and the
    /// application's payload check) or driver (counted at the driver and
    /// released: the driver's own capacity; nothing checked).
    #[arg(long, default_value = "app")]
    pub deliver: String,
    /// Seed of the schedule and payloads.
    #[arg(long, default_value = "1", allow_negative_numbers = true, value_parser = flags::non_negative_text)]
    pub seed: String,
    /// The node playing the NIC (runs the generator); must be 0.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = flags::u8_value)]
    pub support: u8,
    /// The node whose e1000 driver receives.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true, value_parser = flags::u8_value)]
    pub target: u8,
    /// Fault injection: corrupt every Nth descriptor write-back (zero
    /// length, oversize, no EOP, error bits in turn); the driver must count
    /// and survive each. 0 = never.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = flags::u32_value)]
    pub corrupt_every: u32,
    /// Fault injection (for tests): the device model sets the posted flag
    /// but "forgets" to send every Nth IPI; the target's timer tick must
    /// recover each. 0 = never.
    #[arg(long, default_value_t = 0, hide = true, allow_negative_numbers = true, value_parser = flags::u32_value)]
    pub forget_ipi_every: u32,
    /// Fault injection (for tests): every Nth frame carries the previous
    /// run's id; the target must count it as stale_run. 0 = never.
    #[arg(long, default_value_t = 0, hide = true, allow_negative_numbers = true, value_parser = flags::u32_value)]
    pub stale_every: u32,
    /// Write every injected frame, as the NIC received it, to this pcap file
    /// (timestamps from the injection TSC).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<std::path::PathBuf>,
    /// Print the result as JSON on stdout (consoles go to stderr).
    #[arg(long)]
    pub json: bool,
}

/// The run's configuration, checked before anything boots.
pub fn config(args: &GenArgs) -> Result<GenConfig> {
    let cfg = GenConfig {
        size: mint_traffic::config::parse_size(&args.size)?,
        count: mint_traffic::config::parse_count(&args.count)?,
        interval_ns: mint_traffic::config::parse_interval_ns(&args.interval)?,
        pattern: args.pattern.parse::<Pattern>()?,
        kind: args.kind.parse::<PacketKind>()?,
        seed: mint_traffic::config::parse_seed(&args.seed)?,
        moderation: args
            .moderation
            .parse::<mint_traffic::Moderation>()
            .map_err(|e| anyhow::anyhow!("--moderation: {e}"))?,
        deliver: args
            .deliver
            .parse::<mint_traffic::Delivery>()
            .map_err(|e| anyhow::anyhow!("--deliver: {e}"))?,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Raw samples by metric, in TSC ticks.
#[derive(Default)]
pub(crate) struct Samples {
    values: BTreeMap<String, Vec<u64>>,
    ends: BTreeMap<String, usize>,
}

impl Samples {
    /// Takes a `MINT-SAMPLES <run> <metric> <first> v,v,...` or
    /// `MINT-SAMPLES-END <run> <metric> <n>` line.
    pub(crate) fn take(&mut self, line: &str) -> Result<()> {
        let mut w = line.split(' ');
        match w.next() {
            Some("MINT-SAMPLES") => {
                let (_run, metric, first) = (w.next(), w.next().context("sample line")?, w.next());
                let first: usize = first.and_then(|f| f.parse().ok()).context("sample index")?;
                let v = self.values.entry(metric.to_string()).or_default();
                if v.len() != first {
                    bail!(
                        "samples of {metric} arrived out of order (index {first}, have {})",
                        v.len()
                    );
                }
                for x in w.next().unwrap_or("").split(',').filter(|s| !s.is_empty()) {
                    v.push(x.parse().with_context(|| format!("bad sample '{x}'"))?);
                }
            }
            Some("MINT-SAMPLES-END") => {
                let (_run, metric) = (w.next(), w.next().context("sample end line")?);
                let n: usize = w
                    .next()
                    .and_then(|n| n.parse().ok())
                    .context("sample count")?;
                self.ends.insert(metric.to_string(), n);
            }
            _ => {}
        }
        Ok(())
    }

    /// Sample values received so far, over every metric.
    pub(crate) fn received(&self) -> u64 {
        self.values.values().map(|v| v.len() as u64).sum()
    }

    pub(crate) fn metric(&self, name: &str) -> Result<&[u64]> {
        let v = self.values.get(name).map(Vec::as_slice).unwrap_or(&[]);
        match self.ends.get(name) {
            Some(&n) if n == v.len() => Ok(v),
            Some(&n) => bail!("{name}: {} samples arrived, the node sent {n}", v.len()),
            None => bail!("{name}: the node never finished sending its samples"),
        }
    }
}

/// Node 0 keeps three raw samples (8 bytes each) of every frame it sends;
/// besides them it needs this much of its partition (image, tables, heap
/// for everything else).
const NODE0_OVERHEAD: u64 = 24 << 20;

/// Makes room in node 0's partition for the run's raw samples before
/// anything boots: a plan mint made up itself (`--nodes`, or none) gives
/// node 0 what the run needs; a plan file that gives too little is
/// refused, naming the size it needs. (Node 0 checks again, exactly,
/// before it sends: this only spares the user a boot that cannot work.)
pub(crate) fn fit_samples(
    plan: &mut mint_plan::Plan,
    cfg: &GenConfig,
    generated: bool,
) -> Result<()> {
    let needed = u64::from(cfg.count) * 24 + NODE0_OVERHEAD;
    let needed = needed.next_multiple_of(mint_plan::PARTITION_ALIGN);
    let have = plan.nodes[0].memory;
    if needed <= have {
        return Ok(());
    }
    let most = (mint_plan::MAX_NODE0_MEMORY - NODE0_OVERHEAD) / 24;
    if needed > mint_plan::MAX_NODE0_MEMORY {
        bail!(
            "--count {}: node 0 keeps 24 bytes of raw samples per frame, {} MiB for this run, more than a node 0 partition can hold ({} MiB): at most about {most} frames per run",
            cfg.count,
            (u64::from(cfg.count) * 24) >> 20,
            mint_plan::MAX_NODE0_MEMORY >> 20
        );
    }
    if !generated {
        bail!(
            "--count {}: node 0 needs {} MiB for this run's raw samples and the rest of its work; the plan gives it {} MiB (raise node 0's memory in the plan)",
            cfg.count,
            needed >> 20,
            have >> 20
        );
    }
    plan.nodes[0].memory = needed;
    plan.machine.memory += needed - have;
    plan.validate()
        .context("partition plan rejected after sizing node 0 for the raw samples")?;
    errln!(
        "mint: node 0 gets {} MiB (instead of {} MiB) to keep this run's raw samples",
        needed >> 20,
        have >> 20
    );
    Ok(())
}

pub fn run(args: GenArgs) -> Result<ExitCode> {
    let cfg = config(&args).context("bad generator settings")?;
    let (mut plan, _layout) = plan::load(&args.machine.plan)?;
    fit_samples(&mut plan, &cfg, args.machine.plan.config.is_none())?;
    if args.support != 0 {
        bail!(
            "--support {}: the support node must be node 0 (it runs the generator)",
            args.support
        );
    }
    let n = plan.nodes.len();
    if n < 2 {
        bail!("mint gen needs at least 2 nodes (a support node and a target); the plan has {n}");
    }
    if args.target == 0 || usize::from(args.target) >= n {
        bail!(
            "--target {}: the target must be another node of the plan (1..{})",
            args.target,
            n.saturating_sub(1)
        );
    }
    if plan.shared_size < mint_abi::debug_nic::min_shared_size() {
        bail!(
            "the debug NIC needs a shared region of at least {} MiB (its RX ring and {} buffers of {} KiB); the plan gives {} MiB",
            mint_abi::debug_nic::min_shared_size() >> 20,
            mint_abi::debug_nic::RING_SLOTS,
            mint_abi::debug_nic::BUFFER_SIZE / 1024,
            plan.shared_size >> 20
        );
    }
    // Opened now, written at the end: a path that cannot be written is
    // refused before the run, not after it.
    let mut pcap = args
        .pcap
        .as_deref()
        .map(|p| OutputFile::claim(p, "--pcap"))
        .transpose()?;
    let prepared = crate::machine::prepare(&args.machine, args.json)?;
    // Injection takes the schedule's length; printing the raw samples
    // takes about 100 us per frame and node under emulation.
    let samples_s = u64::from(cfg.count) / 5_000;
    let timeout = args
        .machine
        .timeout_or(120 + cfg.nominal_duration_ns() / 1_000_000_000 + samples_s);
    errln!("{}", estimate(&cfg, prepared.accel, samples_s));
    let log_dir = prepared.log_dir.clone();
    let kv = cfg.to_string().replace(' ', ",");
    let machine = Machine::start(Options {
        prepared: &prepared,
        plan: &plan,
        cmdline: vec![
            "mint.mode=gen".into(),
            format!("mint.debug={}:{}", args.support, args.target),
            format!("mint.gen={kv}"),
            format!("mint.corrupt={}", args.corrupt_every),
            format!("mint.forget_ipi={}", args.forget_ipi_every),
            format!("mint.stale={}", args.stale_every),
        ],
        echo: if args.json {
            Echo::Stderr
        } else {
            Echo::Stdout
        },
        netdevs: Vec::new(),
        inherit: Vec::new(),
    })?;
    let mut record: Option<Value> = None;
    let mut boot_report: Option<Value> = None;
    let mut error: Option<String> = None;
    let mut samples = Samples::default();
    let mut sample_error: Option<anyhow::Error> = None;
    // What the nodes report as they go: node 0's `MINT-PROGRESS sent=N`
    // about once a second while it injects, then the raw-sample records
    // (three metrics per frame from each of the two nodes, about).
    let mut injecting = Some(Bar::new("injecting", u64::from(cfg.count), "frames"));
    let mut dumping: Option<Bar> = None;
    let outcome = machine.finish(timeout, |ev| {
        let Event::Line { node, text } = ev else {
            return;
        };
        // A Linux target prints its samples through the kernel log, each
        // line after the kernel's timestamp.
        let text = without_printk_time(&text);
        if text.starts_with("MINT-SAMPLES") {
            injecting = None;
            let bar = dumping
                .get_or_insert_with(|| Bar::new("raw samples", 6 * u64::from(cfg.count), "values"));
            if let Err(e) = samples.take(text) {
                sample_error.get_or_insert(e);
            }
            bar.set(samples.received());
        } else if node.0 == 0 {
            if let Some(sent) = text
                .strip_prefix("MINT-PROGRESS sent=")
                .and_then(|n| n.parse().ok())
            {
                if let Some(bar) = &injecting {
                    bar.progress(sent);
                }
            } else if let Some(j) = text.strip_prefix("MINT-GEN ") {
                record = serde_json::from_str(j).ok();
            } else if let Some(j) = text.strip_prefix("MINT-REPORT ") {
                boot_report = serde_json::from_str(j).ok();
            } else if let Some(e) = text.strip_prefix("MINT-ERROR ") {
                error = Some(e.to_string());
            }
        }
    });
    drop((injecting, dumping));
    outcome.check_stopped()?;
    if outcome.timed_out {
        bail!(
            "stopped the machine after the {} s timeout{}; consoles in {}",
            timeout.as_secs(),
            if record.as_ref().is_some_and(|r| r["completed"] == true) {
                " (the run had completed; its raw samples had not all arrived)"
            } else {
                ""
            },
            log_dir.display()
        );
    }
    if let Some(e) = error {
        bail!("node 0: {e}");
    }
    if let Some(e) = sample_error {
        return Err(e.context("reading the nodes' raw samples"));
    }
    let Some(record) = record else {
        bail!(
            "the machine ended without a generator record (QEMU exit {:?}); QEMU said: {}; consoles in {}",
            outcome.status.and_then(|s| s.code()),
            outcome.qemu_stderr.trim(),
            log_dir.display()
        );
    };
    if let Some(pcap) = &mut pcap {
        let file = pcap.take()?;
        write_pcap(file, &cfg, &record, samples.metric("inject_tsc")?)
            .with_context(|| format!("writing {}", pcap.path().display()))?;
    }
    let mut report = summarize(&cfg, &record, &samples, prepared.accel.as_str(), &log_dir)?;
    add_timing(
        &mut report,
        boot_report.as_ref(),
        &prepared.host_tsc,
        args.target,
        args.json,
    );
    crate::emit(&report, args.json, print_summary)
}

/// `text` without a leading kernel-log timestamp (`[   12.345678] `).
pub(crate) fn without_printk_time(text: &str) -> &str {
    text.strip_prefix('[')
        .and_then(|t| t.split_once("] "))
        .filter(|(stamp, _)| {
            !stamp.is_empty()
                && stamp
                    .trim_start()
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.')
        })
        .map_or(text, |(_, rest)| rest)
}

/// Rebuilds every injected frame (frames are deterministic given the run's
/// config, the sequence number and the stamped TSC) and writes them with
/// timestamps relative to the host clock at the end of the run.
fn write_pcap(file: std::fs::File, cfg: &GenConfig, rec: &Value, inject_tsc: &[u64]) -> Result<()> {
    use pcap_file::pcap::{PcapPacket, PcapWriter};
    let tsc_hz = rec["tsc_hz"]
        .as_f64()
        .filter(|&h| h > 0.0)
        .context("record without tsc_hz")?;
    let sent = rec["sent"].as_u64().unwrap_or(0) as usize;
    if inject_tsc.len() != sent {
        bail!("{} injection stamps for {sent} frames", inject_tsc.len());
    }
    let mut template =
        mint_traffic::FrameTemplate::from_config(cfg, &mint_traffic::Endpoints::default())?;
    // Frames carry the run id's low byte; with stale injection every Nth
    // the previous run's.
    let run = rec["run"].as_u64().unwrap_or(0) as u8;
    let stale_every = rec["config"]["stale_every"].as_u64().unwrap_or(0);
    template.set_run(run);
    let mut stale = template.clone();
    stale.set_run(run.wrapping_sub(1));
    let first = inject_tsc.first().copied().unwrap_or(0);
    let last = inject_tsc.last().copied().unwrap_or(0);
    let end = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let start = end.saturating_sub(Duration::from_secs_f64((last - first) as f64 / tsc_hz));
    let mut writer = PcapWriter::new(std::io::BufWriter::new(file))?;
    let mut frame = vec![0u8; template.len()];
    for (seq, &tsc) in inject_tsc.iter().enumerate() {
        let is_stale = stale_every > 0 && (seq as u64 + 1).is_multiple_of(stale_every);
        let t = if is_stale { &stale } else { &template };
        let len = t.render(&mut frame, seq as u32, tsc)?;
        let at = start + Duration::from_secs_f64((tsc - first) as f64 / tsc_hz);
        writer.write_packet(&PcapPacket::new(at, len as u32, &frame[..len]))?;
    }
    std::io::Write::flush(&mut writer.into_writer())?;
    Ok(())
}

/// What the run will take, said before it starts: the schedule's length
/// (count x interval), and the raw samples' printing (`samples_s`, an
/// emulator's pace).
fn estimate(cfg: &GenConfig, accel: crate::qemu::Accel, samples_s: u64) -> String {
    use indicatif::HumanDuration;
    let injection = Duration::from_nanos(cfg.nominal_duration_ns());
    let emulated = if accel == crate::qemu::Accel::Tcg {
        " (longer under TCG where a frame takes longer to send than its interval)"
    } else {
        ""
    };
    let about = |d: Duration| {
        if d < Duration::from_secs(1) {
            "under a second".to_string()
        } else {
            format!("about {}", HumanDuration(d))
        }
    };
    format!(
        "mint: gen: {} frames, one every {} ns: {} of injection{emulated}, then {} for the raw samples",
        cfg.count,
        cfg.interval_ns,
        about(injection),
        about(Duration::from_secs(samples_s))
    )
}

fn to_ns(ticks: f64, tsc_hz: f64) -> f64 {
    ticks * 1e9 / tsc_hz
}

/// Summary of `values` (ticks) in ns; every figure `null` without samples.
pub(crate) fn summary_ns(values: &[u64], tsc_hz: f64) -> Value {
    let mut v = values.to_vec();
    let Some(s) = Summary::from_samples(&mut v).non_empty() else {
        return json!({
            "count": 0, "mean": null, "p50": null, "p99": null, "min": null, "max": null,
        });
    };
    json!({
        "count": s.count,
        "mean": to_ns(s.mean, tsc_hz),
        "p50": to_ns(s.p50 as f64, tsc_hz),
        "p99": to_ns(s.p99 as f64, tsc_hz),
        "min": to_ns(s.min as f64, tsc_hz),
        "max": to_ns(s.max as f64, tsc_hz),
    })
}

fn summarize(
    cfg: &GenConfig,
    rec: &Value,
    samples: &Samples,
    accel: &str,
    log_dir: &std::path::Path,
) -> Result<Value> {
    let tsc_hz = rec["tsc_hz"]
        .as_f64()
        .filter(|&h| h > 0.0)
        .context("record without tsc_hz")?;
    let sent = rec["sent"].as_u64().unwrap_or(0);
    let delivered = rec["delivered"].as_u64().unwrap_or(0);
    let unaccounted = rec["unaccounted"].as_i64().unwrap_or(i64::MAX);
    let corrupted = rec["corrupted"].as_u64().unwrap_or(u64::MAX);
    let completed = rec["completed"].as_bool() == Some(true);
    let send = samples.metric("send_time")?;
    let latency = samples.metric("latency")?;
    let intervals = samples.metric("irq_interval")?;
    let ipi = samples.metric("ipi_latency")?;
    let ipi_request = samples.metric("ipi_request")?;
    let inject = samples.metric("inject_tsc")?;
    if send.len() as u64 != sent.min(send.len() as u64) || (send.len() as u64) < sent.min(1 << 20) {
        bail!("send_time: {} samples for {sent} frames sent", send.len());
    }
    let span = rec["last_delivery_tsc"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(rec["first_inject_tsc"].as_u64().unwrap_or(0));
    let bytes = rec["delivered_bytes"].as_u64().unwrap_or(0);
    let throughput = (span > 0).then(|| bytes as f64 * 8.0 / (span as f64 / tsc_hz) / 1e9);
    let send_summary = summary_ns(send, tsc_hz);
    let send_mean = send_summary["mean"].as_f64().filter(|&m| m > 0.0);
    let interval_summary = summary_ns(intervals, tsc_hz);

    let samples_path = log_dir.join(format!("samples-run{}.json", rec["run"]));
    let raw = json!({
        "unit": "tsc_ticks",
        "tsc_hz": tsc_hz,
        "send_time": send,
        "latency": latency,
        "irq_interval": intervals,
        "ipi_latency": ipi,
        "ipi_request": ipi_request,
        "inject_tsc": inject,
    });
    std::fs::write(&samples_path, serde_json::to_vec(&raw)?)
        .with_context(|| format!("cannot write {}", samples_path.display()))?;

    let accounted = completed && unaccounted == 0 && corrupted == 0;
    let all_delivered = accounted && delivered == sent;
    let verdict = if all_delivered {
        "every frame delivered".to_string()
    } else if accounted {
        format!(
            "every frame accounted for, not every frame delivered: {} of {sent} delivered, {} dropped with a counted reason",
            delivered,
            sent - delivered
        )
    } else {
        "FAILED: frames unaccounted or corrupted, or the run did not complete".to_string()
    };
    let ok = accounted;
    Ok(json!({
        "accel": accel,
        "config": rec["config"],
        "sent": sent,
        "delivered": delivered,
        "dropped": rec["dropped"],
        "unaccounted": unaccounted,
        "corrupted": corrupted,
        "out_of_order": rec["out_of_order"],
        "success_rate": (sent > 0).then(|| delivered as f64 / sent as f64),
        "send_time_ns": send_summary,
        // Frame size over the mean send time: how fast one send copies a
        // frame in, not a rate frames went through (see throughput_gbps).
        "send_copy_rate_gbps": send_mean.map(|m| f64::from(cfg.size) * 8.0 / m),
        // Payload bytes the application received, over first injection
        // to last delivery.
        "delivered_bytes": bytes,
        "throughput_gbps": throughput,
        "interval_ns": {
            "requested": cfg.interval_ns,
            "p50": interval_summary["p50"],
            "p99": interval_summary["p99"],
            "count": interval_summary["count"],
        },
        "latency_ns": summary_ns(latency, tsc_hz),
        "ipi_to_handler_ns": summary_ns(ipi, tsc_hz),
        // The IPI-sending part of the send time, over the sends that sent one.
        "ipi_request_ns": summary_ns(
            &ipi_request.iter().copied().filter(|&t| t > 0).collect::<Vec<_>>(),
            tsc_hz
        ),
        "interrupts": rec["interrupts"],
        "interrupts_per_frame": rec["interrupts"]
            .as_u64()
            .filter(|_| sent > 0)
            .map(|i| i as f64 / sent as f64),
        "itr_throttled": rec["itr_throttled"],
        "ipis_sent": rec["ipis_sent"],
        // Lost IPIs the target's timer tick recovered, and the IPIs fault
        // injection deliberately did not send.
        "recoveries": rec["recoveries"],
        "ipis_forgotten": rec["ipis_forgotten"],
        // Local APIC error interrupts since boot (all nodes), and the ESR
        // bits each node saw.
        "apic_errors": rec["apic_errors"],
        "apic_error_status": rec["apic_error_status"],
        "incomplete": rec.get("incomplete").cloned().unwrap_or(Value::Null),
        "tsc_hz": tsc_hz,
        "completed": completed,
        "all_delivered": all_delivered,
        "verdict": verdict,
        "ok": ok,
        "samples_file": samples_path.display().to_string(),
        "log_dir": log_dir.display().to_string(),
    }))
}

/// Adds the boot's timing facts (node 0's `MINT-REPORT`) to a gen report:
/// the TSC sources and the target's offset from node 0, which bounds
/// every cross-core figure (IPI to handler, injection to application).
fn add_timing(
    report: &mut Value,
    boot: Option<&Value>,
    host: &crate::tsc::HostTsc,
    target: u8,
    json: bool,
) {
    let Some(boot) = boot else {
        report["tsc"] = Value::Null;
        report["target_tsc_sync"] = Value::Null;
        report["cross_core_trusted"] = json!(false);
        return;
    };
    let mut boot = boot.clone();
    crate::tsc::annotate(&mut boot, host, json);
    let sync = boot["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == u64::from(target)))
        .map_or(Value::Null, |n| n["tsc_sync"].clone());
    let trusted = sync["skewed"] == false && sync["consistent"] == true;
    report["tsc"] = boot["tsc"].clone();
    report["tsc_skew_limit_ns"] = boot["tsc_skew_limit_ns"].clone();
    report["target_tsc_sync"] = sync;
    report["cross_core_trusted"] = json!(trusted);
    // Taken with the support node's TSC at one end, the target's at the other.
    for key in ["latency_ns", "ipi_to_handler_ns"] {
        report[key]["cross_core"] = json!(true);
        report[key]["trusted"] = json!(trusted);
    }
    report["warnings"] = json!(crate::tsc::warnings(&boot));
}

/// The report's `dropped` object as one terminal line (non-zero reasons).
pub fn print_drops(r: &Value) {
    if let Some(d) = r["dropped"].as_object() {
        let parts: Vec<String> = d
            .iter()
            .filter(|(_, n)| n.as_u64() != Some(0))
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        outln!(
            "dropped: {}",
            if parts.is_empty() {
                "none".into()
            } else {
                parts.join(", ")
            }
        );
    }
}

fn print_summary(r: &Value) {
    let f = |v: &Value| v.as_f64().map_or("n/a".to_string(), |x| format!("{x:.0}"));
    outln!();
    outln!(
        "generator: {} (accel {})",
        r["config"],
        r["accel"].as_str().unwrap_or("?")
    );
    outln!("tsc {}", crate::tsc::describe(r));
    let sync = &r["target_tsc_sync"];
    outln!(
        "target's TSC vs node 0's: {}",
        match (sync["offset_ns"].as_i64(), sync["uncertainty_ns"].as_u64()) {
            (Some(o), Some(u)) => format!(
                "{o:+} ns ± {u} ns over {} exchanges{}",
                sync["rounds"],
                if r["cross_core_trusted"] == true {
                    ""
                } else {
                    " (beyond the limit: cross-core figures below in doubt)"
                }
            ),
            _ => "n/a (not checked: cross-core figures below unchecked)".into(),
        }
    );
    outln!(
        "sent {}  delivered {}  unaccounted {}  corrupted {}  success {}",
        r["sent"],
        r["delivered"],
        r["unaccounted"],
        r["corrupted"],
        r["success_rate"]
            .as_f64()
            .map_or("n/a".into(), |x| format!("{:.2} %", x * 100.0))
    );
    print_drops(r);
    outln!(
        "send processing time: mean {} ns, p50 {} ns, p99 {} ns  (per-send copy rate {} Gbps: frame size / mean send time, not throughput)",
        f(&r["send_time_ns"]["mean"]),
        f(&r["send_time_ns"]["p50"]),
        f(&r["send_time_ns"]["p99"]),
        r["send_copy_rate_gbps"]
            .as_f64()
            .map_or("n/a".into(), |x| format!("{x:.2}"))
    );
    outln!(
        "  of which requesting the IPI: p50 {} ns, p99 {} ns (over {} sends that sent one)",
        f(&r["ipi_request_ns"]["p50"]),
        f(&r["ipi_request_ns"]["p99"]),
        r["ipi_request_ns"]["count"]
    );
    outln!(
        "interrupt interval at the target: requested {} ns, p50 {} ns, p99 {} ns ({} interrupts, {} IPIs)",
        r["interval_ns"]["requested"],
        f(&r["interval_ns"]["p50"]),
        f(&r["interval_ns"]["p99"]),
        r["interrupts"],
        r["ipis_sent"]
    );
    outln!(
        "lost IPIs recovered by the target's timer tick: {} ({} deliberately not sent); APIC errors: {} (ESR bits per node {})",
        r["recoveries"],
        r["ipis_forgotten"],
        r["apic_errors"],
        r["apic_error_status"]
    );
    if let Some(why) = r["incomplete"].as_str() {
        outln!("incomplete: {why}");
    }
    outln!(
        "IPI to handler: p50 {} ns, p99 {} ns;  injection to application: p50 {} ns, p99 {} ns  (cross-core{})",
        f(&r["ipi_to_handler_ns"]["p50"]),
        f(&r["ipi_to_handler_ns"]["p99"]),
        f(&r["latency_ns"]["p50"]),
        f(&r["latency_ns"]["p99"]),
        if r["cross_core_trusted"] == true {
            ""
        } else {
            ": IN DOUBT, see the TSC offset above"
        }
    );
    outln!(
        "delivered throughput (application payload bytes, first injection to last delivery): {} Gbps",
        r["throughput_gbps"]
            .as_f64()
            .map_or("n/a".into(), |x| format!("{x:.3}"))
    );
    outln!("raw samples: {}", r["samples_file"].as_str().unwrap_or("?"));
    for w in r["warnings"].as_array().into_iter().flatten() {
        outln!("WARNING: {}", w.as_str().unwrap_or("?"));
    }
    outln!("verdict: {}", r["verdict"].as_str().unwrap_or("?"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_log_timestamp_is_not_part_of_the_line() {
        assert_eq!(
            without_printk_time("[    5.123456] MINT-SAMPLES 1 latency 0 7"),
            "MINT-SAMPLES 1 latency 0 7"
        );
        assert_eq!(
            without_printk_time("MINT-SAMPLES 1 x 0 7"),
            "MINT-SAMPLES 1 x 0 7"
        );
        assert_eq!(without_printk_time("[node1] x"), "[node1] x");
    }

    #[test]
    fn an_empty_metric_is_null_never_zero() {
        let s = summary_ns(&[], 2.596e9);
        assert_eq!(s["count"], 0);
        for k in ["mean", "p50", "p99", "min", "max"] {
            assert!(s[k].is_null(), "{k}: {s}");
        }
        let s = summary_ns(&[2596], 2.596e9);
        assert_eq!(s["p50"], 1000.0);
    }
}
