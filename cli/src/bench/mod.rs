//! `mint bench`: the paper's evaluation (seeds/003 section 6, issue 8).
//!
//! This slice runs natively (`--native`), on two pinned host threads, in
//! one run on the same two CPUs:
//!
//! - the send (Table 1's sizes): the kernel's per-frame function,
//!   `mint_support::Sender::send`, into an e1000 ring over host memory of
//!   the debug NIC's layout, a doorbell in place of the IPI ([`send`]);
//! - the placement: a cache-line ping-pong between the two CPUs (round
//!   trip, and half of it as the one-way floor of cross-core signalling),
//!   taken before and after the experiments;
//! - send time's floors: a one-core copy of each size, and a cross-core
//!   copy + release store into the buffer the other core has just read;
//! - throughput's floor (Table 2's sizes): an SPSC two-copy queue over
//!   buffers laid out like the debug NIC's ring.
//!
//! What it does not measure yet (the keys stay `null`): the target's
//! delivered throughput per path, the success rate, the doorbell-to-
//! handler and injection-to-application latencies. Those need the
//! target's per-frame code in host-buildable crates (see
//! `docs/EVALUATION.md`).
//!
//! Without `--native`, [`system`] boots the nodes under QEMU and runs
//! every experiment through the real mechanism in one boot (node 0's
//! shell, run after run), the real e1000's row in a second. Both modes
//! draw their plots with [`plot`] (hand-written SVG).
//!
//! - [`clock`]: the TSC rate and its cross-checks;
//! - [`native`]: the floors on two pinned threads; [`send`]: the send;
//! - [`stats`]: summaries, the linear fit, the raw samples' CSV files;
//! - [`report`]: the result object and the tables for people.

mod clock;
mod native;
mod plot;
mod report;
mod send;
mod stats;
mod system;
mod target;
mod targets;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::output::Bar;
use native::Pair;
use stats::Series;

/// Which of the paper's experiments to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Experiment {
    /// Table 1: send processing time per size, beside its copy floors.
    SendTime,
    /// Table 2: delivered throughput per size, beside the SPSC floor.
    Throughput,
    /// Fig. 9: success rate against the interval.
    SuccessRate,
    /// Signal-to-handler and injection-to-application latency, beside the
    /// cache-line ping-pong.
    Latency,
    /// Every experiment.
    All,
}

impl Experiment {
    fn as_str(self) -> &'static str {
        match self {
            Experiment::SendTime => "send-time",
            Experiment::Throughput => "throughput",
            Experiment::SuccessRate => "success-rate",
            Experiment::Latency => "latency",
            Experiment::All => "all",
        }
    }

    /// Whether running `self` runs `part`.
    fn includes(self, part: Experiment) -> bool {
        self == Experiment::All || self == part
    }
}

#[derive(Args)]
pub struct BenchArgs {
    /// Which experiment to run.
    #[arg(value_enum, default_value = "all")]
    pub experiment: Experiment,
    /// Run the data path natively on two pinned host threads (without
    /// it: full-system runs, the nodes under QEMU).
    #[arg(long)]
    pub native: bool,
    /// Fewer samples where that keeps the method (the paper's 3000 sends
    /// per size stay): well under a minute natively, about half a minute
    /// of software emulation in full-system runs.
    #[arg(long)]
    pub quick: bool,
    /// Where results.json and the raw samples (raw/*.csv) go (default:
    /// runs/bench-TIME-PID in the current directory, or under
    /// $XDG_STATE_HOME/mint when that is not writable).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The two host CPUs, support (sender) first, then target (receiver)
    /// (default: the first two this process may run on).
    #[arg(long, value_name = "SUPPORT,TARGET", value_parser = cpu_pair)]
    pub cpus: Option<Pair>,
    /// Print the result (the same object as results.json) on stdout.
    #[arg(long)]
    pub json: bool,
    /// The machine, for full-system runs (without --native).
    #[command(flatten)]
    pub system: system::SystemArgs,
}

