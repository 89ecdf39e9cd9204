//! The NIC's receive side as the support node plays it: frame in, descriptor written back, cause raised.
//!
//! [`DeviceModel::receive`] does what an 82540EM does when a frame arrives from the wire, reading
//! its configuration from the registers the driver programmed (RCTL, RDLEN, RDH, RDBAL/RDBAH,
//! IMS) every time — the driver may reprogram them at any moment, and each read is only an
//! atomic load of the shared register page. RDT is read when the device fetches descriptors:
//! like the 8254x's on-chip descriptor cache, it fetches up to [`DESC_CACHE`] device-owned
//! descriptors at once and reads RDT again only to fetch more (or at the RXDMT0 threshold). It
//! returns whether the driver's interrupt must be raised; raising it (an IPI) is the caller's
//! job.
//!
//! Everything the driver wrote is untrusted: a bad RDLEN or RDH, a bad RDT when descriptors are
//! fetched, an undecodable buffer size, or a buffer address outside the allowed memory drops
//! the frame with a named reason and a count in [`DropCounters`], never a panic or a stray
//! write.

use crate::desc::{RxDescriptor, RxErrors, RxStatus};
use crate::regs::{
    Interrupt, Rctl, Register, RegisterAccess, Status, rctl_buffer_size, rctl_rdmts_divisor,
};
use crate::ring::{DescriptorRing, DmaError, DmaMemory};

/// How much of the next buffer the read-ahead warms: its first KiB. All of
/// a 16 KiB frame's lines took 0.5-1.1 us to prefetch natively, in the
/// support side's critical path when frames come back to back; warming
/// the start only measured 110-117 against 79 Gbps at 8 KiB and 115-139
/// against 96-98 at 16 KiB (lossless, two interleaved A/Bs), and sends
/// at intervals no slower from 8 KiB on (docs/EVALUATION.md).
pub const READ_AHEAD_BYTES: usize = 1024;

/// RDT, checked against the ring's size.
fn read_tail<R: RegisterAccess + ?Sized>(regs: &R, count: u16) -> Result<u16, RxDrop> {
    let rdt = regs.read(Register::RDT);
    u16::try_from(rdt)
        .ok()
        .filter(|&t| t < count)
        .ok_or(RxDrop::BadConfig(ConfigError::Tail { rdt, count }))
}

/// Shortest frame accepted, without FCS (64-byte Ethernet minimum less the 4-byte CRC).
pub const MIN_FRAME: usize = 60;
/// Longest frame accepted while RCTL.LPE is clear, without FCS (1522 with CRC, VLAN-tagged).
pub const MAX_STANDARD_FRAME: usize = 1518;

/// A register value the driver programmed that the device cannot work with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// RCTL's BSIZE/BSEX combination is reserved.
    BufferSize {
        /// The RCTL value read.
        rctl: u32,
    },
    /// RDLEN is zero, not a multiple of 128, or larger than the ring memory.
    RingLength {
        /// The RDLEN value read.
        rdlen: u32,
    },
    /// RDH is outside the ring.
    Head {
        /// The RDH value read.
        rdh: u32,
        /// Descriptors in the ring.
        count: u16,
    },
    /// RDT is outside the ring.
    Tail {
        /// The RDT value read.
        rdt: u32,
        /// Descriptors in the ring.
        count: u16,
    },
}

/// Why a frame was not received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxDrop {
    /// RCTL.EN is clear.
    NotEnabled,
    /// Shorter than [`MIN_FRAME`].
    Undersize {
        /// Frame length.
        len: usize,
    },
    /// Longer than the receive buffer (or than [`MAX_STANDARD_FRAME`] without RCTL.LPE).
    Oversize {
        /// Frame length.
        len: usize,
        /// Longest frame the configuration accepts.
        max: usize,
    },
    /// The driver's register programming is unusable.
    BadConfig(ConfigError),
    /// RDH == RDT when the device fetched descriptors (none fetched earlier was left): the
    /// driver has given the device no free descriptor. MPC was incremented and RXO raised, as
    /// the NIC does on an overrun.
    NoDescriptor {
        /// RXO is unmasked in IMS: the caller must raise the driver's interrupt.
        raise_interrupt: bool,
    },
    /// The descriptor's buffer address is outside the allowed memory. The descriptor is not
    /// consumed (RDH stays).
    DmaFault(DmaError),
}

