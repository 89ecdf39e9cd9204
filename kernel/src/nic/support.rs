//! The debug-support mechanism of the support node: it plays the e1000 for
//! the target's driver (the e1000 crate's `DeviceModel` over the shared
//! register page and the driver's ring in the DMA window) and runs the
//! interrupt generator: frames built once per run, stamped per packet,
//! injected at TSC deadlines, each followed by a posted-style IPI.
//!
//! Fault injection ([`Faults`]): with `corrupt_every = N`, every Nth frame
//! gets a corrupted descriptor write-back (zero length, oversize, no EOP,
//! error bits in turn), which the driver must count and survive; with
//! `forget_ipi_every = N`, every Nth IPI is "lost" (the posted flag is set,
//! the IPI never sent), which the target's timer-tick fallback must
//! recover; with `stale_every = N`, every Nth frame carries the previous
//! run's id, which the target must count as `stale_run`, never deliver.
//!
//! Every wait on the target has an absolute TSC deadline and, when it
//! expires, says what it waited for.
//!
//! Send processing time per packet is the TSC around exactly the
//! mechanism's work: stamp, copy into the RX buffer, descriptor write-back,
//! register updates, IPI request. That per-frame work is
//! `mint_support::Sender::send`, the same function `mint bench --native`
//! runs on the host; this module gives it the IPI ([`Ipi`]), the TSC
//! ([`Tsc`]) and the shared region's memory, and does the rest of a run:
//! arming, deadlines, raw samples, progress, settling.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use mint_abi::debug_nic::RunPhase;
use mint_abi::{ApicId, NodeId, Vector};
use mint_e1000::{Register, RegisterAccess};
pub use mint_support::Faults;
use mint_support::{Device, Lines, Sender};
use mint_traffic::{Endpoints, FrameTemplate, GenConfig, Schedule};

use super::shared_backend::{self, AtomicRing};
use crate::arch::{apic, cpu};
use crate::node;
use crate::shared;

/// How long the target may take to arm, and to account for a run after the
/// last injection without making any progress.
pub(crate) const ARM_TIMEOUT_MS: u64 = 3_000;
pub(crate) const SETTLE_TIMEOUT_MS: u64 = mint_abi::debug_nic::RUN_STUCK_MS + 2_000;
/// However much progress it makes, the target has this long after the last
/// injection to complete the run: at most its ring, its socket buffers and
/// its UDP socket (under a thousand frames) are left to account for.
pub(crate) const SETTLE_DEADLINE_MS: u64 = 60_000;

/// The support node's signal: the NIC's vector, by IPI, to the target.
/// The vector is the one the target published (`NodeSlot::nic_vector`: a
/// Linux node's module takes one from Linux), else `NIC_VECTOR`.
struct Ipi(ApicId, Vector);

impl mint_support::Signal for Ipi {
    fn raise(&mut self) {
        apic::send_ipi(self.0, self.1);
    }
}

/// The support node's clock: its TSC.
struct Tsc;

impl mint_support::Clock for Tsc {
    fn now(&self) -> u64 {
        cpu::rdtsc()
    }
    fn hz(&self) -> u64 {
        node::tsc_hz()
    }
}

/// What one run measured on the support node.
pub struct RunResult {
    pub run_id: u32,
    /// TSC ticks of each packet's send processing.
    pub send_ticks: Vec<u64>,
    /// The part of each send spent requesting the IPI (0 when the posted
    /// flag was already set and no IPI was sent).
    pub ipi_request_ticks: Vec<u64>,
    /// Each frame's injection TSC (stamped in its payload).
    pub inject_tsc: Vec<u64>,
    /// TSC ticks from the first deadline to the end of the last send.
    pub inject_span: u64,
    /// `mint_traffic::schedule_digest` of the offsets this run waited for.
    pub schedule_digest: u64,
    pub completed: bool,
    /// Interrupts the device deferred inside ITR's window.
    pub throttled: u64,
    /// Why the support node stopped waiting for Complete, if it did.
    pub incomplete: Option<String>,
}

