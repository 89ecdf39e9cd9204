//! Full-system mode of `mint bench` (without `--native`): the nodes boot
//! under QEMU and the paper's experiments run through the real mechanism,
//! node 0 playing the NIC into the target's e1000 ring in shared memory,
//! with real IPIs.
//!
//! One boot drives every generator run: the machine boots into node 0's
//! shell (`mint.mode=run`), and the CLI types `gen-record k=v ...` for run
//! after run. Each prints what `mint gen` reads (the `MINT-GEN` record,
//! node 0's raw samples, then the target's), then `MINT-GEN-END`; the
//! target re-arms for each run on its own. The real e1000's row
//! (throughput) takes a second boot, `mint nic`'s: the host sends frames
//! into QEMU's 82540EM through a socket netdev.
//!
//! Every figure comes from the nodes' raw TSC samples and counters (node
//! 0's TSC calibration, as `mint gen` reports it); the samples are kept as
//! CSV files under `--out`, one row each, and every run's counts in
//! `raw/runs.csv`. Every wait is bounded, and QEMU ends with mint however
//! mint ends (the machine machinery's guard).
//!
//! What it does not measure (the keys stay `null`, and `not_measured`
//! says why): the copy floors and the SPSC floor (native figures: run
//! `--native`), the cache-line ping-pong (the target runs its receive
//! loop, which has no responder for one; node 0's IPI ping round trip is
//! given instead), and the driver-only path (a target mode not in this
//! build).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use mint_plan::NodeId;
use mint_traffic::{Delivery, GenConfig, Moderation, PacketKind, Pattern};
use serde_json::{Value, json};

use super::report::{PAPER, f0, f2, fit_text};
use super::stats::{self, Series};
use super::{BenchArgs, Experiment};
use crate::generate::Samples;
use crate::machine::{Echo, Event, Machine, Options, Prepared};
use crate::output::Bar;
use crate::{MachineArgs, plan};

/// The machine's flags (full-system mode only) and a hidden test knob.
#[derive(Args)]
pub struct SystemArgs {
    #[command(flatten)]
    pub machine: MachineArgs,
    /// Testing: at most this many frames per generator run (the paper's
    /// window of sends 1000-2000 needs 2000 or more; below that the send
    /// time's mean is `null`, and says so).
    #[arg(long, hide = true, value_name = "N", value_parser = crate::flags::u64_value)]
    pub max_frames: Option<u64>,
    /// How the target's driver takes the NIC's interrupts in every run:
    /// none (one per posted edge), itr:NS (the e1000's throttling, NS a
    /// multiple of 256) or napi (masked polling from the receive loop).
    #[arg(long, default_value = "none", value_parser = moderation_value)]
    pub moderation: Moderation,
    /// Draw the plots of an earlier run again from its results.json (of
    /// either mode), beside it; nothing is measured.
    #[arg(long, value_name = "RESULTS_JSON")]
    pub replot: Option<PathBuf>,
}

fn moderation_value(text: &str) -> Result<Moderation, String> {
    text.parse::<Moderation>()
        .map_err(|e| format!("'{text}': {e}"))
}

/// With `--native`, the machine's flags name nothing: refused by name
/// rather than silently ignored.
pub fn refuse_machine_flags(args: &BenchArgs) -> Result<()> {
    let s = &args.system;
    let m = &s.machine;
    let given = [
        ("--accel", m.accel != "auto"),
        ("--apic", m.apic != "auto"),
        ("--kernel", m.kernel.is_some()),
        ("--log-dir", m.log_dir.is_some()),
        ("--timeout", m.timeout.is_some()),
        ("--gdb", m.gdb.is_some()),
        ("--nodes", m.plan.nodes.is_some()),
        ("--config", m.plan.config.is_some()),
        ("--replot", s.replot.is_some()),
        ("--max-frames", s.max_frames.is_some()),
        ("--moderation", s.moderation != Moderation::None),
    ];
    if let Some((flag, _)) = given.iter().find(|(_, on)| *on) {
        bail!(
            "{flag} is for full-system runs (the nodes under QEMU); --native runs on two host threads (choose them with --cpus)"
        );
    }
    Ok(())
}

/// `--replot FILE`: the SVG plots of a result object, next to its file.
fn replot(file: &Path) -> Result<ExitCode> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("--replot {}: cannot read it", file.display()))?;
    let result: Value = serde_json::from_str(&text)
        .with_context(|| format!("--replot {}: not a JSON result object", file.display()))?;
    if !result["mode"].is_string() {
        bail!(
            "--replot {}: not a mint bench result (no \"mode\")",
            file.display()
        );
    }
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    for path in super::plot::write_all(&result, dir)? {
        outln!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Table 1's and Table 2's sizes.
pub const SIZES: [u32; 6] = [1024, 1514, 4096, 8192, 12288, 16384];
/// Fig. 9's sizes.
pub const SUCCESS_SIZES: [u32; 3] = [1514, 8192, 16384];
/// The success-rate ladder: back to back, then geometric up to 2 ms (under
/// software emulation a 16 KiB frame needs about 200 us at the target).
/// The climb stops after two cycles in a row at 100 %.
pub const LADDER_NS: [u64; 12] = [
    0, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000,
];
/// Cycles in a row at 100 % that end a size's climb.
const FULL_CYCLES_TO_STOP: usize = 2;
/// Interval of the send-time runs: long enough for the target to take
/// every frame under software emulation, so no send meets a full ring.
const SEND_INTERVAL_NS: u64 = 200_000;
/// Interval of the latency run: the target idle when each frame comes.
const LATENCY_INTERVAL_NS: u64 = 500_000;
/// The real e1000's row: its frames (at most one receive buffer each).
const E1000_SIZE: u32 = 1514;

/// How many frames each kind of run sends.
#[derive(Clone, Copy, Debug)]
pub struct Counts {
    pub sends: u32,
    pub throughput: u32,
    pub cycle: u32,
    pub latency: u32,
    pub pings: u32,
    pub pingpong: u32,
    pub e1000: u32,
}

impl Counts {
    pub fn new(quick: bool, max_frames: Option<u64>) -> Counts {
        let c = if quick {
            Counts {
                sends: 3_000,
                throughput: 2_000,
                cycle: 1_000,
                latency: 1_000,
                pings: 200,
                pingpong: 2_000,
                e1000: 2_000,
            }
        } else {
            Counts {
                sends: 3_000,
                throughput: 5_000,
                cycle: 5_000,
                latency: 3_000,
                pings: 1_000,
                pingpong: 10_000,
                e1000: 5_000,
            }
        };
        let cap = |n: u32| max_frames.map_or(n, |m| n.min(m.clamp(1, u64::from(u32::MAX)) as u32));
        Counts {
            sends: cap(c.sends),
            throughput: cap(c.throughput),
            cycle: cap(c.cycle),
            latency: cap(c.latency),
            pings: cap(c.pings),
            pingpong: cap(c.pingpong),
            e1000: cap(c.e1000),
        }
    }

    /// The most frames one generator run sends (node 0 keeps their raw
    /// samples).
    fn largest(&self) -> u32 {
        self.sends
            .max(self.throughput)
            .max(self.cycle)
            .max(self.latency)
    }

    /// A guess of the run's length under software emulation, said up
    /// front: each frame takes its interval or about 30 us, whichever is
    /// longer, plus about 150 us to print its raw samples on both nodes'
    /// UARTs; a boot about 2 s. (Under KVM, less.)
    pub fn estimate(&self, experiment: Experiment) -> Duration {
        let frames = |n: u32, interval: u64| f64::from(n) * (interval.max(30_000) + 150_000) as f64;
        let mut ns = 2e9;
        if experiment.includes(Experiment::SendTime) {
            ns += SIZES.len() as f64 * frames(self.sends, SEND_INTERVAL_NS);
        }
        if experiment.includes(Experiment::Throughput) {
            // Three paths (driver, raw-checked, udp-checked), and the
            // e1000's boot.
            ns += 3.0 * SIZES.len() as f64 * frames(self.throughput, 0) + 3e9;
        }
        if experiment.includes(Experiment::SuccessRate) {
            // Up to 100 % at about 200 us, and two more cycles.
            let climb: f64 = LADDER_NS[..10].iter().map(|&i| frames(self.cycle, i)).sum();
            ns += SUCCESS_SIZES.len() as f64 * climb * 0.6;
        }
        if experiment.includes(Experiment::Latency) {
            ns += frames(self.latency, LATENCY_INTERVAL_NS) + f64::from(self.pings) * 1e6;
        }
        Duration::from_nanos(ns as u64)
    }
}

/// What one boot measures.
#[derive(Clone, Copy, Debug)]
struct Parts {
    send_time: bool,
    throughput: bool,
    success_rate: bool,
    latency: bool,
    /// The real e1000's throughput row (its own boot, `mint nic`'s).
    e1000: bool,
}

impl Parts {
    fn of(exp: Experiment) -> Parts {
        Parts {
            send_time: exp.includes(Experiment::SendTime),
            throughput: exp.includes(Experiment::Throughput),
            success_rate: exp.includes(Experiment::SuccessRate),
            latency: exp.includes(Experiment::Latency),
            e1000: exp.includes(Experiment::Throughput),
        }
    }

    /// What a Linux target is measured in (issue 9): Table 2's rows and
    /// Fig. 9's cycles, beside the mint target's.
    fn linux(self) -> Parts {
        Parts {
            send_time: false,
            latency: false,
            e1000: false,
            ..self
        }
    }

    fn any(self) -> bool {
        self.send_time || self.throughput || self.success_rate || self.latency
    }
}

/// What a generator run is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Send,
    Throughput,
    Success,
    Latency,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Send => "send",
            Purpose::Throughput => "throughput",
            Purpose::Success => "success",
            Purpose::Latency => "latency",
        }
    }
}

