//! mint-support: the debug-support mechanism's per-frame work, as one
//! function the node kernel and the native benchmark both run.
//!
//! The support node plays an e1000 for the target's driver (seeds/003):
//! for each frame it stamps the run's template, copies the frame into the
//! driver's RX buffer, writes the descriptor back and updates the
//! registers (the e1000 crate's [`DeviceModel`]), and, when the driver's
//! interrupt is due and not already posted, stamps and raises it.
//! [`Sender::send`] is exactly that, and its ticks are the paper's "send
//! processing time".
//!
//! What differs between the kernel and a native run sits behind traits:
//!
//! - [`Signal`]: how the target is told (the kernel sends an IPI; natively
//!   a doorbell line the target thread polls);
//! - [`Clock`]: the TSC (the kernel's `rdtsc`, the host's);
//! - the memory: the e1000 crate's `RegisterAccess`, `DescriptorRing`
//!   and `DmaMemory`, with backends here over shared-memory atomics
//!   ([`backend`]) and, in the kernel, the DMA window's volatile bytes;
//! - [`Lines`]: the shared lines a send touches besides the device (the
//!   posted flag, the signal stamp, the run's counters), taken from the
//!   shared region's [`DebugNic`] or from a host copy of that layout.
//!
//! [`host`] (feature `host`) lays the same memory out on the host, for the
//! native benchmark and the host tests of both sides.
//!
//! What it does not do: wait for deadlines, keep raw samples, talk to the
//! target about the run (arming, settling). The callers do, around
//! [`Sender::send`].

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(test, feature = "host"))]
extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod backend;
#[cfg(any(test, feature = "host"))]
pub mod host;

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use mint_abi::debug_nic::{
    DELIVER_APP, DELIVER_DRIVER, MODERATION_ITR, MODERATION_NAPI, MODERATION_NONE, RunControl,
};
use mint_abi::debug_nic::{DebugNic, DropReason};
use mint_e1000::{
    DescriptorRing, DeviceModel, DmaMemory, Register, RegisterAccess, RxDrop, WritebackFault,
};
use mint_traffic::{Delivery, FrameTemplate, GenConfig, Moderation, PacketKind};

/// How the support side tells the target that its interrupt is due.
pub trait Signal {
    /// Raises the target's interrupt (sends the IPI, rings the doorbell).
    fn raise(&mut self);
}

/// The clock sends are timed with (the TSC).
pub trait Clock {
    /// Now, in ticks.
    fn now(&self) -> u64;
    /// Ticks per second (the device's interrupt throttling is in ns).
    fn hz(&self) -> u64;
}

/// Fault injection for one run; 0 = off for each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every Nth descriptor write-back corrupted.
    pub corrupt_every: u32,
    /// Every Nth signal not raised although the posted flag was set (lost).
    pub forget_ipi_every: u32,
    /// Every Nth frame stamped with the previous run's id.
    pub stale_every: u32,
}

/// How long before the next send's deadline the device's read-ahead runs
/// when the caller says when that is ([`Sender::tick_before`]). Right after
/// a frame the target is still handling it: its refill of the descriptor
/// before the next one (in the same line three times in four) takes back
/// the line the read-ahead just took, and its reads compete with the
/// prefetches. A microsecond before the next frame that is over, and the
/// lines still have time to arrive.
pub const READ_AHEAD_LEAD_NS: u64 = 1_000;

/// The shared lines a send touches besides the device's registers, ring
/// and buffers.
#[derive(Clone, Copy)]
pub struct Lines<'a> {
    /// The posted-interrupt flag (set by the support side on the edge that
    /// raises the signal, cleared by the target's handler).
    pub posted: &'a AtomicU32,
    /// The TSC of the last signal raised (the target takes it to time
    /// signal-to-handler latency).
    pub signal_stamp: &'a AtomicU64,
    /// Frames handed to the device.
    pub sent: &'a AtomicU64,
    /// Signals raised.
    pub signals: &'a AtomicU64,
    /// Signals deliberately not raised (fault injection).
    pub signals_forgotten: &'a AtomicU64,
    /// Drops by [`DropReason`].
    pub drops: &'a [AtomicU64; DropReason::COUNT],
}

