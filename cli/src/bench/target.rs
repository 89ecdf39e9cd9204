//! Whole runs natively: the support node's per-frame code
//! (`mint_support::Sender`) on the support CPU, the target's
//! (`mint_target`: the driver's interrupt work, the UDP stack, the
//! application's checks and accounting) on the target CPU, over host
//! memory laid out like the debug NIC's, a doorbell for the IPI.
//!
//! Both sides are the kernel's own code: `kernel/src/nic/support.rs` and
//! `kernel/src/nic/driver.rs` + `kernel/src/net` call the very same
//! functions. In their place here: the doorbell (user space cannot send
//! an IPI; the target thread polls a line where the kernel halts until
//! the interrupt), host memory as atomic words for the DMA window's
//! volatile bytes, and this module's loops for the kernel's main loops.
//!
//! A run goes as a kernel run does: the support side configures the
//! shared `RunControl`, the target arms it, frames are sent (on
//! deadlines, back to back, or lossless: the support side waits for a
//! free descriptor, which measures the pipeline's capacity), the target
//! finishes the run once every frame is delivered or dropped with a
//! counted reason. Elapsed time is taken on the support CPU alone, from
//! the first send to its seeing the run Complete, so the two cores' TSC
//! offset never enters a throughput. The signal-to-handler and
//! injection-to-application samples do cross cores (a stamp on one, the
//! reading on the other), as in the kernel.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use anyhow::{Result, anyhow, bail};
use mint_abi::debug_nic::{BUFFER_SIZE, DropReason, RunControl, RunPhase};
use mint_e1000::{Contiguous, Register, RegisterAccess, RegisterFile, RxRing};
use mint_support::backend::{AtomicRing, NicSlots, WordDma};
use mint_support::host::{HostNic, Line};
use mint_support::{Device, Faults, Sender};
use mint_target::{App, Host, Lines, Receiver, RxPath, Stats};
use mint_traffic::{Delivery, Endpoints, FrameTemplate, GenConfig, Moderation, PacketKind};

use super::clock::HostTsc;
use super::native::{Ctl, Pair, RING_SLOTS, on_pair};
use crate::os::rdtsc;

/// Socket buffers of the target's pool, as the kernel's driver has.
const SKB_SLOTS: usize = 512;
/// Physical addresses the host layout is named by (they only have to be
/// consistent: they go into RDBAL and the descriptors).
const RING_PHYS: u64 = 0x1000;
const DMA_PHYS: u64 = 0x100_0000;

/// What the target does with a frame after the driver cleaned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Counted at the driver, released at once: no stack, no check.
    Driver,
    /// Raw Ethernet, past the stack to the application's payload check.
    RawChecked,
    /// Through smoltcp's UDP/IPv4 stack to the application's check.
    UdpChecked,
}

impl Path {
    pub const ALL: [Path; 3] = [Path::Driver, Path::RawChecked, Path::UdpChecked];

    pub fn as_str(self) -> &'static str {
        match self {
            Path::Driver => "driver",
            Path::RawChecked => "raw-checked",
            Path::UdpChecked => "udp-checked",
        }
    }

    fn kind(self) -> PacketKind {
        match self {
            Path::RawChecked => PacketKind::Raw,
            Path::Driver | Path::UdpChecked => PacketKind::Udp,
        }
    }

    fn deliver(self) -> Delivery {
        match self {
            Path::Driver => Delivery::Driver,
            Path::RawChecked | Path::UdpChecked => Delivery::App,
        }
    }
}

/// How the support side paces its sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// One send every so many ns (absolute deadlines).
    Interval(u64),
    /// As fast as it can; a full ring drops (counted `ring_full`).
    BackToBack,
    /// As fast as the ring frees descriptors: nothing is dropped.
    Lossless,
}

/// One run.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub path: Path,
    pub size: usize,
    pub count: u32,
    pub pace: Pace,
    pub moderation: Moderation,
}

