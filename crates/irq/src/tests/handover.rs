//! The hand-over state machine: the happy path and its trace, the bounded wait, pushback,
//! re-delivery, crashes, and every refusal.

use mint_abi::node::NodeState;
use mint_abi::{NodeId, Vector};

use super::layer::receive;
use super::*;
use crate::testing::Source;
use crate::{
    AbortReason, AttachReason, DeviceInfo, DeviceState, Dispatch, HandoverError, HandoverProgress,
    HandoverStep, Msi, NoticeKind, OpError, TriggerMode, VectorUse,
};

/// Everything but the refusal counter.
fn same_but_refused(a: DeviceInfo, b: DeviceInfo) -> bool {
    let mut b = b;
    b.counters.refused = a.counters.refused;
    a == b
}

#[test]
fn level_handover_completes_with_a_stamped_trace() {
    let mut r = Rig::new();
    let old = r.attach(NIC).vector;
    let t0 = r.tick();
    r.layer.handover(NIC, N0, N1, 10, t0).unwrap();
    assert_eq!(r.layer.device(NIC).unwrap().state, DeviceState::HandingOver);
    let t = r.tick();
    assert_eq!(
        r.layer.handover_poll(&mut r.hw, NIC, t),
        Ok(HandoverProgress::AwaitingQuiesce)
    );
    // The old owner masks its device, then tells the layer, which masks the pin.
    let t1 = r.tick();
    r.layer
        .handover_quiesced(&mut r.hw, NIC, N0, false, t1)
        .unwrap();
    assert!(r.hw.entry(Pin(11)).masked);
    // The device raises its line while the pin is masked (ICR unread).
    r.hw.set_line(Pin(11), true);
    assert!(r.take().is_empty());
    let t2 = r.tick();
    assert_eq!(
        r.layer.handover_poll(&mut r.hw, NIC, t2),
        Ok(HandoverProgress::Done)
    );
    let info = r.layer.device(NIC).unwrap();
    assert_eq!(info.owner, Some(N1));
    assert_eq!(info.state, DeviceState::Attached);
    assert_eq!(info.counters.handovers, 1);
    let new = info.vector.unwrap();
    assert_ne!(new, old);
    // Exactly one delivery, to the new owner, with the new vector.
    let d = r.take();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].apic, d[0].vector), (APICS[1], new));
    assert_eq!(
        r.layer.on_interrupt(&mut r.hw, APICS[1], new, t2),
        Dispatch::Device {
            device: NIC,
            trigger: TriggerMode::Level
        }
    );
    // Trace.
    let trace = r.layer.trace(NIC).unwrap();
    let steps: alloc::vec::Vec<HandoverStep> = trace.steps().collect();
    assert_eq!(
        steps,
        [
            HandoverStep::Requested,
            HandoverStep::Quiesced,
            HandoverStep::RemoteIrrClear,
            HandoverStep::Switched,
            HandoverStep::DetachedNotified,
            HandoverStep::AttachedNotified,
            HandoverStep::Done
        ]
    );
    assert_eq!(trace.entries()[0].at, t0);
    assert_eq!(trace.entries()[1].at, t1);
    assert_eq!(trace.last().unwrap().at, t2);
    assert_eq!(trace.duration(), t2 - t0);
    assert!(trace.entries().windows(2).all(|w| w[0].at <= w[1].at));
    // Route table follows; the old vector drains until the old owner acknowledges.
    let route = r.layer.routes().lookup(NIC_GSI).unwrap();
    assert_eq!((route.destination, route.vector), (APICS[1], new));
    assert_eq!(
        r.layer.vectors().usage(old),
        VectorUse::Draining {
            device: NIC,
            old_owner: N0
        }
    );
    let mut mb = Mailboxes::new(8);
    r.layer.flush_notices(&mut mb);
    let to1 = receive(&mut r, &mut mb, N1);
    assert_eq!(to1.len(), 1);
    assert_eq!(to1[0].kind, NoticeKind::Attached(AttachReason::Handover));
    assert_eq!(to1[0].vector, new);
    assert_eq!(
        r.layer.vectors().usage(old),
        VectorUse::Draining {
            device: NIC,
            old_owner: N0
        }
    );
    let to0 = receive(&mut r, &mut mb, N0);
    assert_eq!(to0[0].kind, NoticeKind::Detached);
    assert_eq!(
        to0[0].vector, old,
        "the old owner is told which vector to check"
    );
    assert_eq!(r.layer.vectors().usage(old), VectorUse::Free);
    // The old owner can no longer touch it; the new one can.
    assert!(matches!(
        r.layer.mask(&mut r.hw, NIC, N0),
        Err(OpError::NotOwner(_))
    ));
    r.hw.set_line(Pin(11), false);
    r.layer.eoi(&mut r.hw, NIC, N1).unwrap();
    assert!(!r.hw.remote_irr(Pin(11)));
}

