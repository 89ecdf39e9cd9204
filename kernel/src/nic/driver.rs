//! The e1000 driver of the target node, attached in debug mode: its RX ring
//! and buffers live in the shared DMA window (the seed's 対処7), its
//! registers are the shared register page, and its interrupt is the IPI the
//! support node sends on `NIC_VECTOR`. The RX path is the e1000 crate's
//! `RxRing`, the same code a real (MMIO) e1000 would run.
//!
//! The interrupt's per-packet work is `mint_target::RxPath` (host-built
//! and tested, the very code the native benchmark runs): clear the posted
//! flag, take the signal's stamp, read ICR, clean completed descriptors
//! into socket buffers, count refusals. This module owns only what is
//! the kernel's: the handlers' registration and statics, the backends
//! (shared page or MMIO), the EOI and the self-IPI, the real NIC's
//! hand-over roles. The stack consumes socket buffers outside the
//! interrupt (`crate::net`), through the pool's only `Consumer`.
//!
//! A lost IPI must not silence the NIC: the timer tick (`on_tick`) polls
//! the ring itself when the posted flag stayed set too long with no
//! interrupt, and counts a recovery.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use mint_abi::Vector;
use mint_abi::debug_nic::{DebugNic, DropReason, LOST_IPI_TICKS, NIC_VECTOR, RunControl};
use mint_e1000::{Contiguous, RxRing};
use mint_skb::{Consumer, Producer};
use mint_target::{IrqSamples, Lines, RxPath};

use super::mmio_backend::{LocalDma, MmioRegisters};
use super::shared_backend::{self, AtomicRing, DmaWindow, SharedRegisters};
use crate::arch::interrupts::{self, InterruptFrame};
use crate::arch::{apic, cpu};
use crate::shared;

pub use mint_abi::debug_nic::{BUFFER_SIZE, RING_SLOTS};

/// Socket buffers between the interrupt handler and the stack.
pub const SKB_SLOTS: usize = 512;

/// What the timer tick knows about a posted flag it found set.
#[derive(Clone, Copy)]
struct Watch {
    /// `Driver::taken` when the flag was first seen set.
    taken: u64,
    /// Ticks since, the flag set at each and no interrupt taken.
    ticks: u32,
}

/// Where the driver's registers, ring and frames are.
enum Backend {
    /// The debug NIC: registers in the shared page, ring and buffers in
    /// the shared DMA window, interrupts as the support node's IPI.
    Debug {
        regs: SharedRegisters,
        dma: DmaWindow,
    },
    /// A real 8254x: registers through its memory BAR, ring and buffers in
    /// this node's memory, its INTx through the interrupt layer.
    Real { regs: MmioRegisters, dma: LocalDma },
}

/// Everything the interrupt handlers (the NIC's and the timer tick's
/// fallback) own.
struct Driver {
    backend: Backend,
    ring: AtomicRing,
    /// The ring's driver state, socket buffers, samples and interrupt count.
    path: RxPath,
    /// A real NIC's missed-packet count (MPC, clear on read), accumulated
    /// since attach.
    missed: u64,
    watch: Option<Watch>,
    /// A real NIC: whether this node drives it now (see [`Role`]).
    role: Role,
}

/// A real NIC's driver in a hand-over (the debug NIC's is always Owner).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    /// Services the NIC's interrupts and cleans the ring.
    Owner,
    /// Quiesced for a hand-over (or handed over): the device's causes are
    /// masked and the ring is no longer this node's; an interrupt still on
    /// its way is ended without touching the device.
    Quiesced,
}

impl Driver {
    /// A driver over `backend` with its ring and socket buffers, counters
    /// and samples empty; boxed, to be leaked into [`DRIVER`].
    fn new(
        backend: Backend,
        ring: AtomicRing,
        rx: RxRing<Contiguous>,
        skbs: Producer,
    ) -> Box<Self> {
        Box::new(Driver {
            backend,
            ring,
            path: RxPath::new(rx, skbs),
            missed: 0,
            watch: None,
            role: Role::Owner,
        })
    }
}

