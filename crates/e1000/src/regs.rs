//! 82540EM registers: offsets, typed bits, the access trait, and the reference register page.
//!
//! Offsets and bit positions are those of the Intel *PCI/PCI-X Family of Gigabit Ethernet
//! Controllers Software Developer's Manual* (8254x), section 13, for the 82540EM.

use core::sync::atomic::{AtomicU32, Ordering};

/// A device register, by its offset from the start of BAR0.
///
/// Only the registers mint's receive path (and a minimal bring-up) touches are listed. Arrays
/// (MTA) are named by their base.
#[allow(clippy::upper_case_acronyms)] // the datasheet's names, so code greps against the manual
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Register {
    /// Device Control.
    CTRL = 0x0000,
    /// Device Status.
    STATUS = 0x0008,
    /// EEPROM/Flash Control.
    EECD = 0x0010,
    /// EEPROM Read.
    EERD = 0x0014,
    /// Interrupt Cause Read (read-to-clear).
    ICR = 0x00C0,
    /// Interrupt Throttling.
    ITR = 0x00C4,
    /// Interrupt Cause Set (write-only: ORs into ICR).
    ICS = 0x00C8,
    /// Interrupt Mask Set/Read (writes OR into the mask).
    IMS = 0x00D0,
    /// Interrupt Mask Clear (write-only: clears mask bits).
    IMC = 0x00D8,
    /// Receive Control.
    RCTL = 0x0100,
    /// Transmit Control.
    TCTL = 0x0400,
    /// RX Descriptor Base Address Low.
    RDBAL = 0x2800,
    /// RX Descriptor Base Address High.
    RDBAH = 0x2804,
    /// RX Descriptor Length (bytes; multiple of 128).
    RDLEN = 0x2808,
    /// RX Descriptor Head (owned by the device).
    RDH = 0x2810,
    /// RX Descriptor Tail (owned by the driver).
    RDT = 0x2818,
    /// RX Delay Timer.
    RDTR = 0x2820,
    /// TX Descriptor Base Address Low.
    TDBAL = 0x3800,
    /// TX Descriptor Base Address High.
    TDBAH = 0x3804,
    /// TX Descriptor Length.
    TDLEN = 0x3808,
    /// TX Descriptor Head.
    TDH = 0x3810,
    /// TX Descriptor Tail.
    TDT = 0x3818,
    /// Missed Packets Count (statistics).
    MPC = 0x4010,
    /// Good Packets Received Count (statistics).
    GPRC = 0x4074,
    /// Multicast Table Array (base of 128 dwords).
    MTA = 0x5200,
    /// Receive Address Low, entry 0.
    RAL0 = 0x5400,
    /// Receive Address High, entry 0 (bit 31 = Address Valid).
    RAH0 = 0x5404,
}

impl Register {
    /// Every listed register, in offset order.
    pub const ALL: [Register; 27] = [
        Register::CTRL,
        Register::STATUS,
        Register::EECD,
        Register::EERD,
        Register::ICR,
        Register::ITR,
        Register::ICS,
        Register::IMS,
        Register::IMC,
        Register::RCTL,
        Register::TCTL,
        Register::RDBAL,
        Register::RDBAH,
        Register::RDLEN,
        Register::RDH,
        Register::RDT,
        Register::RDTR,
        Register::TDBAL,
        Register::TDBAH,
        Register::TDLEN,
        Register::TDH,
        Register::TDT,
        Register::MPC,
        Register::GPRC,
        Register::MTA,
        Register::RAL0,
        Register::RAH0,
    ];

    /// Byte offset from the start of the register space (BAR0).
    pub const fn offset(self) -> u32 {
        self as u32
    }

    /// The register at `offset`, if it is one of those listed.
    pub fn from_offset(offset: u32) -> Option<Register> {
        Self::ALL.iter().copied().find(|r| r.offset() == offset)
    }

