use alloc::format;

use super::{BUF_BASE, Harness, frame};
use crate::desc::{RxDescriptor, RxErrors, RxStatus};
use crate::device::{MAX_STANDARD_FRAME, MIN_FRAME};
use crate::regs::{Interrupt, Rctl, Register, RegisterAccess, rctl_bsize_bits};
use crate::ring::{DescriptorRing, DmaError, DmaMemory};
use crate::{ConfigError, DropCounters, RxDrop};

#[test]
fn receive_writes_back_and_raises_rxt0() {
    let mut h = Harness::new(16, 2048);
    let f = frame(7, 200);
    let r = h.send(&f).expect("room");
    assert_eq!(r.index, 0);
    assert_eq!(r.length, 200);
    assert_eq!(r.causes, Interrupt::RXT0.bits());
    assert!(r.raise_interrupt);
    assert_eq!(
        h.ring.load(0),
        RxDescriptor {
            buffer_addr: BUF_BASE,
            length: 200,
            checksum: 0,
            status: RxStatus::DD | RxStatus::EOP,
            errors: RxErrors::empty(),
            special: 0,
        }
    );
    let mut buf = [0u8; 200];
    h.dma.read(BUF_BASE, &mut buf).expect("in range");
    assert_eq!(&buf[..], &f[..]);
    assert_eq!(h.reg(Register::RDH), 1);
    assert_eq!(h.reg(Register::RDT), 15, "device never writes RDT");
    assert_eq!(h.reg(Register::GPRC), 1);
    assert_eq!(h.reg(Register::MPC), 0);
    assert_eq!(h.rx.ack(&h.regs), Interrupt::RXT0.bits());
    assert_eq!((h.dev.received(), h.dev.bytes()), (1, 200));
}

#[test]
fn masked_causes_do_not_raise() {
    let mut h = Harness::new(16, 2048);
    h.regs.write(Register::IMC, Interrupt::RXT0.bits());
    let r = h.send(&frame(0, 64)).expect("room");
    assert!(!r.raise_interrupt);
    // The cause is still latched in ICR for a polling driver.
    assert_eq!(h.regs.peek(Register::ICR), Interrupt::RXT0.bits());
    h.regs.write(Register::IMC, u32::MAX);
    for seq in 1..15 {
        assert!(!h.send(&frame(seq, 64)).expect("room").raise_interrupt);
    }
    // Ring full: RXO is masked too.
    assert_eq!(
        h.send(&frame(99, 64)),
        Err(RxDrop::NoDescriptor {
            raise_interrupt: false
        })
    );
    h.regs.write(Register::IMS, Interrupt::RXT0.bits());
    h.poll(64);
    assert!(h.send(&frame(15, 64)).expect("room").raise_interrupt);
}

#[test]
fn ring_full_counts_missed_packets_then_recovers() {
    let mut h = Harness::new(8, 2048);
    // count - 1 descriptors fit; the last slot stays empty by the driver's design.
    for seq in 0..7 {
        h.send(&frame(seq, 64)).expect("room");
    }
    assert_eq!(h.reg(Register::RDH), 7);
    assert_eq!(h.reg(Register::RDT), 7);
    let _ = h.rx.ack(&h.regs);
    for n in 1..=3 {
        let e = h.send(&frame(100 + n, 64)).expect_err("full");
        assert_eq!(
            e,
            RxDrop::NoDescriptor {
                raise_interrupt: true
            }
        );
        assert!(e.raise_interrupt());
        assert_eq!(e.reason(), "no-descriptor");
        assert_eq!(h.reg(Register::MPC), n);
    }
    assert_eq!(h.rx.ack(&h.regs), Interrupt::RXO.bits());
    assert_eq!(h.dev.drops().no_descriptor, 3);
    assert_eq!(h.reg(Register::GPRC), 7);
    // The driver cleans; the device has room again.
    assert_eq!(h.poll(64).delivered, 7);
    assert_eq!(h.reg(Register::RDT), 6);
    for seq in 7..14 {
        h.send(&frame(seq, 64)).expect("room after poll");
    }
    assert!(h.send(&frame(200, 64)).is_err());
    assert_eq!(h.poll(64).delivered, 7);
    let seqs: alloc::vec::Vec<u32> = h.delivered.iter().map(|f| super::seq_of(f)).collect();
    assert_eq!(seqs, (0..14).collect::<alloc::vec::Vec<_>>());
    assert_eq!(h.reg(Register::MPC), 4);
}