#[test]
fn handover_waits_for_remote_irr_then_switches() {
    let mut r = Rig::new();
    r.attach(NIC);
    r.hw.set_line(Pin(11), true);
    assert_eq!(r.take().len(), 1, "node 0 is in its handler");
    r.layer.handover(NIC, N0, N1, 3, 1).unwrap();
    r.layer
        .handover_quiesced(&mut r.hw, NIC, N0, false, 2)
        .unwrap();
    assert_eq!(
        r.layer.handover_poll(&mut r.hw, NIC, 3),
        Ok(HandoverProgress::AwaitingRemoteIrr { polls_left: 2 })
    );
    // The old owner's handler finishes: clears the cause, EOIs (still allowed: still owner).
    r.hw.set_line(Pin(11), false);
    r.layer.eoi(&mut r.hw, NIC, N0).unwrap();
    assert!(r.take().is_empty(), "masked: no redelivery");
    assert_eq!(
        r.layer.handover_poll(&mut r.hw, NIC, 4),
        Ok(HandoverProgress::Done)
    );
    assert!(r.take().is_empty(), "nothing was pending");
    assert_eq!(r.layer.device(NIC).unwrap().owner, Some(N1));
}

#[test]
fn remote_irr_timeout_leaves_the_device_with_its_owner() {
    let mut r = Rig::new();
    let v = r.attach(NIC).vector;
    r.hw.set_line(Pin(11), true);
    r.take();
    let before = r.hw.entry(Pin(11));
    r.layer.handover(NIC, N0, N1, 2, 1).unwrap();
    r.layer
        .handover_quiesced(&mut r.hw, NIC, N0, false, 2)
        .unwrap();
    for left in [1, 0] {
        assert_eq!(
            r.layer.handover_poll(&mut r.hw, NIC, 3),
            Ok(HandoverProgress::AwaitingRemoteIrr { polls_left: left })
        );
    }
    assert_eq!(
        r.layer.handover_poll(&mut r.hw, NIC, 9),
        Err(HandoverError::RemoteIrrTimeout {
            device: NIC,
            polls: 2
        })
    );
    let info = r.layer.device(NIC).unwrap();
    assert_eq!(
        (info.owner, info.vector, info.state),
        (Some(N0), Some(v), DeviceState::Attached)
    );
    assert_eq!(info.counters.handovers_abandoned, 1);
    assert_eq!(
        r.hw.entry(Pin(11)),
        before,
        "mask state restored, nothing else changed"
    );
    assert_eq!(
        r.layer.trace(NIC).unwrap().last().unwrap().step,
        HandoverStep::Aborted(AbortReason::RemoteIrrTimeout)
    );
    // The reserved vector was given back.
    assert_eq!(r.layer.vectors().free(), 0xEF - 0x30 + 1 - 1);
    // The old owner finishes later; the pin works.
    r.hw.set_line(Pin(11), false);
    r.layer.eoi(&mut r.hw, NIC, N0).unwrap();
    r.hw.set_line(Pin(11), true);
    assert_eq!(r.take().len(), 1);
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let mut r = Rig::new();
    r.attach(NIC);
    r.layer
        .declare_node(NodeId(3), mint_abi::ApicId(9), NodeState::Booting)
        .unwrap();
    let info = r.layer.device(NIC).unwrap();
    let entry = r.hw.entry(Pin(11));
    let free = r.layer.vectors().free();
    let cases = [
        (
            DeviceId(9),
            N0,
            N1,
            HandoverError::UnknownDevice(DeviceId(9)),
        ),
        (NIC, N0, NodeId(7), HandoverError::UnknownNode(NodeId(7))),
        (
            NIC,
            N0,
            N0,
            HandoverError::SameOwner {
                device: NIC,
                node: N0,
            },
        ),
        (
            NIC,
            N1,
            N2,
            HandoverError::NotOwner {
                device: NIC,
                claimed: N1,
                owner: Some(N0),
            },
        ),
        (
            NIC,
            N0,
            NodeId(3),
            HandoverError::TargetNotRunning {
                node: NodeId(3),
                state: NodeState::Booting,
            },
        ),
    ];
    for (dev, from, to, want) in cases {
        assert_eq!(r.layer.handover(dev, from, to, 5, 1), Err(want));
        assert!(same_but_refused(info, r.layer.device(NIC).unwrap()));
        assert_eq!(r.hw.entry(Pin(11)), entry);
        assert_eq!(r.layer.vectors().free(), free);
    }
    // A crashed target.
    r.layer
        .set_node_state(&mut r.hw, N2, NodeState::Crashed, 1)
        .unwrap();
    assert_eq!(
        r.layer.handover(NIC, N0, N2, 5, 1),
        Err(HandoverError::TargetNotRunning {
            node: N2,
            state: NodeState::Crashed
        })
    );
    // Unregistered device.
    assert_eq!(
        r.layer.handover(DISK, N1, N0, 5, 1),
        Err(HandoverError::NotRegistered(DISK))
    );
    // Two at once.
    r.layer.handover(NIC, N0, N1, 5, 1).unwrap();
    let during = r.layer.device(NIC).unwrap();
    assert_eq!(
        r.layer.handover(NIC, N0, N1, 5, 1),
        Err(HandoverError::AlreadyInProgress {
            device: NIC,
            from: N0,
            to: N1
        })
    );
    // Steps by the wrong node, or out of order.
    assert_eq!(
        r.layer.handover_quiesced(&mut r.hw, NIC, N1, false, 2),
        Err(HandoverError::WrongNode {
            device: NIC,
            by: N1,
            expected: N0
        })
    );
    assert_eq!(
        r.layer.cancel_handover(&mut r.hw, NIC, N1, 2),
        Err(HandoverError::WrongNode {
            device: NIC,
            by: N1,
            expected: N0
        })
    );
    // Owner operations wait for the hand-over.
    assert_eq!(
        r.layer.unmask(&mut r.hw, NIC, N0),
        Err(OpError::HandoverInProgress(NIC))
    );
    assert!(same_but_refused(during, r.layer.device(NIC).unwrap()));
    r.layer
        .handover_quiesced(&mut r.hw, NIC, N0, false, 3)
        .unwrap();
    assert_eq!(
        r.layer.handover_quiesced(&mut r.hw, NIC, N0, false, 3),
        Err(HandoverError::WrongStep {
            device: NIC,
            at: HandoverStep::Quiesced
        })
    );
    assert_eq!(
        r.layer.handover_poll(&mut r.hw, UART, 3),
        Err(HandoverError::NotInProgress(UART))
    );
    assert!(r.layer.device(NIC).unwrap().counters.refused >= 10);
}

