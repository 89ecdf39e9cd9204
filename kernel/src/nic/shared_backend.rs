//! The e1000 crate's access traits over the shared region: the register
//! page, descriptor rings of atomic words, and the DMA window. Both the driver (target) and
//! the device model (support node) use these; every address that comes from
//! the peer is checked against the DMA window before memory is touched.

use core::sync::atomic::AtomicU64;

use mint_abi::debug_nic::dma_window_offset;
use mint_abi::shared::SHARED_VIRT;
use mint_e1000::{DescriptorRing, DmaError, RegisterFile, RxDescriptor};
use mint_support::backend::NicSlots;

pub use super::dma::PhysBytes;

/// The register page in the shared region, with the e1000 register
/// semantics of `mint_e1000::RegisterFile` (ICR read-to-clear, IMS/IMC...)
/// over `mint_support`'s slots (the native benchmark uses the same).
pub type SharedRegisters = RegisterFile<NicSlots<'static>>;

pub fn registers() -> SharedRegisters {
    RegisterFile::with_slots(NicSlots(&crate::shared::region().debug_nic.regs))
}

/// The DMA window: the shared region from `dma_window_offset()` to the
/// real NIC's area (`mint_abi::real_nic`; the region's end without one),
/// mapped at `SHARED_VIRT + dma_window_offset()`. Frames are copied in
/// and out only through its volatile bytes (the peer writes them whenever
/// it likes); the descriptor ring inside it only through [`AtomicRing`].
pub type DmaWindow = PhysBytes;

/// The window of a shared region at `shared_phys` of `shared_size` bytes:
/// from `dma_window_offset()` to the real NIC's area (or the region's end).
pub fn dma_window(shared_phys: u64, shared_size: u64) -> DmaWindow {
    let off = dma_window_offset();
    let len = mint_abi::real_nic::debug_window_end(shared_size).saturating_sub(off);
    // SAFETY: every node maps the whole shared region read-write at
    // SHARED_VIRT for its whole life (`shared_size` is the size node 0
    // mapped), and the window, from `dma_window_offset` to the region's
    // end, lies above every structure of the fixed layout: no Rust
    // reference to its bytes as plain data exists, only volatile accesses
    // and the atomics `AtomicRing` lays over the descriptor ring.
    unsafe { PhysBytes::new(SHARED_VIRT + off, shared_phys + off, len) }
}

/// A ring of legacy RX descriptors as pairs of `AtomicU64` (address;
/// length/checksum/status/errors/special: the 16-byte hardware layout,
/// little endian), so a write-back is published with one release store:
/// `mint_support::backend::AtomicRing` (the native benchmark's too) over
/// memory this module vouches for.
/// It lives in the shared DMA window (debug NIC) or in the node's own
/// memory (a real NIC, see `mmio_backend`).
pub struct AtomicRing(mint_support::backend::AtomicRing<'static>);

impl AtomicRing {
    /// # Safety
    /// `ptr` must point to `count` descriptors (16 bytes each, 16-byte
    /// aligned) of mapped memory that stays mapped for good and is reached
    /// by this node only through atomic or volatile accesses.
    pub(super) unsafe fn from_raw(ptr: *const u8, count: u16) -> AtomicRing {
        // SAFETY: the caller guarantees the memory and its alignment (8 is
        // all `AtomicU64` needs); `[AtomicU64; 2]` is valid for any bits,
        // and a peer (or the NIC) changing them concurrently is what
        // atomics allow.
        let descs = unsafe {
            core::slice::from_raw_parts(ptr as *const [AtomicU64; 2], usize::from(count))
        };
        AtomicRing(mint_support::backend::AtomicRing::new(descs))
    }

    /// The ring of `count` descriptors at physical `phys`, if it lies in the
    /// window and is 16-byte aligned.
    pub fn in_window(window: &DmaWindow, phys: u64, count: u16) -> Result<AtomicRing, DmaError> {
        let len = usize::from(count) * RxDescriptor::SIZE;
        let ptr = window.part(phys, len)?.as_ptr();
        if !phys.is_multiple_of(16) || count == 0 {
            return Err(DmaError { addr: phys, len });
        }
        // SAFETY: the range lies inside the DMA window (checked by `part`),
        // which stays mapped for good; the window starts 64 KiB aligned, so
        // a 16-byte aligned physical address is a 16-byte aligned virtual
        // one. The peer may write the same words at any time (atomics), or
        // aim a frame copy at them (volatile, which the driver's validation
        // of what it loads copes with).
        Ok(unsafe { AtomicRing::from_raw(ptr, count) })
    }
}

impl DescriptorRing for AtomicRing {
    fn len(&self) -> u16 {
        self.0.len()
    }

    fn load(&self, index: u16) -> RxDescriptor {
        self.0.load(index)
    }

    fn store_buffer_addr(&self, index: u16, addr: u64) {
        self.0.store_buffer_addr(index, addr);
    }

    fn store_writeback(&self, index: u16, d: &RxDescriptor) {
        self.0.store_writeback(index, d);
    }

    fn clear_status(&self, index: u16) {
        self.0.clear_status(index);
    }

    fn prepare_writeback(&self, index: u16) {
        self.0.prepare_writeback(index);
    }
}
