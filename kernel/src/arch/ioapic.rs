//! The I/O APIC's one owner in the kernel: `mint_irq::IoApic` over its
//! memory-mapped registers (IOREGSEL at +0x00, IOWIN at +0x10, the EOI
//! register at +0x40 from version 0x20), plus the `Msi` and `Lapic` halves
//! the layer's `Hardware` bound asks for.
//!
//! Nothing else in the kernel touches these registers: this module is the
//! only code that names `IOREGSEL`, `IOWIN` or the I/O APIC's EOI register
//! (`grep -rn "mmio::IOREGSEL\|mmio::IOWIN\|mmio::EOI\|0xFEC0" kernel/src`
//! finds this file and, for the mapping only, `partition.rs`), and the only
//! holder of an [`IoApicMmio`] is the kernel's interrupt layer
//! (`crate::irq`), on node 0, behind its lock. Only node 0's page tables map
//! the I/O APIC (`partition.rs`), so no other node could reach it by
//! accident; one that built its own tables could (see docs/INTERRUPTS.md,
//! "what the hardware does not enforce").
//!
//! An entry is written in `RedirectionEntry::mmio_writes` order: the low
//! half masked first, then the high half (destination), then the low half
//! as wanted, so no half-written entry is ever live.

use mint_abi::{ApicId, Vector};
use mint_irq::ioapic::mmio;
use mint_irq::{DeviceId, MsiMessage, Pin, RedirectionEntry, RegisterIndex, Version};

/// Physical (and, in node 0, virtual: identity) base of the I/O APIC.
pub const IOAPIC_BASE: u64 = 0xFEC0_0000;

/// The I/O APIC's registers.
pub struct IoApicMmio {
    base: u64,
    pins: u8,
    version: Version,
}

impl IoApicMmio {
    /// # Safety
    /// `base` must be the I/O APIC's register page, mapped uncached at this
    /// virtual address in this node's tables, and the caller the layer's
    /// one instance on the one node that drives it (see the module docs):
    /// IOREGSEL/IOWIN is an index/data pair, so two users would corrupt
    /// each other's accesses.
    pub unsafe fn new(base: u64) -> IoApicMmio {
        let mut io = IoApicMmio {
            base,
            pins: 0,
            version: Version::from_raw(0),
        };
        io.version = Version::from_raw(io.read_register(RegisterIndex::VERSION));
        io.pins = io.version.pins().min(u16::from(u8::MAX)) as u8;
        io
    }

    /// IOAPICVER as read at construction.
    pub fn version(&self) -> Version {
        self.version
    }

    fn read_register(&self, index: RegisterIndex) -> u32 {
        // SAFETY: `new`'s contract: the register page is mapped uncached;
        // IOREGSEL and IOWIN are 32-bit registers at their architectural
        // offsets, and this instance is their only user.
        unsafe {
            core::ptr::write_volatile((self.base + mmio::IOREGSEL) as *mut u32, u32::from(index.0));
            core::ptr::read_volatile((self.base + mmio::IOWIN) as *const u32)
        }
    }

    fn write_register(&mut self, index: RegisterIndex, value: u32) {
        // SAFETY: as in `read_register`.
        unsafe {
            core::ptr::write_volatile((self.base + mmio::IOREGSEL) as *mut u32, u32::from(index.0));
            core::ptr::write_volatile((self.base + mmio::IOWIN) as *mut u32, value);
        }
    }
}

impl mint_irq::IoApic for IoApicMmio {
    fn pins(&self) -> u8 {
        self.pins
    }

    fn read_entry(&self, pin: Pin) -> RedirectionEntry {
        let low = self.read_register(RegisterIndex::redirection_low(pin));
        let high = self.read_register(RegisterIndex::redirection_high(pin));
        // A reserved delivery mode cannot be what the layer wrote: report
        // it as a masked entry of vector 0, which never reads back equal to
        // anything the layer programs (so the layer sees a read-back error).
        RedirectionEntry::from_halves(low, high).unwrap_or(RedirectionEntry::MASKED)
    }

    fn write_entry(&mut self, pin: Pin, entry: RedirectionEntry) {
        for (index, value) in entry.mmio_writes(pin) {
            self.write_register(index, value);
        }
    }

    fn eoi(&mut self, vector: Vector) {
        if !self.version.has_eoi_register() {
            return;
        }
        // SAFETY: version >= 0x20 (checked above): the EOI register exists
        // at +0x40 in the mapped page.
        unsafe {
            core::ptr::write_volatile((self.base + mmio::EOI) as *mut u32, u32::from(vector.0))
        };
    }
}

/// No device of this slice signals by MSI: every message write is refused
/// by reading back nothing, so a registration of an MSI source fails with
/// the layer's read-back error instead of pretending to work.
impl mint_irq::Msi for IoApicMmio {
    fn write_message(&mut self, _device: DeviceId, _message: MsiMessage) {}

    fn read_message(&self, _device: DeviceId) -> Option<MsiMessage> {
        None
    }

    fn set_masked(&mut self, _device: DeviceId, _masked: bool) {}

    fn is_masked(&self, _device: DeviceId) -> bool {
        true
    }
}

/// A latched edge is re-delivered as a fixed IPI from node 0's local APIC.
impl mint_irq::Lapic for IoApicMmio {
    fn inject(&mut self, apic: ApicId, vector: Vector) {
        super::apic::send_ipi(apic, vector);
    }
}