#[test]
fn rxdmt0_follows_rdmts_threshold() {
    // (RDMTS field, expected number of successful receives before RXDMT0 first appears) for a
    // 32-descriptor ring, 31 of them owned by the device after init.
    let cases = [
        (Rctl::RDMTS_HALF, Some(31 - 16)),
        (Rctl::RDMTS_QUARTER, Some(31 - 8)),
        (Rctl::RDMTS_EIGHTH, Some(31 - 4)),
        (Rctl::RDMTS_MASK, None), // reserved: never
    ];
    for (rdmts, first) in cases {
        let mut h = Harness::new(32, 2048);
        let rctl = h.reg(Register::RCTL) & !Rctl::RDMTS_MASK.bits() | rdmts.bits();
        h.regs.write(Register::RCTL, rctl);
        let mut first_seen = None;
        for seq in 0..31u32 {
            let r = h.send(&frame(seq, 64)).expect("room");
            let low = r.causes & Interrupt::RXDMT0.bits() != 0;
            if low && first_seen.is_none() {
                first_seen = Some(seq + 1);
            }
            if first_seen.is_some() {
                assert!(low, "stays set below the threshold ({rdmts:?}, seq {seq})");
            }
        }
        assert_eq!(first_seen, first, "{rdmts:?}");
    }
}

#[test]
fn length_limits() {
    let mut h = Harness::new(8, 1024);
    assert_eq!(
        h.send(&frame(0, MIN_FRAME - 1)),
        Err(RxDrop::Undersize { len: 59 })
    );
    assert_eq!(h.send(&[]), Err(RxDrop::Undersize { len: 0 }));
    assert!(h.send(&frame(0, MIN_FRAME)).is_ok());
    assert!(h.send(&frame(1, 1024)).is_ok());
    assert_eq!(
        h.send(&frame(2, 1025)),
        Err(RxDrop::Oversize {
            len: 1025,
            max: 1024
        })
    );
    // Without LPE, long frames are dropped even when the buffer is big enough.
    let mut h = Harness::new(8, 4096);
    assert!(h.send(&frame(0, 4096)).is_ok());
    let rctl = h.reg(Register::RCTL) & !Rctl::LPE.bits();
    h.regs.write(Register::RCTL, rctl);
    assert!(h.send(&frame(1, MAX_STANDARD_FRAME)).is_ok());
    assert_eq!(
        h.send(&frame(2, MAX_STANDARD_FRAME + 1)),
        Err(RxDrop::Oversize {
            len: 1519,
            max: 1518
        })
    );
    assert_eq!(
        *h.dev.drops(),
        DropCounters {
            oversize: 1,
            ..Default::default()
        }
    );
}

