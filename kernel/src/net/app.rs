//! The receiving application: checks each payload (CRC over header and
//! body), tracks sequence numbers, measures injection-to-application
//! latency, and at the end of a run publishes its accounting and prints its
//! raw samples.

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use mint_abi::debug_nic::{DropReason, RunControl, RunPhase};
use mint_traffic::{Observation, PacketKind, RunCheckError, SeqTracker, Summary};

use super::device::Stats;
use crate::arch::cpu;
use crate::nic::area::SeenMap;
use crate::nic::driver::{self, MAX_SAMPLES};
use crate::{node, println};

pub struct App {
    run_id: u32,
    count: u32,
    size: u32,
    kind: PacketKind,
    dump: bool,
    tracker: SeqTracker,
    /// TSC ticks from injection to this application, per delivered packet.
    latency: Vec<u64>,
    delivered: u64,
    /// Payload bytes of the delivered packets: what the application got.
    delivered_bytes: u64,
    out_of_order: u64,
    bad_checksum: u64,
    duplicates: u64,
    /// Intact payloads of another run (never this run's deliveries).
    stale_run: u64,
    first_inject: u64,
    last_delivery: u64,
    /// This node's seen map (a real NIC's receiver): every accepted seq
    /// marked, for node 0 to find duplicates across owners.
    seen: Option<SeenMap>,
}

impl App {
    pub fn new(seen: Option<SeenMap>) -> App {
        App {
            run_id: 0,
            count: 0,
            size: 0,
            kind: PacketKind::Udp,
            dump: false,
            tracker: SeqTracker::new(),
            latency: Vec::new(),
            delivered: 0,
            delivered_bytes: 0,
            out_of_order: 0,
            bad_checksum: 0,
            duplicates: 0,
            stale_run: 0,
            first_inject: u64::MAX,
            last_delivery: 0,
            seen,
        }
    }

    /// Resets for the run the support node configured.
    /// Fails when this node has no memory for the run's raw samples.
    pub fn arm(&mut self, ctl: &RunControl) -> Result<(), &'static str> {
        let latency = core::mem::take(&mut self.latency);
        *self = App::new(self.seen);
        self.latency = latency;
        self.latency.clear();
        self.run_id = ctl.run_id.load(Ordering::Acquire);
        self.count = ctl.count.load(Ordering::Acquire);
        self.size = ctl.size.load(Ordering::Acquire);
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

    /// Payloads looked at so far (delivered or refused).
    pub fn seen(&self) -> u64 {
        self.delivered + self.bad_checksum + self.duplicates + self.stale_run
    }

    /// A raw-Ethernet frame (the stack is bypassed).
    pub fn consume_raw(&mut self, frame: &[u8]) {
        match mint_traffic::parse_frame(PacketKind::Raw, frame) {
            Ok(payload) => self.consume(payload),
            Err(_) => self.bad_checksum += 1,
        }
    }

    /// A UDP payload (or a raw frame's payload).
    pub fn consume(&mut self, payload: &[u8]) {
        let now = cpu::rdtsc();
        let info = match mint_traffic::check_run(payload, self.run_id, self.count) {
            Ok(info) => info,
            Err(RunCheckError::StaleRun { .. }) => {
                self.stale_run += 1;
                return;
            }
            Err(RunCheckError::Payload(_) | RunCheckError::SeqOutOfRange { .. }) => {
                self.bad_checksum += 1;
                return;
            }
        };
        match self.tracker.observe(info.seq) {
            Observation::Duplicate | Observation::Stale => {
                self.duplicates += 1;
                return;
            }
            Observation::OutOfOrder => self.out_of_order += 1,
            Observation::InOrder | Observation::Gap(_) => {}
        }
        if let Some(seen) = &self.seen {
            seen.mark(info.seq);
        }
        self.delivered += 1;
        self.delivered_bytes += payload.len() as u64;
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
        let live_drops: u64 = [
            DropReason::RingFull,
            DropReason::DeviceRefused,
            DropReason::BadDescriptor,
            DropReason::SocketBufferFull,
        ]
        .iter()
        .map(|&r| ctl.drop_count(r))
        .sum();
        let stack = stats.to_stack.saturating_sub(stats.from_stack);
        self.seen() + stack + live_drops >= sent && skbs_empty
    }