impl RxDrop {
    /// Short stable name, for logs and counters.
    pub fn reason(&self) -> &'static str {
        match self {
            RxDrop::NotEnabled => "not-enabled",
            RxDrop::Undersize { .. } => "undersize",
            RxDrop::Oversize { .. } => "oversize",
            RxDrop::BadConfig(_) => "bad-config",
            RxDrop::NoDescriptor { .. } => "no-descriptor",
            RxDrop::DmaFault(_) => "dma-fault",
        }
    }

    /// Whether the drop itself raised an unmasked cause (only an overrun does).
    pub fn raise_interrupt(&self) -> bool {
        matches!(
            self,
            RxDrop::NoDescriptor {
                raise_interrupt: true
            }
        )
    }
}

impl core::fmt::Display for RxDrop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason())?;
        match self {
            RxDrop::Undersize { len } => write!(f, " ({len} < {MIN_FRAME} bytes)"),
            RxDrop::Oversize { len, max } => write!(f, " ({len} > {max} bytes)"),
            RxDrop::BadConfig(c) => write!(f, " ({c:?})"),
            RxDrop::DmaFault(e) => write!(f, " ({e})"),
            _ => Ok(()),
        }
    }
}

/// A frame the device placed in the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Descriptor written back.
    pub index: u16,
    /// Bytes DMA'd.
    pub length: u16,
    /// Causes set in ICR ([`Interrupt`] bits: RXT0, maybe RXDMT0).
    pub causes: u32,
    /// Some cause is unmasked in IMS: the caller must raise the driver's interrupt.
    pub raise_interrupt: bool,
}

/// Frames dropped by the device model, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounters {
    /// [`RxDrop::NotEnabled`].
    pub not_enabled: u64,
    /// [`RxDrop::Undersize`].
    pub undersize: u64,
    /// [`RxDrop::Oversize`].
    pub oversize: u64,
    /// [`RxDrop::BadConfig`].
    pub bad_config: u64,
    /// [`RxDrop::NoDescriptor`].
    pub no_descriptor: u64,
    /// [`RxDrop::DmaFault`].
    pub dma_fault: u64,
}

impl DropCounters {
    /// All drops.
    pub fn total(&self) -> u64 {
        self.not_enabled
            + self.undersize
            + self.oversize
            + self.bad_config
            + self.no_descriptor
            + self.dma_fault
    }

    fn count(&mut self, drop: &RxDrop) {
        let slot = match drop {
            RxDrop::NotEnabled => &mut self.not_enabled,
            RxDrop::Undersize { .. } => &mut self.undersize,
            RxDrop::Oversize { .. } => &mut self.oversize,
            RxDrop::BadConfig(_) => &mut self.bad_config,
            RxDrop::NoDescriptor { .. } => &mut self.no_descriptor,
            RxDrop::DmaFault(_) => &mut self.dma_fault,
        };
        *slot += 1;
    }
}

/// The support node's e1000 receive unit. Holds statistics, where its read-ahead goes next and
/// the descriptors it has fetched: the rest of its configuration is read from the registers on
/// each frame.
#[derive(Debug, Clone, Default)]
pub struct DeviceModel {
    received: u64,
    bytes: u64,
    drops: DropCounters,
    /// Where the next frame goes and the bytes the last one took, once a frame is placed and
    /// until [`read_ahead`](Self::read_ahead) has warmed them.
    ahead: Option<Ahead>,
    /// Buffer addresses of descriptors the device owns, fetched ahead.
    cache: DescCache,
}

/// What the read-ahead after a frame needs: the next descriptor and the ring as the frame
/// found it.
#[derive(Debug, Clone, Copy)]
struct Ahead {
    index: u16,
    ring: RingId,
    len: usize,
}