/// Set once by `attach` to a leaked Box, never freed.
static DRIVER: AtomicPtr<Driver> = AtomicPtr::new(core::ptr::null_mut());

/// The driver, for an interrupt handler.
///
/// # Safety
/// Only from interrupt context (the NIC handler or the timer tick), or with
/// interrupts off: those are the only users, and on this single core they
/// never overlap (interrupt gates clear IF, so handlers do not nest, and
/// the main loop's users disable interrupts). No two results may live at
/// once.
unsafe fn driver<'a>() -> Option<&'a mut Driver> {
    let p = DRIVER.load(Ordering::Acquire);
    // SAFETY: non-null only once `attach` stored a leaked Box, which lives
    // for good; the caller guarantees that this is the only reference.
    (!p.is_null()).then(|| unsafe { &mut *p })
}

/// Attaches the driver in debug mode: places the RX ring and buffers at the
/// start of the DMA window, programs the register page and binds the
/// interrupt handler to `NIC_VECTOR`. Returns the stack's end of the socket
/// buffers (the only one there is).
pub fn attach(shared_phys: u64, shared_size: u64) -> Result<Consumer, alloc::string::String> {
    let dma = shared_backend::dma_window(shared_phys, shared_size);
    // The ring first, its buffers from the next page on: the layout
    // `dma_bytes_needed` (the host's check) describes.
    let buffers_phys = dma.phys + crate::layout::align_up(u64::from(RING_SLOTS) * 16, 4096);
    let needed = mint_abi::debug_nic::dma_bytes_needed();
    if needed > dma.len {
        return Err(alloc::format!(
            "e1000: ring and buffers need {} KiB of DMA window, the shared region leaves {} KiB",
            needed / 1024,
            dma.len / 1024
        ));
    }
    let ring = AtomicRing::in_window(&dma, dma.phys, RING_SLOTS)
        .map_err(|e| alloc::format!("e1000 ring: {e:?}"))?;
    let regs = shared_backend::registers();
    let buffers = Contiguous {
        base: buffers_phys,
        stride: BUFFER_SIZE as u64,
    };
    let rx = RxRing::init(&regs, &ring, dma.phys, buffers, BUFFER_SIZE)
        .map_err(|e| alloc::format!("e1000 init: {e:?}"))?;
    let (producer, consumer) = mint_skb::pool(SKB_SLOTS, BUFFER_SIZE);
    let driver = Driver::new(Backend::Debug { regs, dma }, ring, rx, producer);
    DRIVER.store(Box::into_raw(driver), Ordering::Release);
    interrupts::register(NIC_VECTOR, on_interrupt);
    let me = crate::node::me();
    shared::region()
        .debug_nic
        .driver_ready
        .store(u32::from(me.0) + 1, Ordering::Release);
    Ok(consumer)
}

/// Runs `f` on the handler's samples with interrupts off (the handler
/// appends to them).
pub fn with_samples<R>(f: impl FnOnce(&mut IrqSamples) -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        match unsafe { driver() } {
            Some(d) => f(&mut d.path.samples),
            // A standby node before its first hand-over: no samples yet.
            None => f(&mut IrqSamples::new()),
        }
    })
}

fn on_interrupt(_frame: &mut InterruptFrame) {
    let entry = cpu::rdtsc();
    let nic = &shared::region().debug_nic;
    // SAFETY: interrupt context (see `driver`).
    let Some(d) = (unsafe { driver() }) else {
        // Clear the posted flag anyway: the device signals again.
        nic.irq_pending.0.swap(0, Ordering::AcqRel);
        apic::end_of_interrupt();
        return;
    };
    let more = match &d.backend {
        Backend::Debug { regs, dma } => {
            d.path.on_signal(entry, &Lines::of(nic), regs, &d.ring, dma)
        }
        Backend::Real { .. } => false,
    };
    if more {
        resignal(nic);
    }
    apic::end_of_interrupt();
}

/// More completed descriptors than one poll may clean: come back (a real
/// NIC's handler polls again itself, see `on_real_interrupt`).
fn resignal(nic: &DebugNic) {
    nic.irq_pending.0.store(1, Ordering::Release);
    apic::send_ipi(apic::id(), NIC_VECTOR);
}

