//! The e1000 driver's receive side: program the ring, acknowledge causes, clean descriptors.
//!
//! Ring ownership follows the 8254x convention. The device owns the descriptors from RDH up to
//! (not including) RDT; the driver owns the rest. The driver never hands over the whole ring:
//! RDT is kept at `next_to_clean - 1`, so one slot stays empty and `RDH == RDT` means
//! unambiguously "no free descriptors" to the device rather than "all free".
//!
//! Descriptor contents are written by the peer and trusted for nothing: a completed descriptor
//! whose length, flags or buffer address is wrong is counted in its own [`RxCounters`] field,
//! recycled with the driver's own buffer address, and never followed.

use crate::desc::{RxDescriptor, RxStatus};
use crate::regs::{Interrupt, Rctl, Register, RegisterAccess, rctl_bsize_bits};
use crate::ring::{DescriptorRing, DmaMemory};

/// Where the driver placed the receive buffer of each descriptor.
///
/// The driver keeps this itself instead of trusting the ring, so a buffer address the peer
/// rewrote is detected rather than followed. Any `Fn(u16) -> u64` is one; [`Contiguous`] is the
/// common nameable case for a `static`.
pub trait BufferAddrs {
    /// Physical address of the buffer belonging to descriptor `index`.
    fn buffer_addr(&self, index: u16) -> u64;
}

impl<F: Fn(u16) -> u64> BufferAddrs for F {
    fn buffer_addr(&self, index: u16) -> u64 {
        self(index)
    }
}

/// Buffers laid out back to back: descriptor `i` uses `base + i * stride`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contiguous {
    /// Physical address of buffer 0.
    pub base: u64,
    /// Distance between consecutive buffers (at least the buffer size).
    pub stride: u64,
}

impl BufferAddrs for Contiguous {
    fn buffer_addr(&self, index: u16) -> u64 {
        self.base
            .wrapping_add(u64::from(index).wrapping_mul(self.stride))
    }
}

/// Why [`RxRing::init`] refused a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitError {
    /// The ring must hold a multiple of 8 descriptors in `8..=4096` (RDLEN is in 128-byte
    /// units).
    RingSize {
        /// Descriptors the ring offered.
        count: u16,
    },
    /// The buffer size is not one RCTL.BSIZE/BSEX can express.
    BufferSize {
        /// Size asked for.
        size: usize,
    },
    /// The ring's physical address is not 16-byte aligned (RDBAL ignores bits 3:0).
    RingAlignment {
        /// Address given.
        addr: u64,
    },
    /// [`RxRing::adopt`]: the device is not programmed with the ring offered.
    NotProgrammed {
        /// What the device holds: RDBAL/RDBAH, RDLEN, RDT, RCTL.
        rdba: u64,
        rdlen: u32,
        rdt: u32,
        rctl: u32,
    },
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::RingSize { count } => write!(
                f,
                "RX ring of {count} descriptors: need a multiple of 8 in 8..=4096"
            ),
            InitError::BufferSize { size } => write!(
                f,
                "RX buffer size {size}: need 256, 512, 1024, 2048, 4096, 8192 or 16384"
            ),
            InitError::RingAlignment { addr } => {
                write!(f, "RX ring at {addr:#x} is not 16-byte aligned")
            }
            InitError::NotProgrammed {
                rdba,
                rdlen,
                rdt,
                rctl,
            } => write!(
                f,
                "the device is not running this RX ring: RDBA {rdba:#x}, RDLEN {rdlen}, RDT {rdt}, RCTL {rctl:#x}"
            ),
        }
    }
}

impl core::error::Error for InitError {}

/// Misuse of [`RxRing::poll`] by the caller (not by the peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollError {
    /// The scratch buffer cannot hold a full receive buffer.
    ScratchTooSmall {
        /// Bytes required: the ring's buffer size.
        needed: usize,
        /// Bytes offered.
        got: usize,
    },
}

impl core::fmt::Display for PollError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PollError::ScratchTooSmall { needed, got } => {
                write!(f, "poll scratch of {got} bytes, need {needed}")
            }
        }
    }
}

impl core::error::Error for PollError {}