/// The raw samples of one run, by the nodes' metric names: node 0's
/// `send_time`, `ipi_request` and `inject_tsc`, the target's `latency`,
/// `irq_interval` and `ipi_latency` (all TSC ticks).
const METRICS: [&str; 6] = [
    "send_time",
    "ipi_request",
    "inject_tsc",
    "latency",
    "irq_interval",
    "ipi_latency",
];

/// One generator run: what was asked, what node 0 recorded, the samples.
pub struct RunOut {
    pub purpose: Purpose,
    pub cfg: GenConfig,
    /// Node 0's `MINT-GEN` record.
    pub record: Value,
    /// Per metric (in [`METRICS`] order), the raw samples; then each
    /// send minus its IPI request ([`RunOut::send_excl_signal`]).
    pub samples: Vec<Series>,
}

impl RunOut {
    fn tag(&self) -> String {
        format!(
            "{}_{}_{}_{}{}",
            self.purpose.as_str(),
            self.cfg.size,
            self.cfg.kind.as_str(),
            self.cfg.interval_ns,
            match self.cfg.deliver {
                Delivery::App => "",
                Delivery::Driver => "_driver",
            }
        )
    }

    /// The target path the run measured, as the result names it.
    fn path(&self) -> &'static str {
        match (self.cfg.deliver, self.cfg.kind) {
            (Delivery::Driver, _) => "driver",
            (Delivery::App, PacketKind::Raw) => "raw-checked",
            (Delivery::App, PacketKind::Udp) => "udp-checked",
        }
    }

    fn series(&self, metric: &str) -> &Series {
        let i = METRICS.iter().position(|&m| m == metric).unwrap_or(0);
        &self.samples[i]
    }

    /// Each send minus its IPI request (pushed after the [`METRICS`]).
    fn send_excl_signal(&self) -> &Series {
        &self.samples[METRICS.len()]
    }

    fn count(&self, key: &str) -> u64 {
        self.record[key].as_u64().unwrap_or(0)
    }

    fn drop_count(&self, reason: &str) -> u64 {
        self.record["dropped"][reason].as_u64().unwrap_or(0)
    }

    /// Drops by reason as the result has them: ring full, socket buffer
    /// full, every other reason summed, and each reason.
    fn drops(&self) -> Value {
        drops_of(&self.record["dropped"])
    }

    /// First injection to last delivery, in ticks (0 without deliveries).
    fn span_ticks(&self) -> u64 {
        self.count("last_delivery_tsc")
            .saturating_sub(self.count("first_inject_tsc"))
    }

    fn tsc_hz(&self) -> f64 {
        self.record["tsc_hz"].as_f64().unwrap_or(0.0)
    }

    fn success_rate(&self) -> Option<f64> {
        let sent = self.count("sent");
        (sent > 0).then(|| self.count("delivered") as f64 / sent as f64)
    }

    /// Delivered payload bytes over first injection to last delivery.
    fn gbps(&self) -> Option<f64> {
        let span = self.span_ticks();
        (span > 0 && self.tsc_hz() > 0.0).then(|| {
            self.count("delivered_bytes") as f64 * 8.0 / (span as f64 / self.tsc_hz()) / 1e9
        })
    }

    /// Delivered frames times the frame size, over the same span.
    fn frame_gbps(&self) -> Option<f64> {
        let span = self.span_ticks();
        (span > 0 && self.tsc_hz() > 0.0).then(|| {
            (self.count("delivered") * u64::from(self.cfg.size)) as f64 * 8.0
                / (span as f64 / self.tsc_hz())
                / 1e9
        })
    }

    /// The target's interrupts over the frames sent.
    fn interrupts_per_frame(&self) -> Option<f64> {
        let sent = self.count("sent");
        (sent > 0).then(|| self.count("interrupts") as f64 / sent as f64)
    }

    /// Whether every frame was delivered or dropped with a counted reason.
    fn accounted(&self) -> bool {
        self.record["completed"] == true
            && self.record["unaccounted"].as_i64() == Some(0)
            && self.record["corrupted"].as_u64() == Some(0)
    }
}

/// `{"ring_full":N,"socket_buffer_full":N,"other":N,"by_reason":{...}}`
/// from a record's `dropped` object.
fn drops_of(dropped: &Value) -> Value {
    let mut ring = 0;
    let mut socket = 0;
    let mut other = 0;
    for (reason, n) in dropped.as_object().into_iter().flatten() {
        let n = n.as_u64().unwrap_or(0);
        match reason.as_str() {
            "ring_full" => ring += n,
            "socket_buffer_full" => socket += n,
            _ => other += n,
        }
    }
    json!({
        "ring_full": ring,
        "socket_buffer_full": socket,
        "other": other,
        "by_reason": dropped,
    })
}

/// A booted machine at node 0's shell.
struct Session {
    machine: Machine,
    /// Node 0's boot report (`MINT-REPORT`): TSC sources and offsets.
    boot_report: Option<Value>,
    log_dir: PathBuf,
    /// The last lines node 0 printed, for errors.
    recent: Vec<String>,
    /// `--timeout`: no wait goes past it.
    overall: Option<Instant>,
    /// The Linux nodes' releases, from their consoles.
    watch: crate::linux::ConsoleWatch,
}

/// A console line, or why none will come.
enum Next {
    Line(NodeId, String),
    /// The wait's deadline passed.
    TimedOut,
}