#[test]
fn bad_configuration_is_dropped_not_followed() {
    let mut h = Harness::new(16, 2048);
    let good_rctl = h.reg(Register::RCTL);
    let bad = |h: &mut Harness| h.send(&frame(0, 64)).expect_err("bad config");

    // Reserved buffer size (BSEX with BSIZE 00).
    let rctl = good_rctl & !Rctl::BSIZE_MASK.bits() | Rctl::BSEX.bits();
    h.regs.write(Register::RCTL, rctl);
    assert_eq!(
        bad(&mut h),
        RxDrop::BadConfig(ConfigError::BufferSize { rctl })
    );
    h.regs.write(Register::RCTL, good_rctl);

    for rdlen in [0, 100, 16 * 16 + 16, 32 * 16, !127u32] {
        h.regs.write(Register::RDLEN, rdlen);
        assert_eq!(
            bad(&mut h),
            RxDrop::BadConfig(ConfigError::RingLength { rdlen }),
            "{rdlen}"
        );
    }
    // A smaller ring than the memory is allowed (the device view may cover more).
    h.regs.write(Register::RDLEN, 8 * 16);
    h.regs.write(Register::RDH, 8);
    assert_eq!(
        bad(&mut h),
        RxDrop::BadConfig(ConfigError::Head { rdh: 8, count: 8 })
    );
    h.regs.write(Register::RDLEN, 16 * 16);
    h.regs.write(Register::RDH, u32::MAX);
    assert_eq!(
        bad(&mut h),
        RxDrop::BadConfig(ConfigError::Head {
            rdh: u32::MAX,
            count: 16
        })
    );
    h.regs.write(Register::RDH, 0);
    h.regs.write(Register::RDT, 16);
    assert_eq!(
        bad(&mut h),
        RxDrop::BadConfig(ConfigError::Tail { rdt: 16, count: 16 })
    );
    h.regs.write(Register::RDT, 0x1_0003);
    assert_eq!(
        bad(&mut h),
        RxDrop::BadConfig(ConfigError::Tail {
            rdt: 0x1_0003,
            count: 16
        })
    );
    assert_eq!(h.dev.drops().bad_config, 10);
    assert_eq!(bad(&mut h).reason(), "bad-config");

    // Nothing was written anywhere by the failed attempts.
    for i in 0..16u16 {
        assert_eq!(h.ring.load(i).status, RxStatus::empty());
    }
    assert_eq!(h.reg(Register::GPRC), 0);

    // Repaired configuration works again.
    h.regs.write(Register::RDT, 15);
    assert!(h.send(&frame(0, 64)).is_ok());
}

#[test]
fn dma_fault_leaves_descriptor_unconsumed() {
    let mut h = Harness::new(8, 2048);
    // The driver (buggy or hostile) points descriptor 0 outside the allowed memory.
    h.ring.store_buffer_addr(0, 0xffff_ffff_ffff_fff0);
    let e = h.send(&frame(0, 64)).expect_err("fault");
    assert_eq!(
        e,
        RxDrop::DmaFault(DmaError {
            addr: 0xffff_ffff_ffff_fff0,
            len: 64
        })
    );
    assert_eq!(e.reason(), "dma-fault");
    assert!(!e.raise_interrupt());
    assert_eq!(h.reg(Register::RDH), 0);
    assert_eq!(h.ring.load(0).status, RxStatus::empty());
    assert_eq!(h.regs.peek(Register::ICR), 0);
    assert_eq!(h.dev.drops().dma_fault, 1);
    // Straddling the end of memory is a fault too.
    h.ring.store_buffer_addr(0, BUF_BASE + 8 * 2048 - 10);
    assert!(matches!(h.send(&frame(0, 64)), Err(RxDrop::DmaFault(_))));
    h.ring.store_buffer_addr(0, BUF_BASE);
    assert_eq!(h.send(&frame(0, 64)).map(|r| r.index), Ok(0));
}

#[test]
fn not_enabled_and_reason_names() {
    let mut h = Harness::new(8, 2048);
    let rctl = h.reg(Register::RCTL);
    h.regs.write(Register::RCTL, rctl & !Rctl::EN.bits());
    assert_eq!(h.send(&frame(0, 64)), Err(RxDrop::NotEnabled));
    assert_eq!(h.dev.drops().not_enabled, 1);
    assert_eq!(h.dev.drops().total(), 1);
    let names = [
        (RxDrop::NotEnabled, "not-enabled"),
        (RxDrop::Undersize { len: 1 }, "undersize"),
        (RxDrop::Oversize { len: 1, max: 0 }, "oversize"),
        (
            RxDrop::BadConfig(ConfigError::RingLength { rdlen: 0 }),
            "bad-config",
        ),
        (
            RxDrop::NoDescriptor {
                raise_interrupt: true,
            },
            "no-descriptor",
        ),
        (RxDrop::DmaFault(DmaError { addr: 0, len: 0 }), "dma-fault"),
    ];
    for (d, name) in names {
        assert_eq!(d.reason(), name);
        assert!(format!("{d}").starts_with(name));
    }
    assert_eq!(
        format!(
            "{}",
            RxDrop::Oversize {
                len: 3000,
                max: 2048
            }
        ),
        "oversize (3000 > 2048 bytes)"
    );
}

