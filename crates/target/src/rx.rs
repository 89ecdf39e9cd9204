//! The driver's per-interrupt work, over any backend of the e1000 crate's
//! memory traits: what `kernel/src/nic/driver.rs` runs in its handlers and
//! the native benchmark runs on its target thread.
//!
//! The debug NIC's interrupt ([`RxPath::on_signal`]): clear the posted
//! flag before reading causes (anything raised later signals again, see
//! `mint_abi::debug_nic`), count the interrupt and its interval, take the
//! signal's stamp exactly once (signal-to-handler latency), read ICR,
//! clean completed descriptors into socket buffers (one copy per frame),
//! count what the driver refused. A real NIC's interrupt runs the same
//! [`RxPath::count_entry`] and [`RxPath::clean`].
//!
//! Interrupt moderation, chosen per run ([`RxPath::moderate`]): ITR is
//! the device's (the driver programs the register; the device model
//! defers interrupts inside its window); NAPI is the driver's: the
//! handler masks the device's causes (IMC) and schedules a poll, the
//! receive loop polls in budgets of at most [`NAPI_WEIGHT`] frames and no
//! more than the socket buffers free (so a slow stack leaves frames in
//! the ring, where the device counts them when it fills, instead of
//! dropping cleaned frames), and unmasks (IMS) once the ring is empty,
//! re-checking after the unmask so a frame completing in between is not
//! left without an interrupt.

use alloc::collections::TryReserveError;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use mint_abi::debug_nic::{DebugNic, DropReason, RunControl};
use mint_abi::debug_nic::{MODERATION_ITR, MODERATION_NAPI, MODERATION_NONE};
use mint_e1000::{
    Contiguous, DescriptorRing, DmaMemory, PollResult, Register, RegisterAccess, RxRing, RxSink,
    RxStatus,
};
use mint_skb::Producer;
use mint_traffic::Moderation;

/// Raw samples kept per metric and run.
pub const MAX_SAMPLES: usize = 1 << 20;
/// Frames one NAPI poll may clean (Linux's default weight).
pub const NAPI_WEIGHT: usize = 64;
/// Bytes one NAPI poll may copy into socket buffers. The stack reads a
/// poll's frames only after the poll, and copies each once more into its
/// socket: 64 frames of 16 KiB (1 MiB) are out of a core's L2 by then, and
/// both of those copies go to memory. Half of Zen 3's 512 KiB L2 keeps a
/// poll's frames and their socket copies in it (at 16 KiB: 16 frames a
/// poll; at 1.5 KiB the weight binds first). Measured natively at 16 KiB:
/// the UDP path's handling time per frame 5.3-6.5 us with the weight
/// alone, 2.7-4.1 us with 16 frames a poll.
pub const NAPI_BYTES: u64 = 256 * 1024;
/// Frames per pass inside one NAPI poll, between checks of its bytes.
const NAPI_PASS: usize = 4;

/// The run's moderation as the support side wrote it into the run
/// control; `None` for a value no support side writes (a corrupted or
/// newer peer).
pub fn moderation_of(run: &RunControl) -> Option<Moderation> {
    match run.moderation.load(Ordering::Acquire) {
        MODERATION_NONE => Some(Moderation::None),
        MODERATION_NAPI => Some(Moderation::Napi),
        MODERATION_ITR => {
            let ns = run.itr_ns.load(Ordering::Acquire);
            let m = Moderation::Itr { ns };
            use mint_traffic::config::{ITR_UNIT_NS, MAX_ITR_NS};
            ((ITR_UNIT_NS..=MAX_ITR_NS).contains(&ns) && ns.is_multiple_of(ITR_UNIT_NS))
                .then_some(m)
        }
        _ => None,
    }
}

/// Raw per-interrupt measurements of the current run.
pub struct IrqSamples {
    /// TSC ticks between consecutive interrupt handler entries.
    pub intervals: Vec<u64>,
    /// TSC ticks from the support side's signal to handler entry.
    pub ipi_latency: Vec<u64>,
    last_entry: u64,
}

