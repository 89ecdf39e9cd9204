//! Registration, refusals, owner-only operations, EOI, storm control, bookkeeping, crashes.

use mint_abi::node::NodeState;
use mint_abi::{Gsi, NodeId, Vector};

use super::*;
use crate::testing::Source;
use crate::{
    AttachReason, Binding, DeviceState, Dispatch, EoiOutcome, IoApic, Notice, NoticeKind, OpError,
    Polarity, RegisterError, RouteTarget, TriggerMode, VectorUse,
};

#[test]
fn registration_gives_a_vector_and_programs_the_pin_masked() {
    let mut r = Rig::new();
    let g0 = r.layer.routes().generation();
    let reg = r
        .layer
        .register(&mut r.hw, NIC, N0, source_of(NIC))
        .unwrap();
    assert_eq!(reg.gsi, NIC_GSI);
    assert_eq!(reg.pin, Some(Pin(11)));
    assert!(reg.generation > g0);
    let e = r.hw.entry(Pin(11));
    assert_eq!(e.vector, reg.vector);
    assert_eq!(e.trigger, TriggerMode::Level, "PCI INTx is level");
    assert_eq!(e.polarity, Polarity::ActiveLow, "PCI INTx is active low");
    assert!(e.masked, "left masked until the owner unmasks");
    assert_eq!(e.destination_apic(), APICS[0]);
    let route = r.layer.routes().lookup(NIC_GSI).unwrap();
    assert_eq!(route.target, RouteTarget::Pin(Pin(11)));
    assert_eq!((route.destination, route.vector), (APICS[0], reg.vector));
    let info = r.layer.device(NIC).unwrap();
    assert_eq!(info.state, DeviceState::Attached);
    assert_eq!(info.vector, Some(reg.vector));
    assert_eq!(r.layer.vectors().usage(reg.vector), VectorUse::Active(NIC));
}

#[test]
fn registration_by_a_non_owner_is_refused_counted_and_changes_nothing() {
    let mut r = Rig::new();
    let before = r.hw.entry(Pin(11));
    let writes = r.hw.entry_writes();
    let e = r
        .layer
        .register(&mut r.hw, NIC, N1, source_of(NIC))
        .unwrap_err();
    let RegisterError::NotOwner(refusal) = e else {
        panic!("{e:?}")
    };
    assert_eq!(
        (refusal.device, refusal.by, refusal.owner),
        (NIC, N1, Some(N0))
    );
    assert_eq!(
        refusal.entry,
        Some(before),
        "the entry read back is unchanged"
    );
    assert_eq!(r.hw.entry(Pin(11)), before);
    assert_eq!(r.hw.entry_writes(), writes, "nothing was written");
    assert_eq!(r.layer.device(NIC).unwrap().counters.refused, 1);
    assert!(r.layer.routes().lookup(NIC_GSI).is_none());
}

#[test]
fn registration_refusals() {
    let mut r = Rig::new();
    assert_eq!(
        r.layer.register(&mut r.hw, DeviceId(9), N0, source_of(NIC)),
        Err(RegisterError::UnknownDevice(DeviceId(9)))
    );
    assert_eq!(
        r.layer.register(&mut r.hw, NIC, NodeId(3), source_of(NIC)),
        Err(RegisterError::UnknownNode(NodeId(3)))
    );
    assert_eq!(
        r.layer
            .register(&mut r.hw, NIC, N0, IrqSource::pci_intx(Gsi(24))),
        Err(RegisterError::GsiOutOfRange {
            device: NIC,
            gsi: Gsi(24)
        })
    );
    r.attach(NIC);
    assert_eq!(
        r.layer.register(&mut r.hw, NIC, N0, source_of(NIC)),
        Err(RegisterError::AlreadyRegistered {
            device: NIC,
            gsi: NIC_GSI
        })
    );
    assert_eq!(
        r.layer
            .register(&mut r.hw, DISK, N1, IrqSource::pci_intx(NIC_GSI)),
        Err(RegisterError::GsiTaken {
            gsi: NIC_GSI,
            device: NIC
        })
    );
    assert!(r.layer.counters().refused_unknown >= 2);
}

