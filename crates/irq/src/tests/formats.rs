//! Hardware formats against known values.

use alloc::vec;

use mint_abi::Vector;
use proptest::prelude::*;

use crate::ioapic::{
    DeliveryMode, DestinationMode, EntryDecodeError, Pin, Polarity, RedirectionEntry,
    RegisterIndex, TriggerMode, Version, mmio,
};
use crate::msi::{MSI_ADDRESS_BASE, MsiAddress, MsiData, MsiDecodeError, MsiMessage};

#[test]
fn pci_intx_entry_encodes_to_known_value() {
    // Vector 0x31, fixed, physical, active low (bit 13), level (bit 15), masked (bit 16),
    // destination APIC 1 (bits 56..=63).
    let e = RedirectionEntry::fixed(
        Vector(0x31),
        1,
        TriggerMode::Level,
        Polarity::ActiveLow,
        true,
    );
    assert_eq!(e.to_raw(), 0x0100_0000_0001_A031);
    assert_eq!(RedirectionEntry::from_raw(0x0100_0000_0001_A031), Ok(e));
    assert_eq!(e.halves(), (0x0001_A031, 0x0100_0000));
}

#[test]
fn every_field_has_its_bit() {
    let base =
        RedirectionEntry::fixed(Vector(0), 0, TriggerMode::Edge, Polarity::ActiveHigh, false);
    assert_eq!(base.to_raw(), 0);
    let cases: [(RedirectionEntry, u64); 10] = [
        (
            RedirectionEntry {
                vector: Vector(0xFF),
                ..base
            },
            0xFF,
        ),
        (
            RedirectionEntry {
                delivery_mode: DeliveryMode::LowestPriority,
                ..base
            },
            1 << 8,
        ),
        (
            RedirectionEntry {
                delivery_mode: DeliveryMode::ExtInt,
                ..base
            },
            0b111 << 8,
        ),
        (
            RedirectionEntry {
                delivery_mode: DeliveryMode::Nmi,
                ..base
            },
            0b100 << 8,
        ),
        (
            RedirectionEntry {
                destination_mode: DestinationMode::Logical,
                ..base
            },
            1 << 11,
        ),
        (
            RedirectionEntry {
                send_pending: true,
                ..base
            },
            1 << 12,
        ),
        (
            RedirectionEntry {
                polarity: Polarity::ActiveLow,
                ..base
            },
            1 << 13,
        ),
        (
            RedirectionEntry {
                remote_irr: true,
                ..base
            },
            1 << 14,
        ),
        (
            RedirectionEntry {
                trigger: TriggerMode::Level,
                ..base
            },
            1 << 15,
        ),
        (
            RedirectionEntry {
                masked: true,
                ..base
            },
            1 << 16,
        ),
    ];
    for (e, raw) in cases {
        assert_eq!(e.to_raw(), raw, "{e:?}");
        assert_eq!(RedirectionEntry::from_raw(raw), Ok(e));
    }
    let dest = RedirectionEntry {
        destination: 0xA5,
        ..base
    };
    assert_eq!(dest.to_raw(), 0xA5 << 56);
    assert_eq!(dest.destination_apic(), mint_abi::ApicId(0xA5));
}

#[test]
fn reserved_delivery_modes_are_refused_and_reserved_bits_dropped() {
    assert_eq!(
        RedirectionEntry::from_raw(0b011 << 8),
        Err(EntryDecodeError::ReservedDeliveryMode(0b011))
    );
    assert_eq!(
        RedirectionEntry::from_raw(0b110 << 8),
        Err(EntryDecodeError::ReservedDeliveryMode(0b110))
    );
    let e = RedirectionEntry::from_raw(0x00FF_FFFF_FFFE_0000 | 0x31).unwrap();
    assert_eq!(e.to_raw(), 0x31);
}

#[test]
fn read_only_bits_are_not_writable() {
    let a = RedirectionEntry::fixed(
        Vector(0x40),
        3,
        TriggerMode::Level,
        Polarity::ActiveLow,
        false,
    );
    let b = RedirectionEntry {
        remote_irr: true,
        send_pending: true,
        ..a
    };
    assert!(a.same_writable(b));
    assert!(!a.same_writable(RedirectionEntry { masked: true, ..a }));
}

#[test]
fn register_indices_and_offsets() {
    assert_eq!(mmio::IOREGSEL, 0x00);
    assert_eq!(mmio::IOWIN, 0x10);
    assert_eq!(mmio::EOI, 0x40);
    assert_eq!(RegisterIndex::ID, RegisterIndex(0));
    assert_eq!(RegisterIndex::VERSION, RegisterIndex(1));
    assert_eq!(RegisterIndex::ARBITRATION, RegisterIndex(2));
    assert_eq!(RegisterIndex::redirection_low(Pin(0)), RegisterIndex(0x10));
    assert_eq!(RegisterIndex::redirection_high(Pin(0)), RegisterIndex(0x11));
    assert_eq!(RegisterIndex::redirection_low(Pin(11)), RegisterIndex(0x26));
    assert_eq!(
        RegisterIndex::redirection_high(Pin(23)),
        RegisterIndex(0x3F)
    );
}