impl IrqSamples {
    /// No samples, and no room for any.
    pub const fn new() -> IrqSamples {
        IrqSamples {
            intervals: Vec::new(),
            ipi_latency: Vec::new(),
            last_entry: 0,
        }
    }

    /// Clears the samples and makes room for `frames` of each (at most
    /// [`MAX_SAMPLES`]), so the handler never allocates.
    pub fn reset(&mut self, frames: usize) -> Result<(), TryReserveError> {
        let want = frames.min(MAX_SAMPLES);
        self.intervals.clear();
        self.ipi_latency.clear();
        self.last_entry = 0;
        self.intervals.try_reserve_exact(want)?;
        self.ipi_latency.try_reserve_exact(want)
    }

    /// Takes both series (intervals, signal-to-handler), leaving them empty.
    pub fn take(&mut self) -> (Vec<u64>, Vec<u64>) {
        (
            core::mem::take(&mut self.intervals),
            core::mem::take(&mut self.ipi_latency),
        )
    }
}

impl Default for IrqSamples {
    fn default() -> Self {
        IrqSamples::new()
    }
}

/// The shared lines the debug NIC's interrupt touches besides the device:
/// the support side sets the posted flag and the stamp, the handler takes
/// both; the run's counters.
#[derive(Clone, Copy)]
pub struct Lines<'a> {
    /// The posted-interrupt flag.
    pub posted: &'a AtomicU32,
    /// The TSC of the last signal raised (0 once taken).
    pub signal_stamp: &'a AtomicU64,
    /// The run's accounting.
    pub run: &'a RunControl,
}

impl<'a> Lines<'a> {
    /// The lines of the shared region's debug NIC.
    pub fn of(nic: &'a DebugNic) -> Lines<'a> {
        Lines {
            posted: &nic.irq_pending.0,
            signal_stamp: &nic.ipi_sent_tsc.0,
            run: &nic.run,
        }
    }
}

/// The driver's side of the socket buffers: frames go from the DMA buffer
/// straight into a socket buffer (one copy).
struct SkbSink<'a>(&'a mut Producer);

impl RxSink for SkbSink<'_> {
    fn buffer(&mut self, len: usize) -> Option<&mut [u8]> {
        self.0.buffer().and_then(|b| b.get_mut(..len))
    }

    fn commit(&mut self, len: usize) {
        self.0.commit(len);
    }
}

/// A sink that takes frames and keeps none: the leftovers of an abandoned
/// run are cleaned into a free socket buffer that is never published.
struct Discard<'a>(&'a mut Producer);

impl RxSink for Discard<'_> {
    fn buffer(&mut self, len: usize) -> Option<&mut [u8]> {
        self.0.buffer().and_then(|b| b.get_mut(..len))
    }

    fn commit(&mut self, _len: usize) {}
}

/// One RX ring's driver state and its end of the socket buffers.
pub struct RxPath {
    /// The ring's driver state (replaced when a hand-over adopts a ring).
    pub rx: RxRing<Contiguous>,
    skbs: Producer,
    /// The current run's raw samples.
    pub samples: IrqSamples,
    taken: u64,
    /// NAPI: the handler schedules, the receive loop polls.
    napi: bool,
    /// NAPI: a poll is scheduled (the device's causes are masked).
    scheduled: bool,
}

impl RxPath {
    /// The path over `rx` (a ring `RxRing::init` or `adopt` programmed),
    /// cleaning into `skbs`.
    pub fn new(rx: RxRing<Contiguous>, skbs: Producer) -> RxPath {
        RxPath {
            rx,
            skbs,
            samples: IrqSamples::new(),
            taken: 0,
            napi: false,
            scheduled: false,
        }
    }

    /// Applies a run's moderation: ITR into the device's register (0 when
    /// not ITR), NAPI on or off. Unmasks the causes (a NAPI poll left
    /// scheduled by the last run ends with it).
    pub fn moderate<R: RegisterAccess + ?Sized>(&mut self, regs: &R, m: Moderation) {
        regs.write(Register::ITR, m.itr_register());
        self.napi = m == Moderation::Napi;
        self.scheduled = false;
        regs.write(Register::IMS, RxRing::<Contiguous>::INTERRUPTS.bits());
    }