#[test]
fn cancel_restores_the_owner_and_frees_the_reserved_vector() {
    let mut r = Rig::new();
    let v = r.attach(NIC).vector;
    let entry = r.hw.entry(Pin(11));
    let free = r.layer.vectors().free();
    r.layer.handover(NIC, N0, N1, 5, 1).unwrap();
    assert_eq!(r.layer.vectors().free(), free - 1);
    r.layer
        .handover_quiesced(&mut r.hw, NIC, N0, false, 2)
        .unwrap();
    r.layer.cancel_handover(&mut r.hw, NIC, N0, 3).unwrap();
    assert_eq!(r.hw.entry(Pin(11)), entry);
    assert_eq!(r.layer.vectors().free(), free);
    let info = r.layer.device(NIC).unwrap();
    assert_eq!((info.owner, info.vector), (Some(N0), Some(v)));
    assert_eq!(
        r.layer.trace(NIC).unwrap().last().unwrap().step,
        HandoverStep::Aborted(AbortReason::Cancelled)
    );
}

#[test]
fn a_full_outbox_holds_the_handover_at_its_notice_step() {
    let mut r = Rig::new();
    r.attach(NIC);
    // Node 0 has not acknowledged earlier notices: its outbox is full.
    let mut mb = Mailboxes::new(16);
    while r.layer.outbox().room(N0) > 0 {
        r.layer
            .outbox_mut()
            .post(N0, NoticeKind::Detached, DeviceId(15), Gsi(0), Vector(0))
            .unwrap();
    }
    r.layer.flush_notices(&mut mb);
    r.layer.handover(NIC, N0, N1, 1, 5).unwrap();
    r.layer
        .handover_quiesced(&mut r.hw, NIC, N0, false, 6)
        .unwrap();
    assert_eq!(
        r.layer.handover_poll(&mut r.hw, NIC, 7),
        Ok(HandoverProgress::AwaitingOutbox { to: N0 })
    );
    // Switched already: interrupts go to the new owner while the notice waits.
    assert_eq!(r.layer.device(NIC).unwrap().owner, Some(N1));
    assert_eq!(
        r.layer.trace(NIC).unwrap().last().unwrap().step,
        HandoverStep::Switched
    );
    assert_eq!(
        r.layer.handover_poll(&mut r.hw, NIC, 8),
        Ok(HandoverProgress::AwaitingOutbox { to: N0 })
    );
    // Node 0 acknowledges: room again, the hand-over finishes.
    receive(&mut r, &mut mb, N0);
    assert_eq!(
        r.layer.handover_poll(&mut r.hw, NIC, 9),
        Ok(HandoverProgress::Done)
    );
    let steps: alloc::vec::Vec<HandoverStep> = r.layer.trace(NIC).unwrap().steps().collect();
    assert_eq!(
        steps[steps.len() - 3..],
        [
            HandoverStep::DetachedNotified,
            HandoverStep::AttachedNotified,
            HandoverStep::Done
        ]
    );
}

