//! The target's per-packet path on the host, against the support side's
//! own sender (`mint-support`) over host memory of the debug NIC's
//! layout: every frame sent is delivered or dropped with its reason, and
//! the run is published Complete with the accounting the CLI checks.

use core::cell::Cell;
use core::sync::atomic::{AtomicU64, Ordering};
use std::vec::Vec;

use mint_abi::debug_nic::{DropReason, RunControl, RunPhase};
use mint_support::host::HostNic;
use mint_support::{Device, Faults, Sender};
use mint_traffic::{Endpoints, FrameTemplate, GenConfig, Moderation, PacketKind};

use super::*;

const SLOTS: u16 = 16;
const BUFFER: usize = mint_abi::debug_nic::BUFFER_SIZE;
const RING_PHYS: u64 = 0x1000;
const DMA_PHYS: u64 = 0x100_0000;

std::thread_local! {
    static NOW: Cell<u64> = const { Cell::new(1_000) };
}

/// A clock that moves 100 ticks a reading (1 tick = 1 ns).
fn clock() -> u64 {
    NOW.with(|n| {
        n.set(n.get() + 100);
        n.get()
    })
}

/// Jumps the clock by `ms`.
fn sleep_ms(ms: u64) {
    NOW.with(|n| n.set(n.get() + ms * 1_000_000));
}

/// The debug NIC's memory on the host, and the target's view of its lines.
fn shared() -> HostNic {
    HostNic::new(SLOTS, usize::from(SLOTS) * BUFFER, DMA_PHYS)
}

fn lines(s: &HostNic) -> rx::Lines<'_> {
    rx::Lines {
        posted: &s.posted.0,
        signal_stamp: &s.signal_stamp.0,
        run: &s.run.0,
    }
}

type Regs<'a> = mint_e1000::RegisterFile<mint_support::backend::NicSlots<'a>>;

/// The host the receiver runs on in these tests (1 tick = 1 ns): the
/// driver's path and memory, as the kernel's driver statics are.
struct TestHost<'a> {
    regs: &'a Regs<'a>,
    ring: &'a mint_support::backend::AtomicRing<'a>,
    dma: &'a mint_support::backend::WordDma<'a>,
    run: &'a RunControl,
    path: RxPath,
    finished: u32,
    completed: bool,
}

impl Host for TestHost<'_> {
    fn ms_to_ticks(&self, ms: u64) -> u64 {
        ms * 1_000_000
    }
    fn ticks_to_us(&self, ticks: u64) -> u64 {
        ticks / 1_000
    }
    fn discard_leftovers(&mut self) -> usize {
        self.path.discard(self.regs, self.ring, self.dma)
    }
    fn moderate(&mut self, m: Moderation) -> Result<(), &'static str> {
        self.path.moderate(self.regs, m);
        Ok(())
    }
    fn napi_poll(&mut self) -> usize {
        self.path
            .napi_poll(self.run, self.regs, self.ring, self.dma)
    }
    fn reset_samples(&mut self, frames: usize) -> bool {
        self.path.samples.reset(frames).is_ok()
    }
    fn pending_completions(&self) -> bool {
        self.path.pending(self.ring)
    }
    fn finished(&mut self, _app: &mut App, _ctl: &RunControl, _stats: &Stats, completed: bool) {
        self.finished += 1;
        self.completed = completed;
    }
}

impl TestHost<'_> {
    /// The interrupt, when the posted flag is up (NAPI: it schedules).
    fn interrupt(&mut self, lines: &rx::Lines) {
        if lines.posted.load(Ordering::Acquire) != 0 {
            while self
                .path
                .on_signal(clock(), lines, self.regs, self.ring, self.dma)
            {}
        }
    }
}

struct Outcome {
    sent: u64,
    delivered: u64,
    drops: [u64; DropReason::COUNT],
    unaccounted: i64,
    latency_samples: usize,
    ipi_samples: usize,
    completed: bool,
    /// A NAPI poll still scheduled at the end (it must not be).
    scheduled: bool,
}