    /// Position in [`Register::ALL`]; a dense index for register pages kept as arrays.
    pub const fn index(self) -> usize {
        match self {
            Register::CTRL => 0,
            Register::STATUS => 1,
            Register::EECD => 2,
            Register::EERD => 3,
            Register::ICR => 4,
            Register::ITR => 5,
            Register::ICS => 6,
            Register::IMS => 7,
            Register::IMC => 8,
            Register::RCTL => 9,
            Register::TCTL => 10,
            Register::RDBAL => 11,
            Register::RDBAH => 12,
            Register::RDLEN => 13,
            Register::RDH => 14,
            Register::RDT => 15,
            Register::RDTR => 16,
            Register::TDBAL => 17,
            Register::TDBAH => 18,
            Register::TDLEN => 19,
            Register::TDH => 20,
            Register::TDT => 21,
            Register::MPC => 22,
            Register::GPRC => 23,
            Register::MTA => 24,
            Register::RAL0 => 25,
            Register::RAH0 => 26,
        }
    }
}

flags! {
    /// Interrupt causes: the bit layout shared by ICR, ICS, IMS and IMC.
    pub struct Interrupt: u32 {
        /// Transmit descriptor written back.
        const TXDW = 1 << 0;
        /// Transmit queue empty.
        const TXQE = 1 << 1;
        /// Link status change.
        const LSC = 1 << 2;
        /// Receive sequence error.
        const RXSEQ = 1 << 3;
        /// Receive descriptor minimum threshold reached (free descriptors ran low).
        const RXDMT0 = 1 << 4;
        /// Receiver overrun: a packet was missed, e.g. for lack of descriptors.
        const RXO = 1 << 6;
        /// Receiver timer interrupt: a packet was received.
        const RXT0 = 1 << 7;
    }
}

flags! {
    /// Receive Control (RCTL) single-bit flags; multi-bit fields have `*_MASK` consts.
    pub struct Rctl: u32 {
        /// Receiver enable.
        const EN = 1 << 1;
        /// Store bad packets.
        const SBP = 1 << 2;
        /// Unicast promiscuous.
        const UPE = 1 << 3;
        /// Multicast promiscuous.
        const MPE = 1 << 4;
        /// Long packet enable (accept frames over 1522 bytes).
        const LPE = 1 << 5;
        /// Broadcast accept mode.
        const BAM = 1 << 15;
        /// VLAN filter enable.
        const VFE = 1 << 18;
        /// Buffer size extension (BSIZE counts in 4/8/16 KiB instead of 256..2048 bytes).
        const BSEX = 1 << 25;
        /// Strip Ethernet CRC from the packet.
        const SECRC = 1 << 26;
    }
}

impl Rctl {
    /// Loopback mode field (bits 7:6).
    pub const LBM_MASK: Rctl = Rctl(0b11 << 6);
    /// Shift of the RX descriptor minimum threshold size field.
    pub const RDMTS_SHIFT: u32 = 8;
    /// RX descriptor minimum threshold size field (bits 9:8).
    pub const RDMTS_MASK: Rctl = Rctl(0b11 << Self::RDMTS_SHIFT);
    /// RDMTS: threshold at 1/2 of the ring.
    pub const RDMTS_HALF: Rctl = Rctl(0b00 << Self::RDMTS_SHIFT);
    /// RDMTS: threshold at 1/4 of the ring.
    pub const RDMTS_QUARTER: Rctl = Rctl(0b01 << Self::RDMTS_SHIFT);
    /// RDMTS: threshold at 1/8 of the ring.
    pub const RDMTS_EIGHTH: Rctl = Rctl(0b10 << Self::RDMTS_SHIFT);
    /// Multicast offset field (bits 13:12).
    pub const MO_MASK: Rctl = Rctl(0b11 << 12);
    /// Shift of the receive buffer size field.
    pub const BSIZE_SHIFT: u32 = 16;
    /// Receive buffer size field (bits 17:16); read together with [`Rctl::BSEX`].
    pub const BSIZE_MASK: Rctl = Rctl(0b11 << Self::BSIZE_SHIFT);
}

flags! {
    /// Device Control (CTRL) bits used at bring-up.
    pub struct Ctrl: u32 {
        /// Auto-speed detection enable.
        const ASDE = 1 << 5;
        /// Set link up.
        const SLU = 1 << 6;
        /// Device reset (self-clearing).
        const RST = 1 << 26;
    }
}

flags! {
    /// Device Status (STATUS) bits.
    pub struct Status: u32 {
        /// Full duplex.
        const FD = 1 << 0;
        /// Link up.
        const LU = 1 << 1;
    }
}