impl<'a> Lines<'a> {
    /// The lines of the shared region's debug NIC.
    pub fn of(nic: &'a DebugNic) -> Lines<'a> {
        Lines {
            posted: &nic.irq_pending.0,
            signal_stamp: &nic.ipi_sent_tsc.0,
            sent: &nic.run.sent,
            signals: &nic.run.ipis_sent,
            signals_forgotten: &nic.run.ipis_forgotten,
            drops: &nic.run.drops,
        }
    }
}

/// The run's counters a sender keeps: its own until
/// [`Sender::publish`] stores them into the shared [`Lines`] (they share
/// cache lines with counters the target writes, and the target reads them
/// only once the run is injected: a store per frame would move those lines
/// between the two cores for nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames handed to the device.
    pub sent: u64,
    /// Signals raised.
    pub signals: u64,
    /// Signals deliberately not raised (fault injection).
    pub signals_forgotten: u64,
    /// No free descriptor.
    pub ring_full: u64,
    /// Refused by the device otherwise.
    pub device_refused: u64,
}

/// The device model's read-aheads of the next frame's place (one per
/// frame placed with a free descriptor after it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadAheads {
    /// Run as idle work ([`Sender::tick`], [`Sender::tick_before`]): in
    /// no send's ticks.
    pub idle: u64,
    /// Their ticks in all.
    pub idle_ticks: u64,
    /// Run at the start of the next send, no tick having run before it:
    /// in that send's ticks.
    pub in_sends: u64,
}

/// The device's memory: its registers, the driver's descriptor ring and
/// the DMA memory the ring's buffers are in.
pub struct Device<'a, R: ?Sized, D: ?Sized, M: ?Sized> {
    /// The register page.
    pub regs: &'a R,
    /// The driver's RX descriptor ring.
    pub ring: &'a D,
    /// The memory the descriptors' buffer addresses name.
    pub dma: &'a M,
}

/// What one send did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The send's first stamp: the frame's injection TSC, in its payload.
    pub inject_tsc: u64,
    /// Ticks of the whole send (stamp, copy, write-back, registers, signal).
    pub ticks: u64,
    /// The part spent raising the signal: from its stamp to the send's
    /// end (0 when none was raised).
    pub signal_ticks: u64,
    /// Whether the device took the frame (else a drop was counted).
    pub placed: bool,
}

/// The support side of one run: sends frames into the driver's ring.
pub struct Sender<'a, R: ?Sized, D: ?Sized, M: ?Sized, S, C> {
    device: Device<'a, R, D, M>,
    lines: Lines<'a>,
    signal: S,
    clock: C,
    template: &'a mut FrameTemplate,
    run_tag: u8,
    faults: Faults,
    model: DeviceModel,
    /// Posted-flag 0 -> 1 edges, for forgetting every Nth signal.
    edges: u32,
    /// When the last signal was raised (ITR's window starts there).
    last_raise: u64,
    /// An interrupt the device asked for inside ITR's window, raised once
    /// the window has passed ([`Sender::tick`]).
    deferred: bool,
    /// Interrupts the device deferred (ITR), this run.
    throttled: u64,
    /// The device's read-aheads between frames.
    read_aheads: ReadAheads,
    /// [`READ_AHEAD_LEAD_NS`] in clock ticks.
    lead_ticks: u64,
    counters: Counters,
}

