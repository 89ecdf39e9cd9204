//! A sender against the e1000 crate's driver ring over this crate's
//! backends, on the host: frames placed and stamped, the signal raised
//! once per posted edge, drops and fault injection counted.

use core::cell::Cell;
use core::sync::atomic::{AtomicU64, Ordering};
use std::vec;
use std::vec::Vec;

use mint_abi::debug_nic::DropReason;
use mint_e1000::Register;
use mint_traffic::{Endpoints, FrameTemplate, PacketKind};

use super::backend::WordDma;
use super::host::HostNic;
use super::*;

const SLOTS: u16 = 8;
const BUFFER: usize = 2048;
const RING_PHYS: u64 = 0x1000;
const DMA_PHYS: u64 = 0x10_0000;

struct Counting<'a>(&'a Cell<u32>);

impl Signal for Counting<'_> {
    fn raise(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A clock that advances 10 ticks per reading.
struct Steps(Cell<u64>);

impl Clock for &Steps {
    fn now(&self) -> u64 {
        self.0.set(self.0.get() + 10);
        self.0.get()
    }
    fn hz(&self) -> u64 {
        1_000_000_000
    }
}

/// The debug NIC's memory on the host: `SLOTS` descriptors of `BUFFER`
/// bytes each.
fn shared() -> HostNic {
    HostNic::new(SLOTS, usize::from(SLOTS) * BUFFER, DMA_PHYS)
}

fn template(size: u32) -> FrameTemplate {
    FrameTemplate::new(PacketKind::Udp, size, &Endpoints::default(), 7).expect("template")
}

#[test]
fn frames_land_in_the_drivers_buffers_and_the_signal_follows_the_posted_flag() {
    let s = shared();
    let regs = s.registers();
    let ring = s.ring();
    let dma = s.dma();
    let mut rx = s.driver_ring(RING_PHYS, BUFFER).expect("ring");
    let raised = Cell::new(0);
    let clock = Steps(Cell::new(0));
    let mut t = template(1514);
    let mut sender = Sender::new(
        Device {
            regs: &regs,
            ring: &ring,
            dma: &dma,
        },
        s.support_lines(),
        Counting(&raised),
        &clock,
        &mut t,
        5,
        Faults::default(),
    );
    let first = sender.send(0);
    assert!(first.placed);
    assert!(first.ticks > 0 && first.signal_ticks > 0, "{first:?}");
    assert_eq!(raised.get(), 1);
    assert_eq!(s.posted.0.load(Ordering::Relaxed), 1);
    // Still posted: the next frame raises nothing.
    let second = sender.send(1);
    assert_eq!((second.signal_ticks, raised.get()), (0, 1));
    // The target's handler clears the flag, then cleans.
    s.posted.0.store(0, Ordering::Release);
    let mut got = Vec::new();
    let mut scratch = vec![0u8; BUFFER];
    rx.poll(&regs, &ring, &dma, &mut scratch, usize::MAX, |f| {
        got.push(f.to_vec())
    })
    .expect("poll");
    assert_eq!(got.len(), 2);
    let mut stamps = Vec::new();
    for (seq, f) in got.iter().enumerate() {
        assert_eq!(f.len(), 1514, "frame {seq}");
        let payload = mint_traffic::parse_frame(PacketKind::Udp, f).expect("a UDP frame");
        let info = mint_traffic::check(payload).expect("intact");
        assert_eq!((info.seq, info.run), (seq as u32, 5));
        stamps.push(info.inject_tsc);
    }
    // Each frame carries its send's first clock reading.
    assert_eq!(stamps, [first.inject_tsc, second.inject_tsc]);
    // The signal's stamp: the reading after the device took frame 0.
    assert_eq!(
        s.signal_stamp.0.load(Ordering::Relaxed),
        first.inject_tsc + 10
    );
    // The counters are the sender's own until published.
    assert_eq!(s.run.0.sent.load(Ordering::Relaxed), 0);
    assert_eq!(sender.counters().sent, 2);
    sender.publish();
    assert_eq!(s.run.0.sent.load(Ordering::Relaxed), 2);
    assert_eq!(s.run.0.ipis_sent.load(Ordering::Relaxed), 1);
    sender.send(2);
    assert_eq!(raised.get(), 2, "a new edge after the flag was cleared");
}

#[test]
fn a_full_ring_counts_ring_full_and_faults_are_injected() {
    let s = shared();
    let regs = s.registers();
    let ring = s.ring();
    let dma = s.dma();
    let _rx = s.driver_ring(RING_PHYS, BUFFER).expect("ring");
    let raised = Cell::new(0);
    let clock = Steps(Cell::new(0));
    let mut t = template(256);
    let faults = Faults {
        corrupt_every: 0,
        forget_ipi_every: 1,
        stale_every: 0,
    };
    let mut sender = Sender::new(
        Device {
            regs: &regs,
            ring: &ring,
            dma: &dma,
        },
        s.support_lines(),
        Counting(&raised),
        &clock,
        &mut t,
        5,
        faults,
    );
    // The ring holds SLOTS - 1 frames; nobody cleans.
    let placed = (0..20).filter(|&seq| sender.send(seq).placed).count();
    assert_eq!(placed, usize::from(SLOTS) - 1);
    sender.publish();
    assert_eq!(
        s.run.0.drop_count(DropReason::RingFull),
        20 - u64::from(SLOTS - 1)
    );
    assert_eq!(s.run.0.sent.load(Ordering::Relaxed), 20);
    // Every signal forgotten: the flag is set, nothing raised.
    assert_eq!(raised.get(), 0);
    assert_eq!(s.run.0.ipis_forgotten.load(Ordering::Relaxed), 1);
    assert_eq!(regs.peek(Register::RDH), u32::from(SLOTS) - 1);
    assert_eq!(sender.model().received(), u64::from(SLOTS) - 1);
}

#[test]
fn word_dma_moves_unaligned_bytes_and_refuses_outside() {
    let words: Vec<AtomicU64> = (0..4).map(|_| AtomicU64::new(0)).collect();
    let dma = WordDma::new(0x100, &words);
    assert_eq!(dma.len(), 32);
    let data: Vec<u8> = (1..=21).collect();
    dma.write(0x103, &data).expect("inside");
    let mut back = [0u8; 21];
    dma.read(0x103, &mut back).expect("inside");
    assert_eq!(&back[..], &data[..]);
    let mut all = [0u8; 32];
    dma.read(0x100, &mut all).expect("inside");
    assert_eq!(&all[..3], &[0, 0, 0]);
    assert_eq!(&all[24..], &[0; 8]);
    assert!(dma.write(0x11f, &[1, 2]).is_err());
    assert!(dma.read(0xff, &mut [0]).is_err());
    assert!(WordDma::new(0x101, &words).read(0x101, &mut [0]).is_err());
}

#[test]
fn stale_and_corrupted_frames_are_injected_every_nth() {
    let s = shared();
    let regs = s.registers();
    let ring = s.ring();
    let dma = s.dma();
    let mut rx = s.driver_ring(RING_PHYS, BUFFER).expect("ring");
    let raised = Cell::new(0);
    let clock = Steps(Cell::new(0));
    let mut t = template(128);
    let faults = Faults {
        corrupt_every: 3,
        forget_ipi_every: 0,
        stale_every: 2,
    };
    let mut sender = Sender::new(
        Device {
            regs: &regs,
            ring: &ring,
            dma: &dma,
        },
        s.support_lines(),
        Counting(&raised),
        &clock,
        &mut t,
        9,
        faults,
    );
    for seq in 0..6 {
        assert!(sender.send(seq).placed, "frame {seq}");
    }
    let mut runs = Vec::new();
    let mut scratch = vec![0u8; BUFFER];
    rx.poll(&regs, &ring, &dma, &mut scratch, usize::MAX, |f| {
        let payload = mint_traffic::parse_frame(PacketKind::Udp, f).expect("a UDP frame");
        let info = mint_traffic::check(payload).expect("intact");
        runs.push((info.seq, info.run));
    })
    .expect("poll");
    // Frames 3 and 6 (seq 2 and 5) had corrupted write-backs: refused by
    // the driver. Frames 2, 4, 6 (seq 1, 3, 5) carry the previous run.
    assert_eq!(runs, [(0, 9), (1, 8), (3, 8), (4, 9)]);
    assert_eq!(rx.counters().refused(), 2);
}

#[test]
fn itr_defers_an_interrupt_inside_its_window_and_the_timer_raises_it_after() {
    let s = shared();
    let regs = s.registers();
    let ring = s.ring();
    let dma = s.dma();
    let _rx = s.driver_ring(RING_PHYS, BUFFER).expect("ring");
    // 4 units of 256 ns: the clock moves 10 ns a reading.
    mint_e1000::RegisterAccess::write(&regs, Register::ITR, 4);
    let raised = Cell::new(0);
    let clock = Steps(Cell::new(0));
    let mut t = template(1514);
    let mut sender = Sender::new(
        Device {
            regs: &regs,
            ring: &ring,
            dma: &dma,
        },
        s.support_lines(),
        Counting(&raised),
        &clock,
        &mut t,
        5,
        Faults::default(),
    );
    assert!(sender.send(0).signal_ticks > 0);
    s.posted.0.store(0, Ordering::Release);
    // The handler took the first; the second frame comes inside the window.
    assert_eq!(sender.send(1).signal_ticks, 0);
    assert_eq!(raised.get(), 1);
    assert!(sender.deferred());
    assert_eq!(sender.throttled(), 1);
    // A third inside the window joins the deferred one.
    sender.send(2);
    assert_eq!((raised.get(), sender.throttled()), (1, 1));
    let raised_at = clock.0.get();
    let mut ticks = 0;
    while sender.deferred() {
        sender.tick();
        ticks += 1;
        assert!(
            ticks < 1_000,
            "the timer never raised the deferred interrupt"
        );
    }
    assert_eq!(raised.get(), 2);
    assert!(
        clock.0.get() - raised_at >= 1024 - 400,
        "raised only once ITR's window passed"
    );
    sender.publish();
    assert_eq!(s.run.0.ipis_sent.load(Ordering::Relaxed), 2);
}

#[test]
fn the_read_ahead_runs_once_per_frame_in_idle_time_or_in_the_next_send_or_by_the_deadline() {
    let s = shared();
    let (regs, ring, dma) = (s.registers(), s.ring(), s.dma());
    let _rx = s.driver_ring(RING_PHYS, BUFFER).expect("ring");
    let clock = Steps(Cell::new(0));
    let raised = Cell::new(0);
    let mut t = template(1514);
    let mut sender = Sender::new(
        Device {
            regs: &regs,
            ring: &ring,
            dma: &dma,
        },
        s.support_lines(),
        Counting(&raised),
        &clock,
        &mut t,
        5,
        Faults::default(),
    );
    // Nothing placed yet: nothing to read ahead.
    sender.tick();
    assert_eq!(*sender.read_aheads(), ReadAheads::default());
    let before = [Register::RDH, Register::RDT, Register::ICR].map(|r| regs.peek(r));
    let first = sender.send(0);
    assert!(first.placed);
    // Idle time: once, timed (two readings of a clock that steps by 10),
    // then nothing more for the same frame; no register changes.
    let after = [Register::RDH, Register::RDT, Register::ICR].map(|r| regs.peek(r));
    sender.tick();
    sender.tick();
    assert_eq!(
        (sender.read_aheads().idle, sender.read_aheads().idle_ticks),
        (1, 10)
    );
    assert_eq!(
        [Register::RDH, Register::RDT, Register::ICR].map(|r| regs.peek(r)),
        after
    );
    assert_ne!(before, after, "the send moved RDH and raised a cause");
    // Back to back (no idle work between): the next send runs it, in its
    // own ticks, not among the idle ones.
    sender.send(1);
    assert!(sender.model().reads_ahead());
    sender.send(2);
    assert_eq!(
        *sender.read_aheads(),
        ReadAheads {
            idle: 1,
            idle_ticks: 10,
            in_sends: 1
        }
    );
    // Frame 2's is left for the idle work, once.
    sender.tick();
    sender.tick();
    assert_eq!(
        (sender.read_aheads().idle, sender.read_aheads().idle_ticks),
        (2, 20)
    );
    assert!(!sender.model().reads_ahead());

    // A caller that says when the next send is due (the clock: 1 GHz,
    // a tick a nanosecond, each reading 10): far from it, not yet.
    assert!(sender.send(3).placed);
    let next = clock.0.get() + 10 * READ_AHEAD_LEAD_NS;
    sender.tick_before(next);
    assert_eq!(sender.read_aheads().idle, 2);
    assert!(sender.model().reads_ahead());
    // Within the lead: once.
    clock.0.set(next - READ_AHEAD_LEAD_NS);
    sender.tick_before(next);
    sender.tick_before(next);
    assert_eq!(sender.read_aheads().idle, 3);
    assert!(!sender.model().reads_ahead());
    // A deadline already past (a late send): at once.
    assert!(sender.send(4).placed);
    sender.tick_before(0);
    assert_eq!(sender.read_aheads().idle, 4);
}
