use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use super::{BUF_BASE, CountingRegs, Harness, RING_PHYS, RecordingDma, frame, seq_of};
use crate::desc::{RxDescriptor, RxErrors, RxStatus};
use crate::regs::{Interrupt, Rctl, Register, RegisterAccess, RegisterFile, rctl_buffer_size};
use crate::ring::DescriptorRing;
use crate::testing::{MemDma, MemRing};
use crate::{Contiguous, InitError, PollError, RxRing};

#[test]
fn init_programs_ring_and_registers() {
    let h = Harness::new(64, 2048);
    assert_eq!(h.reg(Register::RDBAL), RING_PHYS as u32);
    assert_eq!(h.reg(Register::RDBAH), 0);
    assert_eq!(h.reg(Register::RDLEN), 64 * 16);
    assert_eq!(h.reg(Register::RDH), 0);
    assert_eq!(h.reg(Register::RDT), 63);
    let rctl = Rctl::from_bits_retain(h.reg(Register::RCTL));
    assert!(rctl.contains(Rctl::EN | Rctl::BAM | Rctl::SECRC | Rctl::LPE));
    assert!(!rctl.intersects(Rctl::BSEX | Rctl::BSIZE_MASK | Rctl::UPE | Rctl::MPE));
    assert_eq!(rctl_buffer_size(rctl.bits()), Some(2048));
    assert_eq!(
        h.reg(Register::IMS),
        (Interrupt::RXT0 | Interrupt::RXO | Interrupt::RXDMT0 | Interrupt::LSC).bits()
    );
    for i in 0..64u16 {
        let d = h.ring.load(i);
        assert_eq!(
            d,
            RxDescriptor::with_buffer(BUF_BASE + u64::from(i) * 2048),
            "desc {i}"
        );
    }
    assert_eq!(h.rx.count(), 64);
    assert_eq!(h.rx.next_to_clean(), 0);
    assert_eq!(h.rx.buffer_size(), 2048);
    assert_eq!(*h.rx.counters(), Default::default());
}

#[test]
fn init_with_extended_buffer_size_and_high_ring_address() {
    let regs = RegisterFile::new();
    let ring = MemRing::new(8);
    let phys = 0x0000_0012_3456_7890;
    let rx = RxRing::init(
        &regs,
        &ring,
        phys,
        |i: u16| 0x4000_0000 + u64::from(i) * 0x4000,
        16384,
    )
    .expect("valid");
    assert_eq!(regs.peek(Register::RDBAL), 0x3456_7890);
    assert_eq!(regs.peek(Register::RDBAH), 0x12);
    let rctl = regs.peek(Register::RCTL);
    assert_ne!(rctl & Rctl::BSEX.bits(), 0);
    assert_eq!(rctl_buffer_size(rctl), Some(16384));
    assert_eq!(ring.load(7).buffer_addr, 0x4000_0000 + 7 * 0x4000);
    assert_eq!(rx.buffers().buffer_addr(7), 0x4000_0000 + 7 * 0x4000);
}

use crate::driver::BufferAddrs;

#[test]
fn init_overwrites_stale_state() {
    let regs = RegisterFile::new();
    let ring = MemRing::new(8);
    // Leftovers from a previous incarnation: stale completions, causes and mask bits.
    for i in 0..8 {
        ring.set_words(i, [0xbad, u64::MAX]);
    }
    regs.write(Register::ICS, Interrupt::RXT0.bits());
    regs.write(Register::IMS, Interrupt::TXDW.bits());
    RxRing::init(
        &regs,
        &ring,
        RING_PHYS,
        Contiguous {
            base: BUF_BASE,
            stride: 256,
        },
        256,
    )
    .expect("valid");
    for i in 0..8u16 {
        assert_eq!(ring.words(i), [BUF_BASE + u64::from(i) * 256, 0]);
    }
    assert_eq!(regs.peek(Register::ICR), 0, "stale causes discarded");
    assert_eq!(
        regs.peek(Register::IMS),
        RxRing::<Contiguous>::INTERRUPTS.bits()
    );
}

