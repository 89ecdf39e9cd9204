//! The receiving application: checks each payload (CRC over header and
//! body), tracks sequence numbers, measures injection-to-application
//! latency, and at the end of a run publishes its accounting in the run's
//! [`RunControl`]. Printing the run's summary and raw samples is the
//! caller's (a console, or the benchmark's CSV files).

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use mint_abi::debug_nic::{DropReason, RunControl, RunPhase};
use mint_traffic::{Observation, PacketKind, RunCheckError, SeqTracker};

use crate::device::Stats;
use crate::rx::MAX_SAMPLES;
use crate::seen::SeenMap;

/// The clock payloads are stamped against: the TSC, read by the caller's
/// means (`rdtsc` in the kernel and on the host).
pub type Clock = fn() -> u64;

/// What the application counted in one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Unique, intact payloads of this run.
    pub delivered: u64,
    /// Payload bytes of the delivered packets: what the application got.
    pub delivered_bytes: u64,
    /// Delivered, but after a higher sequence number.
    pub out_of_order: u64,
    /// Failed the payload check (or carried a seq past the run).
    pub bad_checksum: u64,
    /// A sequence number seen before.
    pub duplicates: u64,
    /// Intact payloads of another run (never this run's deliveries).
    pub stale_run: u64,
}

/// The receiving application of one node.
pub struct App<'m> {
    clock: Clock,
    run_id: u32,
    count: u32,
    kind: PacketKind,
    dump: bool,
    tracker: SeqTracker,
    /// TSC ticks from injection to this application, per delivered packet.
    latency: Vec<u64>,
    counts: Counts,
    first_inject: u64,
    last_delivery: u64,
    /// This node's seen map (a real NIC's receiver): every accepted seq
    /// marked, for node 0 to find duplicates across owners.
    seen: Option<SeenMap<'m>>,
}

impl<'m> App<'m> {
    /// An application stamping deliveries with `clock`, marking `seen`.
    pub fn new(clock: Clock, seen: Option<SeenMap<'m>>) -> App<'m> {
        App {
            clock,
            run_id: 0,
            count: 0,
            kind: PacketKind::Udp,
            dump: false,
            tracker: SeqTracker::new(),
            latency: Vec::new(),
            counts: Counts::default(),
            first_inject: u64::MAX,
            last_delivery: 0,
            seen,
        }
    }

    /// Resets for the run the support side configured in `ctl`.
    /// Fails when there is no memory for the run's raw samples.
    pub fn arm(&mut self, ctl: &RunControl) -> Result<(), &'static str> {
        let latency = core::mem::take(&mut self.latency);
        *self = App::new(self.clock, self.seen);
        self.latency = latency;
        self.latency.clear();
        self.run_id = ctl.run_id.load(Ordering::Acquire);
        self.count = ctl.count.load(Ordering::Acquire);
        self.kind = if ctl.kind.load(Ordering::Acquire) == 1 {
            PacketKind::Raw
        } else {
            PacketKind::Udp
        };
        self.dump = ctl.dump_samples.load(Ordering::Acquire) != 0;
        if let Some(seen) = &self.seen {
            seen.clear(self.count);
        }
        let want = (self.count as usize).min(MAX_SAMPLES);
        self.latency
            .try_reserve_exact(want)
            .map_err(|_| "latency samples")
    }

    /// The run this application is armed for.
    pub fn run_id(&self) -> u32 {
        self.run_id
    }

    /// The kind of packets of the run.
    pub fn kind(&self) -> PacketKind {
        self.kind
    }

    /// Whether the run asked for its raw samples.
    pub fn dump_asked(&self) -> bool {
        self.dump
    }

    /// What was counted so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The delivered packets' injection-to-application ticks, in order.
    pub fn latency(&self) -> &[u64] {
        &self.latency
    }

    /// The same, to sort in place for a summary.
    pub fn latency_mut(&mut self) -> &mut Vec<u64> {
        &mut self.latency
    }

    /// Payloads looked at so far (delivered or refused).
    pub fn seen(&self) -> u64 {
        let c = &self.counts;
        c.delivered + c.bad_checksum + c.duplicates + c.stale_run
    }

    /// A frame counted at the driver and released (a driver-only run):
    /// delivered, its payload's bytes counted (the frame less the run's
    /// headers, as the checked paths count), nothing checked or timed.
    /// Its first injection is not known here (`first_inject_tsc` stays 0:
    /// the support side has its own first stamp).
    pub fn count_unchecked(&mut self, frame: &[u8]) {
        self.counts.delivered += 1;
        self.counts.delivered_bytes += frame
            .len()
            .saturating_sub(mint_traffic::payload_offset(self.kind))
            as u64;
        self.last_delivery = (self.clock)();
    }