/// The run accounting a real NIC's driver writes: this node's own line
/// (`mint_abi::real_nic`: two owners of one NIC never share a counter).
pub fn real_run() -> &'static RunControl {
    &shared::region().real_nic.receivers[crate::node::me().index()]
}

/// This node's line of device-interrupt counters.
fn irq_counts() -> &'static mint_abi::real_nic::DeviceIrqs {
    &shared::region().real_nic.irq[crate::node::me().index()]
}

/// Polls the ring once over either backend (see `RxPath::clean`);
/// returns whether completions are left.
fn clean(d: &mut Driver, run: &RunControl, ack: bool) -> bool {
    let Driver {
        backend,
        ring,
        path,
        ..
    } = d;
    match backend {
        Backend::Debug { regs, dma } => path.clean(run, regs, ring, dma, ack),
        Backend::Real { regs, dma } => path.clean(run, regs, ring, dma, ack),
    }
}

/// Polls a real NIC's ring once (see `clean`); `None` for the debug NIC.
fn clean_real(d: &mut Driver, run: &RunControl, ack: bool) -> Option<bool> {
    if !matches!(d.backend, Backend::Real { .. }) {
        return None;
    }
    Some(clean(d, run, ack))
}

/// Reads a real NIC's missed-packet count (clear on read) into the run's
/// `ring_full` drops and the driver's total.
fn collect_missed(d: &mut Driver, run: &RunControl) {
    if let Backend::Real { regs, .. } = &d.backend {
        let missed = u64::from(mint_e1000::RegisterAccess::read(
            regs,
            mint_e1000::Register::MPC,
        ));
        if missed > 0 {
            d.missed += missed;
            run.count_drop(DropReason::RingFull, missed);
        }
    }
}

/// Attaches the driver to a real 8254x whose ring `RxRing::init`
/// programmed (its causes masked at the device until [`bind_real`]).
/// Returns the stack's end of the socket buffers.
pub fn attach_real(
    regs: MmioRegisters,
    ring: AtomicRing,
    rx: RxRing<Contiguous>,
    dma: LocalDma,
) -> Consumer {
    let (producer, consumer) = mint_skb::pool(SKB_SLOTS, rx.buffer_size());
    // `RxRing::init` has just written RCTL.EN.
    REAL_RX_ENABLED_TSC.store(cpu::rdtsc().max(1), Ordering::Relaxed);
    let driver = Driver::new(Backend::Real { regs, dma }, ring, rx, producer);
    DRIVER.store(Box::into_raw(driver), Ordering::Release);
    consumer
}

/// Binds the real NIC's handler to the vector the interrupt layer gave
/// its INTx. The caller unmasks the pin, then [`unmask_real`] the device.
pub fn bind_real(vector: Vector) {
    interrupts::register(vector, on_real_interrupt);
}

/// Unmasks the real NIC's receive causes at the device (IMS).
/// The hidden fault `nic-mid-handler`: the next real-NIC interrupt panics
/// at its first instruction (ICR unread, no EOI).
static DIE_IN_HANDLER: AtomicBool = AtomicBool::new(false);

/// Arms `nic-mid-handler` and raises the receive causes through ICS, which
/// asserts the INTx (IMS has them). False when this node drives no real
/// NIC.
pub fn die_in_next_real_interrupt() -> bool {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        let Some(d) = (unsafe { driver() }) else {
            return false;
        };
        let Backend::Real { regs, .. } = &d.backend else {
            return false;
        };
        use mint_e1000::{Register, RegisterAccess};
        DIE_IN_HANDLER.store(true, Ordering::Release);
        regs.write(Register::ICS, RxRing::<Contiguous>::INTERRUPTS.bits());
        true
    })
}

/// The `handover` self-test (node 0, the old owner, after the layer
/// masked the pin): unmasks the receive causes at the device and raises
/// one through ICS, so the line is asserted with ICR unread.
pub fn raise_receive_cause() {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        if let Some(d) = unsafe { driver() }
            && let Backend::Real { regs, .. } = &d.backend
        {
            use mint_e1000::{Register, RegisterAccess};
            regs.write(Register::IMS, RxRing::<Contiguous>::INTERRUPTS.bits());
            regs.write(Register::ICS, mint_e1000::Interrupt::RXT0.bits());
        }
    })
}