fn cpu_pair(text: &str) -> Result<Pair, String> {
    let (a, b) = text
        .split_once(',')
        .ok_or_else(|| format!("'{text}' is not two CPUs (SUPPORT,TARGET, e.g. 0,1)"))?;
    let cpu = |s: &str| {
        crate::flags::u64_value(s)
            .and_then(|n| usize::try_from(n).map_err(|_| format!("{n} is out of range")))
    };
    let pair = Pair {
        support: cpu(a)?,
        target: cpu(b)?,
    };
    if pair.support == pair.target {
        return Err(format!(
            "the support and the target need two different CPUs (both are {})",
            pair.support
        ));
    }
    Ok(pair)
}

/// How many samples of each kind one run takes.
#[derive(Clone, Copy, Debug)]
pub struct Counts {
    /// Frames per throughput run (per size, path and pace).
    pub throughput_frames: u32,
    /// Frames per success-rate cycle (the paper's 5000).
    pub cycle_frames: u32,
    /// Frames of the latency run.
    pub latency_frames: u32,
    /// Ping-pong round trips, before and after the experiments each.
    pub pingpong_rounds: usize,
    /// Ping-pong round trips before each size of send-time and throughput.
    pub size_pingpong_rounds: usize,
    /// Copies per size, one-core and cross-core: the paper's 3000 sends.
    pub copies: usize,
    /// Frames per SPSC repetition, and repetitions per size.
    pub spsc_frames: u64,
    pub spsc_reps: usize,
    /// Timer-overhead pairs.
    pub timer: usize,
}

impl Counts {
    pub fn new(quick: bool) -> Counts {
        if quick {
            Counts {
                throughput_frames: 3_000,
                cycle_frames: 2_000,
                latency_frames: 2_000,
                pingpong_rounds: 5_000,
                size_pingpong_rounds: 2_000,
                copies: 3_000,
                spsc_frames: 20_000,
                spsc_reps: 3,
                timer: 3_000,
            }
        } else {
            Counts {
                throughput_frames: 20_000,
                cycle_frames: 5_000,
                latency_frames: 10_000,
                pingpong_rounds: 100_000,
                size_pingpong_rounds: 5_000,
                copies: 3_000,
                spsc_frames: 100_000,
                spsc_reps: 10,
                timer: 3_000,
            }
        }
    }

    /// A guess of the run's length, said up front: about 1 us per round
    /// trip, 4 us per copy pair, one interval per send, 8 GB/s through the
    /// queue (two CPUs far apart, or a busy machine, can take several
    /// times that), and the TSC's calibration.
    pub fn estimate(&self, experiment: Experiment) -> Duration {
        let mut ns: f64 = 300e6 + 2.0 * self.pingpong_rounds as f64 * 1e3;
        let sized = [Experiment::SendTime, Experiment::Throughput]
            .iter()
            .filter(|&&e| experiment.includes(e))
            .count();
        ns += (sized * native::SIZES.len() * self.size_pingpong_rounds) as f64 * 1e3;
        if experiment.includes(Experiment::SendTime) {
            // Two copy floors (4 us a pair) and the sends (one interval each).
            ns += (native::SIZES.len() * self.copies) as f64 * (4e3 + send::INTERVAL_NS as f64);
        }
        if experiment.includes(Experiment::Throughput) {
            let bytes: f64 = native::SIZES
                .iter()
                .map(|&s| {
                    (s as u64 * self.spsc_frames * self.spsc_reps as u64) as f64
                        * native::SPSC_REUSE.len() as f64
                })
                .sum();
            ns += bytes / 8.0;
            // Two runs per size and path, at about 1 GB/s through the target.
            let frames: f64 = native::SIZES.iter().map(|&s| s as f64).sum::<f64>()
                * f64::from(self.throughput_frames);
            ns += 2.0 * target::Path::ALL.len() as f64 * frames;
        }
        if experiment.includes(Experiment::SuccessRate) {
            let ladder: u64 = CYCLE_INTERVALS_NS.iter().sum();
            ns += (SUCCESS_SIZES.len() * MODERATIONS.len()) as f64
                * f64::from(self.cycle_frames)
                * ladder as f64;
        }
        if experiment.includes(Experiment::Latency) {
            ns += f64::from(self.latency_frames) * LATENCY_INTERVAL_NS as f64;
        }
        Duration::from_nanos(ns as u64)
    }
}

