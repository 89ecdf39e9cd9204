//! Devices a node can own: the four ISA UARTs and the e1000 NIC.

use alloc::string::ToString;
use core::fmt;
use core::str::FromStr;

use crate::PlanError;

/// A device handed to exactly one node (or, for the e1000, owned by one
/// node and reachable by the standby nodes it may be handed to).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Device {
    /// A 16550 UART at its legacy I/O port: `Com(1)` ..= `Com(4)`.
    Com(u8),
    /// The (single) Intel e1000 NIC on the PCI bus: this node owns it at
    /// boot.
    E1000,
    /// The same e1000, not owned at boot: the interrupt layer may hand it
    /// to this node (`mint handover`), so its registers are mapped here
    /// too. Needs an [`Device::E1000`] owner elsewhere in the plan.
    E1000Standby,
}

/// Legacy I/O base ports of COM1..COM4.
const COM_PORTS: [u16; 4] = [0x3F8, 0x2F8, 0x3E8, 0x2E8];

impl Device {
    /// Whether this is a UART (a node's console is its UART).
    pub const fn is_uart(self) -> bool {
        matches!(self, Device::Com(_))
    }

    /// The I/O base port of a UART `Com(1..=4)`; `None` for anything else.
    pub fn io_port(self) -> Option<u16> {
        match self {
            Device::Com(n) => COM_PORTS.get(usize::from(n).checked_sub(1)?).copied(),
            Device::E1000 | Device::E1000Standby => None,
        }
    }

    /// Whether this node may drive the e1000 (at boot or by hand-over).
    pub const fn reaches_e1000(self) -> bool {
        matches!(self, Device::E1000 | Device::E1000Standby)
    }

    /// Whether the device exists at all (`Com(n)` only for `n` in 1..=4).
    pub fn is_valid(self) -> bool {
        match self {
            Device::Com(_) => self.io_port().is_some(),
            Device::E1000 | Device::E1000Standby => true,
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Com(n) => write!(f, "com{n}"),
            Device::E1000 => f.write_str("e1000"),
            Device::E1000Standby => f.write_str("e1000-standby"),
        }
    }
}

impl FromStr for Device {
    type Err = PlanError;

    /// Parses `"com1"` ..= `"com4"` or `"e1000"` (lower case, as displayed).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let device = match name {
            "e1000" => Device::E1000,
            "e1000-standby" => Device::E1000Standby,
            "com1" => Device::Com(1),
            "com2" => Device::Com(2),
            "com3" => Device::Com(3),
            "com4" => Device::Com(4),
            _ => {
                return Err(PlanError::UnknownDevice {
                    name: name.to_string(),
                });
            }
        };
        Ok(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn uart_ports() {
        assert_eq!(Device::Com(1).io_port(), Some(0x3F8));
        assert_eq!(Device::Com(2).io_port(), Some(0x2F8));
        assert_eq!(Device::Com(3).io_port(), Some(0x3E8));
        assert_eq!(Device::Com(4).io_port(), Some(0x2E8));
        assert_eq!(Device::Com(0).io_port(), None);
        assert_eq!(Device::Com(5).io_port(), None);
        assert_eq!(Device::E1000.io_port(), None);
        assert!(!Device::Com(0).is_valid());
        assert!(Device::E1000.is_valid());
    }

    #[test]
    fn names_round_trip() {
        for device in [1, 2, 3, 4]
            .map(Device::Com)
            .into_iter()
            .chain([Device::E1000, Device::E1000Standby])
        {
            let name = format!("{device}");
            assert_eq!(name.parse(), Ok(device));
        }
        assert_eq!(format!("{}", Device::Com(3)), "com3");
        assert_eq!(format!("{}", Device::E1000), "e1000");
    }

    #[test]
    fn unknown_names_are_errors() {
        for name in ["com0", "com5", "COM1", "e1000 ", "", "virtio"] {
            let err = name.parse::<Device>().unwrap_err();
            assert_eq!(err, PlanError::UnknownDevice { name: name.into() });
            assert!(format!("{err}").contains(&format!("{name:?}")), "{err}");
        }
    }
}