/// What one run gave: the run's own accounting (as the kernel publishes
/// it), the support CPU's elapsed ticks, the target's busy ticks, and the
/// raw samples.
pub struct RunOut {
    pub spec: Spec,
    pub sent: u64,
    pub delivered: u64,
    pub delivered_bytes: u64,
    pub drops: [u64; DropReason::COUNT],
    pub unaccounted: i64,
    /// Support CPU: first send to seeing the run Complete.
    pub elapsed_ticks: u64,
    /// Target CPU: time spent in the interrupt work and the stack, not
    /// waiting for the doorbell.
    pub busy_ticks: u64,
    /// The part of it in the driver's work (the interrupt, NAPI's polls):
    /// the rest is the stack and the application.
    pub driver_ticks: u64,
    /// Frames the target handled (delivered or refused by it).
    pub handled: u64,
    /// Signals (doorbells) the support side raised.
    pub signals: u64,
    /// Interrupts the target's handler took.
    pub interrupts: u64,
    /// Interrupts the device deferred for ITR's window.
    pub throttled: u64,
    /// The device's read-aheads of the next frame's place: in the support
    /// side's waits (`mint_support::Sender::tick`, in no send's ticks) and
    /// in sends that had no wait before them.
    pub read_aheads: mint_support::ReadAheads,
    /// Per signal: support's stamp to the target's handler entry.
    pub signal_to_handler: Vec<u64>,
    /// Per delivered frame: injection to the application (checked paths).
    pub inject_to_app: Vec<u64>,
    /// Per send: its ticks, and the part that raised the signal (0 where
    /// none was raised), on the support CPU.
    pub send_ticks: Vec<u64>,
    pub send_signal_ticks: Vec<u64>,
    /// Which attempt at this run it is (1 unless a cycle was run again).
    pub attempt: usize,
    /// Whether the host took either CPU away during it (set by the caller
    /// that checks; false otherwise).
    pub disturbed: bool,
}

impl RunOut {
    /// Delivered Gbps: delivered bytes over the elapsed time.
    pub fn gbps(&self, tsc_hz: f64) -> f64 {
        if self.elapsed_ticks == 0 {
            return f64::NAN;
        }
        self.delivered_bytes as f64 * 8.0 / (self.elapsed_ticks as f64 / tsc_hz) / 1e9
    }

    /// Delivered over sent (NaN when nothing was sent).
    pub fn success_rate(&self) -> f64 {
        if self.sent == 0 {
            return f64::NAN;
        }
        self.delivered as f64 / self.sent as f64
    }

    /// Target busy ticks per frame handled.
    pub fn handling_ticks(&self) -> f64 {
        if self.handled == 0 {
            return f64::NAN;
        }
        self.busy_ticks as f64 / self.handled as f64
    }
}

/// The debug NIC's memory on the host (`mint_support::host`, the layout
/// both sides' host tests use too), and what only a native run needs
/// beside it: the doorbell, and the support side's word that the run is
/// over.
struct Rig {
    nic: HostNic,
    doorbell: Line<AtomicU64>,
    /// The support side has seen the run Complete: the target stops.
    stop: Line<AtomicU32>,
}

impl Rig {
    fn new() -> Rig {
        Rig {
            nic: HostNic::new(RING_SLOTS as u16, RING_SLOTS * BUFFER_SIZE, DMA_PHYS),
            doorbell: Line(AtomicU64::new(0)),
            stop: Line(AtomicU32::new(0)),
        }
    }

    fn target_lines(&self) -> Lines<'_> {
        Lines {
            posted: &self.nic.posted.0,
            signal_stamp: &self.nic.signal_stamp.0,
            run: &self.nic.run.0,
        }
    }
}

/// The doorbell: the native stand-in for the IPI.
struct Doorbell<'a> {
    line: &'a AtomicU64,
    rung: u64,
}

impl mint_support::Signal for Doorbell<'_> {
    fn raise(&mut self) {
        self.rung += 1;
        self.line.store(self.rung, Ordering::Release);
    }
}

type Regs<'a> = RegisterFile<NicSlots<'a>>;