/// How often the target side runs in [`run`], in sends.
struct Every {
    /// The interrupt handler (when the posted flag is up).
    signal: u32,
    /// The receiver's loop.
    step: u32,
}

const EACH: Every = Every { signal: 1, step: 1 };

/// One run of `count` frames of `kind`, the target's interrupt and loop
/// run as often as `every` says (so the ring, the socket buffers or the
/// UDP socket fill when that is rarely).
fn run(
    kind: PacketKind,
    size: u32,
    count: u32,
    skbs: usize,
    every: Every,
    faults: Faults,
) -> Outcome {
    run_moderated(kind, size, count, skbs, every, faults, Moderation::None)
}

/// [`run`] under moderation `moderation`.
fn run_moderated(
    kind: PacketKind,
    size: u32,
    count: u32,
    skbs: usize,
    every: Every,
    faults: Faults,
    moderation: Moderation,
) -> Outcome {
    let s = shared();
    let regs = s.registers();
    let ring = s.ring();
    let dma = s.dma();
    let rx = s.driver_ring(RING_PHYS, BUFFER).expect("ring");
    let (producer, consumer) = mint_skb::pool(skbs, BUFFER);
    let mut host = TestHost {
        regs: &regs,
        ring: &ring,
        dma: &dma,
        run: &s.run.0,
        path: RxPath::new(rx, producer),
        finished: 0,
        completed: false,
    };
    let mut receiver = Receiver::new(
        consumer,
        Endpoints::default().dst_mac,
        &s.run.0,
        None,
        clock,
        &host,
    )
    .expect("receiver");

    let cfg = GenConfig {
        size,
        count,
        kind,
        moderation,
        ..GenConfig::default()
    };
    mint_support::configure(&s.run.0, &cfg, 3, false);
    s.run.0.set_phase(RunPhase::Configured);
    receiver.step(&mut host);
    assert_eq!(s.run.0.phase(), Some(RunPhase::Armed));

    let mut template =
        FrameTemplate::new(kind, size, &Endpoints::default(), cfg.seed).expect("template");
    let mut sender = Sender::new(
        Device {
            regs: &regs,
            ring: &ring,
            dma: &dma,
        },
        s.support_lines(),
        Raised,
        Ticks,
        &mut template,
        3,
        faults,
    );
    for seq in 0..count {
        sender.send(seq);
        if (seq + 1) % every.signal == 0 {
            host.interrupt(&lines(&s));
        }
        if (seq + 1) % every.step == 0 {
            while receiver.step(&mut host) {}
        }
    }
    sender.publish();
    s.run.0.set_phase(RunPhase::Injected);
    host.interrupt(&lines(&s));
    for _ in 0..4 {
        while receiver.step(&mut host) {}
        sleep_ms(QUIET_MS + 1);
        receiver.step(&mut host);
    }
    assert_eq!(host.finished, 1, "the run is finished exactly once");
    assert_eq!(s.run.0.phase(), Some(RunPhase::Complete));
    Outcome {
        sent: s.run.0.sent.load(Ordering::Relaxed),
        delivered: s.run.0.delivered.load(Ordering::Relaxed),
        drops: core::array::from_fn(|i| s.run.0.drops[i].load(Ordering::Relaxed)),
        unaccounted: s.run.0.unaccounted(),
        latency_samples: receiver.app().latency().len(),
        ipi_samples: host.path.samples.ipi_latency.len(),
        completed: host.completed,
        scheduled: host.path.scheduled(),
    }
}

struct Raised;

impl mint_support::Signal for Raised {
    fn raise(&mut self) {}
}

struct Ticks;

impl mint_support::Clock for Ticks {
    fn now(&self) -> u64 {
        clock()
    }
    fn hz(&self) -> u64 {
        1_000_000_000
    }
}