#[test]
fn every_device_gets_its_own_vector_until_none_is_left() {
    let mut config = Config::QEMU;
    config.first_vector = Vector(0x30);
    config.last_vector = Vector(0x32);
    let mut r = Rig::with_config(config);
    let a = r.attach(NIC).vector;
    let b = r.attach(DISK).vector;
    let c = r.attach(UART).vector;
    assert!(a != b && b != c && a != c);
    assert_eq!(
        r.layer.register(&mut r.hw, MSIDEV, N2, IrqSource::Msi),
        Err(RegisterError::VectorsExhausted(MSIDEV))
    );
    assert_eq!(r.layer.device(MSIDEV).unwrap().binding, None);
}

#[test]
fn msi_registration_programs_the_message_above_the_pins() {
    let mut r = Rig::new();
    let reg = r.attach(MSIDEV);
    assert!(
        reg.gsi.0 >= 24,
        "MSI routes get GSIs above the I/O APIC's pins"
    );
    let msg = crate::Msi::read_message(&r.hw, MSIDEV).unwrap();
    assert_eq!(msg.address.destination_apic(), APICS[2]);
    assert_eq!(msg.data.vector, reg.vector);
    assert!(!crate::Msi::is_masked(&r.hw, MSIDEV));
    r.hw.fire_msi(MSIDEV);
    let d = r.take();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].apic, d[0].vector), (APICS[2], reg.vector));
}

#[test]
fn owner_only_operations_refuse_others_and_leave_the_entry_unchanged() {
    let mut r = Rig::new();
    r.attach(NIC);
    let before = r.hw.entry(Pin(11));
    for e in [
        r.layer.mask(&mut r.hw, NIC, N1).unwrap_err(),
        r.layer.unmask(&mut r.hw, NIC, N2).unwrap_err(),
        r.layer.route(&mut r.hw, NIC, N1, APICS[1]).unwrap_err(),
        r.layer.eoi(&mut r.hw, NIC, N1).unwrap_err(),
    ] {
        let OpError::NotOwner(refusal) = e else {
            panic!("{e:?}")
        };
        assert_eq!(refusal.entry, Some(before));
    }
    assert_eq!(r.hw.entry(Pin(11)), before);
    assert_eq!(r.layer.device(NIC).unwrap().counters.refused, 4);
    // The owner may not send its interrupt to another node's CPU either.
    assert_eq!(
        r.layer.route(&mut r.hw, NIC, N0, APICS[1]),
        Err(OpError::ForeignApic {
            device: NIC,
            apic: APICS[1],
            node: N0
        })
    );
    assert_eq!(r.hw.entry(Pin(11)), before);
    let g = r.layer.routes().generation();
    assert_eq!(r.layer.route(&mut r.hw, NIC, N0, APICS[0]), Ok(g + 2));
    assert_eq!(
        r.layer.mask(&mut r.hw, DISK, N1),
        Err(OpError::NotRegistered(DISK))
    );
}

#[test]
fn level_interrupt_delivers_once_until_eoi_and_again_while_asserted() {
    let mut r = Rig::new();
    let v = r.attach(NIC).vector;
    r.hw.set_line(Pin(11), true);
    r.hw.set_line(Pin(11), true);
    let d = r.take();
    assert_eq!(d.len(), 1, "coalesced while remote IRR is set");
    assert_eq!((d[0].apic, d[0].vector), (APICS[0], v));
    assert!(r.hw.remote_irr(Pin(11)));
    let now = r.tick();
    assert_eq!(
        r.layer.on_interrupt(&mut r.hw, APICS[0], v, now),
        Dispatch::Device {
            device: NIC,
            trigger: TriggerMode::Level
        }
    );
    assert_eq!(r.layer.device(NIC).unwrap().last_interrupt_at, Some(now));
    // A handler that did not clear the cause: EOI redelivers at once.
    assert_eq!(r.layer.eoi(&mut r.hw, NIC, N0), Ok(EoiOutcome::Redelivered));
    assert_eq!(r.take().len(), 1);
    // Cleared: EOI leaves remote IRR clear.
    r.hw.set_line(Pin(11), false);
    assert_eq!(r.layer.eoi(&mut r.hw, NIC, N0), Ok(EoiOutcome::Done));
    assert!(!r.hw.remote_irr(Pin(11)));
    assert!(r.take().is_empty());
}