#[test]
fn init_rejects_bad_configurations() {
    let regs = RegisterFile::new();
    let bufs = Contiguous {
        base: BUF_BASE,
        stride: 2048,
    };
    for count in [0u16, 4, 12, 100, 4104, 8192] {
        let ring = MemRing::new(count);
        assert_eq!(
            RxRing::init(&regs, &ring, RING_PHYS, bufs, 2048).map(|_| ()),
            Err(InitError::RingSize { count }),
        );
    }
    let ring = MemRing::new(4096);
    assert!(RxRing::init(&regs, &ring, RING_PHYS, bufs, 2048).is_ok());
    let ring = MemRing::new(8);
    for size in [0, 100, 1500, 1518, 3000, 32768] {
        assert_eq!(
            RxRing::init(&regs, &ring, RING_PHYS, bufs, size).map(|_| ()),
            Err(InitError::BufferSize { size })
        );
    }
    assert_eq!(
        RxRing::init(&regs, &ring, RING_PHYS + 8, bufs, 2048).map(|_| ()),
        Err(InitError::RingAlignment {
            addr: RING_PHYS + 8
        })
    );
}

#[test]
fn ack_reads_and_clears_icr() {
    let h = Harness::new(8, 2048);
    h.regs
        .write(Register::ICS, (Interrupt::RXT0 | Interrupt::LSC).bits());
    assert_eq!(h.rx.ack(&h.regs), (Interrupt::RXT0 | Interrupt::LSC).bits());
    assert_eq!(h.rx.ack(&h.regs), 0);
}

#[test]
fn disable_masks_and_stops_receiver() {
    let mut h = Harness::new(8, 2048);
    h.rx.disable(&h.regs);
    assert_eq!(h.reg(Register::IMS), 0);
    assert_eq!(h.reg(Register::RCTL), 0);
    assert_eq!(h.send(&frame(0, 64)), Err(crate::RxDrop::NotEnabled));
}

#[test]
fn poll_rejects_short_scratch() {
    let mut h = Harness::new(8, 2048);
    let mut small = [0u8; 2047];
    let r = h.rx.poll(&h.regs, &h.ring, &h.dma, &mut small, 8, |_| {});
    assert_eq!(
        r,
        Err(PollError::ScratchTooSmall {
            needed: 2048,
            got: 2047
        })
    );
}

#[test]
fn poll_on_idle_ring_does_nothing() {
    let mut h = Harness::new(8, 2048);
    let counting = CountingRegs {
        inner: &h.regs,
        rdt_writes: Cell::new(0),
    };
    let mut scratch = vec![0; 2048];
    let r =
        h.rx.poll(&counting, &h.ring, &h.dma, &mut scratch, 64, |_| {
            panic!("no frame")
        })
        .expect("ok");
    assert_eq!(r, crate::PollResult::default());
    assert_eq!(counting.rdt_writes.get(), 0);
    assert_eq!(h.reg(Register::RDT), 7);
}

#[test]
fn poll_writes_rdt_once_per_batch_and_respects_budget() {
    let mut h = Harness::new(16, 2048);
    for seq in 0..10 {
        h.send(&frame(seq, 100)).expect("room");
    }
    let counting = CountingRegs {
        inner: &h.regs,
        rdt_writes: Cell::new(0),
    };
    let mut scratch = vec![0; 2048];
    let mut seen = Vec::new();
    let r =
        h.rx.poll(&counting, &h.ring, &h.dma, &mut scratch, 4, |f| {
            seen.push(seq_of(f))
        })
        .expect("ok");
    assert_eq!((r.delivered, r.dropped, r.cleaned, r.more), (4, 0, 4, true));
    assert_eq!(counting.rdt_writes.get(), 1);
    assert_eq!(h.reg(Register::RDT), 3, "last cleaned slot");
    assert_eq!(h.rx.next_to_clean(), 4);
    let r =
        h.rx.poll(&counting, &h.ring, &h.dma, &mut scratch, 64, |f| {
            seen.push(seq_of(f))
        })
        .expect("ok");
    assert_eq!((r.delivered, r.cleaned, r.more), (6, 6, false));
    assert_eq!(counting.rdt_writes.get(), 2);
    assert_eq!(h.reg(Register::RDT), 9);
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert_eq!(h.rx.counters().delivered, 10);
    assert_eq!(h.rx.counters().bytes, 1000);
}