#[test]
fn a_latched_edge_is_redelivered_once_to_the_new_owner() {
    let mut r = Rig::new();
    r.attach(UART);
    r.layer.handover(UART, N1, N2, 1, 1).unwrap();
    r.layer
        .handover_quiesced(&mut r.hw, UART, N1, true, 2)
        .unwrap();
    // An edge now is dropped by the masked pin.
    r.hw.pulse(Pin(4));
    assert_eq!(r.hw.dropped_edges(Pin(4)), 1);
    assert_eq!(
        r.layer.handover_poll(&mut r.hw, UART, 3),
        Ok(HandoverProgress::Done)
    );
    let v = r.layer.device(UART).unwrap().vector.unwrap();
    let d = r.take();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].apic, d[0].vector, d[0].source),
        (APICS[2], v, Source::Injected)
    );
    assert_eq!(r.layer.device(UART).unwrap().counters.reinjected, 1);
    assert!(
        r.layer
            .trace(UART)
            .unwrap()
            .steps()
            .any(|s| s == HandoverStep::EdgeReplayed)
    );
}

#[test]
fn msi_handover_rewrites_address_and_data() {
    let mut r = Rig::new();
    r.attach(MSIDEV);
    r.layer.handover(MSIDEV, N2, N0, 1, 1).unwrap();
    r.layer
        .handover_quiesced(&mut r.hw, MSIDEV, N2, false, 2)
        .unwrap();
    assert!(r.hw.is_masked(MSIDEV));
    // Fired while masked: latched by the MSI-X pending bit.
    r.hw.fire_msi(MSIDEV);
    assert!(r.take().is_empty());
    assert_eq!(
        r.layer.handover_poll(&mut r.hw, MSIDEV, 3),
        Ok(HandoverProgress::Done)
    );
    let v = r.layer.device(MSIDEV).unwrap().vector.unwrap();
    let msg = r.hw.read_message(MSIDEV).unwrap();
    assert_eq!(
        (msg.address.destination_apic(), msg.data.vector),
        (APICS[0], v)
    );
    let d = r.take();
    assert_eq!(d.len(), 1, "the pending message, once, to the new owner");
    assert_eq!((d[0].apic, d[0].vector), (APICS[0], v));
}