impl<'a, R, D, M, S, C> Sender<'a, R, D, M, S, C>
where
    R: RegisterAccess + ?Sized,
    D: DescriptorRing + ?Sized,
    M: DmaMemory + ?Sized,
    S: Signal,
    C: Clock,
{
    /// A sender of `template`'s frames, each carrying `run_tag` (the low
    /// byte of the run's id; stale frames the previous one's).
    pub fn new(
        device: Device<'a, R, D, M>,
        lines: Lines<'a>,
        signal: S,
        clock: C,
        template: &'a mut FrameTemplate,
        run_tag: u8,
        faults: Faults,
    ) -> Self {
        template.set_run(run_tag);
        let lead_ticks =
            (u128::from(READ_AHEAD_LEAD_NS) * u128::from(clock.hz()) / 1_000_000_000) as u64;
        Sender {
            device,
            lines,
            signal,
            clock,
            template,
            run_tag,
            faults,
            model: DeviceModel::new(),
            edges: 0,
            last_raise: 0,
            deferred: false,
            throttled: 0,
            read_aheads: ReadAheads::default(),
            lead_ticks,
            counters: Counters::default(),
        }
    }

    /// The device model's statistics.
    pub fn model(&self) -> &DeviceModel {
        &self.model
    }

    /// Sends frame `seq`: stamps it with the clock, places it in the
    /// driver's ring (or counts why not: no free descriptor is `RingFull`,
    /// anything else the device refuses `DeviceRefused`), raises the
    /// signal when the device asks for the interrupt and it is not already
    /// posted, and counts the frame as sent.
    pub fn send(&mut self, seq: u32) -> Sent {
        let t0 = self.clock.now();
        // The last frame's read-ahead, when no idle work ran it since:
        // part of this send, then (its ticks are the send's, not counted
        // among the idle ones).
        {
            let Device { regs, ring, dma } = self.device;
            if self.model.read_ahead(regs, ring, dma) {
                self.read_aheads.in_sends += 1;
            }
        }
        // The posted flag is read after the frame is in place: start
        // bringing its line (the target writes it) now.
        mint_volatile::prefetch_read(self.lines.posted);
        let nth = |every: u32| every > 0 && (seq.wrapping_add(1)).is_multiple_of(every);
        let frame = if nth(self.faults.stale_every) {
            self.template
                .stamp_own_as(self.run_tag.wrapping_sub(1), seq, t0)
        } else {
            self.template.stamp_own(seq, t0)
        };
        // Every Nth write-back is corrupted, cycling through the kinds a
        // driver must refuse.
        let corrupt_every = self.faults.corrupt_every;
        let fault = nth(corrupt_every).then(|| {
            WritebackFault::ALL[(seq / corrupt_every) as usize % WritebackFault::ALL.len()]
        });
        let Device { regs, ring, dma } = self.device;
        // The signal's stamp, when one was raised: the send's end reading
        // closes its part too (one clock reading fewer per send).
        let (raised_at, placed) = match self.model.receive_with_fault(regs, ring, dma, frame, fault)
        {
            Ok(r) if r.raise_interrupt => (self.request(), true),
            Ok(_) => (None, true),
            Err(drop) => {
                match drop {
                    RxDrop::NoDescriptor { .. } => self.counters.ring_full += 1,
                    _ => self.counters.device_refused += 1,
                }
                (
                    if drop.raise_interrupt() {
                        self.request()
                    } else {
                        None
                    },
                    false,
                )
            }
        };
        let t1 = self.clock.now();
        self.counters.sent += 1;
        Sent {
            inject_tsc: t0,
            ticks: t1.wrapping_sub(t0),
            signal_ticks: raised_at.map_or(0, |t| t1.wrapping_sub(t)),
            placed,
        }
    }

    /// The run's counters so far (not yet in the shared lines until
    /// [`publish`](Self::publish)).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Stores the run's counters into the shared lines (the sender is
    /// their only writer; the run's configuration zeroed them). The
    /// callers publish before they mark the run injected, and may publish
    /// as often as they like before (a progress report).
    pub fn publish(&self) {
        let c = &self.counters;
        let l = &self.lines;
        l.drops[DropReason::RingFull as usize].store(c.ring_full, Ordering::Relaxed);
        l.drops[DropReason::DeviceRefused as usize].store(c.device_refused, Ordering::Relaxed);
        l.signals.store(c.signals, Ordering::Relaxed);
        l.signals_forgotten
            .store(c.signals_forgotten, Ordering::Relaxed);
        l.sent.store(c.sent, Ordering::Release);
    }

    /// Interrupts the device deferred for ITR's window so far.
    pub fn throttled(&self) -> u64 {
        self.throttled
    }

    /// Whether an interrupt waits for ITR's window to pass.
    pub fn deferred(&self) -> bool {
        self.deferred
    }

    /// The device's read-aheads so far.
    pub fn read_aheads(&self) -> &ReadAheads {
        &self.read_aheads
    }

    /// The device model's read-ahead of the next frame's descriptor and
    /// buffer (`DeviceModel::read_ahead`), with ICR and the posted flag
    /// taken for writing, once per frame placed, timed.
    fn idle_read_ahead(&mut self) {
        if !self.model.reads_ahead() {
            return;
        }
        let t = self.clock.now();
        let Device { regs, ring, dma } = self.device;
        if self.model.read_ahead(regs, ring, dma) {
            // The posted flag, which the send's signalling reads and writes
            // after its copy and the target's handler cleared: taken here, not
            // in the send's time (the device's read-ahead takes ICR).
            mint_volatile::prefetch_write(self.lines.posted);
            self.read_aheads.idle += 1;
            self.read_aheads.idle_ticks += self.clock.now().wrapping_sub(t);
        }
    }

    /// The device's timer and idle work: first an interrupt ITR deferred,
    /// raised once its window has passed, then the read-ahead of the next
    /// frame's place (once per frame). The caller's loop calls it between
    /// sends (while it waits for a deadline or for room) and after the
    /// last, until [`deferred`](Self::deferred) is false. Returns the ticks
    /// spent raising (0 if it did not).
    pub fn tick(&mut self) -> u64 {
        let raised = self.itr_tick();
        self.idle_read_ahead();
        raised
    }

    /// As [`tick`](Self::tick), for a caller that waits for the next
    /// send's deadline, `next_send` on the clock: the read-ahead waits
    /// until [`READ_AHEAD_LEAD_NS`] before it (at once when that is
    /// nearer; a send with none before it runs it itself).
    pub fn tick_before(&mut self, next_send: u64) -> u64 {
        let raised = self.itr_tick();
        if self.model.reads_ahead() && next_send.saturating_sub(self.clock.now()) <= self.lead_ticks
        {
            self.idle_read_ahead();
        }
        raised
    }

    /// ITR's timer: raises an interrupt deferred for its window once the
    /// window has passed; the ticks spent raising (0 if it did not).
    fn itr_tick(&mut self) -> u64 {
        if self.deferred && !self.in_itr_window() {
            self.deferred = false;
            self.raise().map_or(0, |t| self.clock.now().wrapping_sub(t))
        } else {
            0
        }
    }

    /// The ticks of ITR's interval (the driver programs it; 0 = off).
    fn itr_ticks(&self) -> u64 {
        let units = u64::from(self.device.regs.read(Register::ITR) & 0xFFFF);
        (u128::from(units) * 256 * u128::from(self.clock.hz()) / 1_000_000_000) as u64
    }

    /// Whether the last signal was raised less than ITR's interval ago.
    fn in_itr_window(&self) -> bool {
        let itr = self.itr_ticks();
        itr != 0 && self.last_raise != 0 && self.clock.now().wrapping_sub(self.last_raise) < itr
    }

    /// The device asks for its interrupt: raised now, or, inside ITR's
    /// window, deferred (the causes stay in ICR; one interrupt takes them
    /// all). The stamp of the signal, if one was raised.
    fn request(&mut self) -> Option<u64> {
        if self.in_itr_window() {
            if !self.deferred {
                self.throttled += 1;
            }
            self.deferred = true;
            return None;
        }
        self.deferred = false;
        self.raise()
    }

    /// Raises the signal on the posted flag's 0 -> 1 edge (or "loses" every
    /// Nth, fault injection); the signal's stamp (the clock just before
    /// it), if it raised one.
    fn raise(&mut self) -> Option<u64> {
        // Read before the locked exchange: while the flag is up (the
        // target has not taken the last signal yet) this costs no
        // ownership of the line.
        if self.lines.posted.load(Ordering::Acquire) != 0
            || self.lines.posted.swap(1, Ordering::AcqRel) != 0
        {
            return None;
        }
        self.edges = self.edges.wrapping_add(1);
        let forget = self.faults.forget_ipi_every;
        if forget > 0 && self.edges.is_multiple_of(forget) {
            self.counters.signals_forgotten += 1;
            return None;
        }
        let t = self.clock.now();
        self.last_raise = t;
        self.lines.signal_stamp.store(t, Ordering::Release);
        self.signal.raise();
        self.counters.signals += 1;
        Some(t)
    }
}