impl Session {
    fn boot(
        prepared: &Prepared,
        plan: &mint_plan::Plan,
        target: NodeId,
        echo: Echo,
        overall: Option<Instant>,
    ) -> Result<Session> {
        let machine = Machine::start(Options {
            prepared,
            plan,
            cmdline: vec!["mint.mode=run".into(), format!("mint.debug=0:{}", target.0)],
            echo,
            netdevs: Vec::new(),
            inherit: Vec::new(),
        })?;
        let mut s = Session {
            machine,
            boot_report: None,
            log_dir: prepared.log_dir.clone(),
            recent: Vec::new(),
            overall,
            watch: crate::linux::ConsoleWatch::default(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match s.next(deadline)? {
                Next::Line(node, text) if node.0 == 0 => {
                    if let Some(j) = text.strip_prefix("MINT-REPORT ") {
                        s.boot_report = serde_json::from_str(j).ok();
                    } else if let Some(e) = text.strip_prefix("MINT-ERROR ") {
                        bail!("node 0: {e}; consoles in {}", s.log_dir.display());
                    } else if text.starts_with("mint shell on node0") {
                        return Ok(s);
                    }
                }
                Next::Line(..) => {}
                Next::TimedOut => bail!(
                    "node 0's shell did not come up within 120 s; consoles in {}",
                    s.log_dir.display()
                ),
            }
        }
    }

    /// The next console line, at the latest at `deadline`; an error when
    /// QEMU ended or mint was asked to stop.
    fn next(&mut self, deadline: Instant) -> Result<Next> {
        loop {
            if let Some(stop) = crate::shutdown::requested() {
                return Err(stop.into());
            }
            match self.machine.next_event(Duration::from_millis(50)) {
                Some(Event::Line { node, text }) => {
                    self.watch.line(node, &text);
                    if node.0 == 0 && !text.starts_with("MINT-SAMPLES") {
                        if self.recent.len() >= 8 {
                            self.recent.remove(0);
                        }
                        self.recent.push(text.clone());
                    }
                    return Ok(Next::Line(node, text));
                }
                Some(Event::Closed) => {}
                None => {
                    if !self.machine.running() {
                        bail!(
                            "QEMU ended in the middle of the benchmark; node 0's last lines: {:?}; consoles in {}",
                            self.recent,
                            self.log_dir.display()
                        );
                    }
                    if Instant::now() > deadline {
                        return Ok(Next::TimedOut);
                    }
                    if self.overall.is_some_and(|t| Instant::now() > t) {
                        bail!(
                            "--timeout: the benchmark ran out of time; node 0's last lines: {:?}; consoles in {}",
                            self.recent,
                            self.log_dir.display()
                        );
                    }
                }
            }
        }
    }

    /// One generator run through node 0's shell, its raw samples all in.
    /// `progress(sent)` as node 0 reports it (about once a second).
    fn generate(
        &mut self,
        purpose: Purpose,
        cfg: GenConfig,
        mut progress: impl FnMut(u64),
    ) -> Result<RunOut> {
        cfg.validate()
            .with_context(|| format!("generator run {cfg}"))?;
        self.machine
            .type_to_node0(format!("gen-record {cfg}\r").as_bytes())?;
        // Injection takes the schedule (or, back to back, the sends
        // themselves: well under a millisecond each); the raw samples about
        // 100 us per frame and node under emulation.
        let limit = Duration::from_secs(90)
            + Duration::from_nanos(cfg.nominal_duration_ns())
            + Duration::from_millis(u64::from(cfg.count) * 2);
        let deadline = Instant::now() + limit;
        let mut record: Option<Value> = None;
        let mut errors: Vec<String> = Vec::new();
        let mut samples = Samples::default();
        let mut sample_error: Option<anyhow::Error> = None;
        let mut ended: Option<String> = None;
        let all_in = |s: &Samples| METRICS.iter().all(|m| s.metric(m).is_ok());
        loop {
            if ended.is_some() && all_in(&samples) {
                break;
            }
            let (node, text) = match self.next(deadline)? {
                Next::Line(node, text) => (node, text),
                Next::TimedOut => bail!(
                    "generator run {cfg}: {} after {} s; node 0's last lines: {:?}; consoles in {}",
                    if ended.is_some() {
                        let missing: Vec<String> = METRICS
                            .iter()
                            .filter_map(|m| samples.metric(m).err().map(|e| e.to_string()))
                            .collect();
                        format!(
                            "the raw samples did not all arrive ({})",
                            missing.join("; ")
                        )
                    } else {
                        "no end of the run".to_string()
                    },
                    limit.as_secs(),
                    self.recent,
                    self.log_dir.display()
                ),
            };
            // A Linux target's lines come after the kernel's timestamp.
            let text = crate::generate::without_printk_time(&text);
            if text.starts_with("MINT-SAMPLES") {
                if let Err(e) = samples.take(text) {
                    sample_error.get_or_insert(e);
                }
                continue;
            }
            if node.0 != 0 {
                continue;
            }
            if let Some(sent) = text
                .strip_prefix("MINT-PROGRESS sent=")
                .and_then(|n| n.trim().parse().ok())
            {
                progress(sent);
            } else if let Some(j) = text.strip_prefix("MINT-GEN ") {
                record = Some(
                    serde_json::from_str(j)
                        .with_context(|| format!("generator run {cfg}: node 0's record"))?,
                );
            } else if let Some(e) = text.strip_prefix("MINT-ERROR ") {
                errors.push(e.to_string());
            } else if let Some(how) = text.strip_prefix("MINT-GEN-END ") {
                let how = how.trim().to_string();
                if how == "error" || record.is_none() {
                    bail!(
                        "generator run {cfg}: node 0 ran no run ({}); its last lines: {:?}; consoles in {}",
                        if errors.is_empty() {
                            how
                        } else {
                            errors.join("; ")
                        },
                        self.recent,
                        self.log_dir.display()
                    );
                }
                if !errors.is_empty() {
                    bail!(
                        "generator run {cfg}: node 0: {}; consoles in {}",
                        errors.join("; "),
                        self.log_dir.display()
                    );
                }
                ended = Some(how);
            }
        }
        if let Some(e) = sample_error {
            return Err(e.context(format!("generator run {cfg}: the raw samples")));
        }
        let record = record.context("no record")?;
        progress(u64::from(cfg.count));
        let mut out = RunOut {
            purpose,
            cfg,
            record,
            samples: Vec::new(),
        };
        let tag = out.tag();
        for m in METRICS {
            out.samples.push(Series::new(
                format!("{tag}_{m}"),
                samples.metric(m)?.to_vec(),
            ));
        }
        // Derived, kept beside the rest: each send without its IPI request
        // (under software emulation, waking the target's halted virtual
        // CPU dominates a send).
        let own: Vec<u64> = out
            .series("send_time")
            .ticks
            .iter()
            .zip(&out.series("ipi_request").ticks)
            .map(|(&s, &i)| s.saturating_sub(i))
            .collect();
        out.samples
            .push(Series::new(format!("{tag}_send_excl_signal"), own));
        let sent = out.count("sent");
        if out.series("send_time").ticks.len() as u64 != sent {
            bail!(
                "generator run {cfg}: {} send-time samples for {sent} frames sent",
                out.series("send_time").ticks.len()
            );
        }
        Ok(out)
    }

    /// `count` timed IPI round trips from node 0 to `peer` (node 0's
    /// `ping`), in ns as node 0 measured them (its calibrated TSC).
    fn ping(&mut self, peer: NodeId, count: u32) -> Result<(Vec<u64>, u32)> {
        self.machine
            .type_to_node0(format!("ping {} {count}\r", peer.0).as_bytes())?;
        let deadline = Instant::now() + Duration::from_secs(30 + u64::from(count) / 100);
        let mut rtt = Vec::new();
        let mut lost = 0;
        while rtt.len() as u32 + lost < count {
            match self.next(deadline)? {
                Next::Line(node, text) if node.0 == 0 => {
                    if text.starts_with("no reply from") {
                        lost += 1;
                    } else if let Some(ns) = text
                        .strip_prefix("reply from ")
                        .and_then(|t| t.split_once(" rtt "))
                        .and_then(|(_, t)| t.strip_suffix(" ns"))
                        .and_then(|t| t.trim().parse::<u64>().ok())
                    {
                        rtt.push(ns);
                    } else if text.starts_with("ping:") {
                        bail!("node 0: {text}");
                    }
                }
                Next::Line(..) => {}
                Next::TimedOut => bail!(
                    "ping: {} of {count} answers within the limit; consoles in {}",
                    rtt.len() as u32 + lost,
                    self.log_dir.display()
                ),
            }
        }
        Ok((rtt, lost))
    }

    /// `rounds` polled mailbox round trips from node 0 to `peer` (node 0's
    /// `pingpong`), in node 0's TSC ticks; `Err` with node 0's reason
    /// when the session could not run.
    fn pingpong(&mut self, peer: NodeId, rounds: u32) -> Result<Result<Vec<u64>, String>> {
        self.machine
            .type_to_node0(format!("pingpong {} {rounds}\r", peer.0).as_bytes())?;
        let deadline = Instant::now() + Duration::from_secs(30 + u64::from(rounds) / 100);
        let mut samples = Samples::default();
        let mut ended: Option<Result<(), String>> = None;
        loop {
            if let Some(end) = &ended {
                match end {
                    Err(e) => return Ok(Err(e.clone())),
                    Ok(()) if samples.metric("pingpong_rtt").is_ok() => {
                        return Ok(Ok(samples.metric("pingpong_rtt")?.to_vec()));
                    }
                    Ok(()) => {}
                }
            }
            match self.next(deadline)? {
                Next::Line(node, text) if node.0 == 0 => {
                    if text.starts_with("MINT-SAMPLES") {
                        samples.take(&text).context("pingpong samples")?;
                    } else if let Some(how) = text.strip_prefix("MINT-PINGPONG-END ") {
                        ended = Some(match how.trim().strip_prefix("error ") {
                            Some(why) => Err(why.to_string()),
                            None => Ok(()),
                        });
                    }
                }
                Next::Line(..) => {}
                Next::TimedOut => bail!(
                    "pingpong: no end within the limit; consoles in {}",
                    self.log_dir.display()
                ),
            }
        }
    }

    /// Leaves the shell (`exit`: node 0 powers the machine off).
    fn exit(mut self) -> Result<()> {
        self.machine.type_to_node0(b"exit\r")?;
        let outcome = self.machine.finish(Duration::from_secs(20), |_| {});
        outcome.check_stopped()?;
        if outcome.timed_out {
            bail!(
                "the machine did not power off within 20 s of `exit` (stopped it); consoles in {}",
                self.log_dir.display()
            );
        }
        Ok(())
    }
}

/// What one full-system run measured.
struct Measured {
    /// The node the generator runs went to.
    target: NodeId,
    runs: Vec<RunOut>,
    /// Node 0's IPI ping round trips to the target (ns), and the lost ones.
    ping: Option<(Vec<u64>, u32)>,
    /// Polled mailbox round trips to the target (node 0's TSC ticks), or
    /// why the session did not run.
    pingpong: Option<Result<Series, String>>,
    /// `mint nic`'s report for the e1000 row, or why it is missing.
    e1000: Option<Result<Value, String>>,
    boot_report: Option<Value>,
    /// Per size of Fig. 9: whether the climb stopped early (100 % twice).
    stopped_early: Vec<(u32, Option<u64>)>,
}

pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    if let Some(file) = &args.system.replot {
        return replot(file);
    }
    if let Some(pair) = args.cpus {
        bail!(
            "--cpus {},{}: host CPUs are for --native runs; full-system runs put the nodes on QEMU's virtual CPUs (the plan's)",
            pair.support,
            pair.target
        );
    }
    if args.system.machine.accel == "kvm"
        && let Some(why) = crate::qemu::kvm_unusable_reason()
    {
        // Before --out is made: nothing is written for a run that cannot be.
        bail!("--accel kvm: {why}; use --accel tcg (or auto)");
    }
    let counts = Counts::new(args.quick, args.system.max_frames);
    let (mut plan, _layout) = plan::load(&args.system.machine.plan)?;
    let n = plan.nodes.len();
    if n < 2 {
        bail!(
            "mint bench needs at least 2 nodes (the support node and a target); the plan has {n}"
        );
    }
    let (target, linux) = targets(&plan)?;
    if plan.shared_size < mint_abi::debug_nic::min_shared_size() {
        bail!(
            "the debug NIC needs a shared region of at least {} MiB; the plan gives {} MiB",
            mint_abi::debug_nic::min_shared_size() >> 20,
            plan.shared_size >> 20
        );
    }
    let largest = GenConfig {
        count: counts.largest(),
        ..GenConfig::default()
    };
    crate::generate::fit_samples(
        &mut plan,
        &largest,
        args.system.machine.plan.config.is_none(),
    )?;
    let out = super::claim_out(args)?;
    let mut machine = args.system.machine.clone();
    if machine.log_dir.is_none() {
        machine.log_dir = Some(out.path.join("consoles"));
    }
    let prepared = crate::machine::prepare(&machine, args.json)?;
    errln!(
        "mint: bench {} (system, {}, accel {}): about {} under software emulation (estimate; less under KVM); results in {}",
        args.experiment.as_str(),
        if args.quick { "quick" } else { "full" },
        prepared.accel.as_str(),
        indicatif::HumanDuration(counts.estimate(args.experiment)),
        out.path.display()
    );
    let started = Instant::now();
    // The nodes' console lines go to stderr: stdout keeps the tables (or
    // the JSON) alone.
    let echo = Echo::Stderr;
    let parts = Parts::of(args.experiment);
    let measured = measure(
        args, counts, &prepared, &plan, &machine, &out.path, echo, target, parts,
    )?;
    // The Linux target's rows: the same runs into the Linux node, in a
    // boot of its own (the debug NIC has one target per boot).
    let linux_measured = match linux {
        Some(node) if parts.linux().any() => {
            let mut machine = machine.clone();
            machine.log_dir = Some(out.path.join("consoles-linux"));
            let prepared = crate::machine::prepare(&machine, args.json)?;
            let dir = out.path.join("linux");
            std::fs::create_dir_all(dir.join("raw"))
                .with_context(|| format!("cannot make {}", dir.join("raw").display()))?;
            match measure(
                args,
                counts,
                &prepared,
                &plan,
                &machine,
                &dir,
                echo,
                node,
                parts.linux(),
            ) {
                Ok(m) => Some(Ok((m, prepared.log_dir.clone()))),
                // A stop (Ctrl-C, a closed output) stops the bench; any
                // other failure leaves the mint target's results whole
                // and says why the Linux rows are missing.
                Err(e) if e.is::<crate::shutdown::Stop>() => return Err(e),
                Err(e) => Some(Err(format!("{e:#}"))),
            }
        }
        _ => None,
    };
    let result = result(
        args,
        counts,
        &measured,
        linux_measured
            .as_ref()
            .map(|r| r.as_ref().map(|(m, logs)| (m, logs.as_path()))),
        &prepared,
        &out.path,
        started.elapsed(),
    );
    write_raw(&measured, &out.path)?;
    if let Some(Ok((m, _))) = &linux_measured {
        write_raw(m, &out.path.join("linux"))?;
    }
    let text = serde_json::to_string_pretty(&result)?;
    let path = out.path.join("results.json");
    std::fs::write(&path, format!("{text}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    super::plot::write_all(&result, &out.path)?;
    for w in result["warnings"].as_array().into_iter().flatten() {
        errln!("mint: WARNING: {}", w.as_str().unwrap_or("?"));
    }
    if args.json {
        outln!("{text}");
    } else {
        print(&result);
    }
    // As mint gen: a run with a frame neither delivered nor dropped with a
    // reason fails the command (the result is written all the same).
    let unaccounted = measured
        .runs
        .iter()
        .chain(linux_measured.iter().flatten().flat_map(|(m, _)| &m.runs))
        .filter(|r| !r.accounted())
        .count();
    if unaccounted > 0 {
        errln!(
            "mint: {unaccounted} generator runs did not account for every frame (see the warnings)"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The nodes the generator runs go to: the first node after node 0 that
/// runs mint (every experiment), and the first that runs Linux, if any
/// (throughput and success rate, beside the mint target's).
fn targets(plan: &mint_plan::Plan) -> Result<(NodeId, Option<NodeId>)> {
    // A Linux node with an initrd of its own runs no mint /init, so it
    // cannot be the debug NIC's target.
    let first = |linux: bool| {
        plan.nodes
            .iter()
            .find(|n| {
                n.id.0 > 0
                    && match &n.os {
                        mint_plan::Os::Linux(boot) => linux && boot.initrd.is_none(),
                        _ => !linux,
                    }
            })
            .map(|n| n.id)
    };
    let Some(mint) = first(false) else {
        bail!(
            "mint bench needs a node besides node 0 that runs mint: every experiment measures one (a Linux node is measured beside it, as in examples/linux.toml); this plan's other nodes all run Linux"
        );
    };
    Ok((mint, first(true)))
}

#[allow(clippy::too_many_arguments)]
fn measure(
    args: &BenchArgs,
    counts: Counts,
    prepared: &Prepared,
    plan: &mint_plan::Plan,
    machine: &MachineArgs,
    out: &Path,
    echo: Echo,
    target: NodeId,
    parts: Parts,
) -> Result<Measured> {
    let base = |size: u32, count: u32, interval_ns: u64, kind: PacketKind| GenConfig {
        size,
        count,
        interval_ns,
        pattern: Pattern::Fixed,
        kind,
        seed: 1,
        moderation: args.system.moderation,
        ..GenConfig::default()
    };
    let overall = machine
        .timeout
        .map(|t| Instant::now() + Duration::from_secs(t));
    let mut s = Session::boot(prepared, plan, target, echo, overall)?;
    let mut runs = Vec::new();
    let mut stopped_early = Vec::new();
    // One bar per experiment, in frames; `done` frames of finished runs.
    let batch = |s: &mut Session,
                 runs: &mut Vec<RunOut>,
                 bar: &Bar,
                 done: &mut u64,
                 purpose: Purpose,
                 cfg: GenConfig|
     -> Result<()> {
        let before = *done;
        let r = s.generate(purpose, cfg, |sent| bar.progress(before + sent))?;
        *done += u64::from(cfg.count);
        bar.set(*done);
        runs.push(r);
        Ok(())
    };
    if parts.send_time {
        let bar = Bar::new(
            "send-time",
            SIZES.len() as u64 * u64::from(counts.sends),
            "frames",
        );
        let mut done = 0;
        for size in SIZES {
            let cfg = base(size, counts.sends, SEND_INTERVAL_NS, PacketKind::Udp);
            batch(&mut s, &mut runs, &bar, &mut done, Purpose::Send, cfg)?;
        }
    }
    if parts.throughput {
        let paths = [
            (PacketKind::Raw, Delivery::App),
            (PacketKind::Udp, Delivery::App),
            (PacketKind::Raw, Delivery::Driver),
        ];
        let bar = Bar::new(
            "throughput",
            (paths.len() * SIZES.len()) as u64 * u64::from(counts.throughput),
            "frames",
        );
        let mut done = 0;
        for (kind, deliver) in paths {
            for size in SIZES {
                let cfg = GenConfig {
                    deliver,
                    ..base(size, counts.throughput, 0, kind)
                };
                batch(&mut s, &mut runs, &bar, &mut done, Purpose::Throughput, cfg)?;
            }
        }
    }
    if parts.success_rate {
        let bar = Bar::new(
            "success-rate",
            (SUCCESS_SIZES.len() * LADDER_NS.len()) as u64 * u64::from(counts.cycle),
            "frames",
        );
        let mut done = 0;
        for (k, size) in SUCCESS_SIZES.into_iter().enumerate() {
            let mut full_in_a_row = 0;
            let mut stop_at = None;
            for interval in LADDER_NS {
                let cfg = base(size, counts.cycle, interval, PacketKind::Udp);
                batch(&mut s, &mut runs, &bar, &mut done, Purpose::Success, cfg)?;
                let last = runs.last().expect("just pushed");
                full_in_a_row = if last.success_rate() == Some(1.0) && last.accounted() {
                    full_in_a_row + 1
                } else {
                    0
                };
                if full_in_a_row >= FULL_CYCLES_TO_STOP
                    && interval != *LADDER_NS.last().unwrap_or(&0)
                {
                    stop_at = Some(interval);
                    break;
                }
            }
            stopped_early.push((size, stop_at));
            done = (k as u64 + 1) * LADDER_NS.len() as u64 * u64::from(counts.cycle);
            bar.set(done);
        }
    }
    let mut ping = None;
    let mut pingpong = None;
    if parts.latency {
        let bar = Bar::new("latency", u64::from(counts.latency), "frames");
        let mut done = 0;
        let cfg = base(1514, counts.latency, LATENCY_INTERVAL_NS, PacketKind::Udp);
        batch(&mut s, &mut runs, &bar, &mut done, Purpose::Latency, cfg)?;
        drop(bar);
        let _bar = Bar::new("ping-pong", 1, "sessions");
        pingpong = Some(
            s.pingpong(target, counts.pingpong)?
                .map(|ticks| Series::new("pingpong_rtt", ticks)),
        );
        ping = Some(s.ping(target, counts.pings)?);
    }
    let mut boot_report = s.boot_report.take();
    if let Some(b) = &mut boot_report {
        s.watch.annotate(b);
    }
    s.exit()?;
    // A failed e1000 run leaves its row out, with the reason; a stop
    // (Ctrl-C, a closed output) stops the bench.
    let e1000 = match parts.e1000.then(|| e1000_row(counts, machine, out, target)) {
        None => None,
        Some(Ok(report)) => Some(Ok(report)),
        Some(Err(e)) if e.is::<crate::shutdown::Stop>() => return Err(e),
        Some(Err(e)) => Some(Err(format!("{e:#}"))),
    };
    if let Some(stop) = crate::shutdown::requested() {
        return Err(stop.into());
    }
    Ok(Measured {
        target,
        runs,
        ping,
        pingpong,
        e1000,
        boot_report,
        stopped_early,
    })
}

/// The real e1000's throughput at 1514 B: `mint nic`'s run (its own boot:
/// the host's frames into QEMU's 82540EM, as fast as the host sends).
fn e1000_row(counts: Counts, machine: &MachineArgs, out: &Path, node: NodeId) -> Result<Value> {
    let mut machine = machine.clone();
    machine.log_dir = Some(out.join("consoles-e1000"));
    let _bar = Bar::new("e1000", 1, "boot");
    crate::nic::measure(&crate::nic::NicArgs {
        machine,
        node: node.0,
        count: counts.e1000.to_string(),
        size: E1000_SIZE.to_string(),
        rate: 0,
        kind: "udp".into(),
        seed: "1".into(),
        // Its consoles on stderr, as the main boot's; its report comes back.
        json: true,
        stop_owner: None,
    })
}

/// The result object: native mode's schema (`report::result`), filled
/// from the nodes' records and raw samples.
fn result(
    args: &BenchArgs,
    counts: Counts,
    m: &Measured,
    linux: Option<Result<(&Measured, &Path), &String>>,
    prepared: &Prepared,
    out: &Path,
    elapsed: Duration,
) -> Value {
    let mut warnings: Vec<String> = Vec::new();
    let mut not_measured: Vec<String> = vec![
        "send_time[].copy_ns, send_time[].xcore_copy_ns, throughput[].floor_gbps: the copy and SPSC floors are host figures: run mint bench --native".into(),
    ];
    let hz0 = m.runs.first().map_or(0.0, RunOut::tsc_hz);
    let (pingpong_rtt, pingpong_oneway) = match &m.pingpong {
        Some(Ok(series)) => {
            let method = "polled mailbox round trips (node 0's shell `pingpong T N`, T the target, kernel/src/node/ping.rs): node 0 pushes a message into its mailbox to the target and spins for the answer in the target's mailbox to it, the target spinning in its mailbox interrupt, both with interrupts off, no IPI; timed on node 0's TSC. A message is a slot and an index line each way: a cache-line ping-pong over the mailbox's lines, a little above a bare one";
            let mut rtt = series.summary_ns(hz0, 1.0);
            rtt["method"] = json!(method);
            let mut oneway = series.summary_ns(hz0, 0.5);
            oneway["method"] = json!(format!("half of each round trip: {method}"));
            (rtt, oneway)
        }
        Some(Err(why)) => {
            not_measured.push(format!(
                "placement.pingpong_rtt_ns, latency.pingpong_oneway_ns: node 0's polled ping-pong with node {} failed: {why}",
                m.target.0
            ));
            (Value::Null, Value::Null)
        }
        None => {
            not_measured.push(
                "placement.pingpong_rtt_ns: the ping-pong runs with the latency experiment (all or latency)".into(),
            );
            (Value::Null, Value::Null)
        }
    };
    let by = |p: Purpose| m.runs.iter().filter(move |r| r.purpose == p);
    let hz = m.runs.first().map_or(0.0, RunOut::tsc_hz);
    warnings.extend(unaccounted_runs(m, ""));
    if m.runs.iter().any(|r| r.tsc_hz() != hz) {
        warnings.push("node 0's TSC rate differs between runs of one boot".into());
    }

    // Table 1.
    let send_rows: Vec<Value> = by(Purpose::Send)
        .map(|r| {
            let hz = r.tsc_hz();
            let send = r.series("send_time").summary_ns(hz, 1.0);
            let signal = Series::new(
                format!("{}_ipi_request", r.tag()),
                r.series("ipi_request")
                    .ticks
                    .iter()
                    .copied()
                    .filter(|&t| t > 0)
                    .collect(),
            )
            .summary_ns(hz, 1.0);
            // The summary is over the nonzero rows of that CSV only (the
            // sends that requested an IPI): say so, and no paper window
            // (it would cover other sends than the send's own).
            let mut signal = signal;
            signal["rows"] = json!("the nonzero rows: the sends that requested an IPI");
            signal["mean_1000_2000"] = Value::Null;
            let own = r.send_excl_signal().summary_ns(hz, 1.0);
            json!({
                "size": r.cfg.size,
                "mean_ns": send["mean_1000_2000"],
                "p50_ns": send["p50"],
                "p99_ns": send["p99"],
                "copy_ns": null,
                "xcore_copy_ns": null,
                "send": send,
                "send_signal": signal,
                "send_excl_signal_ns": own["mean_1000_2000"],
                "send_excl_signal": own,
                "ring_full": r.drop_count("ring_full"),
                "delivered": r.count("delivered"),
                "sent": r.count("sent"),
                "interval_ns": r.cfg.interval_ns,
            })
        })
        .collect();
    if send_rows.iter().any(|r| r["mean_ns"].is_null()) {
        not_measured.push(format!(
            "send_time[].mean_ns: the paper's mean of sends 1000-2000 needs 2000 sends or more; this run sent {} per size",
            counts.sends
        ));
    }
    if send_rows.iter().any(|r| r["ring_full"].as_u64() != Some(0)) {
        warnings.push(format!(
            "send time: some sends met a full ring (ring_full per size in send_time[]) at one frame every {} us: those sends are cheaper than the rest",
            SEND_INTERVAL_NS / 1000
        ));
    }
    let fit_points: Vec<(f64, f64)> = send_rows
        .iter()
        .filter_map(|r| Some((r["size"].as_f64()?, r["mean_ns"].as_f64()?)))
        .collect();
    let send_time = (!send_rows.is_empty()).then_some(&send_rows);
    let send_time_fit = send_time.map_or(Value::Null, |_| stats::fit_json(&fit_points));
    let own_points: Vec<(f64, f64)> = send_rows
        .iter()
        .filter_map(|r| Some((r["size"].as_f64()?, r["send_excl_signal_ns"].as_f64()?)))
        .collect();
    let send_excl_signal_fit = send_time.map_or(Value::Null, |_| stats::fit_json(&own_points));

    let parts = Parts::of(args.experiment);
    let Rows {
        mut throughput,
        success_rate,
        min_full,
        handling,
        handling_estimates,
    } = rows(m, parts, &mut not_measured);
    if parts.e1000 {
        match &m.e1000 {
            Some(Ok(nic)) => {
                let mut drops = drops_of(&nic["dropped"]);
                let lost = nic["lost_before_nic"].as_u64().unwrap_or(0)
                    + nic["missed_by_nic"].as_u64().unwrap_or(0);
                drops["other"] = json!(drops["other"].as_u64().unwrap_or(0) + lost);
                drops["lost_before_nic"] = nic["lost_before_nic"].clone();
                drops["missed_by_nic"] = nic["missed_by_nic"].clone();
                let span_gbps = nic["throughput_gbps"].as_f64();
                throughput.push(json!({
                    "size": E1000_SIZE,
                    "path": "e1000",
                    "gbps": span_gbps,
                    "frame_gbps": null,
                    "floor_gbps": null,
                    "drops": drops,
                    "sent": nic["sent"],
                    "delivered": nic["delivered"],
                    "unaccounted": nic["unaccounted"],
                    "host_send": nic["rate"],
                    "method": "mint nic: the host sends UDP frames as fast as it can through QEMU's socket netdev into the emulated 82540EM owned by the target node; gbps is mint nic's throughput_gbps (delivered payload bytes over first send to last delivery); drops.other includes frames lost before the NIC (the host socket, QEMU) and missed by it",
                    "log_dir": nic["log_dir"],
                }));
                if nic["ok"] != true {
                    warnings.push(format!(
                        "the e1000 run did not account for every frame: {}",
                        nic["verdict"].as_str().unwrap_or("?")
                    ));
                }
            }
            Some(Err(e)) => not_measured.push(format!(
                "throughput path e1000: the mint nic run failed: {e}"
            )),
            None => {}
        }
    }

    // Latency.
    let ping = m.ping.as_ref().map(|(rtt, lost)| {
        let mut s = stats::summary_ns(rtt, 1e9, 1.0, "raw/ipi_ping_rtt.csv");
        s["lost"] = json!(lost);
        s["method"] = json!("node 0's shell `ping 1 N`: IPI to the target, its answer by IPI; round trip on node 0's TSC, in ns as node 0 converts it");
        s
    });
    let latency = by(Purpose::Latency).next().map(|r| {
        let hz = r.tsc_hz();
        let pick = |v: Value| json!({"p50": v["p50"], "p99": v["p99"], "summary": v, "cross_core": true});
        json!({
            "signal_to_handler_ns": pick(r.series("ipi_latency").summary_ns(hz, 1.0)),
            "inject_to_app_ns": pick(r.series("latency").summary_ns(hz, 1.0)),
            "pingpong_oneway_ns": pingpong_oneway,
            "ipi_rtt_ns": ping.clone(),
            "size": r.cfg.size,
            "interval_ns": r.cfg.interval_ns,
            "method": "one udp run at 1514 B, one frame every 500 us; signal_to_handler: node 0's TSC when it sent the IPI to the target's TSC at its handler's entry (ipi_latency); inject_to_app: the frame's injection stamp (node 0's TSC) to the target's application (latency); both cross-core: the two TSCs' offset (tsc, warnings) bounds them",
        })
    });

    // TSC: node 0's boot report, checked against the host's as mint gen does.
    let mut tsc = Value::Null;
    if let Some(boot) = &m.boot_report {
        let mut boot = boot.clone();
        crate::tsc::annotate(&mut boot, &prepared.host_tsc, args.json);
        tsc = boot["tsc"].clone();
        tsc["skew_limit_ns"] = boot["tsc_skew_limit_ns"].clone();
        tsc["target_sync"] = boot["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["id"] == u64::from(m.target.0)))
            .map_or(Value::Null, |n| n["tsc_sync"].clone());
        warnings.extend(crate::tsc::warnings(&boot));
    }
    tsc["hz"] = json!(hz);

    let runs = runs_json(m);
    let linux_target = match linux {
        Some(Ok((lm, logs))) => linux_json(lm, logs, parts, &mut warnings),
        Some(Err(why)) => {
            not_measured.push(format!(
                "linux_target: the Linux target's boot or runs failed: {why}"
            ));
            Value::Null
        }
        None => {
            not_measured.push(
                "linux_target: the plan has no Linux node besides node 0 (examples/linux.toml has one: mint bench --config examples/linux.toml)".into(),
            );
            Value::Null
        }
    };

    json!({
        "mode": "system",
        "accel": prepared.accel.as_str(),
        "cpu": super::report::cpu_model(0),
        "qemu_cpu": prepared.cpu_model,
        "experiment": args.experiment.as_str(),
        "quick": args.quick,
        "moderation": args.system.moderation.to_string(),
        "counts": {
            "sends_per_size": counts.sends,
            "throughput_frames": counts.throughput,
            "success_rate_cycle_frames": counts.cycle,
            "success_rate_cycle_note": if counts.cycle < 5000 {
                format!("{} packets per cycle (the paper: 5000){}", counts.cycle, if args.quick { " under --quick" } else { "" })
            } else {
                "5000 packets per cycle, as the paper".to_string()
            },
            "latency_frames": counts.latency,
            "ipi_pings": counts.pings,
            "pingpong_rounds": counts.pingpong,
            "e1000_frames": counts.e1000,
        },
        "placement": {
            "support_node": 0,
            "target_node": m.target.0,
            "vcpus": "one QEMU virtual CPU per node; each is a host thread under TCG (thread=multi), placed by the host",
            "pingpong_rtt_ns": pingpong_rtt["p50"],
            "pingpong_rtt": pingpong_rtt,
            "ipi_rtt_ns": ping.as_ref().map_or(Value::Null, |p| p["p50"].clone()),
            "ipi_rtt": ping,
        },
        "tsc": tsc,
        "send_time": send_time,
        "send_time_fit": send_time_fit,
        "send_excl_signal_fit": send_excl_signal_fit,
        "throughput": (args.experiment.includes(Experiment::Throughput)).then_some(throughput),
        "success_rate": success_rate,
        "min_full_interval_ns": min_full,
        "handling_ns": handling,
        "handling_estimates": handling_estimates,
        "success_rate_ladder_ns": LADDER_NS,
        "success_rate_stopped_early": m.stopped_early.iter().map(|(size, at)| json!({"size": size, "after_interval_ns": at})).collect::<Vec<_>>(),
        "latency": latency,
        "linux_target": linux_target,
        "runs": runs,
        "not_measured": not_measured,
        "paper": super::report::paper_json(),
        "method": {
            "machine": "one boot into node 0's shell; the CLI types `gen-record size=.. count=.. interval=.. pattern=fixed kind=.. seed=1` for each run (kernel/src/node/shell.rs), node 0 plays the e1000 for the target's driver (placement.target_node; kernel/src/nic/support.rs, mint_support::Sender::send), with real IPIs; the target re-arms for each run",
            "clock": "node 0's TSC, calibrated at boot (tsc); every sample in ticks, converted at tsc.hz",
            "send": "3000 sends per size, one every 200 us; mean_ns is the mean of sends 1000-2000, as the paper's; send_signal the part of the sends that requested an IPI (over the sends that sent one: the posted flag was clear); send_excl_signal each send minus its IPI request (the mechanism's own work: stamp, copy, write-back, registers), send_excl_signal_ns its mean of 1000-2000, send_excl_signal_fit its line",
            "throughput": "back to back (interval 0); gbps = delivered bytes * 8 / (last delivery - first injection), as mint gen's throughput_gbps (payload bytes on every path: the driver-only path counts each frame less the run's headers); frame_gbps counts whole frames (delivered * size); raw-checked: kind raw (Ethernet, the stack bypassed, payload CRC checked); udp-checked: kind udp (smoltcp UDP/IP, payload checked); driver: deliver=driver (each frame counted at the driver and released: no stack, no check; its first injection is node 0's first stamp)",
            "success_rate": "cycles of udp frames per size, the interval rising along success_rate_ladder_ns, stopping after two cycles in a row at 100 %; success_rate = delivered / sent; min_full_interval_ns the smallest interval of a cycle at 100 %",
            "handling": "handling_ns: first injection to last delivery over the frames delivered, in a back-to-back udp run of the size (the success-rate cycle at interval 0, and the udp-checked throughput run when it ran; handling_estimates has each): the target's time per frame with its ring kept full (interrupt, driver, stack, payload check, amortized over the frames each interrupt takes); the smallest of them, since a host stall only lengthens a span",
        },
        "warnings": warnings,
        "out_dir": out.display().to_string(),
        "log_dir": prepared.log_dir.display().to_string(),
        "elapsed_s": elapsed.as_secs_f64(),
    })
}

/// One object per run (the rows of `raw/runs.csv`, with the paths of
/// its raw samples).
fn runs_json(m: &Measured) -> Vec<Value> {
    m
        .runs
        .iter()
        .map(|r| {
            json!({
                "purpose": r.purpose.as_str(),
                "run": r.record["run"],
                "size": r.cfg.size,
                "kind": r.cfg.kind.as_str(),
                "deliver": r.cfg.deliver.to_string(),
                "interval_ns": r.cfg.interval_ns,
                "count": r.cfg.count,
                "sent": r.count("sent"),
                "delivered": r.count("delivered"),
                "dropped": r.record["dropped"],
                "unaccounted": r.record["unaccounted"],
                "completed": r.record["completed"],
                "accounted": r.accounted(),
                "samples": METRICS.iter().map(|m| (m.to_string(), json!(r.series(m).csv_path()))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect()
}

/// A warning for each run of `m` that left a frame unaccounted for.
fn unaccounted_runs(m: &Measured, whose: &str) -> Vec<String> {
    m.runs
        .iter()
        .filter(|r| !r.accounted())
        .map(|r| {
            format!(
                "{whose}run {} ({}): not every frame accounted for (completed {}, unaccounted {}, corrupted {}){}",
                r.record["run"],
                r.cfg,
                r.record["completed"],
                r.record["unaccounted"],
                r.record["corrupted"],
                r.record["incomplete"]
                    .as_str()
                    .map_or(String::new(), |w| format!(": {w}"))
            )
        })
        .collect()
}

/// `linux_target`: the Linux node's Table 2 and Fig. 9 rows, measured as
/// the mint target's (its raw samples under `linux/raw`).
fn linux_json(m: &Measured, logs: &Path, parts: Parts, warnings: &mut Vec<String>) -> Value {
    let parts = parts.linux();
    let mut not_measured = Vec::new();
    let rows = rows(m, parts, &mut not_measured);
    warnings.extend(unaccounted_runs(m, "Linux target: "));
    let node = m.boot_report.as_ref().and_then(|b| {
        b["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["id"] == u64::from(m.target.0))
            .cloned()
    });
    let node = node.unwrap_or(Value::Null);
    json!({
        "node": m.target.0,
        "kernel": node["kernel"],
        "boot_ms": node["boot_ms"],
        "throughput": parts.throughput.then_some(rows.throughput),
        "success_rate": rows.success_rate,
        "min_full_interval_ns": rows.min_full,
        "handling_ns": rows.handling,
        "handling_estimates": rows.handling_estimates,
        "runs": runs_json(m),
        "not_measured": not_measured,
        "raw_dir": "linux/raw",
        "log_dir": logs.display().to_string(),
        "method": "the same generator runs as the mint target's (throughput's three paths, the success-rate climb), in a boot of the same plan whose debug NIC goes to the Linux node: mint's module drives it as mint0 (NAPI), frames go through Linux's own stack to the target application in mint's /init (docs/LINUX-NODES.md); driver: mint0 counts each frame and frees it, never handing it to the stack",
    })
}

/// Table 2's rows (but the real e1000's) and Fig. 9's, of one target's
/// runs; what they cannot give goes to `not_measured`.
struct Rows {
    throughput: Vec<Value>,
    success_rate: Value,
    min_full: Value,
    handling: Value,
    handling_estimates: Value,
}

fn rows(m: &Measured, parts: Parts, not_measured: &mut Vec<String>) -> Rows {
    let by = |p: Purpose| m.runs.iter().filter(move |r| r.purpose == p);
    // Table 2.
    let throughput: Vec<Value> = by(Purpose::Throughput)
        .map(|r| {
            json!({
                "size": r.cfg.size,
                "path": r.path(),
                "gbps": r.gbps(),
                "frame_gbps": r.frame_gbps(),
                "floor_gbps": null,
                "drops": r.drops(),
                "sent": r.count("sent"),
                "delivered": r.count("delivered"),
                "unaccounted": r.record["unaccounted"],
                "span_ns": stats::to_ns(r.span_ticks() as f64, r.tsc_hz()),
                "interrupts": r.record["interrupts"],
                "interrupts_per_frame": r.interrupts_per_frame(),
                "itr_throttled": r.record["itr_throttled"],
            })
        })
        .collect();
    // Fig. 9.
    let success: Vec<Value> = by(Purpose::Success)
        .map(|r| {
            json!({
                "size": r.cfg.size,
                "interval_ns": r.cfg.interval_ns,
                "success_rate": r.success_rate(),
                "sent": r.count("sent"),
                "delivered": r.count("delivered"),
                "drops": r.drops(),
                "interrupts": r.record["interrupts"],
                "interrupts_per_frame": r.interrupts_per_frame(),
                "itr_throttled": r.record["itr_throttled"],
            })
        })
        .collect();
    let mut handling_estimates = Value::Null;
    let (success_rate, min_full, handling) = if parts.success_rate {
        let mut min_full = serde_json::Map::new();
        let mut handling = serde_json::Map::new();
        let mut handling_runs = serde_json::Map::new();
        for size in SUCCESS_SIZES {
            let full = by(Purpose::Success)
                .filter(|r| r.cfg.size == size && r.success_rate() == Some(1.0) && r.accounted())
                .map(|r| r.cfg.interval_ns)
                .min();
            if full.is_none() {
                not_measured.push(format!(
                    "min_full_interval_ns.{size}: no interval up to {} ns delivered every frame",
                    LADDER_NS.last().unwrap_or(&0)
                ));
            }
            min_full.insert(size.to_string(), json!(full));
            // The target's time per delivered frame when frames come back
            // to back (first injection to last delivery over frames
            // delivered): its handling time, amortized as it is when the
            // ring is kept full. Every back-to-back udp run of the size
            // gives one (the success-rate cycle, and the udp-checked
            // throughput run when it ran); a host stall only ever
            // lengthens a span, so the smallest is the estimate.
            let estimates: Vec<Value> = m
                .runs
                .iter()
                .filter(|r| {
                    r.cfg.size == size
                        && r.cfg.interval_ns == 0
                        && r.cfg.kind == PacketKind::Udp
                        && matches!(r.purpose, Purpose::Success | Purpose::Throughput)
                })
                .filter_map(|r| {
                    let d = r.count("delivered");
                    (d > 0 && r.span_ticks() > 0).then(|| {
                        json!({
                            "run": r.record["run"],
                            "purpose": r.purpose.as_str(),
                            "delivered": d,
                            "ns": stats::to_ns(r.span_ticks() as f64 / d as f64, r.tsc_hz()),
                        })
                    })
                })
                .collect();
            let h = estimates
                .iter()
                .filter_map(|e| e["ns"].as_f64())
                .reduce(f64::min);
            if h.is_none() {
                not_measured.push(format!(
                    "handling_ns.{size}: no back-to-back udp run of this size delivered a frame"
                ));
            }
            handling_runs.insert(size.to_string(), json!(estimates));
            handling.insert(size.to_string(), json!(h));
        }
        handling_estimates = Value::Object(handling_runs);
        (
            json!(success),
            Value::Object(min_full),
            Value::Object(handling),
        )
    } else {
        (Value::Null, Value::Null, Value::Null)
    };

    Rows {
        throughput,
        success_rate,
        min_full,
        handling,
        handling_estimates,
    }
}

/// Every run's raw samples (`raw/<purpose>_<size>_<kind>_<interval>_<metric>.csv`),
/// the ping round trips, and one row per run (`raw/runs.csv`).
fn write_raw(m: &Measured, dir: &Path) -> Result<()> {
    let mut rows = String::from(
        "purpose,run,size,kind,deliver,interval_ns,count,sent,delivered,ring_full,socket_buffer_full,other_drops,unaccounted,delivered_bytes,first_inject_tsc,last_delivery_tsc,tsc_hz\n",
    );
    let mut records = String::new();
    for r in &m.runs {
        for s in &r.samples {
            s.write_csv(dir, r.tsc_hz())?;
        }
        let d = r.drops();
        rows.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.purpose.as_str(),
            r.record["run"],
            r.cfg.size,
            r.cfg.kind.as_str(),
            r.cfg.deliver,
            r.cfg.interval_ns,
            r.cfg.count,
            r.count("sent"),
            r.count("delivered"),
            d["ring_full"],
            d["socket_buffer_full"],
            d["other"],
            r.record["unaccounted"],
            r.count("delivered_bytes"),
            r.count("first_inject_tsc"),
            r.count("last_delivery_tsc"),
            r.tsc_hz()
        ));
        records.push_str(&serde_json::to_string(&r.record)?);
        records.push('\n');
    }
    let write = |name: &str, text: &str| {
        let path = dir.join("raw").join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write("runs.csv", &rows)?;
    write("records.jsonl", &records)?;
    if let Some(Ok(series)) = &m.pingpong {
        let hz = m.runs.first().map_or(0.0, RunOut::tsc_hz);
        series.write_csv(dir, hz)?;
    }
    if let Some((rtt, _)) = &m.ping {
        let mut text = String::from("index,ns\n");
        for (i, ns) in rtt.iter().enumerate() {
            text.push_str(&format!("{i},{ns}\n"));
        }
        write("ipi_ping_rtt.csv", &text)?;
    }
    Ok(())
}

/// The tables for people, on stdout, the paper's figures beside.
pub fn print(r: &Value) {
    outln!(
        "mint bench {} (system, accel {}, moderation {}) on {} (QEMU -cpu {}): node 0 plays the NIC for node {}",
        r["experiment"].as_str().unwrap_or("?"),
        r["accel"].as_str().unwrap_or("?"),
        r["moderation"].as_str().unwrap_or("?"),
        r["cpu"].as_str().unwrap_or("?"),
        r["qemu_cpu"].as_str().unwrap_or("?"),
        r["placement"]["target_node"],
    );
    outln!(
        "node 0's TSC {:.1} MHz{}",
        r["tsc"]["hz"].as_f64().unwrap_or(0.0) / 1e6,
        if r["placement"]["ipi_rtt"].is_object() {
            format!(
                "; IPI ping round trip node 0 -> node {}: p50 {} ns, p99 {} ns",
                r["placement"]["target_node"],
                f0(&r["placement"]["ipi_rtt"]["p50"]),
                f0(&r["placement"]["ipi_rtt"]["p99"])
            )
        } else {
            String::new()
        }
    );
    if let Some(rows) = r["send_time"].as_array() {
        outln!();
        outln!(
            "send time (Table 1), ns: node 0's send into node {}'s ring, with the IPI",
            r["placement"]["target_node"]
        );
        outln!(
            "{:>7} {:>6} | {:>8} {:>8} {:>8} {:>5} | {:>6} {:>8} | {:>8}",
            "size B",
            "paper",
            "send",
            "p50",
            "p99",
            "full",
            "IPIs",
            "IPI p50",
            "w/o IPI"
        );
        for row in rows {
            let paper = PAPER
                .iter()
                .find(|p| Some(p.0 as u64) == row["size"].as_u64())
                .map_or("n/a".into(), |p| format!("{:.0}", p.1 * 1000.0));
            outln!(
                "{:>7} {:>6} | {:>8} {:>8} {:>8} {:>5} | {:>6} {:>8} | {:>8}",
                row["size"].to_string(),
                paper,
                f0(&row["mean_ns"]),
                f0(&row["p50_ns"]),
                f0(&row["p99_ns"]),
                row["ring_full"].to_string(),
                row["send_signal"]["count"].to_string(),
                f0(&row["send_signal"]["p50"]),
                f0(&row["send_excl_signal_ns"])
            );
        }
        outln!(
            "(send and w/o IPI: mean of sends 1000-2000 of 3000, as the paper's; full: sends that met a full ring; IPIs: sends that requested one, IPI p50: that request's time; w/o IPI: each send minus its IPI request)"
        );
        outln!(
            "send fit: {}; the paper's: {:.0} ns per KB",
            fit_text(&r["send_time_fit"]),
            paper_ns_per_kb()
        );
        outln!(
            "without the IPI request: {}",
            fit_text(&r["send_excl_signal_fit"])
        );
    }
    if let Some(rows) = r["throughput"].as_array() {
        outln!();
        outln!("throughput (Table 2), Gbps delivered, back to back; drops by reason");
        outln!(
            "{:>7} {:>12} {:>6} | {:>8} {:>8} | {:>9} {:>9} {:>6} {:>6}",
            "size B",
            "path",
            "paper",
            "Gbps",
            "frames",
            "ring full",
            "sock full",
            "other",
            "sent"
        );
        for row in rows {
            let paper = match (row["path"].as_str(), row["size"].as_u64()) {
                (Some("e1000"), _) => "0.92".to_string(),
                (_, size) => PAPER
                    .iter()
                    .find(|p| Some(p.0 as u64) == size)
                    .map_or("n/a".into(), |p| format!("{:.1}", p.2)),
            };
            outln!(
                "{:>7} {:>12} {:>6} | {:>8} {:>8} | {:>9} {:>9} {:>6} {:>6}",
                row["size"].to_string(),
                row["path"].as_str().unwrap_or("?"),
                paper,
                f2(&row["gbps"]),
                f2(&row["frame_gbps"]),
                row["drops"]["ring_full"].to_string(),
                row["drops"]["socket_buffer_full"].to_string(),
                row["drops"]["other"].to_string(),
                row["sent"].to_string()
            );
        }
        outln!(
            "(Gbps: delivered bytes, payload for the checked paths and frames for driver, over first injection to last delivery; frames: whole frames; driver: counted at the driver, no stack, no check; the paper's e1000 row: 0.92 Gbps)"
        );
    }
    if let Some(rows) = r["success_rate"].as_array() {
        outln!();
        outln!(
            "success rate (Fig. 9), delivered/sent per cycle of {} frames",
            r["counts"]["success_rate_cycle_frames"]
        );
        for size in SUCCESS_SIZES {
            outln!("{size:>7} B: {}", success_cells(rows, size));
            outln!(
                "          100 % from {} ns; the target's handling time per frame (back to back) {} ns",
                r["min_full_interval_ns"][size.to_string()]
                    .as_u64()
                    .map_or("n/a (never)".into(), |v| v.to_string()),
                f0(&r["handling_ns"][size.to_string()])
            );
        }
    }
    if r["linux_target"].is_object() {
        print_linux(r);
    }
    if r["latency"].is_object() {
        let l = &r["latency"];
        outln!();
        outln!(
            "latency, ns (cross-core): IPI to handler p50 {}, p99 {}; injection to application p50 {}, p99 {}; IPI ping round trip p50 {}; polled mailbox ping-pong one way p50 {}, p99 {}",
            f0(&l["signal_to_handler_ns"]["p50"]),
            f0(&l["signal_to_handler_ns"]["p99"]),
            f0(&l["inject_to_app_ns"]["p50"]),
            f0(&l["inject_to_app_ns"]["p99"]),
            f0(&l["ipi_rtt_ns"]["p50"]),
            f0(&l["pingpong_oneway_ns"]["p50"]),
            f0(&l["pingpong_oneway_ns"]["p99"]),
        );
    }
    outln!();
    for n in r["not_measured"].as_array().into_iter().flatten() {
        outln!("not measured: {}", n.as_str().unwrap_or("?"));
    }
    outln!(
        "results: {}/results.json (raw samples in raw/*.csv, plots *.svg; consoles in {}); {:.0} s",
        r["out_dir"].as_str().unwrap_or("?"),
        r["log_dir"].as_str().unwrap_or("?"),
        r["elapsed_s"].as_f64().unwrap_or(0.0)
    );
    for w in r["warnings"].as_array().into_iter().flatten() {
        outln!("WARNING: {}", w.as_str().unwrap_or("?"));
    }
}

/// One size's success-rate cycles for people: `interval:rate` each.
fn success_cells(rows: &[Value], size: u32) -> String {
    rows.iter()
        .filter(|x| x["size"] == size)
        .map(|x| {
            format!(
                "{}:{}",
                interval_label(x["interval_ns"].as_u64().unwrap_or(0)),
                x["success_rate"].as_f64().map_or("n/a".into(), percent)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The Linux target's rows beside the mint target's.
fn print_linux(r: &Value) {
    let l = &r["linux_target"];
    outln!();
    outln!(
        "Linux target: node {} (Linux {}), the same runs in a boot of its own, beside the mint target's (node {}); its consoles in {}",
        l["node"],
        l["kernel"].as_str().unwrap_or("(release not seen)"),
        r["placement"]["target_node"],
        l["log_dir"].as_str().unwrap_or("?")
    );
    if let Some(rows) = l["throughput"].as_array() {
        outln!(
            "{:>7} {:>12} | {:>9} {:>9} | {:>9} {:>9} {:>6} {:>6}",
            "size B",
            "path",
            "mint Gbps",
            "Linux",
            "ring full",
            "sock full",
            "other",
            "sent"
        );
        let mint = r["throughput"].as_array();
        for row in rows {
            let beside = mint
                .into_iter()
                .flatten()
                .find(|m| m["size"] == row["size"] && m["path"] == row["path"]);
            outln!(
                "{:>7} {:>12} | {:>9} {:>9} | {:>9} {:>9} {:>6} {:>6}",
                row["size"].to_string(),
                row["path"].as_str().unwrap_or("?"),
                beside.map_or("n/a".into(), |m| f2(&m["gbps"])),
                f2(&row["gbps"]),
                row["drops"]["ring_full"].to_string(),
                row["drops"]["socket_buffer_full"].to_string(),
                row["drops"]["other"].to_string(),
                row["sent"].to_string()
            );
        }
        outln!(
            "(the Linux target's drops: other includes `stack`, frames Linux's stack took and never gave the socket; driver: counted in mint0's NAPI poll, never handed to the stack)"
        );
    }
    if let Some(rows) = l["success_rate"].as_array() {
        for size in SUCCESS_SIZES {
            let key = size.to_string();
            let from = |v: &Value| v.as_u64().map_or("n/a (never)".into(), |v| v.to_string());
            outln!("{size:>7} B: {}", success_cells(rows, size));
            outln!(
                "          100 % from {} ns (mint: {} ns); handling per frame (back to back) {} ns (mint: {} ns)",
                from(&l["min_full_interval_ns"][&key]),
                from(&r["min_full_interval_ns"][&key]),
                f0(&l["handling_ns"][&key]),
                f0(&r["handling_ns"][&key])
            );
        }
    }
    for n in l["not_measured"].as_array().into_iter().flatten() {
        outln!("not measured (Linux target): {}", n.as_str().unwrap_or("?"));
    }
}

/// The slope of the paper's own send times (Table 1), ns per KB.
fn paper_ns_per_kb() -> f64 {
    let points: Vec<(f64, f64)> = PAPER
        .iter()
        .map(|&(s, us, _)| (s as f64, us * 1000.0))
        .collect();
    stats::linear_fit(&points).map_or(f64::NAN, |f| f.slope * 1024.0)
}

/// A success rate for people: 100 % only when every frame arrived (a
/// rate just below is never rounded up to it).
fn percent(rate: f64) -> String {
    if rate >= 1.0 {
        "100%".into()
    } else {
        format!("{:.1}%", (rate * 1000.0).floor() / 10.0)
    }
}

fn interval_label(ns: u64) -> String {
    match ns {
        0 => "b2b".into(),
        n if n >= 1_000_000 && n.is_multiple_of(1_000_000) => format!("{}ms", n / 1_000_000),
        n if n >= 1_000 && n.is_multiple_of(1_000) => format!("{}us", n / 1_000),
        n => format!("{n}ns"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(node1: &str, node2: &str) -> mint_plan::Plan {
        let text = format!(
            "[[node]]\nid = 0\ncores = [0]\nmemory = \"64M\"\ndevices = [\"com1\"]\n\n[[node]]\nid = 1\ncores = [1]\ndevices = [\"com2\"]\n{node1}\n\n[[node]]\nid = 2\ncores = [2]\ndevices = [\"com3\"]\n{node2}\n"
        );
        mint_plan::Plan::from_toml_str(&text).expect("a valid plan")
    }

    #[test]
    fn the_mint_target_is_measured_and_a_linux_node_beside_it() {
        let mint = "memory = \"64M\"";
        let linux = "memory = \"256M\"\nos = \"linux\"";
        let t = |a: &str, b: &str| targets(&plan(a, b)).map_err(|e| e.to_string());
        assert_eq!(t(linux, mint), Ok((NodeId(2), Some(NodeId(1)))));
        assert_eq!(t(mint, linux), Ok((NodeId(1), Some(NodeId(2)))));
        assert_eq!(t(mint, mint), Ok((NodeId(1), None)));
        // A Linux node with an initrd of its own runs no mint /init: it
        // cannot be a target.
        let own = "memory = \"256M\"\nos = \"linux\"\ninitrd = \"/x.cpio\"";
        assert_eq!(t(own, mint), Ok((NodeId(2), None)));
        let err = t(linux, linux).unwrap_err();
        assert!(
            err.contains("needs a node besides node 0 that runs mint"),
            "{err}"
        );
    }

    #[test]
    fn drops_split_into_the_three_groups() {
        let d = drops_of(
            &json!({"ring_full": 3, "socket_buffer_full": 2, "stack": 1, "bad_checksum": 4}),
        );
        assert_eq!(d["ring_full"], 3);
        assert_eq!(d["socket_buffer_full"], 2);
        assert_eq!(d["other"], 5);
    }

    #[test]
    fn counts_cap_and_quick_is_smaller() {
        let q = Counts::new(true, None);
        let f = Counts::new(false, None);
        assert!(q.cycle < f.cycle);
        assert_eq!(q.sends, 3000);
        assert_eq!(Counts::new(true, Some(100)).largest(), 100);
        assert!(q.estimate(Experiment::All) < f.estimate(Experiment::All));
    }

    #[test]
    fn the_ladder_rises() {
        assert!(LADDER_NS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(interval_label(0), "b2b");
        assert_eq!(interval_label(2_000_000), "2ms");
        assert_eq!(interval_label(5_000), "5us");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.9998), "99.9%");
        assert_eq!(percent(0.0), "0.0%");
    }
}