    /// A signal was lost (the caller's watchdog saw the posted flag stay
    /// up with no interrupt taken, and cleared it): under NAPI, schedule
    /// the poll as the interrupt would have (the receive loop cleans in
    /// budgets); otherwise clean the ring now, reading ICR. Returns whether
    /// completions are left for the caller to signal itself again.
    pub fn recover<R, D, M>(&mut self, run: &RunControl, regs: &R, ring: &D, dma: &M) -> bool
    where
        R: RegisterAccess + ?Sized,
        D: DescriptorRing + ?Sized,
        M: DmaMemory + ?Sized,
    {
        if self.napi {
            regs.write(Register::IMC, RxRing::<Contiguous>::INTERRUPTS.bits());
            let _causes = self.rx.ack(regs);
            self.scheduled = true;
            return false;
        }
        self.clean(run, regs, ring, dma, true)
    }

    /// Whether a NAPI poll is scheduled (the receive loop must not wait
    /// for an interrupt: the device's causes are masked).
    pub fn scheduled(&self) -> bool {
        self.scheduled
    }

    /// Interrupts taken since the path was made (never reset).
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Counts an interrupt entered at `entry` (TSC): the path's total, the
    /// run's, the interval since the last entry.
    pub fn count_entry(&mut self, entry: u64, run: &RunControl) {
        self.taken = self.taken.wrapping_add(1);
        run.interrupts.fetch_add(1, Ordering::Relaxed);
        let s = &mut self.samples;
        if s.last_entry != 0 && s.intervals.len() < s.intervals.capacity() {
            s.intervals.push(entry.wrapping_sub(s.last_entry));
        }
        s.last_entry = entry;
    }

    /// The debug NIC's interrupt bookkeeping at `entry`: clears the posted
    /// flag (first: anything raised after it signals again), counts the
    /// entry, takes the signal's stamp.
    pub fn enter_signal(&mut self, entry: u64, lines: &Lines) {
        lines.posted.swap(0, Ordering::SeqCst);
        // Pairs with the device's fence between its write-back and its
        // load of the flag: either this side's poll sees the descriptor,
        // or the device sees the flag clear and signals again.
        core::sync::atomic::fence(Ordering::SeqCst);
        self.count_entry(entry, lines.run);
        // Each signal's stamp is taken exactly once. A stamp from after
        // this entry belongs to a signal still in flight (this entry has
        // another cause): leave it for the entry that signal makes.
        let sent = lines.signal_stamp.swap(0, Ordering::AcqRel);
        let s = &mut self.samples;
        if sent > entry {
            lines.signal_stamp.store(sent, Ordering::Release);
        } else if sent != 0 && s.ipi_latency.len() < s.ipi_latency.capacity() {
            s.ipi_latency.push(entry - sent);
        }
    }

    /// The debug NIC's interrupt body: [`enter_signal`](Self::enter_signal),
    /// then one [`clean`](Self::clean) with ICR read. Returns whether
    /// completions are left (the caller signals itself again).
    pub fn on_signal<R, D, M>(
        &mut self,
        entry: u64,
        lines: &Lines,
        regs: &R,
        ring: &D,
        dma: &M,
    ) -> bool
    where
        R: RegisterAccess + ?Sized,
        D: DescriptorRing + ?Sized,
        M: DmaMemory + ?Sized,
    {
        self.enter_signal(entry, lines);
        if self.napi {
            // Mask first, then take the causes: the device raises nothing
            // more until the poll has emptied the ring.
            regs.write(Register::IMC, RxRing::<Contiguous>::INTERRUPTS.bits());
            let _causes = self.rx.ack(regs);
            self.scheduled = true;
            return false;
        }
        self.clean(lines.run, regs, ring, dma, true)
    }