pub fn unmask_real() {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        if let Some(d) = unsafe { driver() }
            && let Backend::Real { regs, .. } = &d.backend
        {
            use mint_e1000::{Register, RegisterAccess};
            regs.write(Register::IMS, RxRing::<Contiguous>::INTERRUPTS.bits());
        }
    })
}

/// When the real NIC's receiver was enabled (TSC; 0: no real NIC).
static REAL_RX_ENABLED_TSC: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// QEMU's 82540EM holds every frame that arrives in the first second after
/// RCTL is written (its `flush_queue_timer`, which keeps the NIC from
/// receiving until it fires), then delivers them at once: a run must not
/// start before that. Silicon has no such delay; the wait costs a real NIC
/// nothing but this much time once.
pub const REAL_RX_SETTLE_MS: u64 = 1_100;

/// Whether the real NIC (if any) has had its receiver on long enough to
/// take frames as they come (see [`REAL_RX_SETTLE_MS`]).
pub fn real_rx_settled() -> bool {
    let since = REAL_RX_ENABLED_TSC.load(Ordering::Relaxed);
    since == 0 || cpu::rdtsc().saturating_sub(since) >= crate::node::ms_to_ticks(REAL_RX_SETTLE_MS)
}

/// Interrupts the real NIC raised and packets it missed (MPC), since attach.
pub fn real_counters() -> Option<(u64, u64)> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        let d = unsafe { driver() }?;
        if d.role == Role::Owner {
            collect_missed(d, real_run());
        }
        matches!(d.backend, Backend::Real { .. }).then_some((d.path.taken(), d.missed))
    })
}

/// A real NIC's state in one line (the owner's console, after a run).
pub fn describe_real() -> Option<alloc::string::String> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        let d = unsafe { driver() }?;
        let Backend::Real { regs, .. } = &d.backend else {
            return None;
        };
        use mint_e1000::{Register, RegisterAccess};
        let next = d.path.rx.next_to_clean();
        let dd = d.path.pending(&d.ring);
        Some(alloc::format!(
            "e1000 ({}): {} interrupts, {} missed (MPC) since attach; RDH {} RDT {} next to clean {next} (done: {dd}); IMS {:#x} STATUS {:#x}; {:?}",
            if d.role == Role::Owner {
                "owner"
            } else {
                "handed over"
            },
            d.path.taken(),
            d.missed,
            regs.read(Register::RDH),
            regs.read(Register::RDT),
            regs.read(Register::IMS),
            regs.read(Register::STATUS),
            d.path.rx.counters(),
        ))
    })
}

/// Before a run's accounting is published: the NIC's own drop counters.
pub fn flush_device_counters() {
    let _ = real_counters();
}

/// Most polls of the ring per real-NIC interrupt (each cleans what has
/// completed; a frame completing after the last one re-asserts the line).
const REAL_POLLS: usize = 4;

/// The real NIC's INTx, taken on its owner's CPU: read ICR (which
/// deasserts the line), clean the ring with the same code as the debug
/// NIC, read MPC, then end the interrupt at the local APIC, whose EOI is
/// broadcast by vector to the I/O APIC and clears the pin's remote IRR
/// (the line, if asserted again meanwhile, is then delivered again).
fn on_real_interrupt(_frame: &mut InterruptFrame) {
    if DIE_IN_HANDLER.load(Ordering::Acquire) {
        panic!(
            "injected nic-mid-handler: killed in the e1000's interrupt handler before reading ICR or its EOI"
        );
    }
    let entry = cpu::rdtsc();
    let run = real_run();
    // SAFETY: interrupt context (see `driver`).
    match unsafe { driver() } {
        Some(d) if d.role == Role::Owner => {
            irq_counts().serviced.fetch_add(1, Ordering::Relaxed);
            irq_counts()
                .last_serviced_tsc
                .store(entry, Ordering::Relaxed);
            d.path.count_entry(entry, run);
            for _ in 0..REAL_POLLS {
                if clean_real(d, run, true) != Some(true) {
                    break;
                }
            }
            collect_missed(d, run);
        }
        // Accepted by this core before the layer masked the pin: end it
        // (which clears the pin's remote IRR, what the hand-over waits for)
        // without reading ICR, so its causes stay for the next owner.
        Some(_) => {
            irq_counts().deferred.fetch_add(1, Ordering::Relaxed);
        }
        None => {
            irq_counts().stray.fetch_add(1, Ordering::Relaxed);
        }
    }
    apic::end_of_interrupt();
}