/// The target's memory and driver state, as the receiver's host.
struct Target<'a> {
    hz: u64,
    run: &'a RunControl,
    regs: &'a Regs<'a>,
    ring: &'a AtomicRing<'a>,
    dma: &'a WordDma<'a>,
    path: RxPath,
    /// Samples taken by `finished` (the run's end).
    inject_to_app: Vec<u64>,
    /// Ticks in the driver's work so far.
    driver_ticks: u64,
    finished: bool,
}

impl Host for Target<'_> {
    fn ms_to_ticks(&self, ms: u64) -> u64 {
        self.hz / 1000 * ms
    }

    fn ticks_to_us(&self, ticks: u64) -> u64 {
        (u128::from(ticks) * 1_000_000 / u128::from(self.hz.max(1))) as u64
    }

    fn discard_leftovers(&mut self) -> usize {
        self.path.discard(self.regs, self.ring, self.dma)
    }

    fn moderate(&mut self, m: Moderation) -> Result<(), &'static str> {
        self.path.moderate(self.regs, m);
        Ok(())
    }

    fn napi_poll(&mut self) -> usize {
        if !self.path.scheduled() {
            return 0;
        }
        let t0 = rdtsc();
        let n = self
            .path
            .napi_poll(self.run, self.regs, self.ring, self.dma);
        self.driver_ticks += rdtsc() - t0;
        n
    }

    fn reset_samples(&mut self, frames: usize) -> bool {
        self.path.samples.reset(frames).is_ok()
    }

    fn pending_completions(&self) -> bool {
        self.path.pending(self.ring)
    }

    fn finished(&mut self, app: &mut App, _ctl: &RunControl, _stats: &Stats, _completed: bool) {
        self.inject_to_app = std::mem::take(app.latency_mut());
        self.finished = true;
    }
}

impl Target<'_> {
    /// The interrupt, if the doorbell rang since `rung`: the driver's
    /// work until no completion is left (the kernel signals itself
    /// again instead). Returns whether it ran.
    fn interrupt(&mut self, rig: &Rig, rung: &mut u64) -> bool {
        let now = rig.doorbell.0.load(Ordering::Acquire);
        if now == *rung {
            return false;
        }
        *rung = now;
        let entry = rdtsc();
        let lines = rig.target_lines();
        while self
            .path
            .on_signal(entry, &lines, self.regs, self.ring, self.dma)
        {}
        self.driver_ticks += rdtsc() - entry;
        true
    }
}

