//! The I/O APIC: redirection entries, register indices, and the access trait the layer drives.
//!
//! Bit positions are those of the Intel *82093AA I/O Advanced Programmable Interrupt Controller*
//! datasheet (section 3.2.4, "I/O Redirection Table Registers") and the SDM, vol. 3, 11.11 for
//! the MSI format in [`crate::msi`]. The EOI register (offset 0x40) exists from version 0x20 on
//! (QEMU's I/O APIC is 0x20; the 82093AA itself is 0x11 and has none).

use core::fmt;

use mint_abi::{ApicId, Vector};

/// An I/O APIC input pin (0-based, relative to the I/O APIC's first GSI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Pin(pub u8);

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pin{}", self.0)
    }
}

/// Byte offsets of the I/O APIC's memory-mapped registers from its base (0xFEC0_0000 usually).
pub mod mmio {
    /// I/O Register Select: the index of the register `IOWIN` reads or writes.
    pub const IOREGSEL: u64 = 0x00;
    /// I/O Window: the data of the register `IOREGSEL` selects.
    pub const IOWIN: u64 = 0x10;
    /// EOI register (version >= 0x20): writing a vector clears remote IRR of level pins with
    /// that vector, as a local APIC's EOI broadcast would.
    pub const EOI: u64 = 0x40;
}

/// An indirect register index, written into `IOREGSEL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct RegisterIndex(pub u8);

impl RegisterIndex {
    /// IOAPICID: bits 24..=27 hold the I/O APIC's ID.
    pub const ID: RegisterIndex = RegisterIndex(0x00);
    /// IOAPICVER: version (bits 0..=7) and maximum redirection entry (bits 16..=23).
    pub const VERSION: RegisterIndex = RegisterIndex(0x01);
    /// IOAPICARB: arbitration ID.
    pub const ARBITRATION: RegisterIndex = RegisterIndex(0x02);
    /// First redirection-table register (pin 0, low half).
    pub const REDIRECTION_BASE: u8 = 0x10;

    /// The low 32 bits of `pin`'s redirection entry: `0x10 + 2 * pin`.
    pub const fn redirection_low(pin: Pin) -> RegisterIndex {
        RegisterIndex(Self::REDIRECTION_BASE + 2 * pin.0)
    }

    /// The high 32 bits of `pin`'s redirection entry: `0x10 + 2 * pin + 1`.
    pub const fn redirection_high(pin: Pin) -> RegisterIndex {
        RegisterIndex(Self::REDIRECTION_BASE + 2 * pin.0 + 1)
    }
}

/// The IOAPICVER register, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    /// Implementation version (0x11 for the 82093AA, 0x20 for QEMU's model).
    pub version: u8,
    /// Index of the last redirection entry (pins - 1).
    pub max_redirection_entry: u8,
}

impl Version {
    /// Decodes the raw IOAPICVER value.
    pub const fn from_raw(raw: u32) -> Version {
        Version {
            version: (raw & 0xFF) as u8,
            max_redirection_entry: ((raw >> 16) & 0xFF) as u8,
        }
    }

    /// The raw IOAPICVER value (reserved bits zero).
    pub const fn to_raw(self) -> u32 {
        self.version as u32 | (self.max_redirection_entry as u32) << 16
    }

    /// Number of input pins.
    pub const fn pins(self) -> u16 {
        self.max_redirection_entry as u16 + 1
    }

    /// True when the EOI register at [`mmio::EOI`] exists (version 0x20 or later).
    pub const fn has_eoi_register(self) -> bool {
        self.version >= 0x20
    }
}

/// How the interrupt is delivered to its destination (bits 8..=10). Values 3 and 6 are reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DeliveryMode {
    Fixed = 0b000,
    LowestPriority = 0b001,
    Smi = 0b010,
    Nmi = 0b100,
    Init = 0b101,
    ExtInt = 0b111,
}

impl DeliveryMode {
    /// Decodes the three-bit field; reserved values are refused.
    pub const fn from_bits(bits: u8) -> Option<DeliveryMode> {
        Some(match bits {
            0b000 => DeliveryMode::Fixed,
            0b001 => DeliveryMode::LowestPriority,
            0b010 => DeliveryMode::Smi,
            0b100 => DeliveryMode::Nmi,
            0b101 => DeliveryMode::Init,
            0b111 => DeliveryMode::ExtInt,
            _ => return None,
        })
    }
}

/// How the destination field is read (bit 11 of an entry, bit 2 of an MSI address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DestinationMode {
    /// The destination is one local APIC ID.
    Physical,
    /// The destination is a set of logical APIC IDs.
    Logical,
}