    /// Frames a driver outside this crate counted and released itself
    /// (Linux's `mint0` in a driver-only run): as `count_unchecked` for
    /// each, `payload_bytes` their bytes less the headers, `last_tsc` the
    /// clock at the last one.
    pub fn count_at_driver(&mut self, frames: u64, payload_bytes: u64, last_tsc: u64) {
        self.counts.delivered += frames;
        self.counts.delivered_bytes += payload_bytes;
        if frames > 0 {
            self.last_delivery = self.last_delivery.max(last_tsc);
        }
    }

    /// A raw-Ethernet frame (the stack is bypassed).
    pub fn consume_raw(&mut self, frame: &[u8]) {
        match mint_traffic::parse_frame(PacketKind::Raw, frame) {
            Ok(payload) => self.consume(payload),
            Err(_) => self.counts.bad_checksum += 1,
        }
    }

    /// A UDP payload (or a raw frame's payload).
    pub fn consume(&mut self, payload: &[u8]) {
        let now = (self.clock)();
        let info = match mint_traffic::check_run(payload, self.run_id, self.count) {
            Ok(info) => info,
            Err(RunCheckError::StaleRun { .. }) => {
                self.counts.stale_run += 1;
                return;
            }
            Err(RunCheckError::Payload(_) | RunCheckError::SeqOutOfRange { .. }) => {
                self.counts.bad_checksum += 1;
                return;
            }
        };
        match self.tracker.observe(info.seq) {
            Observation::Duplicate | Observation::Stale => {
                self.counts.duplicates += 1;
                return;
            }
            Observation::OutOfOrder => self.counts.out_of_order += 1,
            Observation::InOrder | Observation::Gap(_) => {}
        }
        if let Some(seen) = &self.seen {
            seen.mark(info.seq);
        }
        self.counts.delivered += 1;
        self.counts.delivered_bytes += payload.len() as u64;
        if self.latency.len() < MAX_SAMPLES {
            // Wrapping: a stamp from another clock (the host's TSC, `mint
            // nic`) may be ahead of this one; the reader adds the offset.
            self.latency.push(now.wrapping_sub(info.inject_tsc));
        }
        self.first_inject = self.first_inject.min(info.inject_tsc);
        self.last_delivery = now;
    }

    /// Whether every sent frame is delivered or dropped with a reason, and
    /// no socket buffer is left (`skbs_empty`).
    pub fn accounted(&self, ctl: &RunControl, stats: &Stats, skbs_empty: bool) -> bool {
        let sent = ctl.sent.load(Ordering::Acquire);
        self.seen() + stats.stack_drops() + ctl.drops_before_stack() >= sent && skbs_empty
    }

    /// Publishes the run's accounting and marks the run Complete; returns
    /// false (counts published, phase untouched) when the run had moved on.
    pub fn publish(&self, ctl: &RunControl, stats: &Stats) -> bool {
        let c = &self.counts;
        ctl.delivered.store(c.delivered, Ordering::Relaxed);
        ctl.out_of_order.store(c.out_of_order, Ordering::Relaxed);
        ctl.drops[DropReason::BadChecksum as usize].store(c.bad_checksum, Ordering::Relaxed);
        ctl.drops[DropReason::Duplicate as usize].store(c.duplicates, Ordering::Relaxed);
        ctl.drops[DropReason::StaleRun as usize].store(c.stale_run, Ordering::Relaxed);
        ctl.drops[DropReason::Stack as usize].store(stats.stack_drops(), Ordering::Relaxed);
        ctl.delivered_bytes
            .store(c.delivered_bytes, Ordering::Relaxed);
        ctl.first_inject_tsc.store(
            if self.first_inject == u64::MAX {
                0
            } else {
                self.first_inject
            },
            Ordering::Relaxed,
        );
        ctl.last_delivery_tsc
            .store(self.last_delivery, Ordering::Relaxed);
        // Only the run it finishes: the support side moves the phase on
        // for a new run only from Complete (or Idle/Armed/Refused), never
        // from Injected; the exchange keeps a late finish from overwriting
        // a newer phase should that change.
        ctl.advance_phase(RunPhase::Injected, RunPhase::Complete)
    }
}
