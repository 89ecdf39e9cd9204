//! The memory the NIC and driver share: the RX descriptor array and DMA-able packet buffers.
//!
//! Both are traits so the same driver and device code runs on real DMA memory, on descriptors
//! kept as `AtomicU64` pairs in mint's shared region, and on host test memory.

use crate::desc::RxDescriptor;

/// The RX descriptor array.
///
/// Indices passed by this crate are always `< len()`; implementors may panic otherwise.
///
/// Ownership of the two words of a descriptor (see [`crate::desc`]) is split: the driver writes
/// word0 (buffer address) and clears word1; the device writes word1. Ordering contract for
/// shared-memory implementations:
///
/// - [`store_writeback`](Self::store_writeback) stores word1 with **Release** in one store, so a
///   reader that sees DD also sees the frame the device copied before;
/// - [`load`](Self::load) loads word1 with **Acquire** (before word0), so the frame is visible
///   once DD is seen.
pub trait DescriptorRing {
    /// Number of descriptors.
    fn len(&self) -> u16;

    /// True when the ring has no descriptors (never valid for a programmed ring).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads descriptor `index` (word1 with Acquire).
    fn load(&self, index: u16) -> RxDescriptor;

    /// Writes the buffer address (word0) of descriptor `index`.
    fn store_buffer_addr(&self, index: u16, addr: u64);

    /// Writes the write-back fields of `d` — length, checksum, status, errors, special — into
    /// descriptor `index` as one Release store of word1. `d.buffer_addr` is ignored.
    fn store_writeback(&self, index: u16, d: &RxDescriptor);

    /// Zeroes the write-back fields (word1) of descriptor `index`, handing it back unwritten.
    fn clear_status(&self, index: u16);

    /// A hint that descriptor `index` is written back next: a backend may start taking its
    /// line for writing. No effect on the descriptor.
    fn prepare_writeback(&self, _index: u16) {}
}

impl<T: DescriptorRing + ?Sized> DescriptorRing for &T {
    fn len(&self) -> u16 {
        (**self).len()
    }
    fn load(&self, index: u16) -> RxDescriptor {
        (**self).load(index)
    }
    fn store_buffer_addr(&self, index: u16, addr: u64) {
        (**self).store_buffer_addr(index, addr)
    }
    fn store_writeback(&self, index: u16, d: &RxDescriptor) {
        (**self).store_writeback(index, d)
    }
    fn clear_status(&self, index: u16) {
        (**self).clear_status(index)
    }
    fn prepare_writeback(&self, index: u16) {
        (**self).prepare_writeback(index)
    }
}

/// An access outside the memory a [`DmaMemory`] may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaError {
    /// Start of the rejected access.
    pub addr: u64,
    /// Length of the rejected access in bytes.
    pub len: usize,
}

impl core::fmt::Display for DmaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "DMA of {} bytes at {:#x} is outside the allowed memory",
            self.len, self.addr
        )
    }
}

impl core::error::Error for DmaError {}

/// Packet-buffer memory addressed by (guest-)physical address.
///
/// Implementors bounds-check every access — addresses come from descriptors, which the peer can
/// write — and return [`DmaError`] naming the rejected range instead of touching anything.
pub trait DmaMemory {
    /// Copies `data` to `addr..addr + data.len()`.
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), DmaError>;
    /// Copies `addr..addr + out.len()` into `out`.
    fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), DmaError>;
    /// A hint that `addr..addr + len` is written next: a backend may start
    /// taking the lines for writing (a prefetch), so the write finds them
    /// here instead of in the core that last read them. No effect on
    /// what memory holds; nothing outside the memory is touched.
    fn prepare_write(&self, _addr: u64, _len: usize) {}
}

impl<T: DmaMemory + ?Sized> DmaMemory for &T {
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        (**self).write(addr, data)
    }
    fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), DmaError> {
        (**self).read(addr, out)
    }
    fn prepare_write(&self, addr: u64, len: usize) {
        (**self).prepare_write(addr, len)
    }
}