/// Hand-over, old owner (its mailbox interrupt, node 0 asking): masks the
/// NIC's causes at the device (IMC: the INTx deasserts), cleans what has
/// completed (the frames it delivers itself), takes MPC for its own
/// accounting, and stops: from here on the ring belongs to the next owner,
/// which continues from RDT. The receiver stays enabled, so frames keep
/// landing in the ring meanwhile (and, once it is full, wait in QEMU or
/// count in MPC). Returns the descriptors it cleaned.
pub fn quiesce_real() -> Result<usize, &'static str> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        let d = unsafe { driver() }.ok_or("this node has no e1000 driver")?;
        if !matches!(d.backend, Backend::Real { .. }) {
            return Err("this node's driver is the debug NIC's");
        }
        if d.role != Role::Owner {
            return Err("this node does not drive the e1000");
        }
        if let Backend::Real { regs, .. } = &d.backend {
            use mint_e1000::{Register, RegisterAccess};
            regs.write(Register::IMC, u32::MAX);
        }
        let run = real_run();
        let before = d.path.rx.counters().delivered;
        // Bounded (the receiver stays on, frames keep coming): what is
        // left belongs to the next owner, from RDT.
        for _ in 0..REAL_POLLS {
            if clean_real(d, run, false) != Some(true) {
                break;
            }
        }
        collect_missed(d, run);
        d.role = Role::Quiesced;
        Ok((d.path.rx.counters().delivered - before) as usize)
    })
}

/// A standby node's parts until its first hand-over: the NIC's registers
/// and the producer half of its socket buffers.
static STANDBY: spin::Mutex<Option<(MmioRegisters, Producer)>> = spin::Mutex::new(None);

/// A standby node (the plan lets the interrupt layer hand it the NIC):
/// keeps what its driver will need and returns the stack's end of its
/// socket buffers; nothing touches the device yet.
pub fn attach_standby(regs: MmioRegisters) -> Consumer {
    let (producer, consumer) = mint_skb::pool(SKB_SLOTS, mint_abi::real_nic::BUFFER_SIZE);
    // Interrupts off: `prepare_real` takes the same lock in the mailbox
    // interrupt.
    x86_64::instructions::interrupts::without_interrupts(|| {
        *STANDBY.lock() = Some((regs, producer))
    });
    consumer
}

/// The `handover` self-test: this node refuses the next Prepare (to
/// exercise node 0's undo path).
static REFUSE_NEXT_PREPARE: AtomicBool = AtomicBool::new(false);

pub fn refuse_next_prepare() {
    REFUSE_NEXT_PREPARE.store(true, Ordering::Release);
}

