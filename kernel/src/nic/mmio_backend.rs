//! The e1000 crate's access traits over a real 8254x: registers through the
//! memory BAR (node 0 maps its frames uncached, identity, into the tables
//! of the nodes that may own it); its descriptors and buffers are in the
//! shared region's NIC area (`area`), which the NIC reaches by physical
//! address (DMA).

use mint_e1000::{Register, RegisterAccess};

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

/// The NIC's receive buffers (the shared region's NIC area, `area`):
/// reached only through volatile copies, every address a descriptor names
/// checked against the range first.
pub type LocalDma = super::dma::PhysBytes;