#[test]
fn unmasking_a_still_asserted_level_line_delivers_at_once() {
    let mut r = Rig::new();
    r.layer
        .register(&mut r.hw, NIC, N0, source_of(NIC))
        .unwrap();
    r.hw.set_line(Pin(11), true);
    assert!(r.take().is_empty(), "masked");
    r.layer.unmask(&mut r.hw, NIC, N0).unwrap();
    assert_eq!(r.take().len(), 1);
    r.layer.mask(&mut r.hw, NIC, N0).unwrap();
    r.hw.set_line(Pin(11), false);
    r.layer.eoi(&mut r.hw, NIC, N0).unwrap();
    r.hw.set_line(Pin(11), true);
    r.layer.unmask(&mut r.hw, NIC, N0).unwrap();
    assert_eq!(r.take().len(), 1, "one delivery when the owner unmasks");
}

#[test]
fn model_drops_masked_edges_and_eoi_matches_by_vector_only() {
    let mut hw = Machine::new(24);
    let e = crate::RedirectionEntry::fixed(
        Vector(0x40),
        2,
        TriggerMode::Edge,
        Polarity::ActiveHigh,
        true,
    );
    hw.write_entry(Pin(4), e);
    hw.pulse(Pin(4));
    assert_eq!(hw.dropped_edges(Pin(4)), 1);
    hw.write_entry(Pin(4), crate::RedirectionEntry { masked: false, ..e });
    assert!(
        hw.take_deliveries().is_empty(),
        "a dropped edge is not latched"
    );
    // Two level pins sharing a vector: one EOI clears both remote IRRs.
    let l = crate::RedirectionEntry::fixed(
        Vector(0x50),
        2,
        TriggerMode::Level,
        Polarity::ActiveLow,
        false,
    );
    hw.write_entry(Pin(10), l);
    hw.write_entry(Pin(11), l);
    hw.set_line(Pin(10), true);
    hw.set_line(Pin(11), true);
    assert!(hw.remote_irr(Pin(10)) && hw.remote_irr(Pin(11)));
    hw.set_line(Pin(10), false);
    hw.set_line(Pin(11), false);
    hw.eoi(Vector(0x50));
    assert!(!hw.remote_irr(Pin(10)) && !hw.remote_irr(Pin(11)));
    // Rewriting a level pin as edge clears remote IRR.
    hw.set_line(Pin(10), true);
    assert!(hw.remote_irr(Pin(10)));
    hw.write_entry(
        Pin(10),
        crate::RedirectionEntry {
            trigger: TriggerMode::Edge,
            ..l
        },
    );
    assert!(!hw.remote_irr(Pin(10)));
}

#[test]
fn storm_control_pauses_a_line_that_keeps_reasserting() {
    let mut config = Config::QEMU;
    config.storm_threshold = 5;
    let mut r = Rig::with_config(config);
    r.attach(NIC);
    r.hw.set_line(Pin(11), true);
    for _ in 0..4 {
        assert_eq!(r.layer.eoi(&mut r.hw, NIC, N0), Ok(EoiOutcome::Redelivered));
    }
    assert_eq!(r.layer.eoi(&mut r.hw, NIC, N0), Ok(EoiOutcome::StormPaused));
    let info = r.layer.device(NIC).unwrap();
    assert!(info.storm_paused);
    assert_eq!(info.counters.storm_pauses, 1);
    assert!(r.hw.entry(Pin(11)).masked);
    // The first delivery and five redeliveries (the fifth EOI's redelivery happened before
    // the layer masked the pin; its handler's EOI then finds the pin paused).
    assert_eq!(r.take().len(), 6);
    // Paused: the line stays quiet even though it is asserted.
    r.layer.eoi(&mut r.hw, NIC, N0).unwrap();
    assert!(r.take().is_empty());
    // The owner fixes its device and unmasks.
    r.hw.set_line(Pin(11), false);
    r.layer.unmask(&mut r.hw, NIC, N0).unwrap();
    assert!(!r.layer.device(NIC).unwrap().storm_paused);
    assert!(!r.hw.remote_irr(Pin(11)));
}