/// Which input level means "asserted" (bit 13).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Polarity {
    ActiveHigh,
    /// PCI INTx lines are active low.
    ActiveLow,
}

/// Edge or level triggered (bit 15 of an entry, bit 15 of MSI data).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TriggerMode {
    Edge,
    /// PCI INTx lines are level triggered.
    Level,
}

/// The entry's bit fields.
mod field {
    pub const VECTOR: u64 = 0xFF;
    pub const DELIVERY_MODE_SHIFT: u32 = 8;
    pub const DELIVERY_MODE: u64 = 0b111 << DELIVERY_MODE_SHIFT;
    pub const DESTINATION_MODE: u64 = 1 << 11;
    pub const DELIVERY_STATUS: u64 = 1 << 12;
    pub const POLARITY: u64 = 1 << 13;
    pub const REMOTE_IRR: u64 = 1 << 14;
    pub const TRIGGER_MODE: u64 = 1 << 15;
    pub const MASK: u64 = 1 << 16;
    pub const DESTINATION_SHIFT: u32 = 56;
    /// Bits 17..=55: reserved.
    pub const RESERVED: u64 = ((1 << 56) - 1) & !((1 << 17) - 1);
}

/// One 64-bit I/O APIC redirection-table entry, typed.
///
/// `delivery_status` and `remote_irr` are read-only in hardware: a write ignores them (and the
/// model in `testing` does too). Decoding drops the reserved bits 17..=55.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RedirectionEntry {
    /// Bits 0..=7.
    pub vector: Vector,
    /// Bits 8..=10.
    pub delivery_mode: DeliveryMode,
    /// Bit 11.
    pub destination_mode: DestinationMode,
    /// Bit 12 (read-only): true while the interrupt is being sent ("send pending").
    pub send_pending: bool,
    /// Bit 13.
    pub polarity: Polarity,
    /// Bit 14 (read-only, level pins only): set when a local APIC accepted the interrupt,
    /// cleared by the EOI with a matching vector.
    pub remote_irr: bool,
    /// Bit 15.
    pub trigger: TriggerMode,
    /// Bit 16: masked pins deliver nothing; edges raised while masked are lost.
    pub masked: bool,
    /// Bits 56..=63: in physical mode the destination local APIC ID (xAPIC: 8 bits).
    pub destination: u8,
}

/// A raw entry that is not a valid encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryDecodeError {
    /// Bits 8..=10 hold a reserved delivery mode (3 or 6).
    ReservedDeliveryMode(u8),
}

impl fmt::Display for EntryDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryDecodeError::ReservedDeliveryMode(m) => {
                write!(f, "reserved delivery mode {m:#05b} in redirection entry")
            }
        }
    }
}

impl RedirectionEntry {
    /// The state every pin is put in before anyone registers it: masked, edge, vector 0.
    pub const MASKED: RedirectionEntry = RedirectionEntry {
        vector: Vector(0),
        delivery_mode: DeliveryMode::Fixed,
        destination_mode: DestinationMode::Physical,
        send_pending: false,
        polarity: Polarity::ActiveHigh,
        remote_irr: false,
        trigger: TriggerMode::Edge,
        masked: true,
        destination: 0,
    };

    /// A fixed, physical-mode entry to `destination` (what mint programs for a device).
    pub const fn fixed(
        vector: Vector,
        destination: u8,
        trigger: TriggerMode,
        polarity: Polarity,
        masked: bool,
    ) -> RedirectionEntry {
        RedirectionEntry {
            vector,
            delivery_mode: DeliveryMode::Fixed,
            destination_mode: DestinationMode::Physical,
            send_pending: false,
            polarity,
            remote_irr: false,
            trigger,
            masked,
            destination,
        }
    }

    /// Encodes the entry as the 64-bit register value (reserved bits zero).
    pub const fn to_raw(self) -> u64 {
        let mut raw = self.vector.0 as u64;
        raw |= (self.delivery_mode as u64) << field::DELIVERY_MODE_SHIFT;
        if matches!(self.destination_mode, DestinationMode::Logical) {
            raw |= field::DESTINATION_MODE;
        }
        if self.send_pending {
            raw |= field::DELIVERY_STATUS;
        }
        if matches!(self.polarity, Polarity::ActiveLow) {
            raw |= field::POLARITY;
        }
        if self.remote_irr {
            raw |= field::REMOTE_IRR;
        }
        if matches!(self.trigger, TriggerMode::Level) {
            raw |= field::TRIGGER_MODE;
        }
        if self.masked {
            raw |= field::MASK;
        }
        raw | (self.destination as u64) << field::DESTINATION_SHIFT
    }