use receiver::QUIET_MS;

#[test]
fn every_udp_frame_goes_through_the_stack_to_the_application() {
    let o = run(PacketKind::Udp, 1514, 200, 32, EACH, Faults::default());
    assert_eq!(o.sent, 200);
    assert_eq!(o.delivered, 200);
    assert_eq!(o.unaccounted, 0);
    assert_eq!(o.drops, [0; DropReason::COUNT]);
    assert_eq!(o.latency_samples, 200, "one latency sample per delivery");
    assert_eq!(
        o.ipi_samples, 200,
        "one signal-to-handler sample per signal"
    );
    assert!(o.completed);
}

#[test]
fn raw_frames_bypass_the_stack_and_are_checked() {
    let o = run(PacketKind::Raw, 16384, 64, 32, EACH, Faults::default());
    assert_eq!((o.sent, o.delivered, o.unaccounted), (64, 64, 0));
}

#[test]
fn a_full_socket_buffer_pool_is_counted_never_lost() {
    // 8 socket buffers, the stack stepped every 40 frames: the pool fills.
    let o = run(
        PacketKind::Raw,
        1514,
        400,
        8,
        Every {
            signal: 1,
            step: 40,
        },
        Faults::default(),
    );
    let full = o.drops[DropReason::SocketBufferFull as usize];
    assert!(full > 0, "the pool filled");
    assert_eq!(o.delivered + full, 400);
    assert_eq!(o.unaccounted, 0);
}

#[test]
fn the_stack_drains_the_socket_between_batches() {
    // 200 datagrams between two passes of the loop, more than the UDP
    // socket holds (64): the device's budget (32 per poll) lets the
    // socket be drained between batches, so none is lost.
    let o = run(
        PacketKind::Udp,
        1514,
        400,
        512,
        Every {
            signal: 1,
            step: 200,
        },
        Faults::default(),
    );
    assert_eq!((o.delivered, o.unaccounted), (400, 0));
    assert_eq!(o.drops[DropReason::Stack as usize], 0);
}

#[test]
fn a_full_ring_is_counted_by_the_device() {
    // The interrupt serviced every 40 sends, the ring holds 15 frames.
    let o = run(
        PacketKind::Udp,
        1514,
        400,
        512,
        Every {
            signal: 40,
            step: 40,
        },
        Faults::default(),
    );
    let full = o.drops[DropReason::RingFull as usize];
    assert!(full > 0, "the ring filled");
    assert_eq!(o.delivered + full, 400);
    assert_eq!(o.unaccounted, 0);
}

#[test]
fn corrupted_descriptors_and_stale_frames_are_refused_by_reason() {
    let faults = Faults {
        corrupt_every: 10,
        stale_every: 7,
        ..Faults::default()
    };
    let o = run(PacketKind::Udp, 1514, 140, 32, EACH, faults);
    let bad = o.drops[DropReason::BadDescriptor as usize];
    let stale = o.drops[DropReason::StaleRun as usize];
    assert_eq!(bad, 14, "every 10th write-back corrupted");
    // Every 7th of 140 stamped stale (20), less the two that are also
    // every 10th, whose write-back is corrupted first (seq 69 and 139).
    assert_eq!(stale, 18);
    assert_eq!(o.delivered + bad + stale, 140);
    assert_eq!(o.unaccounted, 0);
}