#[test]
fn zero_budget_cleans_nothing() {
    let mut h = Harness::new(8, 2048);
    h.send(&frame(0, 64)).expect("room");
    let r = h.poll(0);
    assert_eq!(r, crate::PollResult::default());
    assert_eq!(h.poll(1).delivered, 1);
}

/// One kind of peer misbehaviour: how to corrupt a completed descriptor, and where it is counted.
struct Corruption {
    name: &'static str,
    apply: fn(&mut RxDescriptor),
    counter: fn(&crate::RxCounters) -> u64,
}

const CORRUPTIONS: &[Corruption] = &[
    Corruption {
        name: "length 0",
        apply: |d| d.length = 0,
        counter: |c| c.bad_length,
    },
    Corruption {
        name: "length > buffer",
        apply: |d| d.length = 2049,
        counter: |c| c.bad_length,
    },
    Corruption {
        name: "length u16::MAX",
        apply: |d| d.length = u16::MAX,
        counter: |c| c.bad_length,
    },
    Corruption {
        name: "no EOP",
        apply: |d| d.status = RxStatus::DD,
        counter: |c| c.no_eop,
    },
    Corruption {
        name: "CRC error",
        apply: |d| d.errors = RxErrors::CE,
        counter: |c| c.rx_errors,
    },
    Corruption {
        name: "all errors",
        apply: |d| d.errors = RxErrors::from_bits_retain(0xff),
        counter: |c| c.rx_errors,
    },
    Corruption {
        name: "buffer address moved",
        apply: |d| d.buffer_addr = 0xdead_beef_0000,
        counter: |c| c.bad_buffer_addr,
    },
    Corruption {
        name: "buffer address of another slot",
        apply: |d| d.buffer_addr += 2048,
        counter: |c| c.bad_buffer_addr,
    },
];

#[test]
fn every_corrupted_descriptor_is_counted_and_survived() {
    for c in CORRUPTIONS {
        let mut h = Harness::new(8, 2048);
        // Three laps of the ring, corrupting every third completion.
        let mut expected = Vec::new();
        let mut corrupted = 0;
        for seq in 0..24u32 {
            let r = h.send(&frame(seq, 60 + seq as usize)).expect("room");
            if seq % 3 == 1 {
                let [w0, w1] = h.ring.words(r.index);
                let mut d = RxDescriptor::from_words([w0, w1]);
                (c.apply)(&mut d);
                h.ring.set_words(r.index, d.to_words());
                corrupted += 1;
            } else {
                expected.push(seq);
            }
            if seq % 4 == 3 {
                h.poll(64);
            }
        }
        h.poll(64);
        let got: Vec<u32> = h.delivered.iter().map(|f| seq_of(f)).collect();
        assert_eq!(got, expected, "{}", c.name);
        for (f, &seq) in h.delivered.iter().zip(&expected) {
            assert_eq!(*f, frame(seq, 60 + seq as usize), "{}", c.name);
        }
        let counters = *h.rx.counters();
        assert_eq!(
            (c.counter)(&counters),
            corrupted,
            "{}: {counters:?}",
            c.name
        );
        assert_eq!(
            counters.dropped(),
            corrupted,
            "{}: only one counter",
            c.name
        );
        // Every descriptor was re-armed with the driver's own buffer.
        for i in 0..8u16 {
            assert_eq!(
                h.ring.load(i),
                RxDescriptor::with_buffer(BUF_BASE + u64::from(i) * 2048)
            );
        }
        assert_eq!(h.rx.next_to_clean(), 0);
        assert_eq!(h.reg(Register::RDT), 7);
    }
}

