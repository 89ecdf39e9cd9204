//! The debug NIC's shared memory laid out on the host, for the native
//! benchmark and the host tests of both sides (feature `host`; the node
//! kernel lays the same types over the shared region instead and never
//! enables it).
//!
//! One allocation of what the two sides share: the register page (one
//! register per cache line), the RX descriptors, the DMA window as 64-bit
//! atomic words, the posted flag and the signal stamp on lines of their
//! own, and a run's `RunControl`.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64};

use mint_abi::debug_nic::{NIC_REGISTER_SLOTS, NicRegisters, PaddedU32, RunControl};
use mint_e1000::{Contiguous, InitError, RegisterFile, RxRing};

use crate::Lines;
use crate::backend::{AtomicRing, NicSlots, WordDma};

/// A line (pair) of its own for each word the two sides share.
#[repr(align(128))]
pub struct Line<T>(pub T);

/// The debug NIC's memory, on the host.
pub struct HostNic {
    /// The register page.
    pub regs: NicRegisters,
    /// The RX descriptors.
    pub descs: Vec<[AtomicU64; 2]>,
    /// The DMA window.
    pub words: Vec<AtomicU64>,
    /// The window's first physical address (what descriptors name).
    pub dma_phys: u64,
    /// The posted-interrupt flag.
    pub posted: Line<AtomicU32>,
    /// The last signal's stamp.
    pub signal_stamp: Line<AtomicU64>,
    /// The run's accounting.
    pub run: Line<RunControl>,
}

impl HostNic {
    /// `slots` descriptors and a DMA window of `window` bytes (rounded up
    /// to whole words) at physical address `dma_phys`, all zero, every
    /// page mapped.
    pub fn new(slots: u16, window: usize, dma_phys: u64) -> HostNic {
        let nic = HostNic {
            regs: NicRegisters(core::array::from_fn::<_, NIC_REGISTER_SLOTS, _>(|_| {
                PaddedU32(AtomicU32::new(0))
            })),
            descs: (0..slots)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
            words: (0..window.div_ceil(8)).map(|_| AtomicU64::new(0)).collect(),
            dma_phys,
            posted: Line(AtomicU32::new(0)),
            signal_stamp: Line(AtomicU64::new(0)),
            run: Line(RunControl::default()),
        };
        // The allocator's zeroed memory is mapped on first touch: touch
        // every page now (a store the compiler cannot drop), so no page
        // fault lands in a timed copy.
        for page in nic.words.chunks(512) {
            page[0].store(
                core::hint::black_box(0),
                core::sync::atomic::Ordering::Relaxed,
            );
        }
        nic
    }

    /// The register page with the e1000's register semantics.
    pub fn registers(&self) -> RegisterFile<NicSlots<'_>> {
        RegisterFile::with_slots(NicSlots(&self.regs))
    }

    /// The descriptor ring.
    pub fn ring(&self) -> AtomicRing<'_> {
        AtomicRing::new(&self.descs)
    }

    /// The DMA window.
    pub fn dma(&self) -> WordDma<'_> {
        WordDma::new(self.dma_phys, &self.words)
    }

    /// The driver's side of the set-up, as the kernel's `driver::attach`
    /// does it: the ring at `ring_phys`, one buffer of `buffer` bytes per
    /// descriptor from the window's start.
    pub fn driver_ring(
        &self,
        ring_phys: u64,
        buffer: usize,
    ) -> Result<RxRing<Contiguous>, InitError> {
        let buffers = Contiguous {
            base: self.dma_phys,
            stride: buffer as u64,
        };
        RxRing::init(&self.registers(), &self.ring(), ring_phys, buffers, buffer)
    }

    /// The lines the support side's send touches.
    pub fn support_lines(&self) -> Lines<'_> {
        let run = &self.run.0;
        Lines {
            posted: &self.posted.0,
            signal_stamp: &self.signal_stamp.0,
            sent: &run.sent,
            signals: &run.ipis_sent,
            signals_forgotten: &run.ipis_forgotten,
            drops: &run.drops,
        }
    }
}
