//! Memory a NIC reaches by DMA, named by physical address: the debug NIC's
//! window in the shared region and a real NIC's buffers in the node's own
//! memory alike. The device writes these bytes whenever it likes, so they
//! are reached only through a [`VolatileSlice`], and every address a
//! descriptor names is checked against the range first.

use mint_e1000::{DmaError, DmaMemory};
use mint_volatile::VolatileSlice;

/// `[phys, phys + len)`, mapped at some virtual address for good.
#[derive(Clone, Copy)]
pub struct PhysBytes {
    pub phys: u64,
    pub len: u64,
    bytes: VolatileSlice<'static>,
}

impl PhysBytes {
    /// # Safety
    /// `virt..virt + len` must stay mapped read-write for the node's life,
    /// its physical address must be `phys`, and no Rust reference to those
    /// bytes as plain data may exist (only volatile accesses through this
    /// value, atomics laid over descriptor rings, and the device's DMA).
    pub unsafe fn new(virt: u64, phys: u64, len: u64) -> PhysBytes {
        // SAFETY: the caller's contract.
        let bytes = unsafe { VolatileSlice::new(virt as *mut u8, len as usize) };
        PhysBytes { phys, len, bytes }
    }

    /// `[addr, addr+len)` as a part of the range, if it lies in it.
    pub fn part(&self, addr: u64, len: usize) -> Result<VolatileSlice<'static>, DmaError> {
        let err = DmaError { addr, len };
        let off = addr
            .checked_sub(self.phys)
            .and_then(|o| usize::try_from(o).ok())
            .ok_or(err)?;
        self.bytes.subslice(off, len).map_err(|_| err)
    }
}

impl DmaMemory for PhysBytes {
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        let len = data.len();
        self.part(addr, len)?
            .copy_from(0, data)
            .map_err(|_| DmaError { addr, len })
    }

    fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), DmaError> {
        let len = out.len();
        self.part(addr, len)?
            .copy_to(0, out)
            .map_err(|_| DmaError { addr, len })
    }

    fn prepare_write(&self, addr: u64, len: usize) {
        if let Ok(part) = self.part(addr, len) {
            part.prefetch_for_write(0, len);
        }
    }
}
