//! x86 message-signalled interrupts: the address/data format and the device-side access trait.
//!
//! Layout per the SDM, vol. 3, 11.11 ("Message Signalled Interrupts"):
//! address = `0xFEE` in bits 20..=31, destination ID in bits 12..=19, redirection hint (RH)
//! bit 3, destination mode (DM) bit 2; data = vector in bits 0..=7, delivery mode in bits
//! 8..=10, level (assert) bit 14, trigger mode bit 15.

use core::fmt;

use mint_abi::{ApicId, Vector};

use crate::DeviceId;
use crate::ioapic::{DeliveryMode, DestinationMode, TriggerMode};

/// The fixed top of every x86 MSI address: the local APIC's interrupt window.
pub const MSI_ADDRESS_BASE: u32 = 0xFEE0_0000;

const ADDRESS_BASE_MASK: u32 = 0xFFF0_0000;
const ADDRESS_DESTINATION_SHIFT: u32 = 12;
const ADDRESS_REDIRECTION_HINT: u32 = 1 << 3;
const ADDRESS_DESTINATION_MODE: u32 = 1 << 2;
const DATA_DELIVERY_MODE_SHIFT: u32 = 8;
const DATA_LEVEL_ASSERT: u32 = 1 << 14;
const DATA_TRIGGER_LEVEL: u32 = 1 << 15;

/// An MSI message address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsiAddress {
    /// Bits 12..=19: destination local APIC ID (physical) or logical set.
    pub destination: u8,
    /// Bit 3 (RH): 0 = deliver to `destination` only.
    pub redirection_hint: bool,
    /// Bit 2 (DM): physical or logical; only meaningful with RH = 1.
    pub destination_mode: DestinationMode,
}

/// An MSI message data word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsiData {
    /// Bits 0..=7.
    pub vector: Vector,
    /// Bits 8..=10.
    pub delivery_mode: DeliveryMode,
    /// Bit 14: for level-triggered messages, assert (1) or deassert (0); ignored for edge.
    pub level_assert: bool,
    /// Bit 15.
    pub trigger: TriggerMode,
}

/// A raw MSI address or data word that is not a valid encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiDecodeError {
    /// Bits 20..=31 of the address are not 0xFEE.
    NotInterruptWindow(u32),
    /// Bits 8..=10 of the data hold a reserved delivery mode.
    ReservedDeliveryMode(u8),
}

impl fmt::Display for MsiDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsiDecodeError::NotInterruptWindow(a) => {
                write!(f, "MSI address {a:#010x} is outside 0xFEEx_xxxx")
            }
            MsiDecodeError::ReservedDeliveryMode(m) => {
                write!(f, "reserved delivery mode {m:#05b} in MSI data")
            }
        }
    }
}

impl MsiAddress {
    /// Physical delivery to one local APIC (RH = 0, DM = physical).
    pub const fn physical(destination: u8) -> MsiAddress {
        MsiAddress {
            destination,
            redirection_hint: false,
            destination_mode: DestinationMode::Physical,
        }
    }

    /// The 32-bit address value (reserved bits 4..=11 and 0..=1 zero).
    pub const fn to_raw(self) -> u32 {
        let mut raw = MSI_ADDRESS_BASE | (self.destination as u32) << ADDRESS_DESTINATION_SHIFT;
        if self.redirection_hint {
            raw |= ADDRESS_REDIRECTION_HINT;
        }
        if matches!(self.destination_mode, DestinationMode::Logical) {
            raw |= ADDRESS_DESTINATION_MODE;
        }
        raw
    }

    /// Decodes an address; reserved bits are ignored.
    pub const fn from_raw(raw: u32) -> Result<MsiAddress, MsiDecodeError> {
        if raw & ADDRESS_BASE_MASK != MSI_ADDRESS_BASE {
            return Err(MsiDecodeError::NotInterruptWindow(raw));
        }
        Ok(MsiAddress {
            destination: (raw >> ADDRESS_DESTINATION_SHIFT) as u8,
            redirection_hint: raw & ADDRESS_REDIRECTION_HINT != 0,
            destination_mode: if raw & ADDRESS_DESTINATION_MODE != 0 {
                DestinationMode::Logical
            } else {
                DestinationMode::Physical
            },
        })
    }

    /// The destination as a physical local APIC ID.
    pub const fn destination_apic(self) -> ApicId {
        ApicId(self.destination as u32)
    }
}

impl MsiData {
    /// Fixed delivery of an edge-triggered `vector` (what mint programs).
    pub const fn edge(vector: Vector) -> MsiData {
        MsiData {
            vector,
            delivery_mode: DeliveryMode::Fixed,
            level_assert: false,
            trigger: TriggerMode::Edge,
        }
    }

    /// The data value (bits 16..=31 zero).
    pub const fn to_raw(self) -> u32 {
        let mut raw = self.vector.0 as u32;
        raw |= (self.delivery_mode as u32) << DATA_DELIVERY_MODE_SHIFT;
        if self.level_assert {
            raw |= DATA_LEVEL_ASSERT;
        }
        if matches!(self.trigger, TriggerMode::Level) {
            raw |= DATA_TRIGGER_LEVEL;
        }
        raw
    }

    /// Decodes a data word; reserved bits are ignored.
    pub const fn from_raw(raw: u32) -> Result<MsiData, MsiDecodeError> {
        let mode = ((raw >> DATA_DELIVERY_MODE_SHIFT) & 0b111) as u8;
        let Some(delivery_mode) = DeliveryMode::from_bits(mode) else {
            return Err(MsiDecodeError::ReservedDeliveryMode(mode));
        };
        Ok(MsiData {
            vector: Vector(raw as u8),
            delivery_mode,
            level_assert: raw & DATA_LEVEL_ASSERT != 0,
            trigger: if raw & DATA_TRIGGER_LEVEL != 0 {
                TriggerMode::Level
            } else {
                TriggerMode::Edge
            },
        })
    }
}

/// An MSI address/data pair: what a device writes to signal its interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsiMessage {
    pub address: MsiAddress,
    pub data: MsiData,
}

impl MsiMessage {
    /// Fixed, physical, edge delivery of `vector` to `apic`.
    pub const fn to_apic(destination: u8, vector: Vector) -> MsiMessage {
        MsiMessage {
            address: MsiAddress::physical(destination),
            data: MsiData::edge(vector),
        }
    }
}

/// Access to a device's MSI (or one MSI-X vector's) message and mask: what the layer drives
/// for message-signalled devices, as it drives [`crate::IoApic`] for pins.
///
/// The kernel implements it over PCI configuration space (MSI capability) or the MSI-X table;
/// the model in `testing` latches a message raised while masked and sends it once on
/// unmask, as MSI-X's pending bit does. Devices whose MSI cannot be masked (plain MSI without
/// per-vector masking) are not handled yet: see `docs/INTERRUPTS.md`.
pub trait Msi {
    /// Writes the device's message address and data.
    fn write_message(&mut self, device: DeviceId, message: MsiMessage);
    /// Reads them back (`None` if the device has no MSI programmed or is unknown).
    fn read_message(&self, device: DeviceId) -> Option<MsiMessage>;
    /// Masks or unmasks the device's vector.
    fn set_masked(&mut self, device: DeviceId, masked: bool);
    /// True when the vector is masked.
    fn is_masked(&self, device: DeviceId) -> bool;
}