#[test]
fn buffer_size_change_takes_effect_immediately() {
    let mut h = Harness::new(8, 2048);
    let rctl = h.reg(Register::RCTL) & !(Rctl::BSIZE_MASK | Rctl::BSEX).bits();
    h.regs
        .write(Register::RCTL, rctl | rctl_bsize_bits(256).expect("valid"));
    assert_eq!(
        h.send(&frame(0, 300)),
        Err(RxDrop::Oversize { len: 300, max: 256 })
    );
}

#[test]
fn link_changes_raise_lsc() {
    let h = Harness::new(8, 2048);
    assert!(h.dev.set_link(&h.regs, true));
    assert_ne!(h.reg(Register::STATUS) & crate::Status::LU.bits(), 0);
    assert_eq!(h.rx.ack(&h.regs), Interrupt::LSC.bits());
    h.regs.write(Register::IMC, Interrupt::LSC.bits());
    assert!(!h.dev.set_link(&h.regs, false));
    assert_eq!(h.reg(Register::STATUS) & crate::Status::LU.bits(), 0);
}

#[test]
fn largest_ring_the_registers_can_describe() {
    // RDLEN = 65535 * 16 rounded down to 128: 65528 descriptors (more than the driver accepts,
    // but a peer may program it); index arithmetic must not overflow u16 near the ring's end.
    let count = 65528u16;
    let regs = crate::RegisterFile::new();
    let ring = crate::testing::MemRing::new(count);
    let dma = crate::testing::MemDma::new(BUF_BASE, 256);
    let mut dev = crate::DeviceModel::new();
    let rctl = Rctl::EN | Rctl::LPE | Rctl::from_bits_retain(rctl_bsize_bits(256).expect("valid"));
    regs.write(Register::RCTL, rctl.bits());
    regs.write(Register::RDLEN, u32::from(count) * 16);
    regs.write(Register::RDH, u32::from(count - 1));
    regs.write(Register::RDT, 10);
    ring.store_buffer_addr(count - 1, BUF_BASE);
    let r = dev
        .receive(&regs, &ring, &dma, &frame(0, 64))
        .expect("room");
    assert_eq!(r.index, count - 1);
    assert_eq!(regs.peek(Register::RDH), 0);
    assert_ne!(
        r.causes & Interrupt::RXDMT0.bits(),
        0,
        "ring nearly exhausted"
    );
}

#[test]
fn injected_writeback_faults_are_refused_by_the_driver_which_carries_on() {
    use crate::WritebackFault;
    // Without LPE the device caps frames at 1518, yet an Oversize fault must
    // still exceed the driver's *buffer* size to be a fault at all.
    for lpe in [true, false] {
        let mut h = Harness::new(16, 2048);
        if !lpe {
            let rctl = h.reg(Register::RCTL) & !Rctl::LPE.bits();
            h.regs.write(Register::RCTL, rctl);
        }
        for (i, fault) in WritebackFault::ALL.into_iter().enumerate() {
            let f = frame(i as u32, 300);
            let r = h
                .dev
                .receive_with_fault(&h.regs, &h.ring, &h.dma, &f, Some(fault))
                .expect("room");
            assert!(r.raise_interrupt);
            assert_eq!(h.poll(16).delivered, 0, "{fault:?} must not be delivered");
        }
        let c = *h.rx.counters();
        assert_eq!(c.bad_length, 2, "zero and oversize lengths (lpe {lpe})");
        assert_eq!(c.no_eop, 1);
        assert_eq!(c.rx_errors, 1);
        assert_eq!(c.delivered, 0);
        // The ring keeps working after every fault.
        let good = frame(9, 500);
        h.send(&good).expect("room");
        assert_eq!(h.poll(16).delivered, 1);
        assert_eq!(h.delivered, alloc::vec![good]);
        assert_eq!(
            h.dev.received(),
            5,
            "faulty write-backs still count as received"
        );
    }
}