/// Runs one generator run against the driver on `target`.
pub fn run(
    cfg: &GenConfig,
    target: NodeId,
    dump_samples: bool,
    faults: Faults,
    shared_phys: u64,
    shared_size: u64,
) -> Result<RunResult, String> {
    cfg.validate().map_err(|e| alloc::format!("gen: {e}"))?;
    let nic = &shared::region().debug_nic;
    let ctl = &nic.run;
    if nic.driver_ready.load(Ordering::Acquire) != u32::from(target.0) + 1 {
        return Err(alloc::format!("gen: no e1000 driver attached on {target}"));
    }
    // Armed or Refused left over from a run that gave up waiting count as
    // idle: the target re-arms for each Configured.
    if !matches!(
        ctl.phase(),
        Some(RunPhase::Idle | RunPhase::Complete | RunPhase::Armed | RunPhase::Refused)
    ) {
        return Err(String::from("gen: a run is already in progress"));
    }
    // Raw samples for every frame, reserved before anything is sent.
    let frames = cfg.count as usize;
    let free = crate::mem::heap_free();
    let mut send_ticks = Vec::new();
    let mut ipi_request_ticks = Vec::new();
    let mut inject_tsc = Vec::new();
    for v in [&mut send_ticks, &mut ipi_request_ticks, &mut inject_tsc] {
        v.try_reserve_exact(frames).map_err(|_| {
            alloc::format!(
                "gen: {frames} frames need {} MiB of node 0's memory for raw samples; {} MiB are free",
                (frames * 24) >> 20,
                free >> 20
            )
        })?;
    }

    // Configure and wait for the target to arm.
    let run_id = ctl.run_id.load(Ordering::Relaxed).wrapping_add(1);
    configure(ctl, cfg, run_id, dump_samples);
    // A run abandoned with the posted flag set (its IPI lost, or the target
    // gone before its handler ran) would keep this run from sending any
    // IPI: start from a clear flag and no IPI stamp.
    nic.irq_pending.0.store(0, Ordering::Release);
    nic.ipi_sent_tsc.0.store(0, Ordering::Release);
    ctl.set_phase(RunPhase::Configured);
    let answered = || matches!(ctl.phase(), Some(RunPhase::Armed | RunPhase::Refused));
    if !wait_for(answered, ARM_TIMEOUT_MS) {
        ctl.set_phase(RunPhase::Idle);
        return Err(alloc::format!(
            "gen: {target} did not arm within {ARM_TIMEOUT_MS} ms"
        ));
    }
    if ctl.phase() == Some(RunPhase::Refused) {
        return Err(alloc::format!(
            "gen: {target} refused the run: no memory for {frames} frames' raw samples (see its console)"
        ));
    }

    // The device's view of the driver's ring, validated once per run.
    let regs = shared_backend::registers();
    let dma = shared_backend::dma_window(shared_phys, shared_size);
    let ring_phys =
        u64::from(regs.read(Register::RDBAL)) | (u64::from(regs.read(Register::RDBAH)) << 32);
    let count = (regs.read(Register::RDLEN) / 16).min(u32::from(u16::MAX)) as u16;
    let ring = AtomicRing::in_window(&dma, ring_phys, count)
        .map_err(|e| alloc::format!("gen: the driver's ring is outside the DMA window: {e:?}"))?;

    let mut template = Box::new(
        FrameTemplate::from_config(cfg, &Endpoints::default())
            .map_err(|e| alloc::format!("gen: {e}"))?,
    );
    let tsc_hz = u128::from(node::tsc_hz());
    // Every frame carries the run's id (its low byte); stale frames the
    // previous run's.
    let mut sender = Sender::new(
        Device {
            regs: &regs,
            ring: &ring,
            dma: &dma,
        },
        Lines::of(nic),
        Ipi(
            node::apic_of(target),
            Vector(shared::slot(target).nic_vector()),
        ),
        Tsc,
        &mut template,
        run_id as u8,
        faults,
    );

    let start = cpu::rdtsc() + node::ms_to_ticks(1);
    let mut last_end = start;
    // For the host's progress bar: frames sent so far, about once a second,
    // outside the timed part of a send (the next deadline absorbs it).
    let mut next_progress = start + node::ms_to_ticks(1_000);
    let mut schedule_digest = mint_traffic::schedule::DIGEST_SEED;
    for (seq, offset_ns) in Schedule::new(cfg).enumerate() {
        schedule_digest = mint_traffic::schedule_digest_step(schedule_digest, offset_ns);
        let deadline = start + (u128::from(offset_ns) * tsc_hz / 1_000_000_000) as u64;
        while cpu::rdtsc() < deadline {
            // The device's ITR timer (an interrupt deferred inside its
            // window is raised once the window has passed), and its
            // read-ahead shortly before the frame.
            sender.tick_before(deadline);
            core::hint::spin_loop();
        }
        let sent = sender.send(seq as u32);
        let t1 = sent.inject_tsc + sent.ticks;
        send_ticks.push(sent.ticks);
        ipi_request_ticks.push(sent.signal_ticks);
        inject_tsc.push(sent.inject_tsc);
        last_end = t1;
        if dump_samples && t1 > next_progress {
            crate::println!("MINT-PROGRESS sent={}", seq + 1);
            next_progress = t1 + node::ms_to_ticks(1_000);
        }
    }
    // An interrupt ITR still defers after the last frame: raised when its
    // window passes (at most 65535 x 256 ns), as the device would.
    while sender.deferred() {
        sender.tick();
        core::hint::spin_loop();
    }
    let throttled = sender.throttled();
    // The sender's counters, into the run's lines before Injected (the
    // target reads them from then on).
    sender.publish();
    ctl.set_phase(RunPhase::Injected);

    // The target accounts for every frame, or stops waiting on its own; as
    // long as it makes progress, it is not stuck, up to an absolute
    // deadline.
    let incomplete = wait_while_progressing(
        || ctl.phase() == Some(RunPhase::Complete),
        || ctl.progress.load(Ordering::Acquire),
        SETTLE_TIMEOUT_MS,
        SETTLE_DEADLINE_MS,
    )
    .err()
    .map(|stall| {
        alloc::format!(
            "gen: stopped waiting for {target} to complete run {run_id} (phase Complete, after the last injection): {stall}"
        )
    });
    Ok(RunResult {
        run_id,
        send_ticks,
        ipi_request_ticks,
        inject_tsc,
        inject_span: last_end - start,
        schedule_digest,
        completed: incomplete.is_none(),
        throttled,
        incomplete,
    })
}