/// Cumulative receive statistics of one ring. Each cleaned descriptor lands in exactly one of
/// `delivered` or a drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxCounters {
    /// Frames handed to the caller.
    pub delivered: u64,
    /// Bytes handed to the caller.
    pub bytes: u64,
    /// Completions with length 0 or longer than the buffer.
    pub bad_length: u64,
    /// Completions without EOP (multi-descriptor frames are not supported).
    pub no_eop: u64,
    /// Completions with any error bit set.
    pub rx_errors: u64,
    /// Completions whose buffer address is not the one the driver placed (peer rewrote it).
    pub bad_buffer_addr: u64,
    /// Completions whose buffer could not be read.
    pub dma_errors: u64,
    /// Valid frames the caller's [`RxSink`] had no room for.
    pub sink_full: u64,
}

impl RxCounters {
    /// Completions refused for what the descriptor or its buffer said (not
    /// for lack of room on the caller's side).
    pub fn refused(&self) -> u64 {
        self.bad_length + self.no_eop + self.rx_errors + self.bad_buffer_addr + self.dma_errors
    }

    /// Every completion that was recycled without delivery.
    pub fn dropped(&self) -> u64 {
        self.refused() + self.sink_full
    }
}

/// Where [`RxRing::poll_into`] puts frames: straight into the caller's
/// buffers (a socket buffer, say), so a frame is copied once, from the DMA
/// buffer to its destination.
pub trait RxSink {
    /// A buffer of at least `len` bytes for the next frame, or `None` when
    /// the caller has no room (the frame is dropped and counted as
    /// `sink_full`).
    fn buffer(&mut self, len: usize) -> Option<&mut [u8]>;
    /// The first `len` bytes of the last buffer now hold a complete frame.
    fn commit(&mut self, len: usize);
}

/// The [`RxSink`] behind [`RxRing::poll`]: one scratch buffer and a callback.
struct ScratchSink<'a, F> {
    scratch: &'a mut [u8],
    deliver: F,
}

impl<F: FnMut(&[u8])> RxSink for ScratchSink<'_, F> {
    fn buffer(&mut self, len: usize) -> Option<&mut [u8]> {
        self.scratch.get_mut(..len)
    }

    fn commit(&mut self, len: usize) {
        (self.deliver)(&self.scratch[..len]);
    }
}

/// What one [`RxRing::poll`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PollResult {
    /// Frames handed to `deliver`.
    pub delivered: usize,
    /// Completed descriptors recycled without delivery (see [`RxCounters`] for why).
    pub dropped: usize,
    /// Descriptors given back to the device (`delivered + dropped`).
    pub cleaned: usize,
    /// The poll stopped at its budget, not at an unfinished descriptor: poll again.
    pub more: bool,
}

/// Why a completed descriptor is not delivered.
#[derive(Debug, Clone, Copy)]
enum Reject {
    BadBufferAddr,
    RxErrors,
    NoEop,
    BadLength,
}

/// The driver's state for one RX ring.
#[derive(Debug, Clone)]
pub struct RxRing<B = Contiguous> {
    count: u16,
    next_to_clean: u16,
    buffer_size: usize,
    counters: RxCounters,
    buffers: B,
}

impl<B: BufferAddrs> RxRing<B> {
    /// Fewest descriptors accepted (one 128-byte RDLEN unit).
    pub const MIN_DESCRIPTORS: u16 = 8;
    /// Most descriptors accepted.
    pub const MAX_DESCRIPTORS: u16 = 4096;
    /// Causes the driver unmasks: packets, overruns, low descriptors, link changes.
    pub const INTERRUPTS: Interrupt = Interrupt::RXT0
        .union(Interrupt::RXO)
        .union(Interrupt::RXDMT0)
        .union(Interrupt::LSC);