    /// NAPI's poll, from the receive loop when [`scheduled`](Self::scheduled):
    /// cleans at most [`NAPI_WEIGHT`] frames, no more than the socket
    /// buffers free, and stops once it has copied [`NAPI_BYTES`]; once the
    /// ring is empty, unmasks the causes and checks again (a frame that
    /// completed meanwhile raised nothing: it is polled, and the causes
    /// masked again). Returns the frames cleaned.
    pub fn napi_poll<R, D, M>(&mut self, run: &RunControl, regs: &R, ring: &D, dma: &M) -> usize
    where
        R: RegisterAccess + ?Sized,
        D: DescriptorRing + ?Sized,
        M: DmaMemory + ?Sized,
    {
        if !self.scheduled {
            return 0;
        }
        let budget = NAPI_WEIGHT.min(self.skbs.free());
        if budget == 0 {
            // The stack drains first; the frames wait in the ring.
            return 0;
        }
        let start = self.rx.counters().bytes;
        let (mut cleaned, mut more) = (0, true);
        while more && cleaned < budget && self.rx.counters().bytes - start < NAPI_BYTES {
            let r = self.poll(run, regs, ring, dma, (budget - cleaned).min(NAPI_PASS));
            cleaned += r.cleaned;
            more = r.more;
        }
        if !more && !self.pending(ring) {
            regs.write(Register::IMS, RxRing::<Contiguous>::INTERRUPTS.bits());
            // Pairs with the device's fence between its write-back and
            // its load of IMS: either this re-check sees the descriptor,
            // or the device sees the causes unmasked and signals.
            core::sync::atomic::fence(Ordering::SeqCst);
            if self.pending(ring) {
                regs.write(Register::IMC, RxRing::<Contiguous>::INTERRUPTS.bits());
            } else {
                self.scheduled = false;
            }
        }
        cleaned
    }

    /// One poll of the ring into the socket buffers, reading ICR first
    /// when `ack` (not when quiescing a real NIC: its causes stay for the
    /// next owner); counts what the driver refused (`BadDescriptor`) and
    /// what found no socket buffer (`SocketBufferFull`) in `run`. Returns
    /// whether completions are left.
    pub fn clean<R, D, M>(
        &mut self,
        run: &RunControl,
        regs: &R,
        ring: &D,
        dma: &M,
        ack: bool,
    ) -> bool
    where
        R: RegisterAccess + ?Sized,
        D: DescriptorRing + ?Sized,
        M: DmaMemory + ?Sized,
    {
        if ack {
            let _causes = self.rx.ack(regs);
        }
        self.poll(run, regs, ring, dma, usize::MAX).more
    }

    /// One poll of at most `budget` frames, refusals counted.
    fn poll<R, D, M>(
        &mut self,
        run: &RunControl,
        regs: &R,
        ring: &D,
        dma: &M,
        budget: usize,
    ) -> PollResult
    where
        R: RegisterAccess + ?Sized,
        D: DescriptorRing + ?Sized,
        M: DmaMemory + ?Sized,
    {
        let before = *self.rx.counters();
        let result: PollResult =
            self.rx
                .poll_into(regs, ring, dma, budget, &mut SkbSink(&mut self.skbs));
        let after = self.rx.counters();
        let refused = after.refused() - before.refused();
        if refused > 0 {
            run.count_drop(DropReason::BadDescriptor, refused);
        }
        let full = after.sink_full - before.sink_full;
        if full > 0 {
            run.count_drop(DropReason::SocketBufferFull, full);
        }
        result
    }

    /// Cleans whatever completed descriptors are in the ring, keeping none
    /// of the frames (an abandoned run's leftovers); returns how many.
    pub fn discard<R, D, M>(&mut self, regs: &R, ring: &D, dma: &M) -> usize
    where
        R: RegisterAccess + ?Sized,
        D: DescriptorRing + ?Sized,
        M: DmaMemory + ?Sized,
    {
        self.rx
            .poll_into(regs, ring, dma, usize::MAX, &mut Discard(&mut self.skbs))
            .cleaned
    }

    /// Whether the ring holds a completed descriptor not cleaned yet.
    pub fn pending<D: DescriptorRing + ?Sized>(&self, ring: &D) -> bool {
        ring.load(self.rx.next_to_clean())
            .status
            .contains(RxStatus::DD)
    }
}