    /// Publishes the run's accounting, marks the run Complete, then prints
    /// (when asked) the raw samples and a summary on this node's console.
    pub fn finish(&mut self, ctl: &RunControl, stats: &Stats) {
        ctl.delivered.store(self.delivered, Ordering::Relaxed);
        ctl.out_of_order.store(self.out_of_order, Ordering::Relaxed);
        ctl.drops[DropReason::BadChecksum as usize].store(self.bad_checksum, Ordering::Relaxed);
        ctl.drops[DropReason::Duplicate as usize].store(self.duplicates, Ordering::Relaxed);
        ctl.drops[DropReason::StaleRun as usize].store(self.stale_run, Ordering::Relaxed);
        super::count_final_drops(ctl, stats);
        ctl.delivered_bytes
            .store(self.delivered_bytes, Ordering::Relaxed);
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

        // Only the run it finishes: the support node moves the phase on
        // for a new run only from Complete (or Idle/Armed/Refused), never
        // from Injected, so this cannot fail today; the exchange keeps a
        // late finish from overwriting a newer phase should that change.
        if !ctl.advance_phase(RunPhase::Injected, RunPhase::Complete) {
            println!(
                "run {}: finished after the run had moved on ({:?}); counts not published as complete",
                self.run_id,
                ctl.phase()
            );
        }

        // The counts are final and published; the raw samples follow (the
        // UART is slow, and the support node need not wait for them).
        let (mut intervals, mut ipi) = driver::with_samples(|s| {
            (
                core::mem::take(&mut s.intervals),
                core::mem::take(&mut s.ipi_latency),
            )
        });
        if self.dump {
            dump(self.run_id, "latency", &self.latency);
            dump(self.run_id, "irq_interval", &intervals);
            dump(self.run_id, "ipi_latency", &ipi);
            ctl.samples_done.store(1, Ordering::Release);
        }
        let ns = |t: u64| node::ticks_to_ns(t);
        // `n/a` for a figure without samples, never 0.
        let na = |s: &Summary, v: u64| {
            if s.is_empty() {
                alloc::string::String::from("n/a")
            } else {
                alloc::format!("{} ns", ns(v))
            }
        };
        let l = Summary::from_samples(&mut self.latency);
        let i = Summary::from_samples(&mut intervals);
        let p = Summary::from_samples(&mut ipi);
        println!(
            "run {}: delivered {}/{} ({} out of order, {} bad, {} duplicate, {} stale-run, {} stack drops; {} lost IPIs recovered); latency p50 {} p99 {}; irq interval p50 {}; ipi->handler p50 {} (cross-core: node 0's TSC to this node's)",
            self.run_id,
            self.delivered,
            ctl.sent.load(Ordering::Acquire),
            self.out_of_order,
            self.bad_checksum,
            self.duplicates,
            self.stale_run,
            stats.to_stack.saturating_sub(stats.from_stack),
            ctl.recoveries.load(Ordering::Relaxed),
            na(&l, l.p50),
            na(&l, l.p99),
            na(&i, i.p50),
            na(&p, p.p50),
        );
    }
}

/// Prints raw TSC-tick samples as `MINT-SAMPLES <run> <metric> <i> v,v,...`
/// lines of at most 256 values (`i` = index of the first value).
pub fn dump(run: u32, metric: &str, values: &[u64]) {
    use core::fmt::Write;
    let mut line = alloc::string::String::with_capacity(256 * 12);
    for (n, chunk) in values.chunks(256).enumerate() {
        line.clear();
        for (k, v) in chunk.iter().enumerate() {
            let _ = write!(line, "{}{v}", if k > 0 { "," } else { "" });
        }
        println!("MINT-SAMPLES {run} {metric} {} {line}", n * 256);
    }
    println!("MINT-SAMPLES-END {run} {metric} {}", values.len());
}