/// A device over an 8-descriptor ring of 256-byte buffers, descriptor `i` naming buffer `i`,
/// RDH 0 and RDT `tail`.
fn small_ring(
    tail: u32,
) -> (
    crate::RegisterFile,
    crate::testing::MemRing,
    crate::testing::MemDma,
    crate::DeviceModel,
) {
    let regs = crate::RegisterFile::new();
    let ring = crate::testing::MemRing::new(8);
    let dma = crate::testing::MemDma::new(BUF_BASE, 16 * 256);
    for i in 0..8u16 {
        ring.store_buffer_addr(i, BUF_BASE + u64::from(i) * 256);
    }
    let rctl = Rctl::EN | Rctl::from_bits_retain(rctl_bsize_bits(256).expect("valid"));
    regs.write(Register::RCTL, rctl.bits());
    regs.write(Register::RDBAL, 0x1000);
    regs.write(Register::RDLEN, 8 * 16);
    regs.write(Register::RDH, 0);
    regs.write(Register::RDT, tail);
    (regs, ring, dma, crate::DeviceModel::new())
}

fn buffer_holds(dma: &crate::testing::MemDma, addr: u64, f: &[u8]) -> bool {
    let mut buf = alloc::vec![0u8; f.len()];
    dma.read(addr, &mut buf).expect("in range");
    buf == f
}

#[test]
fn descriptors_are_fetched_only_while_the_device_owns_them() {
    // Descriptors 0 and 1 are the device's; 2 is still the driver's, which re-arms it with
    // another buffer before handing it over: the device must not have fetched it early.
    let (regs, ring, dma, mut dev) = small_ring(2);
    for seq in 0..2u32 {
        let r = dev
            .receive(&regs, &ring, &dma, &frame(seq, 64))
            .expect("room");
        assert_eq!(r.index, seq as u16);
        dev.read_ahead(&regs, &ring, &dma);
    }
    let moved = BUF_BASE + 9 * 256;
    ring.store_buffer_addr(2, moved);
    regs.write(Register::RDT, 3);
    let f = frame(2, 64);
    assert_eq!(dev.receive(&regs, &ring, &dma, &f).expect("room").index, 2);
    assert!(
        buffer_holds(&dma, moved, &f),
        "frame 2 went to the re-armed buffer"
    );
    assert!(!buffer_holds(&dma, BUF_BASE + 2 * 256, &f));
}

#[test]
fn a_disabled_or_reprogrammed_ring_is_fetched_anew() {
    let (regs, ring, dma, mut dev) = small_ring(7);
    dev.receive(&regs, &ring, &dma, &frame(0, 64))
        .expect("room");
    // Descriptors 1..7 are fetched. The driver programs another ring (another base) whose
    // descriptor 1 names another buffer, and resumes at the same head.
    let other = BUF_BASE + 10 * 256;
    ring.store_buffer_addr(1, other);
    regs.write(Register::RDBAL, 0x2000);
    let f = frame(1, 64);
    assert_eq!(dev.receive(&regs, &ring, &dma, &f).expect("room").index, 1);
    assert!(
        buffer_holds(&dma, other, &f),
        "the new ring's descriptor was read"
    );

    // Same base, but the receiver disabled meanwhile (a frame refused while it was): the
    // driver may have rewritten its ring, and the device reads it again.
    let again = BUF_BASE + 11 * 256;
    let rctl = regs.peek(Register::RCTL);
    regs.write(Register::RCTL, rctl & !Rctl::EN.bits());
    assert_eq!(
        dev.receive(&regs, &ring, &dma, &frame(99, 64)),
        Err(RxDrop::NotEnabled)
    );
    ring.store_buffer_addr(2, again);
    regs.write(Register::RCTL, rctl);
    let f = frame(2, 64);
    assert_eq!(dev.receive(&regs, &ring, &dma, &f).expect("room").index, 2);
    assert!(buffer_holds(&dma, again, &f));
}

#[test]
fn a_driver_that_rewinds_the_head_is_followed() {
    // A driver that re-initialises its ring writes RDH: the device starts over from there.
    let (regs, ring, dma, mut dev) = small_ring(7);
    for seq in 0..3u32 {
        dev.receive(&regs, &ring, &dma, &frame(seq, 64))
            .expect("room");
    }
    regs.write(Register::RDH, 0);
    let f = frame(3, 64);
    assert_eq!(dev.receive(&regs, &ring, &dma, &f).expect("room").index, 0);
    assert!(buffer_holds(&dma, BUF_BASE, &f));
    let f = frame(4, 64);
    assert_eq!(dev.receive(&regs, &ring, &dma, &f).expect("room").index, 1);
    assert!(buffer_holds(&dma, BUF_BASE + 256, &f));
}