/// Bytes of the register space behind BAR 0 (memory-mapped, 128 KiB).
pub const REGISTER_SPACE: u64 = 128 * 1024;

/// RAH0 bit 31: the receive address in RAL0/RAH0 is valid.
pub const RAH_AV: u32 = 1 << 31;

/// Receive buffer size encoded by an RCTL value's BSIZE and BSEX fields.
///
/// BSEX=0: 00→2048, 01→1024, 10→512, 11→256. BSEX=1: 01→16384, 10→8192, 11→4096, and
/// 00 is reserved, so `None`.
pub const fn rctl_buffer_size(rctl: u32) -> Option<usize> {
    let bsize = (rctl & Rctl::BSIZE_MASK.bits()) >> Rctl::BSIZE_SHIFT;
    let extended = rctl & Rctl::BSEX.bits() != 0;
    match (extended, bsize) {
        (false, 0b00) => Some(2048),
        (false, 0b01) => Some(1024),
        (false, 0b10) => Some(512),
        (false, _) => Some(256),
        (true, 0b01) => Some(16384),
        (true, 0b10) => Some(8192),
        (true, 0b11) => Some(4096),
        (true, _) => None,
    }
}

/// The RCTL bits (BSIZE field and BSEX) that select a receive buffer of `size` bytes, or `None`
/// when the hardware cannot express that size. Inverse of [`rctl_buffer_size`].
pub const fn rctl_bsize_bits(size: usize) -> Option<u32> {
    let (bsex, bsize): (u32, u32) = match size {
        2048 => (0, 0b00),
        1024 => (0, 0b01),
        512 => (0, 0b10),
        256 => (0, 0b11),
        16384 => (Rctl::BSEX.bits(), 0b01),
        8192 => (Rctl::BSEX.bits(), 0b10),
        4096 => (Rctl::BSEX.bits(), 0b11),
        _ => return None,
    };
    Some(bsex | (bsize << Rctl::BSIZE_SHIFT))
}

/// The RDMTS field as a divisor of the ring size (2, 4 or 8); `None` for the reserved `11`.
pub const fn rctl_rdmts_divisor(rctl: u32) -> Option<u16> {
    match (rctl & Rctl::RDMTS_MASK.bits()) >> Rctl::RDMTS_SHIFT {
        0b00 => Some(2),
        0b01 => Some(4),
        0b10 => Some(8),
        _ => None,
    }
}

/// Reads and writes device registers.
///
/// The kernel has two backends: real MMIO on BAR0, and a register page in the shared region
/// that the support node serves. Both must model the side effects software relies on:
///
/// - reading [`Register::ICR`] returns the pending causes **and clears them**;
/// - writing [`Register::ICS`] ORs the value into ICR (how a device, or a test, raises a cause);
/// - writing [`Register::IMS`] ORs the value into the mask; writing [`Register::IMC`] clears
///   those mask bits; reading IMS returns the mask.
///
/// A shared-memory backend must also make register writes *Release* and reads *Acquire*: the
/// driver's descriptor stores are published to the device by its RDT write, and the device's
/// descriptor write-backs by its RDH/ICS writes.
///
/// Methods take `&self` because a register access is not a Rust-level mutation of the handle
/// (MMIO and shared pages are interior-mutable by nature).
pub trait RegisterAccess {
    /// Reads `reg`, with the register's read side effects (ICR clears).
    fn read(&self, reg: Register) -> u32;
    /// Writes `value` to `reg`, with the register's write semantics (IMS sets, IMC clears, ICS
    /// raises).
    fn write(&self, reg: Register, value: u32);

    /// A hint that `reg` is read or written soon (the device model's ICR, which the driver's
    /// read-to-clear left in the driver's cache): a backend may start taking it for writing.
    /// No effect on the register.
    fn prepare_write(&self, _reg: Register) {}
}

impl<T: RegisterAccess + ?Sized> RegisterAccess for &T {
    fn read(&self, reg: Register) -> u32 {
        (**self).read(reg)
    }
    fn write(&self, reg: Register, value: u32) {
        (**self).write(reg, value)
    }
    fn prepare_write(&self, reg: Register) {
        (**self).prepare_write(reg)
    }
}

