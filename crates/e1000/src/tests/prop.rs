//! Property tests: arbitrary interleavings of device receives and driver polls.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::{Harness, frame, seq_of};
use crate::RxDrop;
use crate::desc::{RxDescriptor, RxErrors, RxStatus};
use crate::regs::Register;
use crate::ring::DescriptorRing;

#[derive(Debug, Clone)]
enum Op {
    /// The device receives a frame of this length (clamped into the valid range or beyond).
    Receive(usize),
    /// The driver polls with this budget.
    Poll(usize),
    /// The device's idle work: its read-ahead (which fetches descriptors).
    ReadAhead,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![
            3 => (0usize..600).prop_map(Op::Receive),
            1 => (0usize..20).prop_map(Op::Poll),
            1 => Just(Op::ReadAhead),
        ],
        0..300,
    )
}

fn ring_size() -> impl Strategy<Value = u16> {
    (1u16..=8).prop_map(|k| k * 8)
}

fn buffer_size() -> impl Strategy<Value = usize> {
    prop_oneof![Just(256usize), Just(512), Just(1024)]
}

/// Checks the register and ring-index invariants that must hold between any two operations.
fn check_indices<D: DescriptorRing>(h: &Harness<D>) {
    let count = u32::from(h.rx.count());
    let rdh = h.regs.peek(Register::RDH);
    let rdt = h.regs.peek(Register::RDT);
    assert!(
        rdh < count && rdt < count,
        "rdh {rdh} rdt {rdt} count {count}"
    );
    assert!(u32::from(h.rx.next_to_clean()) < count);
    // The one-empty-slot invariant: RDT trails next_to_clean by one.
    assert_eq!(rdt, (u32::from(h.rx.next_to_clean()) + count - 1) % count);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No frame is lost or duplicated beyond the drops that are counted, and order holds.
    #[test]
    fn no_loss_no_duplication(count in ring_size(), bsize in buffer_size(), ops in ops()) {
        let mut h = Harness::new(count, bsize);
        let mut in_flight = VecDeque::new();
        let mut seq = 0u32;
        let (mut undersize, mut oversize, mut missed) = (0u64, 0u64, 0u32);
        for op in ops {
            match op {
                Op::Receive(len) => {
                    let len = len.max(4) * bsize / 512 + 4; // scale to reach past the buffer
                    let f = frame(seq, len);
                    match h.send(&f) {
                        Ok(r) => {
                            prop_assert!(r.index < count);
                            in_flight.push_back(seq);
                        }
                        Err(RxDrop::Undersize { .. }) => {
                            prop_assert!(len < 60);
                            undersize += 1;
                        }
                        Err(RxDrop::Oversize { .. }) => {
                            prop_assert!(len > bsize);
                            oversize += 1;
                        }
                        Err(RxDrop::NoDescriptor { .. }) => {
                            // Full means exactly count - 1 frames are waiting for the driver.
                            prop_assert_eq!(in_flight.len(), usize::from(count) - 1);
                            missed += 1;
                        }
                        Err(e) => prop_assert!(false, "unexpected drop {:?}", e),
                    }
                    seq += 1;
                }
                Op::Poll(budget) => {
                    let before = h.delivered.len();
                    let r = h.poll(budget);
                    prop_assert!(r.cleaned <= budget);
                    prop_assert_eq!(r.dropped, 0);
                    prop_assert_eq!(h.delivered.len() - before, r.delivered);
                    for f in &h.delivered[before..] {
                        let expected = in_flight.pop_front();
                        prop_assert_eq!(Some(seq_of(f)), expected);
                    }
                }
                Op::ReadAhead => {
                    let (rdh, rdt) = (h.regs.peek(Register::RDH), h.regs.peek(Register::RDT));
                    h.dev.read_ahead(&h.regs, &h.ring, &h.dma);
                    // Idle work changes no register (and, checked at the end, no frame).
                    prop_assert_eq!((h.regs.peek(Register::RDH), h.regs.peek(Register::RDT)), (rdh, rdt));
                }
            }
            check_indices(&h);
        }
        // Drain: whatever the device accepted reaches the driver exactly once.
        let before = h.delivered.len();
        while h.poll(usize::MAX).cleaned > 0 {}
        prop_assert_eq!(h.delivered.len() - before, in_flight.len());
        for f in &h.delivered[before..] {
            prop_assert_eq!(Some(seq_of(f)), in_flight.pop_front());
        }
        prop_assert!(in_flight.is_empty());
        let delivered = h.delivered.len() as u64;
        prop_assert_eq!(delivered + undersize + oversize + u64::from(missed), u64::from(seq));
        prop_assert_eq!(h.regs.peek(Register::MPC), missed);
        prop_assert_eq!(h.regs.peek(Register::GPRC) as u64, delivered);
        prop_assert_eq!(h.dev.drops().no_descriptor, u64::from(missed));
        prop_assert_eq!(h.rx.counters().delivered, delivered);
        // Delivered sequence numbers are strictly increasing: in order, no duplicates.
        prop_assert!(h.delivered.windows(2).all(|w| seq_of(&w[0]) < seq_of(&w[1])));
        for f in &h.delivered {
            prop_assert_eq!(f, &frame(seq_of(f), f.len()));
        }
    }

    /// A peer corrupting completions loses exactly the corrupted frames, each counted once,
    /// and everything else still arrives in order.
    #[test]
    fn corruption_is_counted_and_contained(
        count in ring_size(),
        plan in proptest::collection::vec((0u8..6, 0usize..12), 1..200),
    ) {
        let mut h = Harness::new(count, 512);
        let mut expected = Vec::new();
        let mut corrupted = 0u64;
        for (seq, (kind, budget)) in plan.into_iter().enumerate() {
            let seq = seq as u32;
            let Ok(r) = h.send(&frame(seq, 60 + seq as usize % 400)) else {
                // Ring full: the driver catches up.
                h.poll(usize::MAX);
                continue;
            };
            let mut d = h.ring.load(r.index);
            match kind {
                0 => d.length = 0,
                1 => d.length = 513 + seq as u16,
                2 => d.status = RxStatus::DD,
                3 => d.errors = RxErrors::from_bits_retain(1 << (seq % 8)),
                4 => d.buffer_addr ^= 1 << (seq % 64),
                _ => {}
            }
            if kind < 5 {
                h.ring.set_words(r.index, d.to_words());
                corrupted += 1;
            } else {
                expected.push(seq);
            }
            h.poll(budget);
            check_indices(&h);
        }
        while h.poll(usize::MAX).cleaned > 0 {}
        let got: Vec<u32> = h.delivered.iter().map(|f| seq_of(f)).collect();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(h.rx.counters().dropped(), corrupted);
        for i in 0..count {
            prop_assert_eq!(h.ring.load(i), RxDescriptor::with_buffer(h.rx_buffer(i)));
        }
    }
}

impl<D: DescriptorRing> Harness<D> {
    fn rx_buffer(&self, i: u16) -> u64 {
        use crate::driver::BufferAddrs;
        self.rx.buffers().buffer_addr(i)
    }
}
