//! PCI configuration space through the legacy I/O ports (mechanism #1), as
//! much as node 0 needs to find a device and its register window.

use x86_64::instructions::port::Port;

const CONFIG_ADDRESS: u16 = 0xCF8;
const CONFIG_DATA: u16 = 0xCFC;

/// A PCI function on bus 0..255.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciAddress {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl core::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// Configuration-space register offsets used here.
mod reg {
    pub const ID: u8 = 0x00;
    pub const COMMAND: u8 = 0x04;
    pub const BAR0: u8 = 0x10;
    pub const INTERRUPT_LINE: u8 = 0x3C;
}

/// Command register bits (the low 16 bits of dword 0x04; the high 16 are
/// the status register, whose error bits are cleared by writing 1).
pub const COMMAND_IO: u32 = 1 << 0;
pub const COMMAND_MEMORY: u32 = 1 << 1;
pub const COMMAND_BUS_MASTER: u32 = 1 << 2;

impl PciAddress {
    /// The CONFIG_ADDRESS value selecting dword `offset` of this function.
    fn config_address(self, offset: u8) -> u32 {
        0x8000_0000
            | (u32::from(self.bus) << 16)
            | (u32::from(self.device) << 11)
            | (u32::from(self.function) << 8)
            | u32::from(offset & 0xFC)
    }

    /// Packed as `bus << 16 | device << 8 | function` (boot info).
    pub fn packed(self) -> u32 {
        u32::from(self.bus) << 16 | u32::from(self.device) << 8 | u32::from(self.function)
    }

    pub fn unpacked(v: u32) -> PciAddress {
        PciAddress {
            bus: (v >> 16) as u8,
            device: (v >> 8) as u8,
            function: v as u8,
        }
    }
}

fn read(at: PciAddress, offset: u8) -> u32 {
    // SAFETY: the PCI configuration ports; an address/data pair has no
    // memory side effects. Only node 0 uses them, during its boot.
    unsafe {
        Port::<u32>::new(CONFIG_ADDRESS).write(at.config_address(offset));
        Port::<u32>::new(CONFIG_DATA).read()
    }
}

fn write(at: PciAddress, offset: u8, value: u32) {
    // SAFETY: as in `read`.
    unsafe {
        Port::<u32>::new(CONFIG_ADDRESS).write(at.config_address(offset));
        Port::<u32>::new(CONFIG_DATA).write(value);
    }
}

/// A found function: where it is, its memory BAR 0 and legacy interrupt line.
#[derive(Clone, Copy, Debug)]
pub struct Function {
    pub at: PciAddress,
    /// Physical base of BAR 0 if it is a memory BAR.
    pub bar0: Option<u64>,
    pub interrupt_line: u8,
}

/// The first function on bus 0 with one of the `(vendor, device)` IDs.
pub fn find(ids: &[(u16, u16)]) -> Option<Function> {
    for device in 0..32u8 {
        let at = PciAddress {
            bus: 0,
            device,
            function: 0,
        };
        let id = read(at, reg::ID);
        let (vendor, dev) = (id as u16, (id >> 16) as u16);
        if vendor == 0xFFFF || !ids.contains(&(vendor, dev)) {
            continue;
        }
        let bar = read(at, reg::BAR0);
        // Bit 0 clear: memory BAR; type 0b10 in bits 1-2: 64-bit.
        let bar0 = (bar & 1 == 0).then(|| {
            let low = u64::from(bar & !0xF);
            if (bar >> 1) & 0b11 == 0b10 {
                low | (u64::from(read(at, reg::BAR0 + 4)) << 32)
            } else {
                low
            }
        });
        return Some(Function {
            at,
            bar0: bar0.filter(|&b| b != 0),
            interrupt_line: read(at, reg::INTERRUPT_LINE) as u8,
        });
    }
    None
}

/// Lets the function decode its memory BAR and master the bus (DMA), and
/// stops it decoding its I/O BAR: the owner drives it through memory only,
/// so its I/O ports answer nobody. Returns the command register as read
/// back before and after.
pub fn enable_memory_and_dma(at: PciAddress) -> (u16, u16) {
    let command = read(at, reg::COMMAND) & 0xFFFF;
    // Only the command half is written: the status half's error bits are
    // write-1-to-clear, and writing back what was read would clear them.
    let wanted = (command | COMMAND_MEMORY | COMMAND_BUS_MASTER) & !COMMAND_IO;
    write(at, reg::COMMAND, wanted);
    (command as u16, read(at, reg::COMMAND) as u16)
}