#[test]
fn a_signal_stamp_from_after_the_entry_is_left_for_its_own_entry() {
    let s = shared();
    let rx = s.driver_ring(RING_PHYS, BUFFER).expect("ring");
    let (producer, _consumer) = mint_skb::pool(4, BUFFER);
    let mut path = RxPath::new(rx, producer);
    path.samples.reset(4).expect("samples");
    s.posted.0.store(1, Ordering::Relaxed);
    s.signal_stamp.0.store(500, Ordering::Relaxed);
    path.enter_signal(400, &lines(&s));
    assert_eq!(
        s.signal_stamp.0.load(Ordering::Relaxed),
        500,
        "a later signal's stamp stays"
    );
    assert_eq!(
        s.posted.0.load(Ordering::Relaxed),
        0,
        "the posted flag is cleared"
    );
    path.enter_signal(600, &lines(&s));
    assert_eq!(path.samples.ipi_latency, [100]);
    assert_eq!(path.samples.intervals, [200]);
    assert_eq!(path.taken(), 2);
    assert_eq!(s.run.0.interrupts.load(Ordering::Relaxed), 2);
}

#[test]
fn seen_maps_mark_once_and_clear_what_a_run_uses() {
    let words: Vec<AtomicU64> = (0..4).map(|_| AtomicU64::new(0)).collect();
    let map = SeenMap::new(&words);
    assert_eq!(map.capacity(), 256);
    assert!(!map.mark(70));
    assert!(map.mark(70), "the second mark reports the first");
    assert!(!map.mark(10_000), "past the map: refused, not wrapped");
    assert_eq!(map.word(1), 1 << 6);
    map.clear(65);
    assert_eq!(map.word(1), 0);
}

#[test]
fn napi_leaves_frames_in_the_ring_while_the_stack_is_behind() {
    // 8 socket buffers, the loop (NAPI's poll and the stack) every 40
    // sends: the poll takes no more than the free buffers, so the rest
    // wait in the ring (15 frames) and the device counts the overflow;
    // nothing is cleaned into a full pool.
    let every = Every {
        signal: 1,
        step: 40,
    };
    let o = run_moderated(
        PacketKind::Raw,
        1514,
        400,
        8,
        every,
        Faults::default(),
        Moderation::Napi,
    );
    let full = o.drops[DropReason::RingFull as usize];
    assert_eq!(
        o.drops[DropReason::SocketBufferFull as usize],
        0,
        "{:?}",
        o.drops
    );
    assert!(full > 0, "the ring filled");
    assert_eq!(o.delivered + full, 400);
    assert_eq!(o.unaccounted, 0);
    assert!(!o.scheduled, "the last poll unmasked");
}

#[test]
fn napi_delivers_every_frame_when_the_loop_keeps_up() {
    let o = run_moderated(
        PacketKind::Udp,
        1514,
        300,
        32,
        EACH,
        Faults::default(),
        Moderation::Napi,
    );
    assert_eq!((o.sent, o.delivered, o.unaccounted), (300, 300, 0));
    assert_eq!(o.latency_samples, 300);
    assert!(!o.scheduled);
    assert!(o.completed);
}

#[test]
fn napi_unmask_rechecks_the_ring() {
    // A frame that completes while the causes are masked raises nothing:
    // the poll that empties the ring unmasks and looks again.
    let s = shared();
    let (regs, ring, dma) = (s.registers(), s.ring(), s.dma());
    let rx = s.driver_ring(RING_PHYS, BUFFER).expect("ring");
    let (producer, mut consumer) = mint_skb::pool(32, BUFFER);
    let mut path = RxPath::new(rx, producer);
    path.moderate(&regs, Moderation::Napi);
    path.samples.reset(8).expect("samples");
    let cfg = GenConfig::default();
    let mut template =
        FrameTemplate::new(PacketKind::Udp, 1514, &Endpoints::default(), cfg.seed).expect("t");
    let mut sender = Sender::new(
        Device {
            regs: &regs,
            ring: &ring,
            dma: &dma,
        },
        s.support_lines(),
        Raised,
        Ticks,
        &mut template,
        1,
        Faults::default(),
    );
    assert!(sender.send(0).signal_ticks > 0, "an unmasked cause signals");
    // The handler masks and schedules; frame 1 comes while masked.
    assert!(!path.on_signal(clock(), &lines(&s), &regs, &ring, &dma));
    assert!(path.scheduled());
    assert_eq!(sender.send(1).signal_ticks, 0, "masked: no signal");
    assert_eq!(path.napi_poll(&s.run.0, &regs, &ring, &dma), 2);
    assert!(!path.scheduled(), "the ring is empty: unmasked");
    let mut frames = 0;
    while let Some(skb) = consumer.front() {
        skb.release();
        frames += 1;
    }
    assert_eq!(frames, 2);
    // Unmasked again: the next frame signals.
    s.posted.0.store(0, Ordering::Relaxed);
    assert!(sender.send(2).signal_ticks > 0);
}