#[test]
fn peer_buffer_address_is_never_followed() {
    let mut h = Harness::new(8, 2048);
    let r = h.send(&frame(1, 64)).expect("room");
    // The peer points the completion at another buffer that holds a valid-looking frame.
    let other = BUF_BASE + 5 * 2048;
    h.dma.write_frame(other, &frame(99, 64));
    let mut d = h.ring.load(r.index);
    d.buffer_addr = other;
    h.ring.set_words(r.index, d.to_words());
    let rec = RecordingDma {
        inner: &h.dma,
        reads: RefCell::new(Vec::new()),
    };
    let mut scratch = vec![0; 2048];
    let mut n = 0;
    let res =
        h.rx.poll(&h.regs, &h.ring, &rec, &mut scratch, 8, |_| n += 1)
            .expect("ok");
    assert_eq!((res.delivered, res.dropped), (0, 1));
    assert_eq!(n, 0);
    assert!(rec.reads.borrow().is_empty(), "no DMA read at all");
    assert_eq!(h.ring.load(0).buffer_addr, BUF_BASE);
    assert_eq!(h.rx.counters().bad_buffer_addr, 1);
}

#[test]
fn unreadable_own_buffer_counts_dma_error_and_continues() {
    // Buffer 2 lies outside the DMA memory (a kernel mapping bug, or memory gone).
    let regs = RegisterFile::new();
    let ring = MemRing::new(8);
    let dma = MemDma::new(BUF_BASE, 8 * 256);
    let bufs = |i: u16| {
        if i == 2 {
            0x9999_0000
        } else {
            BUF_BASE + u64::from(i) * 256
        }
    };
    let mut rx = RxRing::init(&regs, &ring, RING_PHYS, bufs, 256).expect("valid");
    // Play the device by hand for slot 2 (the model itself would hit the DMA fault first).
    for i in 0..4u16 {
        if i != 2 {
            dma.write_frame(BUF_BASE + u64::from(i) * 256, &frame(u32::from(i), 64));
        }
        let mut d = RxDescriptor::with_buffer(bufs(i));
        d.length = 64;
        d.status = RxStatus::DD | RxStatus::EOP;
        ring.store_writeback(i, &d);
    }
    let mut scratch = [0u8; 256];
    let mut seen = Vec::new();
    let r = rx
        .poll(&regs, &ring, &dma, &mut scratch, 8, |f| {
            seen.push(seq_of(f))
        })
        .expect("ok");
    assert_eq!((r.delivered, r.dropped), (3, 1));
    assert_eq!(seen, [0, 1, 3]);
    assert_eq!(rx.counters().dma_errors, 1);
}

#[test]
fn hostile_peer_setting_dd_everywhere_cannot_stall_poll() {
    let mut h = Harness::new(8, 2048);
    for i in 0..8u16 {
        let mut d = h.ring.load(i);
        d.status = RxStatus::DD | RxStatus::EOP;
        d.length = 64;
        h.ring.set_words(i, d.to_words());
    }
    let r = h.poll(usize::MAX);
    // Only the count - 1 descriptors the device can own are cleaned in one poll.
    assert_eq!(r.cleaned, 7);
    assert!(r.more);
    assert_eq!(h.rx.next_to_clean(), 7);
    assert_eq!(h.reg(Register::RDT), 6);
}

impl MemDma {
    fn write_frame(&self, addr: u64, f: &[u8]) {
        crate::ring::DmaMemory::write(self, addr, f).expect("in range");
    }
}

/// A sink with room for `room` frames, keeping what it got.
struct LimitedSink {
    room: usize,
    buf: Vec<u8>,
    got: Vec<Vec<u8>>,
}