/// Why [`wait_while_progressing`] gave up.
pub(crate) enum Stall {
    /// The progress counter stood still for `ms`.
    NoProgress { ms: u64, progress: u64 },
    /// It kept moving, but the absolute deadline `ms` after the start passed.
    Deadline { ms: u64, progress: u64 },
}

impl core::fmt::Display for Stall {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Stall::NoProgress { ms, progress } => write!(
                f,
                "its progress counter stayed at {progress} frames for {ms} ms"
            ),
            Stall::Deadline { ms, progress } => write!(
                f,
                "its progress counter still moved (at {progress} frames), but the absolute deadline of {ms} ms passed"
            ),
        }
    }
}

/// Waits until `done`, giving up after `idle_ms` without any change in
/// `progress`, and at the latest `max_ms` after the call (an absolute TSC
/// deadline: a target that keeps counting but never finishes cannot hold
/// the support node for ever).
pub(crate) fn wait_while_progressing(
    done: impl Fn() -> bool,
    progress: impl Fn() -> u64,
    idle_ms: u64,
    max_ms: u64,
) -> Result<(), Stall> {
    let start = cpu::rdtsc();
    let absolute = start + node::ms_to_ticks(max_ms);
    let mut last = progress();
    let mut idle_deadline = start + node::ms_to_ticks(idle_ms);
    while !done() {
        let now_progress = progress();
        let now = cpu::rdtsc();
        if now_progress != last {
            last = now_progress;
            idle_deadline = now + node::ms_to_ticks(idle_ms);
        } else if now > idle_deadline {
            return Err(Stall::NoProgress {
                ms: idle_ms,
                progress: last,
            });
        }
        if now > absolute {
            return Err(Stall::Deadline {
                ms: max_ms,
                progress: last,
            });
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// Waits until `cond`, at most `ms`.
/// Appends the drops by reason as a JSON object's members
/// (`"ring_full":N,...`, every reason in `DropReason::ALL` order), each
/// count from `count`: one format for every run report.
pub fn drops_json(s: &mut String, count: impl Fn(mint_abi::debug_nic::DropReason) -> u64) {
    use core::fmt::Write;
    for (i, r) in mint_abi::debug_nic::DropReason::ALL.iter().enumerate() {
        let _ = write!(
            s,
            "{}\"{}\":{}",
            if i > 0 { "," } else { "" },
            r.as_str(),
            count(*r)
        );
    }
}

pub use mint_support::configure;

pub fn wait_for(cond: impl Fn() -> bool, ms: u64) -> bool {
    let deadline = cpu::rdtsc() + node::ms_to_ticks(ms);
    while !cond() {
        if cpu::rdtsc() > deadline {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}
