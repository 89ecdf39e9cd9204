//! Host-memory backends for the crate's traits, for tests of the driver and device model.
//!
//! Enabled by the `testing` feature (and in this crate's own tests); the node kernel has its
//! own backends and never enables it. Use [`RegisterFile`](crate::RegisterFile) for registers.

use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::desc::{RxDescriptor, RxDescriptorView};
use crate::ring::{DescriptorRing, DmaError, DmaMemory};

/// A descriptor ring as `[AtomicU64; 2]` per descriptor — the layout mint's shared region uses.
#[derive(Debug)]
pub struct MemRing {
    words: Vec<[AtomicU64; 2]>,
}

impl MemRing {
    /// A zeroed ring of `count` descriptors.
    pub fn new(count: u16) -> Self {
        Self {
            words: (0..count)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
        }
    }

    /// Both words of descriptor `index`.
    pub fn words(&self, index: u16) -> [u64; 2] {
        let w = &self.words[usize::from(index)];
        [w[0].load(Ordering::Acquire), w[1].load(Ordering::Acquire)]
    }

    /// Overwrites both words of descriptor `index` (e.g. to play a misbehaving peer).
    pub fn set_words(&self, index: u16, words: [u64; 2]) {
        let w = &self.words[usize::from(index)];
        w[0].store(words[0], Ordering::Release);
        w[1].store(words[1], Ordering::Release);
    }
}

impl DescriptorRing for MemRing {
    fn len(&self) -> u16 {
        // Constructed from a u16 count.
        self.words.len() as u16
    }

    fn load(&self, index: u16) -> RxDescriptor {
        let w = &self.words[usize::from(index)];
        // word1 first, Acquire: pairs with the Release in store_writeback.
        let w1 = w[1].load(Ordering::Acquire);
        let w0 = w[0].load(Ordering::Relaxed);
        RxDescriptor::from_words([w0, w1])
    }

    fn store_buffer_addr(&self, index: u16, addr: u64) {
        self.words[usize::from(index)][0].store(addr, Ordering::Relaxed);
    }

    fn store_writeback(&self, index: u16, d: &RxDescriptor) {
        self.words[usize::from(index)][1].store(d.writeback_word(), Ordering::Release);
    }

    fn clear_status(&self, index: u16) {
        self.words[usize::from(index)][1].store(0, Ordering::Release);
    }
}

/// A descriptor ring as raw 16-byte hardware descriptors, accessed through
/// [`RxDescriptorView`] — the real-NIC layout.
#[derive(Debug)]
pub struct ByteRing {
    bytes: RefCell<Vec<u8>>,
}

impl ByteRing {
    /// A zeroed ring of `count` descriptors.
    pub fn new(count: u16) -> Self {
        Self {
            bytes: RefCell::new(vec![0; usize::from(count) * RxDescriptor::SIZE]),
        }
    }

    /// The 16 raw bytes of descriptor `index`.
    pub fn raw(&self, index: u16) -> [u8; 16] {
        let mut out = [0u8; 16];
        out.copy_from_slice(&self.bytes.borrow()[Self::range(index)]);
        out
    }

    fn range(index: u16) -> core::ops::Range<usize> {
        let start = usize::from(index) * RxDescriptor::SIZE;
        start..start + RxDescriptor::SIZE
    }

    fn with_view<T>(&self, index: u16, f: impl FnOnce(&mut RxDescriptorView<&mut [u8]>) -> T) -> T {
        let mut bytes = self.bytes.borrow_mut();
        let mut view = RxDescriptorView::new_unchecked(&mut bytes[Self::range(index)]);
        f(&mut view)
    }
}

impl DescriptorRing for ByteRing {
    fn len(&self) -> u16 {
        (self.bytes.borrow().len() / RxDescriptor::SIZE) as u16
    }

    fn load(&self, index: u16) -> RxDescriptor {
        self.with_view(index, |v| v.descriptor())
    }

    fn store_buffer_addr(&self, index: u16, addr: u64) {
        self.with_view(index, |v| v.set_buffer_addr(addr))
    }

    fn store_writeback(&self, index: u16, d: &RxDescriptor) {
        self.with_view(index, |v| v.set_writeback(d))
    }

    fn clear_status(&self, index: u16) {
        self.with_view(index, |v| v.set_writeback(&RxDescriptor::default()))
    }
}

/// DMA memory: `size` bytes starting at physical address `base`, bounds-checked.
#[derive(Debug)]
pub struct MemDma {
    base: u64,
    mem: RefCell<Vec<u8>>,
}

impl MemDma {
    /// Zeroed memory covering `base..base + size`.
    pub fn new(base: u64, size: usize) -> Self {
        Self {
            base,
            mem: RefCell::new(vec![0; size]),
        }
    }

    /// First address.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.mem.borrow().len()
    }

    fn range(&self, addr: u64, len: usize) -> Result<core::ops::Range<usize>, DmaError> {
        let err = DmaError { addr, len };
        let start = addr
            .checked_sub(self.base)
            .and_then(|o| usize::try_from(o).ok())
            .ok_or(err)?;
        let end = start.checked_add(len).ok_or(err)?;
        if end > self.mem.borrow().len() {
            return Err(err);
        }
        Ok(start..end)
    }
}

impl DmaMemory for MemDma {
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        let r = self.range(addr, data.len())?;
        self.mem.borrow_mut()[r].copy_from_slice(data);
        Ok(())
    }

    fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), DmaError> {
        let r = self.range(addr, out.len())?;
        out.copy_from_slice(&self.mem.borrow()[r]);
        Ok(())
    }
}