impl crate::RxSink for LimitedSink {
    fn buffer(&mut self, len: usize) -> Option<&mut [u8]> {
        if self.got.len() == self.room {
            return None;
        }
        self.buf.resize(len, 0);
        Some(&mut self.buf)
    }

    fn commit(&mut self, len: usize) {
        self.got.push(self.buf[..len].to_vec());
    }
}

#[test]
fn poll_into_copies_once_into_the_sink_and_counts_when_it_is_full() {
    let mut h = Harness::new(16, 2048);
    let frames: Vec<Vec<u8>> = (0..6).map(|i| frame(i, 100 + i as usize * 10)).collect();
    for f in &frames {
        h.send(f).expect("room");
    }
    let mut sink = LimitedSink {
        room: 4,
        buf: Vec::new(),
        got: Vec::new(),
    };
    let r = h.rx.poll_into(&h.regs, &h.ring, &h.dma, 16, &mut sink);
    assert_eq!((r.delivered, r.dropped, r.cleaned), (4, 2, 6));
    assert_eq!(sink.got, frames[..4].to_vec(), "frames intact and in order");
    let c = *h.rx.counters();
    assert_eq!(c.sink_full, 2);
    assert_eq!(c.refused(), 0, "a full sink is not the descriptor's fault");
    assert_eq!(c.dropped(), 2);
    // The descriptors went back to the device: the ring keeps working.
    assert_eq!(h.reg(Register::RDT), 5);
    sink.room = 10;
    let f = frame(42, 300);
    h.send(&f).expect("room");
    let r = h.rx.poll_into(&h.regs, &h.ring, &h.dma, 16, &mut sink);
    assert_eq!(r.delivered, 1);
    assert_eq!(sink.got.last(), Some(&f));
}

#[test]
fn adopt_continues_where_the_previous_instance_stopped() {
    let mut h = Harness::new(8, 2048);
    // The device completes three frames; the first instance cleans two of them.
    for seq in 0..3 {
        h.send(&frame(seq, 100)).expect("room");
    }
    h.poll(2);
    let got: Vec<u32> = h.delivered.iter().map(|f| seq_of(f)).collect();
    assert_eq!(got, [0, 1]);
    let bufs = Contiguous {
        base: BUF_BASE,
        stride: 2048,
    };
    // A second instance (another node) takes over from the registers alone.
    let mut next = RxRing::adopt(&h.regs, &h.ring, RING_PHYS, bufs, 2048).expect("adopt");
    assert_eq!(next.next_to_clean(), 2);
    assert_eq!(h.reg(Register::RDT), 1, "adopting writes nothing");
    let mut got = Vec::new();
    next.poll(
        &h.regs,
        &h.ring,
        &h.dma,
        &mut vec![0; 2048],
        usize::MAX,
        |f| got.push(seq_of(f)),
    )
    .expect("poll");
    assert_eq!(got, [2], "exactly the frame the first instance left");
}
#[test]
fn adopt_refuses_a_ring_the_device_does_not_run() {
    let h = Harness::new(8, 2048);
    let bufs = Contiguous {
        base: BUF_BASE,
        stride: 2048,
    };
    let other = MemRing::new(16);
    let err = RxRing::adopt(&h.regs, &other, RING_PHYS, bufs, 2048).unwrap_err();
    assert!(
        matches!(err, InitError::NotProgrammed { rdlen: 128, .. }),
        "{err:?}"
    );
    assert!(RxRing::adopt(&h.regs, &h.ring, RING_PHYS + 16, bufs, 2048).is_err());
    assert!(RxRing::adopt(&h.regs, &h.ring, RING_PHYS, bufs, 4096).is_err());
    h.regs.write(Register::RCTL, 0);
    let err = RxRing::adopt(&h.regs, &h.ring, RING_PHYS, bufs, 2048).unwrap_err();
    assert!(alloc::format!("{err}").contains("RCTL 0x0"), "{err}");
}
