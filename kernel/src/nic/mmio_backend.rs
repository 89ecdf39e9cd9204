//! The e1000 crate's access traits over a real 8254x: registers through the
//! memory BAR (node 0 maps its frames uncached, identity, into the owning
//! node's tables), descriptors and buffers in this node's own memory, which
//! the NIC reaches by physical address (DMA).

use alloc::alloc::{Layout, alloc_zeroed};

use mint_e1000::{Register, RegisterAccess};

use super::shared_backend::AtomicRing;
use crate::layout;

/// The NIC's registers: BAR 0, 128 KiB of 32-bit registers.
pub struct MmioRegisters {
    base: u64,
}

impl MmioRegisters {
    /// # Safety
    /// `base` must be the NIC's memory BAR, mapped uncached at this virtual
    /// address for `REGISTER_SPACE` bytes, and owned by this node.
    pub unsafe fn new(base: u64) -> MmioRegisters {
        MmioRegisters { base }
    }

    fn at(&self, reg: Register) -> *mut u32 {
        (self.base + u64::from(reg.offset())) as *mut u32
    }
}

impl RegisterAccess for MmioRegisters {
    fn read(&self, reg: Register) -> u32 {
        // SAFETY: `new`'s contract: the BAR is mapped; every `Register`
        // offset is a 4-byte aligned register inside it.
        unsafe { core::ptr::read_volatile(self.at(reg)) }
    }

    fn write(&self, reg: Register, value: u32) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile(self.at(reg), value) }
    }
}

/// Allocates `bytes` of zeroed, `align`-aligned memory for the NIC to reach
/// by DMA, for good; returns (virtual, physical) addresses.
pub fn dma_alloc(bytes: usize, align: usize) -> Option<(u64, u64)> {
    let layout = Layout::from_size_align(bytes, align)
        .ok()
        .filter(|l| l.size() > 0)?;
    // SAFETY: the layout's size is not zero (filtered above), as
    // `alloc_zeroed` requires; the memory is never freed (the NIC may write
    // to it at any time).
    let p = unsafe { alloc_zeroed(layout) };
    (!p.is_null()).then(|| (p as u64, layout::virt_to_phys(p as u64)))
}

/// A descriptor ring of `count` descriptors in this node's memory, aligned
/// as RDLEN requires (128 bytes); returns it with its physical address.
pub fn local_ring(count: u16) -> Option<(AtomicRing, u64)> {
    let bytes = usize::from(count) * 16;
    let (virt, phys) = dma_alloc(bytes, 128)?;
    // SAFETY: `bytes` of fresh zeroed memory, 128-byte aligned, never freed.
    Some((
        unsafe { AtomicRing::from_raw(virt as *const u8, count) },
        phys,
    ))
}

/// The NIC's receive buffers in this node's memory (from [`dma_alloc`],
/// never freed): reached only through volatile copies, every address a
/// descriptor names checked against the range first.
pub type LocalDma = super::dma::PhysBytes;