#[test]
fn target_crash_before_switch_aborts_and_after_switch_resets() {
    let mut r = Rig::new();
    let v = r.attach(NIC).vector;
    r.layer.handover(NIC, N0, N1, 5, 1).unwrap();
    r.layer
        .handover_quiesced(&mut r.hw, NIC, N0, false, 2)
        .unwrap();
    let report = r
        .layer
        .set_node_state(&mut r.hw, N1, NodeState::Crashed, 3)
        .unwrap();
    assert_eq!(report.handovers_aborted, 1);
    let info = r.layer.device(NIC).unwrap();
    assert_eq!(
        (info.owner, info.vector, info.state),
        (Some(N0), Some(v), DeviceState::Attached)
    );
    assert!(
        !r.hw.entry(Pin(11)).masked,
        "the owner's mask state is back"
    );
    assert_eq!(
        r.layer.trace(NIC).unwrap().last().unwrap().step,
        HandoverStep::Aborted(AbortReason::NodeCrashed(N1))
    );
    // After the switch: the device is the new owner's, so its crash resets it to the default.
    r.layer
        .set_node_state(&mut r.hw, N1, NodeState::Running, 4)
        .unwrap();
    r.layer.handover(NIC, N0, N2, 5, 5).unwrap();
    r.layer
        .handover_quiesced(&mut r.hw, NIC, N0, false, 6)
        .unwrap();
    // Hold it at the notice step: node 0's outbox full.
    while r.layer.outbox().room(N0) > 0 {
        r.layer
            .outbox_mut()
            .post(N0, NoticeKind::Detached, DeviceId(15), Gsi(0), Vector(0))
            .unwrap();
    }
    assert_eq!(
        r.layer.handover_poll(&mut r.hw, NIC, 7),
        Ok(HandoverProgress::AwaitingOutbox { to: N0 })
    );
    assert_eq!(r.layer.device(NIC).unwrap().owner, Some(N2));
    r.layer
        .set_node_state(&mut r.hw, N2, NodeState::Crashed, 8)
        .unwrap();
    let info = r.layer.device(NIC).unwrap();
    assert_eq!((info.owner, info.state), (Some(N0), DeviceState::Attached));
    assert_eq!(info.counters.crash_resets, 1);
    assert!(r.hw.entry(Pin(11)).masked);
    assert_eq!(r.hw.entry(Pin(11)).destination_apic(), APICS[0]);
}

#[test]
fn old_owner_crash_after_switch_skips_its_notice() {
    let mut r = Rig::new();
    r.attach(NIC);
    while r.layer.outbox().room(N0) > 0 {
        r.layer
            .outbox_mut()
            .post(N0, NoticeKind::Detached, DeviceId(15), Gsi(0), Vector(0))
            .unwrap();
    }
    r.layer.handover(NIC, N0, N1, 5, 1).unwrap();
    r.layer
        .handover_quiesced(&mut r.hw, NIC, N0, false, 2)
        .unwrap();
    assert_eq!(
        r.layer.handover_poll(&mut r.hw, NIC, 3),
        Ok(HandoverProgress::AwaitingOutbox { to: N0 })
    );
    r.layer
        .set_node_state(&mut r.hw, N0, NodeState::Crashed, 4)
        .unwrap();
    assert_eq!(
        r.layer.handover_poll(&mut r.hw, NIC, 5),
        Ok(HandoverProgress::Done)
    );
    assert!(
        r.layer
            .trace(NIC)
            .unwrap()
            .steps()
            .any(|s| s == HandoverStep::DetachedSkipped)
    );
    assert_eq!(r.layer.device(NIC).unwrap().owner, Some(N1));
    assert!(
        !matches!(
            r.layer.vectors().usage(Vector(0x30)),
            VectorUse::Draining { .. }
        ),
        "the dead owner's old vector is free"
    );
}