/// Writes run `run_id` of `cfg` into a run control, its counters cleared
/// (the phase is the caller's to set: every run starts Configured once
/// the rest is in place). `dump_samples`: the receiver keeps and prints
/// its raw samples at the end.
pub fn configure(ctl: &RunControl, cfg: &GenConfig, run_id: u32, dump_samples: bool) {
    ctl.reset_counters();
    ctl.size.store(cfg.size, Ordering::Relaxed);
    ctl.count.store(cfg.count, Ordering::Relaxed);
    ctl.kind.store(
        matches!(cfg.kind, PacketKind::Raw) as u32,
        Ordering::Relaxed,
    );
    ctl.seed.store(cfg.seed, Ordering::Relaxed);
    ctl.dump_samples
        .store(u32::from(dump_samples), Ordering::Relaxed);
    let (moderation, itr_ns) = match cfg.moderation {
        Moderation::None => (MODERATION_NONE, 0),
        Moderation::Itr { ns } => (MODERATION_ITR, ns),
        Moderation::Napi => (MODERATION_NAPI, 0),
    };
    ctl.moderation.store(moderation, Ordering::Relaxed);
    ctl.itr_ns.store(itr_ns, Ordering::Relaxed);
    ctl.deliver.store(
        match cfg.deliver {
            Delivery::App => DELIVER_APP,
            Delivery::Driver => DELIVER_DRIVER,
        },
        Ordering::Relaxed,
    );
    ctl.run_id.store(run_id, Ordering::Relaxed);
}

#[cfg(test)]
mod tests;