#[test]
fn interrupts_on_the_wrong_cpu_or_vector_are_counted() {
    let mut r = Rig::new();
    let v = r.attach(NIC).vector;
    r.hw.set_line(Pin(11), true);
    r.take();
    assert!(r.hw.remote_irr(Pin(11)));
    r.hw.set_line(Pin(11), false);
    assert_eq!(
        r.layer.on_interrupt(&mut r.hw, APICS[1], v, 5),
        Dispatch::Misrouted {
            device: NIC,
            owner: Some(N0)
        }
    );
    assert_eq!(r.layer.device(NIC).unwrap().counters.misrouted, 1);
    assert!(
        !r.hw.remote_irr(Pin(11)),
        "the layer EOIed the misrouted level pin"
    );
    assert_eq!(
        r.layer.on_interrupt(&mut r.hw, APICS[0], Vector(0xEE), 5),
        Dispatch::Unknown
    );
    assert_eq!(r.layer.counters().unknown_vectors, 1);
}

/// Pops every notice in node `n`'s mailbox, acks the last, returns them.
pub(crate) fn receive(r: &mut Rig, mb: &mut Mailboxes, n: NodeId) -> alloc::vec::Vec<Notice> {
    let notices: alloc::vec::Vec<Notice> = mb.queues[n.index()]
        .drain(..)
        .map(|m| Notice::from_message(m).unwrap())
        .collect();
    if let Some(last) = notices.last() {
        r.layer.ack_notice(n, last.seq).unwrap();
    }
    notices
}

#[test]
fn a_node_dying_mid_handler_does_not_leave_the_pin_dead() {
    let mut r = Rig::new();
    let old = r.attach(DISK).vector;
    // Node 1 takes the interrupt and dies in its handler: remote IRR stays set.
    r.hw.set_line(Pin(10), true);
    assert_eq!(r.take().len(), 1);
    assert!(r.hw.remote_irr(Pin(10)));
    // Its default owner is node 1 itself, so the fallback (node 0) takes it.
    let now = r.tick();
    let report = r
        .layer
        .set_node_state(&mut r.hw, N1, NodeState::Crashed, now)
        .unwrap();
    assert_eq!(report.devices_reset, 2, "DISK and the unregistered UART");
    assert!(
        !r.hw.remote_irr(Pin(10)),
        "cleared with an EOI of the old vector"
    );
    let e = r.hw.entry(Pin(10));
    assert!(e.masked, "masked until the new owner has reset the device");
    assert_eq!(e.destination_apic(), APICS[0]);
    let info = r.layer.device(DISK).unwrap();
    assert_eq!(info.owner, Some(N0));
    assert_ne!(info.vector, Some(old));
    assert_eq!(info.counters.crash_resets, 1);
    assert!(r.take().is_empty());
    // Everyone is told.
    let mut mb = Mailboxes::new(8);
    r.layer.flush_notices(&mut mb);
    let to0 = receive(&mut r, &mut mb, N0);
    // Node 0 also gets node 1's unregistered UART (its default owner).
    assert_eq!(to0.len(), 2);
    let disk = to0.iter().find(|n| n.device == DISK).unwrap();
    assert_eq!(disk.kind, NoticeKind::Attached(AttachReason::CrashRecovery));
    assert_eq!(r.layer.device(UART).unwrap().owner, Some(N0));
    let to2 = receive(&mut r, &mut mb, N2);
    assert_eq!(to2.len(), 2);
    assert_eq!(
        to2.iter().find(|n| n.device == DISK).unwrap().kind,
        NoticeKind::OwnerCrashed {
            crashed: N1,
            new_owner: Some(N0)
        }
    );
    assert!(mb.queues[1].is_empty(), "nothing for the dead node");
    // The new owner resets and unmasks: the still-asserted line reaches it once.
    r.layer.unmask(&mut r.hw, DISK, N0).unwrap();
    let d = r.take();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].apic, d[0].vector), (APICS[0], info.vector.unwrap()));
    assert_eq!(d[0].source, Source::Pin(Pin(10)));
}

