//! The e1000 driver of the target node, attached in debug mode: its RX ring
//! and buffers live in the shared DMA window (the seed's 対処7), its
//! registers are the shared register page, and its interrupt is the IPI the
//! support node sends on `NIC_VECTOR`. The RX path is the e1000 crate's
//! `RxRing`, the same code a real (MMIO) e1000 would run.
//!
//! Interrupt handler: clear the posted-interrupt flag, read ICR (ack),
//! clean completed descriptors, copy each frame into a socket buffer, give
//! the descriptors back (RDT). The stack consumes socket buffers outside
//! the interrupt (`crate::net`).

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use mint_abi::debug_nic::{DropReason, NIC_VECTOR};
use mint_e1000::{Contiguous, RxRing};

use super::shared_backend::{self, AtomicRing, DmaWindow, SharedRegisters};
use crate::arch::interrupts::{self, InterruptFrame};
use crate::arch::{apic, cpu};
use crate::shared;

pub use mint_abi::debug_nic::{BUFFER_SIZE, RING_SLOTS};

/// Socket buffers between the interrupt handler and the stack.
pub const SKB_SLOTS: usize = 512;
/// Raw samples kept per metric and run.
pub const MAX_SAMPLES: usize = 1 << 20;

/// A fixed pool of socket buffers: single producer (the interrupt handler)
/// and single consumer (the node's main loop) on the same core.
pub struct SkbPool {
    /// `SKB_SLOTS * BUFFER_SIZE` bytes, leaked at creation: only raw
    /// pointers into it exist, one slot per owner.
    base: *mut u8,
    lens: Vec<AtomicU32>,
    head: AtomicU32,
    tail: AtomicU32,
}

// SAFETY: one producer (interrupt context) writes only slot `tail` before
// publishing it with a release store of `tail`; one consumer reads only
// published slots `head..tail` and frees them by advancing `head`. Both run
// on this node's single core.
unsafe impl Sync for SkbPool {}

/// The driver's side of the pool: frames go from the DMA buffer straight
/// into a socket buffer (one copy).
struct SkbProducer<'a>(&'a SkbPool);

impl mint_e1000::RxSink for SkbProducer<'_> {
    fn buffer(&mut self, len: usize) -> Option<&mut [u8]> {
        self.0.free_slot().and_then(|b| b.get_mut(..len))
    }

    fn commit(&mut self, len: usize) {
        self.0.publish(len);
    }
}

// Buffers are handed out as `&mut` from `&self` by design: the pool's memory
// is reached only through `base`, and each slot has exactly one owner at a
// time (the producer while free, the consumer while published).
#[allow(clippy::mut_from_ref)]
impl SkbPool {
    fn new() -> SkbPool {
        SkbPool {
            base: vec![0u8; SKB_SLOTS * BUFFER_SIZE].leak().as_mut_ptr(),
            lens: (0..SKB_SLOTS).map(|_| AtomicU32::new(0)).collect(),
            head: AtomicU32::new(0),
            tail: AtomicU32::new(0),
        }
    }

    /// Producer: the next free buffer, if any (published by `publish`).
    fn free_slot(&self) -> Option<&mut [u8]> {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        if tail.wrapping_sub(head) as usize >= SKB_SLOTS {
            return None;
        }
        let slot = tail as usize % SKB_SLOTS;
        // SAFETY: slot `tail` is free (not in head..tail) and only the
        // producer (the interrupt handler) touches free slots.
        Some(unsafe {
            core::slice::from_raw_parts_mut(self.base.add(slot * BUFFER_SIZE), BUFFER_SIZE)
        })
    }

    /// Producer: the free buffer now holds a `len`-byte frame.
    fn publish(&self, len: usize) {
        let tail = self.tail.load(Ordering::Relaxed);
        self.lens[tail as usize % SKB_SLOTS].store(len as u32, Ordering::Relaxed);
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
    }

    /// Consumer: the oldest published buffer, if any (stays owned by the
    /// consumer until `release_front`).
    pub fn front(&self) -> Option<&mut [u8]> {
        let head = self.head.load(Ordering::Relaxed);
        if head == self.tail.load(Ordering::Acquire) {
            return None;
        }
        let slot = head as usize % SKB_SLOTS;
        let len = (self.lens[slot].load(Ordering::Relaxed) as usize).min(BUFFER_SIZE);
        // SAFETY: slot `head` is published (head != tail) and only the
        // consumer touches published slots until it advances `head`; the
        // consumer (one main loop) holds at most one front at a time.
        Some(unsafe { core::slice::from_raw_parts_mut(self.base.add(slot * BUFFER_SIZE), len) })
    }

    /// Consumer: frees the front buffer.
    pub fn release_front(&self) {
        let head = self.head.load(Ordering::Relaxed);
        if head != self.tail.load(Ordering::Acquire) {
            self.head.store(head.wrapping_add(1), Ordering::Release);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Acquire) == self.tail.load(Ordering::Acquire)
    }
}

/// Raw per-interrupt measurements of the current run.
pub struct IrqSamples {
    /// TSC ticks between consecutive interrupt handler entries.
    pub intervals: Vec<u64>,
    /// TSC ticks from the support node's IPI send to handler entry.
    pub ipi_latency: Vec<u64>,
    last_entry: u64,
}

/// Everything the interrupt handler owns.
struct Driver {
    regs: SharedRegisters,
    ring: AtomicRing,
    dma: DmaWindow,
    rx: RxRing<Contiguous>,
    samples: IrqSamples,
}