/// Hand-over, new owner (its mailbox interrupt, before the layer switches
/// the pin): takes the ring over where the device's RDT says the last
/// owner stopped, and binds the handler to `vector`. The device's causes
/// stay masked until the layer's "attached" notice ([`attached_real`]);
/// an interrupt the switch delivers (the line asserted meanwhile) is
/// serviced at once.
pub fn prepare_real(vector: Vector) -> Result<(), alloc::string::String> {
    use mint_abi::real_nic::{BUFFER_SIZE, RING_SLOTS};
    if REFUSE_NEXT_PREPARE.swap(false, Ordering::AcqRel) {
        return Err("refused on purpose (the handover self-test)".into());
    }
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        if let Some(d) = unsafe { driver() } {
            let Backend::Real { regs, dma } = &d.backend else {
                return Err("this node's driver is the debug NIC's".into());
            };
            if d.role == Role::Owner {
                return Err("this node drives the e1000 already".into());
            }
            let (ring, phys) = super::area::ring(dma).map_err(|e| alloc::format!("{e:?}"))?;
            d.path.rx = RxRing::adopt(regs, &ring, phys, super::area::buffers(dma), BUFFER_SIZE)
                .map_err(|e| alloc::format!("e1000: {e}"))?;
            d.ring = ring;
            d.role = Role::Owner;
        } else {
            let dma = super::area::bytes().ok_or("the shared region has no NIC area")?;
            let (ring, phys) = super::area::ring(&dma).map_err(|e| alloc::format!("{e:?}"))?;
            let mut standby = STANDBY.lock();
            let regs = &standby
                .as_ref()
                .ok_or("this node does not stand by for the e1000")?
                .0;
            // Adopted first: a ring the device does not run leaves this
            // node standing by, its parts kept for the next try.
            let rx = RxRing::adopt(regs, &ring, phys, super::area::buffers(&dma), BUFFER_SIZE)
                .map_err(|e| alloc::format!("e1000: {e}"))?;
            debug_assert_eq!(rx.count(), RING_SLOTS);
            let (regs, producer) = standby.take().expect("checked above");
            let driver = Driver::new(Backend::Real { regs, dma }, ring, rx, producer);
            DRIVER.store(Box::into_raw(driver), Ordering::Release);
        }
        interrupts::register(vector, on_real_interrupt);
        Ok(())
    })
}

/// Hand-over undone, old owner: takes the device back on `vector` (its
/// own, old one). Idempotent: an owner that never quiesced only gets its
/// causes unmasked again. Returns the frames its first poll delivered.
pub fn resume_real(vector: Vector) -> Result<u64, alloc::string::String> {
    let owner = x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        unsafe { driver() }.map(|d| d.role == Role::Owner)
    });
    match owner {
        None => return Err("this node has no e1000 driver".into()),
        Some(true) => interrupts::register(vector, on_real_interrupt),
        Some(false) => prepare_real(vector)?,
    }
    attached_real().map_err(alloc::string::String::from)
}

/// Hand-over undone, new owner: drops what `prepare_real` took (the role,
/// the vector's binding); the ring was never its to touch.
pub fn abandon_real(vector: Vector) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        if let Some(d) = unsafe { driver() } {
            d.role = Role::Quiesced;
        }
    });
    crate::irq::bind_stray(vector);
}

/// Hand-over, new owner: the layer's "attached" notice. Unmasks the NIC's
/// causes at the device and polls the ring once (frames that completed
/// while nobody drove it); returns the frames that poll delivered.
pub fn attached_real() -> Result<u64, &'static str> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        let d = unsafe { driver() }.ok_or("no e1000 driver")?;
        if d.role != Role::Owner {
            return Err("attached without being prepared");
        }
        let run = real_run();
        let before = d.path.rx.counters().delivered;
        for _ in 0..REAL_POLLS {
            if clean_real(d, run, true) != Some(true) {
                break;
            }
        }
        if let Backend::Real { regs, .. } = &d.backend {
            use mint_e1000::{Register, RegisterAccess};
            regs.write(Register::IMS, RxRing::<Contiguous>::INTERRUPTS.bits());
        }
        irq_counts().attached.fetch_add(1, Ordering::Relaxed);
        Ok(d.path.rx.counters().delivered - before)
    })
}

/// Hand-over, old owner: the layer's "detached" notice for the device's
/// old `vector`; from here an interrupt there is stray.
pub fn detached_real(vector: Vector) {
    crate::irq::bind_stray(vector);
    irq_counts().detached.fetch_add(1, Ordering::Relaxed);
}