#[test]
fn a_device_with_no_live_candidate_is_orphaned_then_adopted() {
    let mut r = Rig::new();
    r.attach(NIC);
    r.layer
        .set_node_state(&mut r.hw, N0, NodeState::Crashed, 1)
        .unwrap();
    // NIC's default and fallback owner are both node 0.
    let info = r.layer.device(NIC).unwrap();
    assert_eq!((info.owner, info.state), (None, DeviceState::Orphaned));
    assert!(r.hw.entry(Pin(11)).masked);
    assert!(r.layer.routes().lookup(NIC_GSI).is_none());
    assert_eq!(
        r.layer.unmask(&mut r.hw, NIC, N1).unwrap_err(),
        OpError::NotOwner(crate::Refusal {
            device: NIC,
            by: N1,
            owner: None,
            entry: Some(r.hw.entry(Pin(11)))
        })
    );
    let report = r
        .layer
        .set_node_state(&mut r.hw, N0, NodeState::Running, 2)
        .unwrap();
    assert_eq!(report.adopted, 1);
    let info = r.layer.device(NIC).unwrap();
    assert_eq!((info.owner, info.state), (Some(N0), DeviceState::Attached));
    assert!(matches!(info.binding, Some(Binding::Pin { .. })));
    assert_eq!(r.hw.entry(Pin(11)).destination_apic(), APICS[0]);
    assert_eq!(
        r.layer
            .set_node_state(&mut r.hw, NodeId(3), NodeState::Crashed, 3),
        Err(crate::NodeStateError::UnknownNode(NodeId(3)))
    );
}

#[test]
fn resync_rewrites_the_hardware_from_the_table() {
    let mut r = Rig::new();
    let v = r.attach(NIC).vector;
    r.attach(MSIDEV);
    // A holder died between its writes: a stray pin unmasked, NIC's entry half-programmed.
    let stray = crate::RedirectionEntry::fixed(
        Vector(0x99),
        7,
        TriggerMode::Edge,
        Polarity::ActiveHigh,
        false,
    );
    r.hw.write_entry(Pin(3), stray);
    r.hw.write_entry(
        Pin(11),
        crate::RedirectionEntry {
            destination: 7,
            ..r.hw.entry(Pin(11))
        },
    );
    assert_eq!(r.layer.resync(&mut r.hw), Ok(24 - 1 + 2));
    assert!(r.hw.entry(Pin(3)).masked);
    let e = r.hw.entry(Pin(11));
    assert_eq!(
        (e.destination_apic(), e.vector, e.masked),
        (APICS[0], v, false)
    );
}

#[test]
fn the_layer_is_fixed_size_plain_data() {
    // Its state is meant for the shared region: no pointers, no allocation, bounded size.
    let size = core::mem::size_of::<IrqLayer>();
    std::println!("IrqLayer: {size} bytes");
    assert!(size < 32 * 1024, "{size}");
}

#[test]
fn without_an_eoi_register_a_dead_owners_remote_irr_is_cleared_by_the_edge_toggle() {
    let mut config = Config::QEMU;
    config.eoi_register = false;
    let mut r = Rig::with_config(config);
    r.attach(DISK);
    r.hw.set_line(Pin(10), true);
    assert_eq!(r.take().len(), 1);
    assert!(r.hw.remote_irr(Pin(10)));
    let eois = r.hw.eois();
    r.layer
        .set_node_state(&mut r.hw, N1, NodeState::Crashed, 1)
        .unwrap();
    assert_eq!(r.hw.eois(), eois, "no EOI register write");
    assert!(!r.hw.remote_irr(Pin(10)));
    let e = r.hw.entry(Pin(10));
    assert_eq!((e.trigger, e.masked), (TriggerMode::Level, true));
    r.layer.unmask(&mut r.hw, DISK, N0).unwrap();
    assert_eq!(r.take().len(), 1, "the new owner still gets the interrupt");
}

/// A layer whose one device (owned by node 1, default owner node 0) was declared with the
/// source node 0 found for it: level, active low, GSI 11.
fn declared_at(config: Config) -> (IrqLayer, crate::testing::Machine) {
    let mut hw = crate::testing::Machine::new(24);
    let mut layer = IrqLayer::new(config);
    for (n, apic) in APICS.iter().enumerate() {
        layer
            .declare_node(NodeId(n as u8), *apic, NodeState::Running)
            .unwrap();
    }
    layer
        .declare_device_at(NIC, N1, N0, IrqSource::pci_intx(NIC_GSI))
        .unwrap();
    layer.init(&mut hw).unwrap();
    (layer, hw)
}