#[test]
fn a_ring_reprogrammed_at_the_same_base_and_head_between_two_frames_is_followed() {
    // The device sees the registers only when a frame comes: a driver that re-initialises its
    // ring in between (same base, same head, other buffers) must not have its frames written
    // into the old buffers.
    let (regs, ring, dma, mut dev) = small_ring(7);
    dev.receive(&regs, &ring, &dma, &frame(0, 64))
        .expect("room");
    dev.read_ahead(&regs, &ring, &dma);
    for i in 0..8u16 {
        ring.store_buffer_addr(i, BUF_BASE + (8 + u64::from(i)) * 256);
        ring.clear_status(i);
    }
    let f = frame(1, 64);
    assert_eq!(dev.receive(&regs, &ring, &dma, &f).expect("room").index, 1);
    assert!(buffer_holds(&dma, BUF_BASE + 9 * 256, &f));
    assert!(!buffer_holds(&dma, BUF_BASE + 256, &f));
}

#[test]
fn descriptors_fetched_in_idle_time_wrap_around_the_ring() {
    let (regs, ring, dma, mut dev) = small_ring(7);
    for seq in 0..7u32 {
        dev.receive(&regs, &ring, &dma, &frame(seq, 64))
            .expect("room");
        dev.read_ahead(&regs, &ring, &dma);
    }
    // Full (head 7 == RDT 7): nothing to read ahead, and the next frame is refused.
    assert!(!dev.reads_ahead());
    assert!(matches!(
        dev.receive(&regs, &ring, &dma, &frame(99, 64)),
        Err(RxDrop::NoDescriptor { .. })
    ));
    // The driver hands 7 and 0..4 back; the device fetches them across the ring's end.
    regs.write(Register::RDT, 5);
    for (seq, index) in [(7u32, 7u16), (8, 0), (9, 1), (10, 2), (11, 3), (12, 4)] {
        let f = frame(seq, 64);
        assert_eq!(
            dev.receive(&regs, &ring, &dma, &f).expect("room").index,
            index
        );
        assert!(buffer_holds(&dma, BUF_BASE + u64::from(index) * 256, &f));
        dev.read_ahead(&regs, &ring, &dma);
    }
    assert!(matches!(
        dev.receive(&regs, &ring, &dma, &frame(99, 64)),
        Err(RxDrop::NoDescriptor { .. })
    ));
}

#[test]
fn rxdmt0_follows_the_drivers_refills_not_the_tail_last_fetched_with() {
    // 16 descriptors, RXDMT0 at 8 free or fewer. Frames 0..7 are fetched with RDT 15; the
    // driver cleans 0..3 (RDT 3): by RDT, frames 4..7 leave 14 down to 11 free, never the
    // threshold, although by the tail they were fetched with, 6 and 7 would reach it.
    let mut h = Harness::new(16, 2048);
    let rctl = h.reg(Register::RCTL) & !Rctl::RDMTS_MASK.bits() | Rctl::RDMTS_HALF.bits();
    h.regs.write(Register::RCTL, rctl);
    for seq in 0..4u32 {
        let r = h.send(&frame(seq, 64)).expect("room");
        assert_eq!(r.causes & Interrupt::RXDMT0.bits(), 0, "frame {seq}");
    }
    assert_eq!(h.poll(16).cleaned, 4);
    assert_eq!(h.reg(Register::RDT), 3);
    for seq in 4..8u32 {
        let r = h.send(&frame(seq, 64)).expect("room");
        assert_eq!(r.causes & Interrupt::RXDMT0.bits(), 0, "frame {seq}");
    }
    // Without the driver's refills the threshold comes as before: 15 - 7 free after frame 7.
    let mut h = Harness::new(16, 2048);
    h.regs.write(Register::RCTL, rctl);
    let low: alloc::vec::Vec<bool> = (0..8u32)
        .map(|seq| h.send(&frame(seq, 64)).expect("room").causes & Interrupt::RXDMT0.bits() != 0)
        .collect();
    assert_eq!(low, [false, false, false, false, false, false, true, true]);
}