    /// Decodes a 64-bit register value; reserved bits are ignored.
    pub const fn from_raw(raw: u64) -> Result<RedirectionEntry, EntryDecodeError> {
        let mode = ((raw & field::DELIVERY_MODE) >> field::DELIVERY_MODE_SHIFT) as u8;
        let Some(delivery_mode) = DeliveryMode::from_bits(mode) else {
            return Err(EntryDecodeError::ReservedDeliveryMode(mode));
        };
        Ok(RedirectionEntry {
            vector: Vector((raw & field::VECTOR) as u8),
            delivery_mode,
            destination_mode: if raw & field::DESTINATION_MODE != 0 {
                DestinationMode::Logical
            } else {
                DestinationMode::Physical
            },
            send_pending: raw & field::DELIVERY_STATUS != 0,
            polarity: if raw & field::POLARITY != 0 {
                Polarity::ActiveLow
            } else {
                Polarity::ActiveHigh
            },
            remote_irr: raw & field::REMOTE_IRR != 0,
            trigger: if raw & field::TRIGGER_MODE != 0 {
                TriggerMode::Level
            } else {
                TriggerMode::Edge
            },
            masked: raw & field::MASK != 0,
            destination: (raw >> field::DESTINATION_SHIFT) as u8,
        })
    }

    /// The bits a write can change: everything but the read-only and reserved bits.
    pub const WRITABLE_BITS: u64 = !(field::DELIVERY_STATUS | field::REMOTE_IRR | field::RESERVED);

    /// The low and high 32-bit halves, as written through `IOWIN`.
    pub const fn halves(self) -> (u32, u32) {
        let raw = self.to_raw();
        (raw as u32, (raw >> 32) as u32)
    }

    /// Reassembles an entry from its two halves.
    pub const fn from_halves(low: u32, high: u32) -> Result<RedirectionEntry, EntryDecodeError> {
        Self::from_raw(low as u64 | (high as u64) << 32)
    }

    /// The three `(index, value)` writes that program `pin` with `self` so that no
    /// half-written entry is ever live: the low half with the mask bit set, then the high half
    /// (destination), then the low half as wanted. The kernel's MMIO backend issues them in
    /// this order through `IOREGSEL`/`IOWIN`.
    pub const fn mmio_writes(self, pin: Pin) -> [(RegisterIndex, u32); 3] {
        let (low, high) = self.halves();
        [
            (
                RegisterIndex::redirection_low(pin),
                low | field::MASK as u32,
            ),
            (RegisterIndex::redirection_high(pin), high),
            (RegisterIndex::redirection_low(pin), low),
        ]
    }

    /// True when the writable fields of `self` and `other` agree (read-back check).
    pub const fn same_writable(self, other: RedirectionEntry) -> bool {
        self.to_raw() & Self::WRITABLE_BITS == other.to_raw() & Self::WRITABLE_BITS
    }

    /// The destination as a physical local APIC ID.
    pub const fn destination_apic(self) -> ApicId {
        ApicId(self.destination as u32)
    }
}

/// Access to one I/O APIC: the only hardware the layer writes for pin-based interrupts.
///
/// The kernel implements it over MMIO (IOREGSEL/IOWIN/EOI, see [`RedirectionEntry::mmio_writes`]);
/// tests implement it over `testing::Machine`. Nothing but the layer may hold an
/// implementation: that is what makes the layer the I/O APIC's single writer.
pub trait IoApic {
    /// Number of input pins (IOAPICVER's maximum redirection entry + 1).
    fn pins(&self) -> u8;
    /// Reads `pin`'s entry (both halves). An out-of-range pin is a caller bug; the layer never
    /// passes one.
    fn read_entry(&self, pin: Pin) -> RedirectionEntry;
    /// Writes `pin`'s entry; read-only bits in `entry` are ignored by the hardware.
    fn write_entry(&mut self, pin: Pin, entry: RedirectionEntry);
    /// Writes `vector` into the EOI register: clears remote IRR of every level pin whose entry
    /// has that vector (by vector only: the reason each level GSI gets a vector of its own).
    fn eoi(&mut self, vector: Vector);
}

/// Sends an interrupt to a local APIC: the layer's way to re-deliver an edge it knows was
/// latched during a hand-over (the kernel sends a fixed IPI with that vector).
pub trait Lapic {
    /// Delivers `vector` to the local APIC `apic` (fixed delivery, physical destination).
    fn inject(&mut self, apic: ApicId, vector: Vector);
}