/// An in-memory register page: the reference semantics of [`RegisterAccess`].
///
/// | register | read | write |
/// | --- | --- | --- |
/// | ICR | returns causes, then clears them | clears the written bits (write-1-to-clear) |
/// | ICS | 0 (write-only) | ORs into ICR |
/// | IMS | returns the mask | ORs into the mask |
/// | IMC | 0 (write-only) | clears those mask bits |
/// | everything else | returns the stored value | stores the value |
///
/// One deliberate difference from silicon: the statistics registers (MPC, GPRC) are *not*
/// clear-on-read here. The support node increments them with a read-then-write, and a
/// clear-on-read register would let a concurrent driver read lose counts; cumulative counters
/// are also what a debugging session wants to look at.
///
/// Backed by atomics so one page can be shared by a "driver" and a "device": in tests an
/// in-process array, in the kernel a register page in the shared region (any [`RegisterSlots`]).
#[derive(Debug)]
pub struct RegisterFile<S: RegisterSlots = [AtomicU32; Register::ALL.len()]> {
    regs: S,
}

/// Where a [`RegisterFile`] keeps its registers: one `AtomicU32` per [`Register::index`].
pub trait RegisterSlots {
    /// The slot of register number `index` (`index < Register::ALL.len()`).
    fn slot(&self, index: usize) -> &AtomicU32;

    /// A hint that slot `index` is written soon: a backend may start taking its line for
    /// writing. No effect on the value.
    fn prepare_write(&self, _index: usize) {}
}

impl<const N: usize> RegisterSlots for [AtomicU32; N] {
    fn slot(&self, index: usize) -> &AtomicU32 {
        &self[index]
    }
}

impl Default for RegisterFile {
    fn default() -> Self {
        Self::new()
    }
}

impl RegisterFile {
    /// A page with every register zero.
    pub const fn new() -> Self {
        Self {
            regs: [const { AtomicU32::new(0) }; Register::ALL.len()],
        }
    }
}

impl<S: RegisterSlots> RegisterFile<S> {
    /// The reference semantics over caller-provided storage.
    pub const fn with_slots(regs: S) -> Self {
        Self { regs }
    }

    /// The stored value of `reg`, without read side effects (ICR is not cleared).
    pub fn peek(&self, reg: Register) -> u32 {
        self.slot(reg).load(Ordering::Acquire)
    }

    /// Stores `value` into `reg` directly, bypassing write semantics (e.g. to preset IMS).
    pub fn poke(&self, reg: Register, value: u32) {
        self.slot(reg).store(value, Ordering::Release)
    }

    fn slot(&self, reg: Register) -> &AtomicU32 {
        self.regs.slot(reg.index())
    }
}

impl<S: RegisterSlots> RegisterAccess for RegisterFile<S> {
    fn prepare_write(&self, reg: Register) {
        self.regs.prepare_write(reg.index())
    }

    fn read(&self, reg: Register) -> u32 {
        match reg {
            // Swap, not load-then-store: a cause raised between the two would be lost.
            Register::ICR => self.slot(reg).swap(0, Ordering::AcqRel),
            Register::ICS | Register::IMC => 0,
            _ => self.slot(reg).load(Ordering::Acquire),
        }
    }

    fn write(&self, reg: Register, value: u32) {
        match reg {
            Register::ICR => {
                self.slot(Register::ICR).fetch_and(!value, Ordering::AcqRel);
            }
            Register::ICS => {
                // Causes already pending need no locked write (the device
                // raises the same causes frame after frame while the driver
                // has not read ICR). A driver's read-to-clear between this
                // load and the skipped write loses no frame: the device
                // writes causes after the descriptor, and a driver polls
                // the ring after reading ICR. The ordering a locked write
                // would give the device's later loads is the caller's: the
                // device model fences before it writes ICS.
                let icr = self.slot(Register::ICR);
                if icr.load(Ordering::Acquire) & value != value {
                    icr.fetch_or(value, Ordering::AcqRel);
                }
            }
            Register::IMS => {
                self.slot(Register::IMS).fetch_or(value, Ordering::AcqRel);
            }
            Register::IMC => {
                self.slot(Register::IMS).fetch_and(!value, Ordering::AcqRel);
            }
            _ => self.slot(reg).store(value, Ordering::Release),
        }
    }
}