/// Fig. 9's sizes.
pub const SUCCESS_SIZES: [usize; 3] = [1514, 8192, 16384];
/// The success-rate cycles' intervals, rising cycle by cycle (ns; 0 = back
/// to back): steps of 125 ns up to 1 us, then at most a fifth of the
/// interval up to 8 us, around the target's per-frame handling time
/// natively (0.3 to 5 us from 1.5 to 16 KB on these machines, so a 100 %
/// interval can be told from 1.5x of it: coarser steps would put a cycle
/// that is full at 4.5 us at the next rung, 6 us), up to where nothing is
/// lost even when the host takes a CPU away for a while (at 64 us the
/// ring's 256 descriptors hold 16 ms of frames).
pub const CYCLE_INTERVALS_NS: [u64; 27] = [
    0, 125, 250, 375, 500, 625, 750, 875, 1_000, 1_250, 1_500, 1_750, 2_000, 2_250, 2_500, 3_000,
    3_500, 4_000, 4_500, 5_000, 6_000, 7_000, 8_000, 12_000, 16_000, 32_000, 64_000,
];
/// The moderations every cycle runs under: the paper's one interrupt per
/// frame, the e1000's ITR (4 us), NAPI.
pub const MODERATIONS: [mint_traffic::Moderation; 3] = [
    mint_traffic::Moderation::None,
    mint_traffic::Moderation::Itr { ns: 4_096 },
    mint_traffic::Moderation::Napi,
];
/// The latency run: one frame every 20 us (the target idle in between).
pub const LATENCY_INTERVAL_NS: u64 = 20_000;
pub const LATENCY_SIZE: usize = 1514;

/// The two CPUs to run on: `--cpus`, or the first two allowed.
fn choose_cpus(asked: Option<Pair>) -> Result<Pair> {
    let allowed = crate::os::allowed_cpus().context("cannot read this process's CPU affinity")?;
    if let Some(pair) = asked {
        for (role, cpu) in [("support", pair.support), ("target", pair.target)] {
            if !allowed.contains(&cpu) {
                bail!(
                    "--cpus: the {role} CPU {cpu} is not one this process may run on ({allowed:?})"
                );
            }
        }
        return Ok(pair);
    }
    match allowed[..] {
        [support, target, ..] => Ok(Pair { support, target }),
        _ => bail!(
            "mint bench --native needs two CPUs (a support and a target thread, each pinned to its own); this process may run on {allowed:?} only"
        ),
    }
}