    /// Programs the receive unit for `ring` (of `ring.len()` descriptors at physical address
    /// `ring_phys`) with buffers of `buffer_size` bytes at `buffers`, and enables reception.
    ///
    /// Register sequence: mask all causes and discard stale ones, disable the receiver, fill the
    /// ring, RDBAL/RDBAH/RDLEN, RDH = 0, RDT = count - 1, RCTL = EN | BAM | SECRC | LPE | size
    /// bits, IMS = [`Self::INTERRUPTS`].
    pub fn init<R, D>(
        regs: &R,
        ring: &D,
        ring_phys: u64,
        buffers: B,
        buffer_size: usize,
    ) -> Result<Self, InitError>
    where
        R: RegisterAccess + ?Sized,
        D: DescriptorRing + ?Sized,
    {
        let count = ring.len();
        if !(Self::MIN_DESCRIPTORS..=Self::MAX_DESCRIPTORS).contains(&count)
            || !count.is_multiple_of(8)
        {
            return Err(InitError::RingSize { count });
        }
        let size_bits =
            rctl_bsize_bits(buffer_size).ok_or(InitError::BufferSize { size: buffer_size })?;
        if !ring_phys.is_multiple_of(16) {
            return Err(InitError::RingAlignment { addr: ring_phys });
        }

        // Quiesce first: no interrupt may fire for, and no DMA may go through, a half-written
        // ring. Reading ICR drops causes left over from before this init.
        regs.write(Register::IMC, u32::MAX);
        let _stale = regs.read(Register::ICR);
        regs.write(Register::RCTL, 0);

        for i in 0..count {
            ring.store_buffer_addr(i, buffers.buffer_addr(i));
            ring.clear_status(i);
        }

        regs.write(Register::RDBAL, ring_phys as u32);
        regs.write(Register::RDBAH, (ring_phys >> 32) as u32);
        regs.write(
            Register::RDLEN,
            u32::from(count) * RxDescriptor::SIZE as u32,
        );
        regs.write(Register::RDH, 0);
        // One slot stays empty: see the module docs.
        regs.write(Register::RDT, u32::from(count - 1));

        let rctl =
            Rctl::EN | Rctl::BAM | Rctl::SECRC | Rctl::LPE | Rctl::from_bits_retain(size_bits);
        regs.write(Register::RCTL, rctl.bits());
        regs.write(Register::IMS, Self::INTERRUPTS.bits());

        Ok(Self {
            count,
            next_to_clean: 0,
            buffer_size,
            counters: RxCounters::default(),
            buffers,
        })
    }

    /// Takes over a ring another driver instance programmed with [`RxRing::init`] and ran
    /// (a device handed over between nodes): nothing is written, the receiver keeps running.
    /// The device must hold exactly this ring (RDBA, RDLEN) with reception enabled and its
    /// buffer size; where to clean next follows from the invariant every poll keeps, RDT =
    /// `next_to_clean - 1`, so the previous instance must have stopped polling. Counters
    /// start from zero.
    pub fn adopt<R, D>(
        regs: &R,
        ring: &D,
        ring_phys: u64,
        buffers: B,
        buffer_size: usize,
    ) -> Result<Self, InitError>
    where
        R: RegisterAccess + ?Sized,
        D: DescriptorRing + ?Sized,
    {
        let count = ring.len();
        let rdba =
            u64::from(regs.read(Register::RDBAL)) | u64::from(regs.read(Register::RDBAH)) << 32;
        let rdlen = regs.read(Register::RDLEN);
        let rdt = regs.read(Register::RDT);
        let rctl = regs.read(Register::RCTL);
        let programmed = rdba == ring_phys
            && rdlen == u32::from(count) * RxDescriptor::SIZE as u32
            && rdt < u32::from(count)
            && rctl & Rctl::EN.bits() != 0
            && crate::regs::rctl_buffer_size(rctl) == Some(buffer_size);
        if !programmed {
            return Err(InitError::NotProgrammed {
                rdba,
                rdlen,
                rdt,
                rctl,
            });
        }
        Ok(Self {
            count,
            next_to_clean: ((rdt + 1) % u32::from(count)) as u16,
            buffer_size,
            counters: RxCounters::default(),
            buffers,
        })
    }

    /// Reads (and so clears) ICR, returning the pending causes. Call once per interrupt.
    pub fn ack<R: RegisterAccess + ?Sized>(&self, regs: &R) -> u32 {
        regs.read(Register::ICR)
    }

    /// Masks this ring's interrupts and disables the receiver.
    pub fn disable<R: RegisterAccess + ?Sized>(&self, regs: &R) {
        regs.write(Register::IMC, Self::INTERRUPTS.bits());
        regs.write(Register::RCTL, 0);
    }

    /// Cleans up to `budget` completed descriptors starting at `next_to_clean`.
    ///
    /// Each valid frame is copied from its DMA buffer into `scratch` (which must hold at least
    /// [`buffer_size`](Self::buffer_size) bytes) and passed to `deliver`, which copies it
    /// wherever it belongs — no allocation happens here. Invalid completions are counted and
    /// recycled. Every cleaned descriptor gets the driver's own buffer address back and a
    /// cleared status, and RDT is written once at the end to return the batch to the device.
    ///
    /// A poll never cleans more than `count - 1` descriptors (all the device can own), so it
    /// terminates even against a peer that keeps setting DD.
    pub fn poll<R, D, M, F>(
        &mut self,
        regs: &R,
        ring: &D,
        dma: &M,
        scratch: &mut [u8],
        budget: usize,
        deliver: F,
    ) -> Result<PollResult, PollError>
    where
        R: RegisterAccess + ?Sized,
        D: DescriptorRing + ?Sized,
        M: DmaMemory + ?Sized,
        F: FnMut(&[u8]),
    {
        if scratch.len() < self.buffer_size {
            return Err(PollError::ScratchTooSmall {
                needed: self.buffer_size,
                got: scratch.len(),
            });
        }
        Ok(self.poll_into(
            regs,
            ring,
            dma,
            budget,
            &mut ScratchSink { scratch, deliver },
        ))
    }