#[test]
fn new_owner_crash_before_the_detached_notice_still_frees_the_old_vector() {
    let mut r = Rig::new();
    let old = r.attach(NIC).vector;
    let mut mb = Mailboxes::new(16);
    while r.layer.outbox().room(N0) > 0 {
        r.layer
            .outbox_mut()
            .post(N0, NoticeKind::Detached, DeviceId(15), Gsi(0), Vector(0))
            .unwrap();
    }
    r.layer.flush_notices(&mut mb);
    r.layer.handover(NIC, N0, N1, 1, 1).unwrap();
    r.layer
        .handover_quiesced(&mut r.hw, NIC, N0, false, 2)
        .unwrap();
    assert_eq!(
        r.layer.handover_poll(&mut r.hw, NIC, 3),
        Ok(HandoverProgress::AwaitingOutbox { to: N0 })
    );
    // The new owner dies before node 0 was told "detached": NIC comes back to node 0.
    r.layer
        .set_node_state(&mut r.hw, N1, NodeState::Crashed, 4)
        .unwrap();
    assert_eq!(r.layer.device(NIC).unwrap().owner, Some(N0));
    assert_eq!(
        r.layer.vectors().usage(old),
        VectorUse::Draining {
            device: NIC,
            old_owner: N0
        }
    );
    receive(&mut r, &mut mb, N0);
    r.layer.flush_notices(&mut mb);
    let notices = receive(&mut r, &mut mb, N0);
    assert!(notices
        .iter()
        .any(|n| n.device == NIC && n.kind == NoticeKind::Attached(AttachReason::CrashRecovery)));
    assert_eq!(r.layer.vectors().usage(old), VectorUse::Free);
}

/// The machine, but a write can be made not to take (a wedged I/O APIC, a wrong mapping).
struct Flaky {
    hw: Machine,
    drop_writes: bool,
}

impl crate::IoApic for Flaky {
    fn pins(&self) -> u8 {
        self.hw.pins()
    }
    fn read_entry(&self, pin: Pin) -> crate::RedirectionEntry {
        self.hw.read_entry(pin)
    }
    fn write_entry(&mut self, pin: Pin, entry: crate::RedirectionEntry) {
        if !self.drop_writes {
            self.hw.write_entry(pin, entry)
        }
    }
    fn eoi(&mut self, vector: Vector) {
        crate::IoApic::eoi(&mut self.hw, vector)
    }
}

impl Msi for Flaky {
    fn write_message(&mut self, device: DeviceId, message: crate::MsiMessage) {
        self.hw.write_message(device, message)
    }
    fn read_message(&self, device: DeviceId) -> Option<crate::MsiMessage> {
        self.hw.read_message(device)
    }
    fn set_masked(&mut self, device: DeviceId, masked: bool) {
        self.hw.set_masked(device, masked)
    }
    fn is_masked(&self, device: DeviceId) -> bool {
        self.hw.is_masked(device)
    }
}

impl crate::Lapic for Flaky {
    fn inject(&mut self, apic: mint_abi::ApicId, vector: Vector) {
        self.hw.inject(apic, vector)
    }
}