/// Everything one run measured, as raw samples.
pub struct Measured {
    pub pair: Pair,
    pub counts: Counts,
    pub timer: Series,
    pub rtt_before: Series,
    pub rtt_after: Series,
    /// Per size (in `native::SIZES` order), when send-time ran: the
    /// sends (ticks, and the nonzero signal ticks), the device's ring-full
    /// drops and the frames the target cleaned.
    pub sends: Option<Vec<(Series, Series, send::SendRun)>>,
    /// Per size, when send-time ran: the one-core and cross-core copies.
    pub copies: Option<Vec<(Series, Series)>>,
    /// Per size, when send-time ran: the ping-pong taken right before
    /// that size's sends and floors (their placement).
    pub send_rtt: Option<Vec<Series>>,
    /// Per size, when throughput ran: the ping-pong taken right before
    /// that size's floor and runs.
    pub throughput_rtt: Option<Vec<Series>>,
    /// Per size, when throughput ran.
    pub spsc: Option<Vec<Vec<native::SpscRep>>>,
    /// Per size and path, when throughput ran: the lossless run (NAPI,
    /// the support side waits for a free descriptor) and the
    /// back-to-back run (one interrupt per posted edge, drops counted).
    pub deliveries: Option<Vec<(target::RunOut, target::RunOut)>>,
    /// When success-rate ran: per size, its lossless UDP run (the
    /// target's handling time) and its cycles (every moderation, every
    /// interval).
    pub success: Option<Vec<(target::RunOut, Vec<target::RunOut>)>>,
    /// Success-rate cycles measured again (see `cycle`): the attempts
    /// that were not kept.
    pub success_discarded: Vec<target::RunOut>,
    /// When latency ran: the run its samples come from.
    pub latency: Option<target::RunOut>,
    /// Preemptions of the support and the target thread, per part of the
    /// run, in the order run.
    pub preempted: Vec<(&'static str, [u64; 2])>,
    /// Time the host ran something else on the support and the target CPU
    /// during the run (steal time, ms; `None` where /proc/stat lacks it).
    pub steal_ms: Option<[u64; 2]>,
}

/// The steal time (the hypervisor running something else while this
/// virtual CPU wanted to run) of the pair's CPUs so far, in USER_HZ ticks.
fn steal_ticks(pair: Pair) -> Option<[u64; 2]> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let steal = |cpu: usize| {
        let name = format!("cpu{cpu}");
        stat.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(name.as_str()))
                .then(|| w.nth(7).and_then(|v| v.parse::<u64>().ok()))
                .flatten()
        })
    };
    Some([steal(pair.support)?, steal(pair.target)?])
}