/// One run of `spec` on the pair.
pub fn run(pair: Pair, tsc_hz: u64, spec: Spec, run_id: u32) -> Result<RunOut> {
    let rig = Rig::new();
    let regs = rig.nic.registers();
    let ring = rig.nic.ring();
    let dma = rig.nic.dma();
    let rx = rig
        .nic
        .driver_ring(RING_PHYS, BUFFER_SIZE)
        .map_err(|e| anyhow!("the driver's ring: {e:?}"))?;
    let (producer, consumer) = mint_skb::pool(SKB_SLOTS, BUFFER_SIZE);
    let cfg = GenConfig {
        size: spec.size as u32,
        count: spec.count,
        kind: spec.path.kind(),
        moderation: spec.moderation,
        deliver: spec.path.deliver(),
        ..GenConfig::default()
    };
    let mut template = Box::new(
        FrameTemplate::new(cfg.kind, cfg.size, &Endpoints::default(), cfg.seed)
            .map_err(|e| anyhow!("a {}-byte frame: {e}", spec.size))?,
    );
    let interval = match spec.pace {
        Pace::Interval(ns) => (u128::from(ns) * u128::from(tsc_hz) / 1_000_000_000) as u64,
        _ => 0,
    };
    let (rig, regs, ring, dma) = (&rig, &regs, &ring, &dma);
    let ctl = &rig.nic.run.0;
    let (
        (elapsed_ticks, (throttled, read_aheads), send_ticks, send_signal_ticks),
        (busy_ticks, driver_ticks, signal_to_handler, inject_to_app),
    ) = on_pair(
        pair,
        tsc_hz,
        move |c| {
            mint_support::configure(ctl, &cfg, run_id, false);
            ctl.set_phase(RunPhase::Configured);
            c.wait("the target to arm the run", || {
                ctl.phase() != Some(RunPhase::Configured)
            })?;
            if ctl.phase() != Some(RunPhase::Armed) {
                bail!("the target refused the run ({:?})", ctl.phase());
            }
            let mut sender = Sender::new(
                Device { regs, ring, dma },
                rig.nic.support_lines(),
                Doorbell {
                    line: &rig.doorbell.0,
                    rung: 0,
                },
                HostTsc(tsc_hz),
                &mut template,
                run_id as u8,
                Faults::default(),
            );
            let mut send_ticks = Vec::with_capacity(spec.count as usize);
            let mut send_signal_ticks = Vec::with_capacity(spec.count as usize);
            let start = rdtsc();
            for seq in 0..spec.count {
                // The device's ITR timer runs while the support side waits.
                match spec.pace {
                    Pace::Interval(_) => {
                        let deadline = start + interval * u64::from(seq);
                        while rdtsc() < deadline {
                            sender.tick_before(deadline);
                            std::hint::spin_loop();
                        }
                    }
                    Pace::BackToBack => {
                        sender.tick();
                    }
                    Pace::Lossless => c.wait("a free descriptor", || {
                        sender.tick();
                        regs.read(Register::RDH) != regs.read(Register::RDT)
                    })?,
                }
                let sent = sender.send(seq);
                send_ticks.push(sent.ticks);
                send_signal_ticks.push(sent.signal_ticks);
            }
            c.wait("ITR's last deferred interrupt", || {
                sender.tick();
                !sender.deferred()
            })?;
            let throttled = sender.throttled();
            let aheads = *sender.read_aheads();
            sender.publish();
            ctl.set_phase(RunPhase::Injected);
            c.wait("the run to complete", || {
                ctl.phase() == Some(RunPhase::Complete)
            })?;
            let end = rdtsc();
            rig.stop.0.store(1, Ordering::Release);
            Ok((
                end - start,
                (throttled, aheads),
                send_ticks,
                send_signal_ticks,
            ))
        },
        move |c| target_loop(c, rig, tsc_hz, (regs, ring, dma), rx, producer, consumer),
    )?;
    let drops = std::array::from_fn(|i| ctl.drops[i].load(Ordering::Acquire));
    let delivered = ctl.delivered.load(Ordering::Acquire);
    let refused_by_target: u64 = DropReason::ALL
        .iter()
        .filter(|r| !r.by_device())
        .map(|&r| drops[r as usize])
        .sum();
    Ok(RunOut {
        spec,
        sent: ctl.sent.load(Ordering::Acquire),
        delivered,
        delivered_bytes: ctl.delivered_bytes.load(Ordering::Acquire),
        drops,
        unaccounted: ctl.unaccounted(),
        elapsed_ticks,
        busy_ticks,
        driver_ticks,
        handled: delivered + refused_by_target,
        signals: ctl.ipis_sent.load(Ordering::Acquire),
        interrupts: ctl.interrupts.load(Ordering::Acquire),
        throttled,
        read_aheads,
        signal_to_handler,
        inject_to_app,
        send_ticks,
        send_signal_ticks,
        attempt: 1,
        disturbed: false,
    })
}

type Memory<'a> = (&'a Regs<'a>, &'a AtomicRing<'a>, &'a WordDma<'a>);

