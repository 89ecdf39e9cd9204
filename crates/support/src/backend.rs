//! The e1000 crate's access traits over shared-memory atomics, for any
//! memory both sides can name: the node kernel lays them over the shared
//! region, the native benchmark over a host allocation of the same layout.
//!
//! - [`NicSlots`]: the register page (`mint_abi`'s [`NicRegisters`], one
//!   register per cache line) as `RegisterSlots`, so
//!   `RegisterFile<NicSlots>` has the e1000's register semantics;
//! - [`AtomicRing`]: legacy RX descriptors as pairs of `AtomicU64`, a
//!   write-back published with one release store;
//! - [`WordDma`]: DMA memory as `AtomicU64` words (the native runs'; the
//!   kernel's DMA window is volatile bytes, `kernel/src/nic/dma.rs`). Both
//!   move frames with the same copies, `mint_volatile::VolatileSlice`'s,
//!   and warm a buffer for writing the same way.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use mint_abi::debug_nic::NicRegisters;
use mint_e1000::{DescriptorRing, DmaError, DmaMemory, RegisterSlots, RxDescriptor};
use mint_volatile::VolatileSlice;

/// The debug NIC's register page as the e1000 crate's register slots.
pub struct NicSlots<'a>(pub &'a NicRegisters);

impl RegisterSlots for NicSlots<'_> {
    #[inline]
    fn slot(&self, index: usize) -> &AtomicU32 {
        &self.0.0[index].0
    }

    #[inline]
    fn prepare_write(&self, index: usize) {
        if let Some(slot) = self.0.0.get(index) {
            mint_volatile::prefetch_write(slot);
        }
    }
}

/// A ring of legacy RX descriptors as pairs of `AtomicU64` (address;
/// length/checksum/status/errors/special: the 16-byte hardware layout,
/// little endian).
pub struct AtomicRing<'a> {
    descs: &'a [[AtomicU64; 2]],
}

impl<'a> AtomicRing<'a> {
    /// The ring over `descs` (at most `u16::MAX` of them are used).
    #[inline]
    pub fn new(descs: &'a [[AtomicU64; 2]]) -> AtomicRing<'a> {
        let count = descs.len().min(usize::from(u16::MAX));
        AtomicRing {
            descs: &descs[..count],
        }
    }
}

impl DescriptorRing for AtomicRing<'_> {
    #[inline]
    fn len(&self) -> u16 {
        // At most u16::MAX, by construction.
        self.descs.len() as u16
    }

    #[inline]
    fn load(&self, index: u16) -> RxDescriptor {
        let d = &self.descs[usize::from(index)];
        // The status word first, Acquire: pairs with the write-back's Release.
        let word1 = d[1].load(Ordering::Acquire);
        RxDescriptor::from_words([d[0].load(Ordering::Relaxed), word1])
    }

    #[inline]
    fn store_buffer_addr(&self, index: u16, addr: u64) {
        self.descs[usize::from(index)][0].store(addr, Ordering::Relaxed);
    }

    #[inline]
    fn store_writeback(&self, index: u16, d: &RxDescriptor) {
        self.descs[usize::from(index)][1].store(d.writeback_word(), Ordering::Release);
    }

    #[inline]
    fn clear_status(&self, index: u16) {
        self.descs[usize::from(index)][1].store(0, Ordering::Release);
    }

    fn prepare_writeback(&self, index: u16) {
        if let Some(d) = self.descs.get(usize::from(index)) {
            mint_volatile::prefetch_write(d);
        }
    }
}

const WORD: usize = core::mem::size_of::<u64>();

/// `words.len() * 8` bytes of DMA memory at physical address `phys`, as
/// 64-bit atomic words (little endian). Frames are ordered by the
/// descriptors' release and acquire, so the words themselves are moved
/// with relaxed loads and stores (plain moves on x86-64).
pub struct WordDma<'a> {
    phys: u64,
    words: &'a [AtomicU64],
}

impl<'a> WordDma<'a> {
    /// The memory `words`, named from physical address `phys` (8-byte
    /// aligned, or every access is refused).
    pub fn new(phys: u64, words: &'a [AtomicU64]) -> WordDma<'a> {
        WordDma { phys, words }
    }

    /// The first physical address.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.words.len() * WORD
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The byte offset of `[addr, addr + len)`, if it lies inside.
    fn offset(&self, addr: u64, len: usize) -> Result<usize, DmaError> {
        let err = DmaError { addr, len };
        if !self.phys.is_multiple_of(WORD as u64) {
            return Err(err);
        }
        let off = addr
            .checked_sub(self.phys)
            .and_then(|o| usize::try_from(o).ok())
            .ok_or(err)?;
        match off.checked_add(len) {
            Some(end) if end <= self.len() => Ok(off),
            _ => Err(err),
        }
    }
}

impl DmaMemory for WordDma<'_> {
    // The kernel's copies (`mint_volatile::VolatileSlice`), over the words.
    #[inline]
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        let off = self.offset(addr, data.len())?;
        VolatileSlice::from_atomics(self.words)
            .copy_from(off, data)
            .map_err(|_| DmaError {
                addr,
                len: data.len(),
            })
    }

    #[inline]
    fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), DmaError> {
        let off = self.offset(addr, out.len())?;
        VolatileSlice::from_atomics(self.words)
            .copy_to(off, out)
            .map_err(|_| DmaError {
                addr,
                len: out.len(),
            })
    }

    fn prepare_write(&self, addr: u64, len: usize) {
        if let Ok(off) = self.offset(addr, len) {
            VolatileSlice::from_atomics(self.words).prefetch_for_write(off, len);
        }
    }
}