/// Linux's USER_HZ, the unit of /proc/stat: 100 on every architecture
/// Linux runs x86-64 on.
fn user_hz() -> u64 {
    100
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    if !args.native {
        return system::run(&args);
    }
    system::refuse_machine_flags(&args)?;
    let pair = choose_cpus(args.cpus)?;
    let out = claim_out(&args)?;
    let counts = Counts::new(args.quick);
    errln!(
        "mint: bench {} (native, {}) on CPUs {} (support) and {} (target): {} (estimate); results in {}",
        args.experiment.as_str(),
        if args.quick { "quick" } else { "full" },
        pair.support,
        pair.target,
        match counts.estimate(args.experiment) {
            d if d < Duration::from_secs(1) => "under a second".to_string(),
            d => format!(
                "about {} (more if the CPUs sit far apart or are busy)",
                indicatif::HumanDuration(d)
            ),
        },
        out.path.display()
    );
    let started = Instant::now();
    let steal_before = steal_ticks(pair);
    let clock = clock::Clock::calibrate().context("calibrating the TSC")?;
    let mut measured = measure(args.experiment, pair, counts, clock.hz)?;
    measured.steal_ms = match (steal_before, steal_ticks(pair)) {
        (Some(a), Some(b)) => Some([0, 1].map(|i| b[i].saturating_sub(a[i]) * 1000 / user_hz())),
        _ => None,
    };
    let (tsc, warning) = clock.finish()?;
    let result = report::result(report::Inputs {
        experiment: args.experiment,
        quick: args.quick,
        measured: &measured,
        tsc,
        tsc_warning: warning,
        cpu: report::cpu_model(pair.support),
        out_dir: &out.path,
        elapsed: started.elapsed(),
    });
    for series in report::all_series(&measured) {
        series.write_csv(&out.path, clock.hz as f64)?;
    }
    report::write_spsc(&measured, &out.path, clock.hz as f64)?;
    for series in report::latency_series(&measured).into_iter().flatten() {
        series.write_csv(&out.path, clock.hz as f64)?;
    }
    let runs = out.path.join("raw/runs.csv");
    std::fs::write(&runs, report::runs_csv(&measured))
        .with_context(|| format!("cannot write {}", runs.display()))?;
    let text = serde_json::to_string_pretty(&result)?;
    let path = out.path.join("results.json");
    std::fs::write(&path, format!("{text}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    plot::write_all(&result, &out.path)?;
    for w in result["warnings"].as_array().into_iter().flatten() {
        errln!("mint: WARNING: {}", w.as_str().unwrap_or("?"));
    }
    if args.json {
        outln!("{text}");
    } else {
        report::print(&result);
    }
    let unaccounted = report::unaccounted_runs(&measured);
    if unaccounted > 0 {
        errln!("mint: {unaccounted} runs did not account for every frame (raw/runs.csv)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn measure(experiment: Experiment, pair: Pair, counts: Counts, hz: u64) -> Result<Measured> {
    let mut preempted = Vec::new();
    native::take_preemptions();
    let rtt_before = {
        let _bar = Bar::new("placement", 1, "ping-pong");
        native::pingpong(pair, hz, counts.pingpong_rounds).context("ping-pong")?
    };
    let timer = native::timer_overhead(pair, counts.timer).context("timer overhead")?;
    preempted.push(("placement", native::take_preemptions()));
    // Each size's floors are taken right beside its own measurements, with
    // a short ping-pong first: the host moves these CPUs between "near"
    // and "far" (2-3x apart in every cross-core figure) from one second
    // to the next, and a ratio to a floor means something only when both
    // were taken in one placement.
    let mut part = Preemptions::default();
    let (mut sends, mut copies, mut send_rtt) = (None, None, None);
    if experiment.includes(Experiment::SendTime) {
        let bar = Bar::new("send time", native::SIZES.len() as u64, "sizes");
        let (mut s_out, mut c_out, mut r_out) = (Vec::new(), Vec::new(), Vec::new());
        for (i, &size) in native::SIZES.iter().enumerate() {
            r_out.push(Series::new(
                format!("pingpong_rtt_send_{size}"),
                native::pingpong(pair, hz, counts.size_pingpong_rounds)
                    .with_context(|| format!("ping-pong before the sends of {size} B"))?,
            ));
            part.add("placement_by_size");
            let mut run = send::send_time(pair, hz, size, counts.copies)
                .with_context(|| format!("sends of {size} B"))?;
            let ticks = std::mem::take(&mut run.ticks);
            let signals = run
                .signal_ticks
                .iter()
                .copied()
                .filter(|&t| t > 0)
                .collect();
            s_out.push((
                Series::new(format!("send_{size}"), ticks),
                Series::new(format!("send_signal_{size}"), signals),
                run,
            ));
            part.add("send");
            let one = native::copies(pair, &[size], counts.copies)
                .context("one-core copies")?
                .pop()
                .unwrap_or_default();
            let x = native::xcore_copies(pair, hz, size, counts.copies)
                .with_context(|| format!("cross-core copies of {size} B"))?;
            c_out.push((
                Series::new(format!("copy_{size}"), one),
                Series::new(format!("xcore_copy_{size}"), x),
            ));
            part.add("copy_floors");
            bar.set(i as u64 + 1);
        }
        (sends, copies, send_rtt) = (Some(s_out), Some(c_out), Some(r_out));
    }
    let (mut spsc, mut deliveries, mut throughput_rtt) = (None, None, None);
    if experiment.includes(Experiment::Throughput) {
        let bar = Bar::new(
            "throughput",
            (native::SIZES.len() * (1 + target::Path::ALL.len())) as u64,
            "runs",
        );
        let (mut f_out, mut d_out, mut r_out) = (Vec::new(), Vec::new(), Vec::new());
        let mut done = 0;
        for &size in &native::SIZES {
            r_out.push(Series::new(
                format!("pingpong_rtt_throughput_{size}"),
                native::pingpong(pair, hz, counts.size_pingpong_rounds)
                    .with_context(|| format!("ping-pong before the runs of {size} B"))?,
            ));
            part.add("placement_by_size");
            // Each order first at every other size: neither always runs
            // on the CPUs the other has just warmed.
            let mut orders = native::SPSC_REUSE;
            if f_out.len() % 2 == 1 {
                orders.reverse();
            }
            let mut reps = Vec::new();
            for reuse in orders {
                reps.extend(
                    native::spsc(pair, hz, size, counts.spsc_frames, counts.spsc_reps, reuse)
                        .with_context(|| format!("SPSC queue of {size} B ({reuse:?})"))?,
                );
            }
            f_out.push(reps);
            part.add("spsc_floor");
            done += 1;
            bar.set(done);
            for path in target::Path::ALL {
                let spec = |pace, moderation| target::Spec {
                    path,
                    size,
                    count: counts.throughput_frames,
                    pace,
                    moderation,
                };
                let what = || format!("{} B through the {} path", size, path.as_str());
                let lossless = target::run(
                    pair,
                    hz,
                    spec(target::Pace::Lossless, mint_traffic::Moderation::Napi),
                    next_run(),
                )
                .with_context(|| format!("lossless: {}", what()))?;
                let back = target::run(
                    pair,
                    hz,
                    spec(target::Pace::BackToBack, mint_traffic::Moderation::None),
                    next_run(),
                )
                .with_context(|| format!("back to back: {}", what()))?;
                d_out.push((lossless, back));
                part.add("delivery");
                done += 1;
                bar.set(done);
            }
        }
        (spsc, deliveries, throughput_rtt) = (Some(f_out), Some(d_out), Some(r_out));
    }
    preempted.extend(part.parts);
    let mut success_discarded = Vec::new();
    let success = if experiment.includes(Experiment::SuccessRate) {
        let bar = Bar::new(
            "success rate",
            (SUCCESS_SIZES.len() * (1 + MODERATIONS.len() * CYCLE_INTERVALS_NS.len())) as u64,
            "runs",
        );
        let mut done = 0;
        let mut out = Vec::new();
        let mut part_preempted = [0u64; 2];
        let mut retried = Vec::new();
        for &size in &SUCCESS_SIZES {
            let spec = |pace, moderation| target::Spec {
                path: target::Path::UdpChecked,
                size,
                count: counts.cycle_frames,
                pace,
                moderation,
            };
            let handling = target::run(
                pair,
                hz,
                spec(target::Pace::Lossless, mint_traffic::Moderation::Napi),
                next_run(),
            )
            .with_context(|| format!("the handling time at {size} B"))?;
            done += 1;
            bar.set(done);
            let mut cycles = Vec::new();
            for m in MODERATIONS {
                for &interval in &CYCLE_INTERVALS_NS {
                    let pace = if interval == 0 {
                        target::Pace::BackToBack
                    } else {
                        target::Pace::Interval(interval)
                    };
                    let (cycle, discarded) = cycle(pair, hz, spec(pace, m), &mut part_preempted)
                        .with_context(|| {
                            format!("the cycle at {size} B, {interval} ns, moderation {m}")
                        })?;
                    cycles.push(cycle);
                    retried.extend(discarded);
                    done += 1;
                    bar.set(done);
                }
            }
            out.push((handling, cycles));
        }
        let [s, t] = native::take_preemptions();
        preempted.push((
            "success_rate",
            [part_preempted[0] + s, part_preempted[1] + t],
        ));
        success_discarded = retried;
        Some(out)
    } else {
        None
    };
    let latency = if experiment.includes(Experiment::Latency) {
        let _bar = Bar::new("latency", 1, "run");
        let spec = target::Spec {
            path: target::Path::UdpChecked,
            size: LATENCY_SIZE,
            count: counts.latency_frames,
            pace: target::Pace::Interval(LATENCY_INTERVAL_NS),
            moderation: mint_traffic::Moderation::None,
        };
        let run = target::run(pair, hz, spec, next_run()).context("the latency run")?;
        preempted.push(("latency", native::take_preemptions()));
        Some(run)
    } else {
        None
    };
    let rtt_after = {
        let _bar = Bar::new("placement", 1, "ping-pong");
        native::pingpong(pair, hz, counts.pingpong_rounds).context("ping-pong after")?
    };
    preempted.push(("placement_after", native::take_preemptions()));
    Ok(Measured {
        pair,
        counts,
        timer: Series::new("timer_overhead", timer),
        sends,
        rtt_before: Series::new("pingpong_rtt", rtt_before),
        rtt_after: Series::new("pingpong_rtt_after", rtt_after),
        copies,
        send_rtt,
        throughput_rtt,
        spsc,
        deliveries,
        success,
        success_discarded,
        latency,
        preempted,
        steal_ms: None,
    })
}

/// `--out` (or the default), claimed for this run, with its `raw/`.
pub(super) fn claim_out(args: &BenchArgs) -> Result<crate::preflight::LogDir> {
    let out = crate::preflight::LogDir::claim_as(args.out.as_deref(), "--out", "bench-")?;
    let raw = out.path.join("raw");
    std::fs::create_dir_all(&raw).with_context(|| {
        format!(
            "--out {}: cannot create {}",
            out.path.display(),
            raw.display()
        )
    })?;
    Ok(out)
}

/// Attempts at one success-rate cycle at most.
pub const CYCLE_ATTEMPTS: usize = 3;

/// One success-rate cycle. A cycle that lost frames while the host took
/// either CPU away from its thread (an involuntary switch, or steal time)
/// measured the host, not the target: it is run again, at most
/// [`CYCLE_ATTEMPTS`] times in all. Returns the kept run and the
/// discarded ones (their rows stay in raw/runs.csv); adds the cycle's
/// preemptions to `preempted`.
fn cycle(
    pair: Pair,
    hz: u64,
    spec: target::Spec,
    preempted: &mut [u64; 2],
) -> Result<(target::RunOut, Vec<target::RunOut>)> {
    let mut discarded = Vec::new();
    loop {
        let steal_before = steal_ticks(pair);
        let before = native::take_preemptions();
        let mut run = target::run(pair, hz, spec, next_run())?;
        let switches = native::take_preemptions();
        for i in 0..2 {
            preempted[i] += before[i] + switches[i];
        }
        let stolen = match (steal_before, steal_ticks(pair)) {
            (Some(a), Some(b)) => b[0] > a[0] || b[1] > a[1],
            _ => false,
        };
        let disturbed = switches.iter().any(|&n| n > 0) || stolen;
        run.attempt = discarded.len() + 1;
        run.disturbed = disturbed;
        if run.delivered == run.sent || !disturbed || discarded.len() + 1 >= CYCLE_ATTEMPTS {
            return Ok((run, discarded));
        }
        discarded.push(run);
    }
}

/// Preemptions per part of the run, summed over the sizes the parts
/// alternate between, in the order each part first ran.
#[derive(Default)]
struct Preemptions {
    parts: Vec<(&'static str, [u64; 2])>,
}

impl Preemptions {
    /// Adds the preemptions since the last take to `part`.
    fn add(&mut self, part: &'static str) {
        let [s, t] = native::take_preemptions();
        match self.parts.iter_mut().find(|(p, _)| *p == part) {
            Some((_, n)) => {
                n[0] += s;
                n[1] += t;
            }
            None => self.parts.push((part, [s, t])),
        }
    }
}

/// A fresh run id for each native run (the target refuses frames of
/// another run as stale).
fn next_run() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_pairs_parse_and_refuse() {
        assert_eq!(
            cpu_pair("0,1"),
            Ok(Pair {
                support: 0,
                target: 1
            })
        );
        assert!(cpu_pair("1,1").unwrap_err().contains("two different CPUs"));
        assert!(cpu_pair("1").unwrap_err().contains("not two CPUs"));
        assert!(cpu_pair("-1,2").unwrap_err().contains("non-negative"));
    }

    #[test]
    fn quick_is_estimated_well_under_a_minute() {
        let quick = Counts::new(true).estimate(Experiment::All);
        assert!(quick < Duration::from_secs(50), "{quick:?}");
        assert!(Counts::new(false).estimate(Experiment::All) > quick);
    }
}