/// The target CPU's side of a run: the interrupt when the doorbell rings,
/// the receiver (the kernel's receive loop: on the driver-only path it
/// counts and releases each socket buffer) in between, until the support
/// side has seen the run Complete.
#[allow(clippy::too_many_arguments)]
fn target_loop(
    c: &Ctl,
    rig: &Rig,
    hz: u64,
    (regs, ring, dma): Memory<'_>,
    rx: RxRing<Contiguous>,
    producer: mint_skb::Producer,
    consumer: mint_skb::Consumer,
) -> Result<(u64, u64, Vec<u64>, Vec<u64>)> {
    let ctl = &rig.nic.run.0;
    let mut host = Target {
        hz,
        run: ctl,
        regs,
        ring,
        dma,
        path: RxPath::new(rx, producer),
        inject_to_app: Vec::new(),
        driver_ticks: 0,
        finished: false,
    };
    let mut rung = 0;
    let mut busy = 0u64;
    let mut receiver = Receiver::new(
        consumer,
        Endpoints::default().dst_mac,
        ctl,
        None,
        rdtsc,
        &host,
    )
    .map_err(|e| anyhow!("the target's receiver: {e}"))?;
    // The kernel's interrupt preempts its receive loop at once; here the
    // loop must come back to the doorbell itself, so with nothing to do it
    // only watches the doorbell, and steps the receiver (the run's arming
    // and end) every IDLE_STEP spins.
    const IDLE_STEP: u32 = 256;
    let mut idle = 0u32;
    c.wait("the run's end", || {
        let t0 = rdtsc();
        let irq = host.interrupt(rig, &mut rung);
        let due = irq || !receiver.idle() || host.path.scheduled() || {
            idle += 1;
            idle.is_multiple_of(IDLE_STEP)
        };
        let moved = due && receiver.step(&mut host);
        if irq || moved {
            idle = 0;
            busy += rdtsc() - t0;
        }
        rig.stop.0.load(Ordering::Acquire) != 0
    })?;
    if !host.finished {
        bail!("the target's receiver never finished the run");
    }
    let (_, ipi) = host.path.samples.take();
    Ok((
        busy,
        host.driver_ticks,
        ipi,
        std::mem::take(&mut host.inject_to_app),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> Option<Pair> {
        match crate::os::allowed_cpus().ok()?[..] {
            [a, b, ..] => Some(Pair {
                support: a,
                target: b,
            }),
            _ => None,
        }
    }

    #[test]
    fn every_path_accounts_for_every_frame() {
        let Some(pair) = pair() else { return };
        for size in [1514, 8192] {
            for path in Path::ALL {
                for moderation in [Moderation::None, Moderation::Napi] {
                    for pace in [Pace::Lossless, Pace::BackToBack, Pace::Interval(2_000)] {
                        let spec = Spec {
                            path,
                            size,
                            count: 2_000,
                            pace,
                            moderation,
                        };
                        let out = run(pair, 3_000_000_000, spec, 7).expect("run");
                        assert_eq!(out.sent, 2_000, "{spec:?}");
                        assert_eq!(out.unaccounted, 0, "{spec:?}");
                        let dropped: u64 = out.drops.iter().sum();
                        assert_eq!(out.delivered + dropped, 2_000, "{spec:?}");
                        if pace == Pace::Lossless && moderation == Moderation::Napi {
                            // NAPI leaves frames in the ring while the stack
                            // is behind; the support side waits for room.
                            assert_eq!(out.delivered, 2_000, "lossless drops nothing: {spec:?}");
                        }
                        assert!(out.elapsed_ticks > 0);
                        assert_eq!(out.send_ticks.len(), 2_000);
                        let samples = out.signal_to_handler.len() as u64;
                        assert!(
                            samples > 0 && samples <= out.signals,
                            "{spec:?}: {samples} samples, {} signals",
                            out.signals
                        );
                        if path != Path::Driver {
                            assert_eq!(out.inject_to_app.len() as u64, out.delivered, "{spec:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn itr_throttles_the_devices_interrupts() {
        let Some(pair) = pair() else { return };
        let spec = Spec {
            path: Path::Driver,
            size: 1514,
            count: 2_000,
            pace: Pace::Interval(1_000),
            moderation: Moderation::Itr { ns: 16_384 },
        };
        let out = run(pair, 3_000_000_000, spec, 9).expect("run");
        assert_eq!(out.unaccounted, 0);
        assert!(out.throttled > 0, "frames 1 us apart inside a 16 us window");
        // At most one interrupt per window (plus the first), whatever the
        // host's speed: 2000 frames 1 us apart span 2 ms at least.
        assert!(
            out.signals < out.sent,
            "{} signals for {} frames",
            out.signals,
            out.sent
        );
    }
}