/// The ring's registers when descriptors were fetched: a driver that programs another ring (or
/// resets this one elsewhere) invalidates what was fetched from the old one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RingId {
    base_lo: u32,
    base_hi: u32,
    count: u16,
}

/// Descriptors fetched at once, as an 8254x's on-chip descriptor cache (RXDCTL's prefetch):
/// two cache lines of the ring.
pub const DESC_CACHE: usize = 8;

/// The buffer addresses of descriptors `first..first + len` (mod the ring's size), fetched
/// while the device owned them (between RDH and RDT). The driver may not rewrite a descriptor
/// it has handed to the device (the 8254x's contract: the hardware may have fetched it), nor
/// move RDT back over it, so the ring has room for them until the device writes them back;
/// the device model still compares each with the descriptor before it uses it (a driver that
/// re-initialises its ring between two frames, unseen). Fetching them a group at a time spares
/// each frame the load of RDT, a line the driver writes as it refills: it is read only when
/// the cache runs out, or when the free descriptors may have fallen to the RXDMT0 threshold.
/// (The descriptor's own line, which the driver's refill of the one before it takes three
/// times in four, is taken back by the read-ahead in idle time.)
#[derive(Debug, Clone, Default)]
struct DescCache {
    ring: RingId,
    first: u16,
    len: u8,
    addrs: [u64; DESC_CACHE],
    /// RDT as last read: the ring has room up to here at least.
    tail: u16,
}

impl DescCache {
    /// The buffer address of descriptor `index` when it is the next one fetched.
    fn peek(&self, ring: RingId, index: u16) -> Option<u64> {
        (self.len > 0 && self.first == index && self.ring == ring)
            .then(|| self.addrs[usize::from(DESC_CACHE as u8 - self.len)])
    }

    /// Fetches the device's descriptors from `head` (up to `tail`, at most [`DESC_CACHE`]).
    fn fill<D: DescriptorRing + ?Sized>(&mut self, ring: &D, id: RingId, head: u16, tail: u16) {
        let count = u32::from(id.count);
        let owned = (u32::from(tail) + count - u32::from(head)) % count;
        let n = (owned as usize).min(DESC_CACHE);
        // Entries fill from the back, so that the next one is always at DESC_CACHE - len.
        let start = DESC_CACHE - n;
        for (k, slot) in self.addrs[start..].iter_mut().enumerate() {
            let index = (u32::from(head) + k as u32) % count;
            *slot = ring.load(index as u16).buffer_addr;
        }
        self.ring = id;
        self.first = head;
        self.len = n as u8;
        self.tail = tail;
    }

    /// Takes the buffer address of descriptor `head`, which must be the next one fetched
    /// ([`peek`](Self::peek) is `Some`).
    fn take(&mut self, id: RingId, head: u16) -> u64 {
        debug_assert!(self.peek(id, head).is_some());
        let addr = self.addrs[DESC_CACHE - usize::from(self.len)];
        self.len -= 1;
        self.first = if u32::from(head) + 1 == u32::from(id.count) {
            0
        } else {
            head + 1
        };
        addr
    }
}

impl DeviceModel {
    /// A model with zeroed statistics.
    pub const fn new() -> Self {
        Self {
            received: 0,
            bytes: 0,
            drops: DropCounters {
                not_enabled: 0,
                undersize: 0,
                oversize: 0,
                bad_config: 0,
                no_descriptor: 0,
                dma_fault: 0,
            },
            ahead: None,
            cache: DescCache {
                ring: RingId {
                    base_lo: 0,
                    base_hi: 0,
                    count: 0,
                },
                first: 0,
                len: 0,
                addrs: [0; DESC_CACHE],
                tail: 0,
            },
        }
    }