#[test]
fn a_switch_that_does_not_read_back_is_reported_and_retried() {
    let mut r = Rig::new();
    r.attach(NIC);
    let mut hw = Flaky {
        hw: r.hw.clone(),
        drop_writes: false,
    };
    r.layer.handover(NIC, N0, N1, 1, 1).unwrap();
    r.layer
        .handover_quiesced(&mut hw, NIC, N0, false, 2)
        .unwrap();
    let masked = hw.hw.entry(Pin(11));
    assert!(masked.masked);
    hw.drop_writes = true;
    let e = r.layer.handover_poll(&mut hw, NIC, 3).unwrap_err();
    assert!(matches!(
        e,
        HandoverError::Hardware(crate::HardwareError::PinReadBack { .. })
    ));
    // Nothing moved: old owner, old entry, still masked by the hand-over.
    assert_eq!(r.layer.device(NIC).unwrap().owner, Some(N0));
    assert_eq!(hw.hw.entry(Pin(11)), masked);
    hw.drop_writes = false;
    assert_eq!(
        r.layer.handover_poll(&mut hw, NIC, 4),
        Ok(HandoverProgress::Done)
    );
    assert_eq!(r.layer.device(NIC).unwrap().owner, Some(N1));
    assert_eq!(hw.hw.entry(Pin(11)).destination_apic(), APICS[1]);
}

#[test]
fn registration_that_does_not_read_back_changes_nothing() {
    let mut r = Rig::new();
    let mut hw = Flaky {
        hw: r.hw.clone(),
        drop_writes: true,
    };
    let free = r.layer.vectors().free();
    let e = r
        .layer
        .register(&mut hw, NIC, N0, source_of(NIC))
        .unwrap_err();
    assert!(matches!(e, crate::RegisterError::Hardware(_)));
    assert_eq!(r.layer.vectors().free(), free);
    assert_eq!(r.layer.device(NIC).unwrap().binding, None);
    assert!(r.layer.routes().lookup(NIC_GSI).is_none());
}

#[test]
fn status_names_the_reserved_vector_until_done() {
    let mut r = Rig::new();
    let old = r.attach(NIC).vector;
    assert_eq!(r.layer.handover_status(NIC), None);
    let t = r.tick();
    r.layer.handover(NIC, N0, N1, 10, t).unwrap();
    let s = r.layer.handover_status(NIC).expect("in progress");
    assert_eq!((s.from, s.to, s.step), (N0, N1, HandoverStep::Requested));
    assert_ne!(s.new_vector, old, "a fresh vector for the new owner");
    let t = r.tick();
    r.layer
        .handover_quiesced(&mut r.hw, NIC, N0, false, t)
        .unwrap();
    assert_eq!(
        r.layer.handover_status(NIC).map(|s| s.step),
        Some(HandoverStep::Quiesced)
    );
    let t = r.tick();
    while r.layer.handover_poll(&mut r.hw, NIC, t).unwrap() != HandoverProgress::Done {}
    assert_eq!(r.layer.handover_status(NIC), None);
    assert_eq!(r.layer.device(NIC).unwrap().vector, Some(s.new_vector));
}

#[test]
fn a_handover_outside_the_plans_candidates_is_refused_and_counted() {
    let mut r = Rig::new();
    r.attach(NIC);
    r.layer.allow_handover_to(NIC, &[N0, N1]).unwrap();
    let before = r.layer.device(NIC).unwrap();
    let entry = r.hw.entry(Pin(11));
    let t = r.tick();
    assert_eq!(
        r.layer.handover(NIC, N0, N2, 10, t),
        Err(HandoverError::NotACandidate {
            device: NIC,
            node: N2
        })
    );
    let after = r.layer.device(NIC).unwrap();
    assert!(same_but_refused(before, after));
    assert_eq!(after.counters.refused, before.counters.refused + 1);
    assert_eq!(r.hw.entry(Pin(11)), entry, "entry unchanged");
    // A candidate is still accepted.
    let t = r.tick();
    assert_eq!(r.layer.handover(NIC, N0, N1, 10, t), Ok(()));
    assert_eq!(
        r.layer.allow_handover_to(NIC, &[NodeId(9)]),
        Err(crate::ConfigError::UnknownNode(NodeId(9)))
    );
}
