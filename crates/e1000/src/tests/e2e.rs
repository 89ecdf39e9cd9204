use alloc::vec::Vec;

use super::{Harness, frame, seq_of};
use crate::regs::{Interrupt, Register};
use crate::ring::DescriptorRing;
use crate::testing::{ByteRing, MemRing};

/// Sends `n` frames of varying length, letting the driver clean in bursts as its interrupt
/// fires, and checks they all arrive intact and in order.
fn stream<D: DescriptorRing>(mut h: Harness<D>, n: u32, burst: u32, buffer_size: usize) {
    let mut interrupts = 0;
    for seq in 0..n {
        let len = 60 + (seq as usize * 37) % (buffer_size - 59);
        let r = h.send(&frame(seq, len)).expect("the driver keeps up");
        if r.raise_interrupt {
            interrupts += 1;
        }
        if seq % burst == burst - 1 {
            // The interrupt handler: acknowledge, then clean.
            let causes = h.rx.ack(&h.regs);
            assert_ne!(causes & Interrupt::RXT0.bits(), 0);
            h.poll(64);
        }
    }
    while h.poll(64).cleaned > 0 {}
    assert_eq!(h.delivered.len(), n as usize);
    for (seq, f) in h.delivered.iter().enumerate() {
        let seq = seq as u32;
        assert_eq!(seq_of(f), seq);
        assert_eq!(
            *f,
            frame(seq, 60 + (seq as usize * 37) % (buffer_size - 59))
        );
    }
    assert_eq!(interrupts, n, "every receive raised (RXT0 unmasked)");
    assert_eq!(h.rx.counters().delivered, u64::from(n));
    assert_eq!(h.rx.counters().dropped(), 0);
    assert_eq!(h.dev.drops().total(), 0);
    assert_eq!(h.regs.peek(Register::GPRC), n);
    let count = u32::from(h.ring.len());
    assert_eq!(h.regs.peek(Register::RDH), n % count);
    assert_eq!(h.regs.peek(Register::RDT), (n + count - 1) % count);
}

#[test]
fn frames_arrive_intact_and_in_order_across_many_wraps() {
    // 1000 frames through an 8-slot ring: 125 laps.
    stream(Harness::new(8, 2048), 1000, 5, 2048);
    stream(Harness::new(64, 512), 1000, 63, 512);
    stream(Harness::new(16, 16384), 200, 1, 16384);
}

#[test]
fn byte_layout_ring_behaves_the_same() {
    stream(Harness::with_ring(ByteRing::new(8), 1024), 500, 7, 1024);
}

#[test]
fn driver_and_device_agree_on_ring_positions() {
    let mut h = Harness::with_ring(MemRing::new(8), 256);
    let mut next_index = 0u16;
    for seq in 0..50u32 {
        let r = h.send(&frame(seq, 64)).expect("room");
        assert_eq!(r.index, next_index);
        next_index = (next_index + 1) % 8;
        let p = h.poll(1);
        assert_eq!(p.delivered, 1);
        assert_eq!(h.rx.next_to_clean(), next_index);
    }
    let seqs: Vec<u32> = h.delivered.iter().map(|f| seq_of(f)).collect();
    assert_eq!(seqs, (0..50).collect::<Vec<_>>());
}