    /// Frames placed in the ring.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Bytes placed in the ring.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Drops by reason.
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Receives one frame (without FCS) from the wire into the driver's ring.
    ///
    /// On success the frame is in the buffer of descriptor `index`, its write-back (length,
    /// DD | EOP, checksum 0) published with one store, RDH advanced, GPRC incremented and RXT0
    /// (plus RXDMT0 when free descriptors fell to the RCTL.RDMTS threshold) set in ICR.
    pub fn receive<R, D, M>(
        &mut self,
        regs: &R,
        ring: &D,
        dma: &M,
        frame: &[u8],
    ) -> Result<Received, RxDrop>
    where
        R: RegisterAccess + ?Sized,
        D: DescriptorRing + ?Sized,
        M: DmaMemory + ?Sized,
    {
        self.receive_with_fault(regs, ring, dma, frame, None)
    }

    /// As [`receive`](Self::receive), but, with `fault`, publishes a corrupted write-back for
    /// this frame (fault injection: the driver must count it and carry on, never follow it).
    /// The frame still counts as received by the device.
    pub fn receive_with_fault<R, D, M>(
        &mut self,
        regs: &R,
        ring: &D,
        dma: &M,
        frame: &[u8],
        fault: Option<WritebackFault>,
    ) -> Result<Received, RxDrop>
    where
        R: RegisterAccess + ?Sized,
        D: DescriptorRing + ?Sized,
        M: DmaMemory + ?Sized,
    {
        match Self::place(&mut self.cache, regs, ring, dma, frame, fault) {
            Ok((r, next)) => {
                self.received += 1;
                self.bytes += u64::from(r.length);
                self.ahead = next;
                Ok(r)
            }
            Err(drop) => {
                self.drops.count(&drop);
                Err(drop)
            }
        }
    }

    /// Whether a read-ahead waits (a frame was placed since the last one).
    pub fn reads_ahead(&self) -> bool {
        self.ahead.is_some()
    }

    /// The device's idle work between frames, as an 8254x's DMA engine fetches descriptors
    /// ahead of the frames that need them: once per frame placed, the next descriptors the
    /// device owns are fetched (up to [`DESC_CACHE`], unless they were), and the next one's
    /// line, as much of its buffer as the last frame took, up to [`READ_AHEAD_BYTES`], and ICR
    /// are taken for writing
    /// (`prepare_writeback`, `prepare_write`: hints, nothing changes), so the next frame's
    /// copy and write-back find their lines here instead of in the cache of the driver that
    /// last read them. Returns whether it warmed anything (not when the ring had no room
    /// after the last frame and RDT still says so). RDT is the only register read, and only
    /// to fetch.
    pub fn read_ahead<R, D, M>(&mut self, regs: &R, ring: &D, dma: &M) -> bool
    where
        R: RegisterAccess + ?Sized,
        D: DescriptorRing + ?Sized,
        M: DmaMemory + ?Sized,
    {
        let Some(a) = self.ahead.take() else {
            return false;
        };
        if self.cache.peek(a.ring, a.index).is_none() {
            // RDT now, in idle time (the driver may have refilled since the frame). A bad one
            // fetches nothing: the next frame reads it again and drops with its reason.
            let Ok(tail) = read_tail(regs, a.ring.count) else {
                return false;
            };
            if tail == a.index {
                return false;
            }
            self.cache.fill(ring, a.ring, a.index, tail);
        }
        ring.prepare_writeback(a.index);
        if let Some(addr) = self.cache.peek(a.ring, a.index) {
            dma.prepare_write(addr, a.len.min(READ_AHEAD_BYTES));
        }
        // And ICR, which the next frame reads and writes last (the driver's read-to-clear left
        // it in the driver's cache).
        regs.prepare_write(Register::ICR);
        true
    }

