//! Routing table, vector pool, outbox and notice messages.

use core::cell::Cell;

use mint_abi::{ApicId, Gsi, NodeId, Vector};
use mint_mailbox::Message;

use super::{Mailboxes, N0, N1};
use crate::notice::{AckError, OUTBOX_CAPACITY, ack_message, kind};
use crate::route::{MAX_ROUTES, read_consistent};
use crate::{
    AttachReason, DeviceId, Notice, NoticeKind, Outbox, OutboxFull, Pin, RouteEntry, RouteError,
    RouteTarget, RoutingTable, VectorPool, VectorUse,
};

fn route(gsi: u32, dev: u16, pin: u8, vector: u8) -> RouteEntry {
    RouteEntry {
        gsi: Gsi(gsi),
        device: DeviceId(dev),
        target: RouteTarget::Pin(Pin(pin)),
        destination: ApicId(2),
        vector: Vector(vector),
    }
}

#[test]
fn routing_table_swaps_whole_and_refuses_clashes() {
    let mut t = RoutingTable::new();
    assert_eq!(t.generation(), 0);
    assert_eq!(t.set(route(11, 0, 11, 0x30)), Ok(2));
    assert_eq!(t.set(route(10, 1, 10, 0x31)), Ok(4));
    // Same GSI, other device: refused (KVM's setup_routing_entry).
    assert_eq!(
        t.set(route(11, 1, 11, 0x32)),
        Err(RouteError::GsiTaken {
            gsi: Gsi(11),
            device: DeviceId(0)
        })
    );
    // Pin or vector used twice: refused.
    assert!(matches!(
        t.set(route(12, 2, 11, 0x33)),
        Err(RouteError::PinTaken { .. })
    ));
    assert!(matches!(
        t.set(route(12, 2, 12, 0x30)),
        Err(RouteError::VectorTaken { .. })
    ));
    assert_eq!(
        t.generation(),
        4,
        "refused changes do not bump the generation"
    );
    assert_eq!(t.lookup(Gsi(12)), None);
    // Replacing a route (same device) is one swap.
    assert_eq!(t.set(route(11, 0, 11, 0x40)), Ok(6));
    assert_eq!(t.lookup(Gsi(11)).unwrap().vector, Vector(0x40));
    assert_eq!(t.remove(Gsi(11)), 8);
    assert_eq!(t.iter().count(), 1);
    for k in 0..MAX_ROUTES as u32 - 1 {
        t.set(route(100 + k, 100 + k as u16, 30 + k as u8, 0x50 + k as u8))
            .unwrap();
    }
    assert_eq!(t.set(route(200, 200, 100, 0x90)), Err(RouteError::Full));
}

#[test]
fn readers_retry_while_the_generation_moves() {
    // A writer that is mid-swap (odd) on the first load, then finishes between a reader's
    // two loads once: the reader must use neither of those reads.
    let loads = Cell::new(0u32);
    let gens = [3u64, 4, 6, 6, 6];
    let r = read_consistent(
        || {
            let i = loads.get();
            loads.set(i + 1);
            gens[i as usize]
        },
        || loads.get(),
        5,
    );
    assert_eq!(r, Some((6, 4)));
    // A writer that never finishes: the reader gives up.
    assert_eq!(read_consistent(|| 1, || (), 3), None);
}

#[test]
fn vectors_are_next_fit_and_drain_before_reuse() {
    let mut p = VectorPool::new(Vector(0x30), Vector(0x32));
    let a = p.reserve(DeviceId(0)).unwrap();
    p.activate(a);
    let b = p.reserve(DeviceId(1)).unwrap();
    p.activate(b);
    assert_eq!((a, b), (Vector(0x30), Vector(0x31)));
    assert_eq!(p.usage(Vector(0x20)), VectorUse::NotManaged);
    p.retire(a, N0);
    assert_eq!(
        p.usage(a),
        VectorUse::Draining {
            device: DeviceId(0),
            old_owner: N0
        }
    );
    let c = p.reserve(DeviceId(0)).unwrap();
    assert_eq!(c, Vector(0x32));
    assert_eq!(
        p.reserve(DeviceId(2)),
        None,
        "draining vectors are not handed out"
    );
    assert_eq!(
        p.drained(DeviceId(0), N1),
        0,
        "only the old owner drains it"
    );
    assert_eq!(p.drained(DeviceId(0), N0), 1);
    assert_eq!(p.reserve(DeviceId(2)), Some(a));
    assert_eq!(VectorPool::new(Vector(0x40), Vector(0x3F)).free(), 0);
}