/// The bounded poll fallback, from this node's timer tick (interrupt
/// context): when the posted flag has been set at [`LOST_IPI_TICKS`]
/// consecutive ticks with no NIC interrupt taken in between, the IPI it
/// announced is taken as lost: clear the flag (so the device sends the
/// next one), service the ring as the interrupt would, count a recovery.
/// One lost IPI then silences the NIC for 20-30 ms, not for good.
pub fn on_tick() {
    // SAFETY: called from the timer's interrupt handler (see `driver`).
    let Some(d) = (unsafe { driver() }) else {
        return;
    };
    if matches!(d.backend, Backend::Real { .. }) {
        // A real NIC's interrupt is a level line, not a posted flag.
        return;
    }
    let nic = &shared::region().debug_nic;
    if nic.irq_pending.0.load(Ordering::Acquire) == 0 {
        d.watch = None;
        return;
    }
    match d.watch {
        Some(w) if w.taken == d.path.taken() => {
            let ticks = w.ticks + 1;
            if ticks < LOST_IPI_TICKS {
                d.watch = Some(Watch { ticks, ..w });
                return;
            }
            d.watch = None;
            nic.irq_pending.0.swap(0, Ordering::AcqRel);
            nic.run.recoveries.fetch_add(1, Ordering::Relaxed);
            let more = match &d.backend {
                Backend::Debug { regs, dma } => d.path.recover(&nic.run, regs, &d.ring, dma),
                Backend::Real { .. } => false,
            };
            if more {
                resignal(nic);
            }
        }
        _ => {
            d.watch = Some(Watch {
                taken: d.path.taken(),
                ticks: 0,
            })
        }
    }
}

/// Cleans whatever completed descriptors an abandoned run left in the ring,
/// keeping none of the frames (they are not the next run's); returns how
/// many. Called by the main loop when a run is configured.
pub fn discard_leftovers() -> usize {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        let Some(d) = (unsafe { driver() }) else {
            return 0;
        };
        if d.role != Role::Owner {
            return 0;
        }
        let Driver {
            backend,
            ring,
            path,
            watch,
            ..
        } = d;
        let cleaned = match backend {
            Backend::Debug { regs, dma } => path.discard(regs, ring, dma),
            Backend::Real { regs, dma } => path.discard(regs, ring, dma),
        };
        *watch = None;
        cleaned
    })
}

/// Applies a run's interrupt moderation (`RxPath::moderate`). The debug
/// NIC takes all three; a real NIC ITR (its own register) but not NAPI,
/// whose masking its hand-over does not know of yet.
pub fn moderate(m: mint_traffic::Moderation) -> Result<(), &'static str> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        let Some(d) = (unsafe { driver() }) else {
            return Ok(());
        };
        match &d.backend {
            Backend::Debug { regs, .. } => {
                d.path.moderate(regs, m);
                Ok(())
            }
            Backend::Real { .. } if m == mint_traffic::Moderation::Napi => {
                Err("NAPI is built for the debug NIC only; a real NIC takes none or itr:NS")
            }
            Backend::Real { regs, .. } => {
                if d.role == Role::Owner {
                    use mint_e1000::{Register, RegisterAccess};
                    regs.write(Register::ITR, m.itr_register());
                }
                Ok(())
            }
        }
    })
}

/// NAPI: polls the debug NIC's ring if the handler scheduled a poll;
/// the frames cleaned. The receive loop's, with interrupts off (the
/// handler shares the driver).
pub fn napi_poll() -> usize {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        let Some(d) = (unsafe { driver() }) else {
            return 0;
        };
        let Backend::Debug { regs, dma } = &d.backend else {
            return 0;
        };
        d.path
            .napi_poll(&shared::region().debug_nic.run, regs, &d.ring, dma)
    })
}

/// Whether a NAPI poll is scheduled (the receive loop must not halt).
pub fn napi_scheduled() -> bool {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        unsafe { driver() }.is_some_and(|d| d.path.scheduled())
    })
}

/// Resets the per-run interrupt samples and makes room for `frames` of
/// them (at most [`mint_target::MAX_SAMPLES`]), so the handler never allocates.
pub fn reset_samples(frames: usize) -> Result<(), alloc::collections::TryReserveError> {
    with_samples(|s| s.reset(frames))
}

/// Whether the ring holds a completed descriptor the handler has not
/// cleaned yet (its interrupt is on the way).
pub fn has_pending_completions() -> bool {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: interrupts are off, so no handler can run meanwhile.
        let Some(d) = (unsafe { driver() }) else {
            return false;
        };
        if d.role != Role::Owner {
            return false;
        }
        d.path.pending(&d.ring)
    })
}