    /// Places `frame`; with it, the next descriptor the device owns (if the ring has one).
    fn place<R, D, M>(
        cache: &mut DescCache,
        regs: &R,
        ring: &D,
        dma: &M,
        frame: &[u8],
        fault: Option<WritebackFault>,
    ) -> Result<(Received, Option<Ahead>), RxDrop>
    where
        R: RegisterAccess + ?Sized,
        D: DescriptorRing + ?Sized,
        M: DmaMemory + ?Sized,
    {
        let rctl = Rctl::from_bits_retain(regs.read(Register::RCTL));
        if !rctl.contains(Rctl::EN) {
            // As the hardware's descriptor cache is flushed when the receiver is disabled: the
            // driver may now rewrite its ring.
            cache.len = 0;
            return Err(RxDrop::NotEnabled);
        }
        let buffer_size =
            rctl_buffer_size(rctl.bits()).ok_or(RxDrop::BadConfig(ConfigError::BufferSize {
                rctl: rctl.bits(),
            }))?;
        let max = if rctl.contains(Rctl::LPE) {
            buffer_size
        } else {
            buffer_size.min(MAX_STANDARD_FRAME)
        };
        let len = frame.len();
        if len < MIN_FRAME {
            return Err(RxDrop::Undersize { len });
        }
        if len > max {
            return Err(RxDrop::Oversize { len, max });
        }
        // max <= 16384, so the length fits the descriptor's u16.
        let length = len as u16;

        // ICR is read (and, the causes being new, written) last, in the driver's cache since
        // its handler's read-to-clear: start taking it now, so the frame's copy hides the miss.
        regs.prepare_write(Register::ICR);
        let count = ring_count(regs.read(Register::RDLEN), ring.len())?;
        let rdh = regs.read(Register::RDH);
        let head = u16::try_from(rdh)
            .ok()
            .filter(|&h| h < count)
            .ok_or(RxDrop::BadConfig(ConfigError::Head { rdh, count }))?;
        let id = RingId {
            base_lo: regs.read(Register::RDBAL),
            base_hi: regs.read(Register::RDBAH),
            count,
        };
        // A descriptor fetched while the device owned it means room, whatever RDT says now:
        // RDT is read only to fetch more. Its buffer address is checked against the ring's all
        // the same (the line is the read-ahead's, taken in idle time): the device sees the
        // registers only when a frame comes, so a driver that re-programs its ring between two
        // frames, same base and head, other buffers, is caught here.
        let fetched = cache
            .peek(id, head)
            .is_some_and(|addr| ring.load(head).buffer_addr == addr);
        if !fetched {
            let tail = read_tail(regs, count)?;
            if head == tail {
                // The driver is behind: the frame is lost, as in the NIC's FIFO overrun. MPC and
                // RXO make that visible to the driver (and wake it if it is the one missing
                // interrupts).
                increment(regs, Register::MPC);
                regs.write(Register::ICS, Interrupt::RXO.bits());
                let raise_interrupt = regs.read(Register::IMS) & Interrupt::RXO.bits() != 0;
                return Err(RxDrop::NoDescriptor { raise_interrupt });
            }
            cache.fill(ring, id, head, tail);
        }
        let buffer_addr = cache.take(id, head);
        dma.write(buffer_addr, frame).map_err(RxDrop::DmaFault)?;
        let mut writeback = RxDescriptor {
            buffer_addr,
            length,
            checksum: 0,
            status: RxStatus::DD | RxStatus::EOP,
            errors: RxErrors::empty(),
            special: 0,
        };
        if let Some(f) = fault {
            f.apply(&mut writeback, buffer_size);
        }
        // After the copy, one Release store: the driver that sees DD sees the whole frame.
        ring.store_writeback(head, &writeback);
        let new_head = if head + 1 == count { 0 } else { head + 1 };
        regs.write(Register::RDH, u32::from(new_head));
        increment(regs, Register::GPRC);

        let mut causes = Interrupt::RXT0;
        // Descriptors still owned by the device: new_head up to (not including) tail.
        // In u32: tail + count overflows u16 for rings near the 65535-descriptor limit.
        let free = |tail: u16| {
            let (tail, count, new_head) = (u32::from(tail), u32::from(count), u32::from(new_head));
            (tail + count - new_head) % count
        };
        if let Some(divisor) = rctl_rdmts_divisor(rctl.bits()) {
            let threshold = u32::from(count) / u32::from(divisor);
            // The tail last read is a lower bound (the driver only moves it on): at the
            // threshold by it, RDT itself decides.
            if free(cache.tail) <= threshold {
                if let Ok(tail) = read_tail(regs, count) {
                    cache.tail = tail;
                }
                if free(cache.tail) <= threshold {
                    causes |= Interrupt::RXDMT0;
                }
            }
        }
        // Causes last, after RDH and statistics, so a driver woken by them sees the new state.
        // A full fence first: what follows (the ICR and IMS loads here, the caller's load of a
        // posted-interrupt flag) must not be satisfied before the write-back is visible to the
        // driver's core. Otherwise a driver that polls the ring (after clearing its flag, or
        // after unmasking IMS) can miss this descriptor while this side still sees the old
        // flag or mask and raises nothing: a frame left in the ring with no interrupt coming.
        // (A locked write of ICS used to order them; it is skipped when the causes are
        // pending.) The driver's side pairs with a fence between its flag or IMS write and its
        // poll.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        regs.write(Register::ICS, causes.bits());
        let raise_interrupt = regs.read(Register::IMS) & causes.bits() != 0;
        Ok((
            Received {
                index: head,
                length,
                causes: causes.bits(),
                raise_interrupt,
            },
            (new_head != cache.tail).then_some(Ahead {
                index: new_head,
                ring: id,
                len: usize::from(length),
            }),
        ))
    }