/// Frames NAPI polls clean, one poll after another, with `frames` frames
/// of `size` bytes waiting in the ring.
fn napi_polls(size: u32, frames: u32) -> Vec<usize> {
    // A ring of 256 (255 frames in flight at most).
    let s = HostNic::new(256, 256 * BUFFER, DMA_PHYS);
    let (regs, ring, dma) = (s.registers(), s.ring(), s.dma());
    let rx = s.driver_ring(RING_PHYS, BUFFER).expect("ring");
    let (producer, mut consumer) = mint_skb::pool(256, BUFFER);
    let mut path = RxPath::new(rx, producer);
    path.moderate(&regs, Moderation::Napi);
    path.samples.reset(256).expect("samples");
    let cfg = GenConfig::default();
    let mut template =
        FrameTemplate::new(PacketKind::Udp, size, &Endpoints::default(), cfg.seed).expect("t");
    let mut sender = Sender::new(
        Device {
            regs: &regs,
            ring: &ring,
            dma: &dma,
        },
        s.support_lines(),
        Raised,
        Ticks,
        &mut template,
        1,
        Faults::default(),
    );
    for seq in 0..frames {
        assert!(sender.send(seq).placed);
    }
    assert!(!path.on_signal(clock(), &lines(&s), &regs, &ring, &dma));
    let mut polls = Vec::new();
    while path.scheduled() {
        polls.push(path.napi_poll(&s.run.0, &regs, &ring, &dma));
        consumer.clear();
    }
    polls
}

#[test]
fn a_napi_poll_stops_at_its_weight_or_its_bytes() {
    // 1514 B: 64 frames (97 KB) a poll, the weight binds.
    assert_eq!(napi_polls(1514, 150), [64, 64, 22]);
    // 16 KB: the poll stops once it has copied 256 KiB (it checks its
    // bytes every 4 frames): 16 frames a poll.
    let polls = napi_polls(16384, 100);
    assert_eq!(polls.iter().sum::<usize>(), 100);
    let per = usize::try_from(rx::NAPI_BYTES.div_ceil(16384 * 4) * 4).unwrap();
    assert!(
        polls[..polls.len() - 1].iter().all(|&n| n == per),
        "{polls:?}"
    );
}

#[test]
fn a_count_made_at_another_driver_is_published_as_delivered() {
    // Linux's mint0 counts a driver-only run itself; the application
    // publishes that count as its own driver-only path would.
    let ctl = RunControl::default();
    let mut app = App::new(clock, None);
    app.arm(&ctl).expect("armed");
    app.count_at_driver(0, 0, 99);
    assert_eq!(app.counts().delivered, 0);
    app.count_at_driver(7, 7 * 1472, 5_000);
    ctl.set_phase(RunPhase::Injected);
    assert!(app.publish(&ctl, &Stats::default()));
    assert_eq!(ctl.delivered.load(Ordering::Relaxed), 7);
    assert_eq!(ctl.delivered_bytes.load(Ordering::Relaxed), 7 * 1472);
    // The last delivery is the driver's stamp, not the empty count's.
    assert_eq!(ctl.last_delivery_tsc.load(Ordering::Relaxed), 5_000);
    assert_eq!(ctl.phase(), Some(RunPhase::Complete));
}