#[test]
fn registration_claiming_another_source_than_the_declared_one_is_refused() {
    let (mut layer, mut hw) = declared_at(Config::QEMU);
    let claims = [
        // Another pin (one no device has: only the declaration stops it).
        IrqSource::pci_intx(Gsi(5)),
        // The right pin, inverted polarity.
        IrqSource::Gsi {
            gsi: NIC_GSI,
            trigger: TriggerMode::Level,
            polarity: Polarity::ActiveHigh,
        },
        // The right pin as an edge (no remote IRR, so no EOI discipline).
        IrqSource::Gsi {
            gsi: NIC_GSI,
            trigger: TriggerMode::Edge,
            polarity: Polarity::ActiveLow,
        },
        IrqSource::Msi,
    ];
    for (k, claimed) in claims.into_iter().enumerate() {
        let before = [hw.entry(Pin(5)), hw.entry(Pin(11))];
        let writes = hw.entry_writes();
        let e = layer.register(&mut hw, NIC, N1, claimed).unwrap_err();
        assert_eq!(
            e,
            RegisterError::SourceMismatch {
                device: NIC,
                expected: IrqSource::pci_intx(NIC_GSI),
                claimed,
            }
        );
        assert_eq!(
            [hw.entry(Pin(5)), hw.entry(Pin(11))],
            before,
            "entries unchanged"
        );
        assert_eq!(hw.entry_writes(), writes, "nothing was written");
        let info = layer.device(NIC).unwrap();
        assert_eq!(info.counters.refused, k as u64 + 1, "counted");
        assert_eq!(
            (info.state, info.binding, info.vector),
            (DeviceState::Declared, None, None)
        );
        assert!(layer.routes().lookup(NIC_GSI).is_none());
        assert!(layer.routes().lookup(Gsi(5)).is_none());
    }
    // A non-owner is refused as such, whatever it claims.
    assert!(matches!(
        layer.register(&mut hw, NIC, N2, IrqSource::pci_intx(Gsi(5))),
        Err(RegisterError::NotOwner(_))
    ));
    // The declared source registers.
    let reg = layer
        .register(&mut hw, NIC, N1, IrqSource::pci_intx(NIC_GSI))
        .unwrap();
    assert_eq!(reg.pin, Some(Pin(11)));
    let e = hw.entry(Pin(11));
    assert_eq!(
        (e.trigger, e.polarity),
        (TriggerMode::Level, Polarity::ActiveLow)
    );
    assert_eq!(e.destination_apic(), APICS[1]);
}

#[test]
fn a_crashed_owner_of_a_declared_device_returns_it_masked_to_node_0() {
    // Both ways of clearing the dead owner's remote IRR: the EOI register, and (the kernel's
    // configuration under QEMU's broadcasting LAPIC) the edge toggle.
    for eoi_register in [true, false] {
        crashed_owner_returns_it(Config {
            eoi_register,
            ..Config::QEMU
        });
    }
}

fn crashed_owner_returns_it(config: Config) {
    let (mut layer, mut hw) = declared_at(config);
    let reg = layer
        .register(&mut hw, NIC, N1, IrqSource::pci_intx(NIC_GSI))
        .unwrap();
    layer.unmask(&mut hw, NIC, N1).unwrap();
    // Node 1 takes the interrupt and dies before its EOI.
    hw.set_line(Pin(11), true);
    assert_eq!(hw.take_deliveries().len(), 1);
    assert!(hw.remote_irr(Pin(11)));
    layer
        .set_node_state(&mut hw, N1, NodeState::Crashed, 5)
        .unwrap();
    let info = layer.device(NIC).unwrap();
    assert_eq!(info.owner, Some(N0), "its default owner");
    assert!(info.masked);
    assert_ne!(info.vector, Some(reg.vector));
    let e = hw.entry(Pin(11));
    assert!(e.masked && !e.remote_irr);
    assert_eq!(e.destination_apic(), APICS[0]);
    assert_eq!(
        (e.trigger, e.polarity),
        (TriggerMode::Level, Polarity::ActiveLow),
        "still the declared source"
    );
}