    /// Sets or clears STATUS.LU and raises LSC, as the NIC does when the link changes. Returns
    /// whether LSC is unmasked (the caller must raise the driver's interrupt).
    pub fn set_link<R: RegisterAccess + ?Sized>(&self, regs: &R, up: bool) -> bool {
        let status = Status::from_bits_retain(regs.read(Register::STATUS));
        let status = if up {
            status | Status::LU | Status::FD
        } else {
            status - Status::LU
        };
        regs.write(Register::STATUS, status.bits());
        regs.write(Register::ICS, Interrupt::LSC.bits());
        regs.read(Register::IMS) & Interrupt::LSC.bits() != 0
    }
}

/// Ring size from RDLEN, validated against the ring memory the device was given.
fn ring_count(rdlen: u32, available: u16) -> Result<u16, RxDrop> {
    let bad = RxDrop::BadConfig(ConfigError::RingLength { rdlen });
    if rdlen == 0 || !rdlen.is_multiple_of(128) {
        return Err(bad);
    }
    let count = u16::try_from(rdlen / RxDescriptor::SIZE as u32).map_err(|_| bad)?;
    if count > available {
        return Err(bad);
    }
    Ok(count)
}

/// Statistics registers are incremented with read + write: only the device writes them.
fn increment<R: RegisterAccess + ?Sized>(regs: &R, reg: Register) {
    let v = regs.read(reg);
    regs.write(reg, v.wrapping_add(1));
}

/// A corrupted write-back the device model can publish instead of a valid one (fault
/// injection). Each is something a driver must refuse: it must count it and recycle the
/// descriptor, never trust the length or reassemble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WritebackFault {
    /// Length 0 with DD|EOP.
    ZeroLength,
    /// A length beyond the buffer size.
    Oversize,
    /// DD without EOP (a frame claiming to continue in the next descriptor).
    NoEop,
    /// DD|EOP with the RX data error bit set.
    ErrorBits,
}

impl WritebackFault {
    pub const ALL: [WritebackFault; 4] = [
        WritebackFault::ZeroLength,
        WritebackFault::Oversize,
        WritebackFault::NoEop,
        WritebackFault::ErrorBits,
    ];

    fn apply(self, d: &mut RxDescriptor, buffer_size: usize) {
        match self {
            WritebackFault::ZeroLength => d.length = 0,
            WritebackFault::Oversize => d.length = (buffer_size as u16).saturating_add(1),
            WritebackFault::NoEop => d.status = RxStatus::DD,
            WritebackFault::ErrorBits => d.errors = RxErrors::RXE,
        }
    }
}