static DRIVER: AtomicPtr<Driver> = AtomicPtr::new(core::ptr::null_mut());
static SKBS: AtomicPtr<SkbPool> = AtomicPtr::new(core::ptr::null_mut());

/// The socket buffers the stack consumes (after `attach`).
pub fn skbs() -> &'static SkbPool {
    let p = SKBS.load(Ordering::Acquire);
    assert!(!p.is_null(), "e1000 driver not attached");
    // SAFETY: set once from a leaked Box in `attach`, never freed.
    unsafe { &*p }
}

/// Attaches the driver in debug mode: places the RX ring and buffers at the
/// start of the DMA window, programs the register page and binds the
/// interrupt handler to `NIC_VECTOR`.
pub fn attach(shared_phys: u64, shared_size: u64) -> Result<(), alloc::string::String> {
    let dma = DmaWindow::new(shared_phys, shared_size);
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
    let driver = Box::new(Driver {
        regs,
        ring,
        dma,
        rx,
        samples: IrqSamples {
            intervals: Vec::new(),
            ipi_latency: Vec::new(),
            last_entry: 0,
        },
    });
    SKBS.store(Box::into_raw(Box::new(SkbPool::new())), Ordering::Release);
    DRIVER.store(Box::into_raw(driver), Ordering::Release);
    interrupts::register(NIC_VECTOR, on_interrupt);
    let me = crate::node::me();
    shared::region()
        .debug_nic
        .driver_ready
        .store(u32::from(me.0) + 1, Ordering::Release);
    Ok(())
}

/// Runs `f` on the handler's samples with interrupts off (the handler
/// appends to them).
pub fn with_samples<R>(f: impl FnOnce(&mut IrqSamples) -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let p = DRIVER.load(Ordering::Acquire);
        assert!(!p.is_null(), "e1000 driver not attached");
        // SAFETY: interrupts are off, so the handler (the only other user)
        // cannot run; the Box lives forever.
        f(unsafe { &mut (*p).samples })
    })
}

fn on_interrupt(_frame: &mut InterruptFrame) {
    let entry = cpu::rdtsc();
    let nic = &shared::region().debug_nic;
    // Clear the posted flag before reading causes: anything raised after
    // this point sends a new IPI (see mint_abi::debug_nic).
    nic.irq_pending.0.swap(0, Ordering::AcqRel);
    let p = DRIVER.load(Ordering::Acquire);
    if p.is_null() {
        apic::end_of_interrupt();
        return;
    }
    // SAFETY: the handler is the only user of the Driver while interrupts
    // are on (other users disable interrupts); it is not reentrant.
    let d = unsafe { &mut *p };
    let run = &nic.run;
    run.interrupts.fetch_add(1, Ordering::Relaxed);
    if d.samples.last_entry != 0 && d.samples.intervals.len() < d.samples.intervals.capacity() {
        d.samples.intervals.push(entry - d.samples.last_entry);
    }
    d.samples.last_entry = entry;
    // IPI-to-handler latency: each IPI's send stamp is taken exactly once.
    // A stamp from after this entry belongs to an IPI still in flight (this
    // entry has another cause): leave it for the entry that IPI makes.
    let sent = nic.ipi_sent_tsc.0.swap(0, Ordering::AcqRel);
    if sent > entry {
        nic.ipi_sent_tsc.0.store(sent, Ordering::Release);
    } else if sent != 0 && d.samples.ipi_latency.len() < d.samples.ipi_latency.capacity() {
        d.samples.ipi_latency.push(entry - sent);
    }
    let _causes = d.rx.ack(&d.regs);
    let before = *d.rx.counters();
    let result = d.rx.poll_into(
        &d.regs,
        &d.ring,
        &d.dma,
        usize::MAX,
        &mut SkbProducer(skbs()),
    );
    let after = d.rx.counters();
    let refused = after.refused() - before.refused();
    if refused > 0 {
        run.count_drop(DropReason::BadDescriptor, refused);
    }
    let full = after.sink_full - before.sink_full;
    if full > 0 {
        run.count_drop(DropReason::SocketBufferFull, full);
    }
    // More completed descriptors than one poll may clean: come back.
    if result.more {
        nic.irq_pending.0.store(1, Ordering::Release);
        apic::send_ipi(apic::id(), NIC_VECTOR);
    }
    apic::end_of_interrupt();
}

/// Resets the per-run interrupt samples and makes room for `frames` of
/// them (at most [`MAX_SAMPLES`]), so the handler never allocates.
pub fn reset_samples(frames: usize) -> Result<(), alloc::collections::TryReserveError> {
    let want = frames.min(MAX_SAMPLES);
    with_samples(|s| {
        s.intervals.clear();
        s.ipi_latency.clear();
        s.last_entry = 0;
        s.intervals.try_reserve_exact(want)?;
        s.ipi_latency.try_reserve_exact(want)
    })
}

/// Whether the ring holds a completed descriptor the handler has not
/// cleaned yet (its interrupt is on the way).
pub fn has_pending_completions() -> bool {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let p = DRIVER.load(Ordering::Acquire);
        if p.is_null() {
            return false;
        }
        // SAFETY: interrupts are off, so the handler cannot run; the Box
        // lives forever.
        let d = unsafe { &*p };
        let next = d.rx.next_to_clean();
        mint_e1000::DescriptorRing::load(&d.ring, next)
            .status
            .contains(mint_e1000::RxStatus::DD)
    })
}
