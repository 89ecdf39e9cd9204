//! The crate's tests: host backends from [`crate::testing`] playing shared memory.

use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;

use crate::regs::{Register, RegisterAccess, RegisterFile};
use crate::ring::{DescriptorRing, DmaError, DmaMemory};
use crate::testing::{MemDma, MemRing};
use crate::{Contiguous, DeviceModel, RxRing};

mod desc;
mod device;
mod driver;
mod e2e;
mod prop;
mod regs;

/// Physical address the tests give the descriptor ring.
const RING_PHYS: u64 = 0x0001_0000;
/// Physical address of buffer 0.
const BUF_BASE: u64 = 0x0010_0000;

/// A frame of `len` bytes whose first four bytes carry `seq` and the rest a seq-derived pattern,
/// so a swapped, truncated or duplicated frame is detected.
fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    for (i, b) in f.iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    f[..4].copy_from_slice(&seq.to_le_bytes());
    f
}

fn seq_of(f: &[u8]) -> u32 {
    u32::from_le_bytes([f[0], f[1], f[2], f[3]])
}

/// Driver and device sharing one register page, ring and buffer memory.
struct Harness<D: DescriptorRing = MemRing> {
    regs: RegisterFile,
    ring: D,
    dma: MemDma,
    rx: RxRing<Contiguous>,
    dev: DeviceModel,
    scratch: Vec<u8>,
    delivered: Vec<Vec<u8>>,
}

impl Harness<MemRing> {
    fn new(count: u16, buffer_size: usize) -> Self {
        Self::with_ring(MemRing::new(count), buffer_size)
    }
}

impl<D: DescriptorRing> Harness<D> {
    fn with_ring(ring: D, buffer_size: usize) -> Self {
        let count = ring.len();
        let regs = RegisterFile::new();
        let dma = MemDma::new(BUF_BASE, usize::from(count) * buffer_size);
        let buffers = Contiguous {
            base: BUF_BASE,
            stride: buffer_size as u64,
        };
        let rx = RxRing::init(&regs, &ring, RING_PHYS, buffers, buffer_size).expect("init");
        Self {
            regs,
            ring,
            dma,
            rx,
            dev: DeviceModel::new(),
            scratch: vec![0; buffer_size],
            delivered: Vec::new(),
        }
    }

    fn send(&mut self, f: &[u8]) -> Result<crate::Received, crate::RxDrop> {
        self.dev.receive(&self.regs, &self.ring, &self.dma, f)
    }

    fn poll(&mut self, budget: usize) -> crate::PollResult {
        let out = &mut self.delivered;
        self.rx
            .poll(
                &self.regs,
                &self.ring,
                &self.dma,
                &mut self.scratch,
                budget,
                |f| out.push(f.to_vec()),
            )
            .expect("scratch is large enough")
    }

    fn reg(&self, r: Register) -> u32 {
        self.regs.peek(r)
    }
}

/// Counts register writes, to check the driver's batching.
struct CountingRegs<'a> {
    inner: &'a RegisterFile,
    rdt_writes: Cell<usize>,
}

impl RegisterAccess for CountingRegs<'_> {
    fn read(&self, reg: Register) -> u32 {
        self.inner.read(reg)
    }
    fn write(&self, reg: Register, value: u32) {
        if reg == Register::RDT {
            self.rdt_writes.set(self.rdt_writes.get() + 1);
        }
        self.inner.write(reg, value)
    }
}

/// Records every DMA read address, to check the driver never follows a peer's address.
struct RecordingDma<'a> {
    inner: &'a MemDma,
    reads: core::cell::RefCell<Vec<u64>>,
}

impl DmaMemory for RecordingDma<'_> {
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        self.inner.write(addr, data)
    }
    fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), DmaError> {
        self.reads.borrow_mut().push(addr);
        self.inner.read(addr, out)
    }
}