fn post(o: &mut Outbox, to: NodeId, dev: u16) -> Result<u32, OutboxFull> {
    o.post(
        to,
        NoticeKind::Attached(AttachReason::Handover),
        DeviceId(dev),
        Gsi(11),
        Vector(0x30),
    )
}

#[test]
fn outbox_pushes_back_and_keeps_order() {
    let mut o = Outbox::new();
    for k in 0..OUTBOX_CAPACITY {
        assert_eq!(post(&mut o, N1, k as u16), Ok(k as u32 + 1));
    }
    assert_eq!(post(&mut o, N1, 99), Err(OutboxFull { to: N1 }));
    assert_eq!(o.counters(N1).refused_full, 1);
    assert_eq!(
        o.room(N0),
        OUTBOX_CAPACITY,
        "other destinations are independent"
    );
    // A mailbox of 3: three go out, the rest wait, in order.
    let mut mb = Mailboxes::new(3);
    assert_eq!(o.flush(&mut mb), 3);
    assert_eq!(o.counters(N1).mailbox_full, 1);
    let seqs: alloc::vec::Vec<u32> = mb.queues[1].iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    // Still full: sent but unacknowledged notices hold their slots.
    assert_eq!(post(&mut o, N1, 99), Err(OutboxFull { to: N1 }));
    // Acks: a bad one is refused; a good one frees the slots it covers.
    assert_eq!(
        o.ack(N1, 5, |_| {}),
        Err(AckError::NotSent { from: N1, seq: 5 })
    );
    let mut seen = 0;
    assert_eq!(o.ack(N1, 2, |_| seen += 1), Ok(2));
    assert_eq!(seen, 2);
    assert_eq!(
        o.ack(N1, 2, |_| {}),
        Err(AckError::NotSent { from: N1, seq: 2 })
    );
    assert_eq!(o.room(N1), 2);
    mb.queues[1].clear();
    assert_eq!(o.flush(&mut mb), 3);
    let seqs: alloc::vec::Vec<u32> = mb.queues[1].iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [4, 5, 6]);
    o.discard(N1);
    assert_eq!(o.room(N1), OUTBOX_CAPACITY);
    assert_eq!(o.counters(N1).discarded, 6);
    assert_eq!(
        post(&mut o, N1, 0),
        Ok(9),
        "sequence numbers go on after a discard"
    );
}

#[test]
fn notices_round_trip_through_messages() {
    let kinds = [
        NoticeKind::Attached(AttachReason::Handover),
        NoticeKind::Attached(AttachReason::CrashRecovery),
        NoticeKind::Detached,
        NoticeKind::OwnerCrashed {
            crashed: N1,
            new_owner: Some(N0),
        },
        NoticeKind::OwnerCrashed {
            crashed: N1,
            new_owner: None,
        },
    ];
    for k in kinds {
        let n = Notice {
            seq: 7,
            kind: k,
            device: DeviceId(3),
            gsi: Gsi(11),
            vector: Vector(0x42),
        };
        assert_eq!(Notice::from_message(n.to_message()), Ok(n));
    }
    for bad in [
        Message::new(kind::ATTACHED, 1, [0, 2, 0xFF]),
        Message::new(kind::DETACHED, 0, [0, 0, 0xFF]),
        Message::new(kind::OWNER_CRASHED, 1, [0, 9, 0xFF]),
        Message::new(1, 1, [0; 3]),
        ack_message(3),
    ] {
        assert!(Notice::from_message(bad).is_err(), "{bad:?}");
    }
}