    /// As [`poll`](Self::poll), but each valid frame is read from its DMA
    /// buffer directly into a buffer `sink` provides: one copy per frame.
    pub fn poll_into<R, D, M, S>(
        &mut self,
        regs: &R,
        ring: &D,
        dma: &M,
        budget: usize,
        sink: &mut S,
    ) -> PollResult
    where
        R: RegisterAccess + ?Sized,
        D: DescriptorRing + ?Sized,
        M: DmaMemory + ?Sized,
        S: RxSink + ?Sized,
    {
        let limit = budget.min(usize::from(self.count - 1));
        let mut result = PollResult::default();
        let mut index = self.next_to_clean;

        while result.cleaned < limit {
            let d = ring.load(index);
            if !d.status.contains(RxStatus::DD) {
                break;
            }
            let expected = self.buffers.buffer_addr(index);
            match self.validate(&d, expected) {
                Ok(len) => {
                    // Read from our own address, not the descriptor's: they are equal here, and
                    // using ours leaves nothing for the peer to change between check and use.
                    match sink.buffer(len).map(|b| dma.read(expected, &mut b[..len])) {
                        Some(Ok(())) => {
                            sink.commit(len);
                            self.counters.delivered += 1;
                            self.counters.bytes += len as u64;
                            result.delivered += 1;
                        }
                        Some(Err(_)) => {
                            self.counters.dma_errors += 1;
                            result.dropped += 1;
                        }
                        None => {
                            self.counters.sink_full += 1;
                            result.dropped += 1;
                        }
                    }
                }
                Err(reject) => {
                    match reject {
                        Reject::BadBufferAddr => self.counters.bad_buffer_addr += 1,
                        Reject::RxErrors => self.counters.rx_errors += 1,
                        Reject::NoEop => self.counters.no_eop += 1,
                        Reject::BadLength => self.counters.bad_length += 1,
                    }
                    result.dropped += 1;
                }
            }
            // Re-arm before handing back: restore our buffer (the peer may have replaced it),
            // then clear the write-back so a stale DD cannot be mistaken for a new completion.
            ring.store_buffer_addr(index, expected);
            ring.clear_status(index);
            result.cleaned += 1;
            index = self.next(index);
        }

        if result.cleaned > 0 {
            self.next_to_clean = index;
            // RDT = the last cleaned slot: everything cleaned but that one goes back to the
            // device, keeping the one-empty-slot invariant. One register write per batch.
            regs.write(Register::RDT, u32::from(self.prev(index)));
        }
        result.more = limit > 0 && result.cleaned == limit;
        result
    }

    fn validate(&self, d: &RxDescriptor, expected: u64) -> Result<usize, Reject> {
        // Address first: it decides whether anything else in the descriptor is even about our
        // buffer.
        if d.buffer_addr != expected {
            return Err(Reject::BadBufferAddr);
        }
        if !d.errors.is_empty() {
            return Err(Reject::RxErrors);
        }
        if !d.status.contains(RxStatus::EOP) {
            return Err(Reject::NoEop);
        }
        let len = usize::from(d.length);
        if len == 0 || len > self.buffer_size {
            return Err(Reject::BadLength);
        }
        Ok(len)
    }

    fn next(&self, index: u16) -> u16 {
        if index + 1 == self.count {
            0
        } else {
            index + 1
        }
    }

    fn prev(&self, index: u16) -> u16 {
        if index == 0 {
            self.count - 1
        } else {
            index - 1
        }
    }

    /// Number of descriptors.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// The next descriptor the driver will look at.
    pub fn next_to_clean(&self) -> u16 {
        self.next_to_clean
    }

    /// Bytes per receive buffer.
    pub fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    /// Cumulative statistics.
    pub fn counters(&self) -> &RxCounters {
        &self.counters
    }

    /// Where the driver placed each buffer.
    pub fn buffers(&self) -> &B {
        &self.buffers
    }
}