#[test]
fn version_register() {
    // QEMU: version 0x20, 24 pins.
    let v = Version::from_raw(0x0017_0020);
    assert_eq!(v.version, 0x20);
    assert_eq!(v.pins(), 24);
    assert!(v.has_eoi_register());
    assert_eq!(v.to_raw(), 0x0017_0020);
    // 82093AA: version 0x11, no EOI register.
    assert!(!Version::from_raw(0x0017_0011).has_eoi_register());
}

#[test]
fn mmio_writes_never_leave_a_half_entry_live() {
    let e = RedirectionEntry::fixed(
        Vector(0x45),
        7,
        TriggerMode::Level,
        Polarity::ActiveLow,
        false,
    );
    let w = e.mmio_writes(Pin(5));
    assert_eq!(w[0], (RegisterIndex(0x1A), 0x0001_A045));
    assert_eq!(w[1], (RegisterIndex(0x1B), 0x0700_0000));
    assert_eq!(w[2], (RegisterIndex(0x1A), 0x0000_A045));
}

#[test]
fn msi_known_values() {
    let m = MsiMessage::to_apic(3, Vector(0x41));
    assert_eq!(m.address.to_raw(), 0xFEE0_3000);
    assert_eq!(m.data.to_raw(), 0x0041);
    assert_eq!(MSI_ADDRESS_BASE, 0xFEE0_0000);
    // A Windows MSI-X table entry as dumped from real hardware: fee0400c / 000049b3.
    let a = MsiAddress::from_raw(0xFEE0_400C).unwrap();
    assert_eq!(
        a,
        MsiAddress {
            destination: 4,
            redirection_hint: true,
            destination_mode: DestinationMode::Logical
        }
    );
    assert_eq!(a.to_raw(), 0xFEE0_400C);
    let d = MsiData::from_raw(0x49B3).unwrap();
    assert_eq!(
        d,
        MsiData {
            vector: Vector(0xB3),
            delivery_mode: DeliveryMode::LowestPriority,
            level_assert: true,
            trigger: TriggerMode::Edge
        }
    );
    // Bit 11 is reserved: dropped.
    assert_eq!(d.to_raw(), 0x41B3);
    let level = MsiData {
        trigger: TriggerMode::Level,
        level_assert: true,
        ..MsiData::edge(Vector(0x41))
    };
    assert_eq!(level.to_raw(), 0xC041);
}

#[test]
fn msi_refuses_bad_encodings() {
    assert_eq!(
        MsiAddress::from_raw(0xFED0_0000),
        Err(MsiDecodeError::NotInterruptWindow(0xFED0_0000))
    );
    assert_eq!(
        MsiData::from_raw(0b011 << 8),
        Err(MsiDecodeError::ReservedDeliveryMode(0b011))
    );
}

fn valid_entry_raw() -> impl Strategy<Value = u64> {
    (
        any::<u64>(),
        prop::sample::select(vec![0u64, 1, 2, 4, 5, 7]),
    )
        .prop_map(|(r, mode)| {
            let reserved = ((1u64 << 56) - 1) & !((1u64 << 17) - 1);
            (r & !reserved & !(0b111 << 8)) | mode << 8
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Decode then encode gives back every valid entry exactly.
    #[test]
    fn entry_round_trips(raw in valid_entry_raw()) {
        let e = RedirectionEntry::from_raw(raw).unwrap();
        prop_assert_eq!(e.to_raw(), raw);
        let (lo, hi) = e.halves();
        prop_assert_eq!(RedirectionEntry::from_halves(lo, hi), Ok(e));
    }

    /// Encode then decode gives back every MSI message exactly.
    #[test]
    fn msi_round_trips(dest in any::<u8>(), rh in any::<bool>(), dm in any::<bool>(),
                       vector in any::<u8>(), mode in prop::sample::select(vec![0u8, 1, 2, 4, 5, 7]),
                       assert_ in any::<bool>(), level in any::<bool>()) {
        let a = MsiAddress {
            destination: dest,
            redirection_hint: rh,
            destination_mode: if dm { DestinationMode::Logical } else { DestinationMode::Physical },
        };
        prop_assert_eq!(MsiAddress::from_raw(a.to_raw()), Ok(a));
        prop_assert_eq!(a.to_raw() >> 20, 0xFEE);
        let d = MsiData {
            vector: Vector(vector),
            delivery_mode: DeliveryMode::from_bits(mode).unwrap(),
            level_assert: assert_,
            trigger: if level { TriggerMode::Level } else { TriggerMode::Edge },
        };
        prop_assert_eq!(MsiData::from_raw(d.to_raw()), Ok(d));
    }
}
