//! The e1000 crate's access traits over the shared region: the register
//! page, descriptor rings of atomic words, and the DMA window. Both the driver (target) and
//! the device model (support node) use these; every address that comes from
//! the peer is checked against the DMA window before memory is touched.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use mint_abi::debug_nic::{NicRegisters, dma_window_offset};
use mint_abi::shared::SHARED_VIRT;
use mint_e1000::{DescriptorRing, DmaError, DmaMemory, RegisterFile, RegisterSlots, RxDescriptor};

/// The register page in the shared region, with the e1000 register
/// semantics of `mint_e1000::RegisterFile` (ICR read-to-clear, IMS/IMC...).
pub type SharedRegisters = RegisterFile<SharedSlots>;

pub struct SharedSlots(&'static NicRegisters);

impl RegisterSlots for SharedSlots {
    fn slot(&self, index: usize) -> &AtomicU32 {
        &self.0.0[index].0
    }
}

pub fn registers() -> SharedRegisters {
    RegisterFile::with_slots(SharedSlots(&crate::shared::region().debug_nic.regs))
}

/// The DMA window: `[phys, phys + len)` of the shared region, mapped at
/// `SHARED_VIRT + (phys - shared_phys)`.
#[derive(Clone, Copy)]
pub struct DmaWindow {
    shared_phys: u64,
    pub phys: u64,
    pub len: u64,
}

impl DmaWindow {
    /// The window of a shared region at `shared_phys` of `shared_size` bytes.
    pub fn new(shared_phys: u64, shared_size: u64) -> DmaWindow {
        let off = dma_window_offset();
        DmaWindow {
            shared_phys,
            phys: shared_phys + off,
            len: shared_size.saturating_sub(off),
        }
    }

    /// The virtual address of `[addr, addr+len)` if it lies in the window.
    fn translate(&self, addr: u64, len: usize) -> Result<*mut u8, DmaError> {
        let end = addr.checked_add(len as u64);
        match end {
            Some(end) if addr >= self.phys && end <= self.phys + self.len => {
                Ok((SHARED_VIRT + (addr - self.shared_phys)) as *mut u8)
            }
            _ => Err(DmaError { addr, len }),
        }
    }
}

impl DmaMemory for DmaWindow {
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        let dst = self.translate(addr, data.len())?;
        // SAFETY: `translate` checked the range lies in the DMA window, which
        // every node maps read-write at SHARED_VIRT; the window holds plain
        // bytes, so a racing peer can only make the bytes wrong (which the
        // payload checks catch), never violate Rust's invariants of ours.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), DmaError> {
        let src = self.translate(addr, out.len())?;
        // SAFETY: as in `write`.
        unsafe { core::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
        Ok(())
    }
}

/// A ring of legacy RX descriptors as pairs of `AtomicU64` (address;
/// length/checksum/status/errors/special: the 16-byte hardware layout,
/// little endian), so a write-back is published with one release store.
/// It lives in the shared DMA window (debug NIC) or in the node's own
/// memory (a real NIC, see `mmio_backend`).
pub struct AtomicRing {
    descs: &'static [[AtomicU64; 2]],
}

impl AtomicRing {
    /// # Safety
    /// `ptr` must point to `count` descriptors (16 bytes each, 16-byte
    /// aligned) of mapped memory that stays a descriptor ring for good.
    pub(super) unsafe fn from_raw(ptr: *const u8, count: u16) -> AtomicRing {
        // SAFETY: guaranteed by the caller; `[AtomicU64; 2]` is valid for any
        // bits, and a peer (or the NIC) changing them concurrently is what
        // atomics allow.
        let descs = unsafe {
            core::slice::from_raw_parts(ptr as *const [AtomicU64; 2], usize::from(count))
        };
        AtomicRing { descs }
    }

    /// The ring of `count` descriptors at physical `phys`, if it lies in the
    /// window and is 16-byte aligned.
    pub fn in_window(window: &DmaWindow, phys: u64, count: u16) -> Result<AtomicRing, DmaError> {
        let len = usize::from(count) * RxDescriptor::SIZE;
        let ptr = window.translate(phys, len)?;
        if !phys.is_multiple_of(16) || count == 0 {
            return Err(DmaError { addr: phys, len });
        }
        // SAFETY: the range is inside the mapped DMA window (checked above)
        // and 16-byte aligned; the window is the driver's for good.
        Ok(unsafe { AtomicRing::from_raw(ptr, count) })
    }
}

impl DescriptorRing for AtomicRing {
    fn len(&self) -> u16 {
        self.descs.len() as u16
    }

    fn load(&self, index: u16) -> RxDescriptor {
        let d = &self.descs[usize::from(index)];
        let word1 = d[1].load(Ordering::Acquire);
        RxDescriptor::from_words([d[0].load(Ordering::Relaxed), word1])
    }

    fn store_buffer_addr(&self, index: u16, addr: u64) {
        self.descs[usize::from(index)][0].store(addr, Ordering::Relaxed);
    }

    fn store_writeback(&self, index: u16, d: &RxDescriptor) {
        self.descs[usize::from(index)][1].store(d.writeback_word(), Ordering::Release);
    }

    fn clear_status(&self, index: u16) {
        self.descs[usize::from(index)][1].store(0, Ordering::Release);
    }
}
