//! The debug NIC: what the support node and the target node's e1000 driver
//! share to play "a NIC without the NIC" (seed 003, figure 7).
//!
//! - [`NicRegisters`]: the e1000 register file the driver programs, one
//!   cache line per register (so RDH, written by the device, and RDT,
//!   written by the driver, never share a line). The e1000 crate's
//!   `Register::index()` selects the slot.
//! - [`DebugNic::irq_pending`]: posted-interrupt flag. The device sets it
//!   and sends the IPI only on the 0 -> 1 edge; the driver's handler clears
//!   it first thing, so causes raised afterwards raise a new IPI. The
//!   support node clears it before each run (a run abandoned with it set
//!   would otherwise silence the next), and the target's timer tick clears
//!   it and polls the ring when it stayed set for [`LOST_IPI_TICKS`] ticks
//!   with no interrupt (a lost IPI must not silence the NIC for good).
//! - [`RunControl`]: one generator run, configured by the support node,
//!   armed and finally accounted for by the target.
//! - The DMA window: every byte of the shared region from
//!   [`dma_window_offset`] to its end. The driver places its RX ring and
//!   buffers there and programs their *physical* addresses, as it would for
//!   a real NIC; the device validates every address against the window.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::ids::Vector;

/// The vector the target's e1000 driver handles (its "INTx").
pub const NIC_VECTOR: Vector = Vector(0x40);
/// After the last injection, the target gives up waiting for frames that
/// make no progress after this long (and then completes the run); the
/// support node waits for Complete at least this long plus a margin.
pub const RUN_STUCK_MS: u64 = 5_000;

/// Descriptors in the driver's RX ring.
pub const RING_SLOTS: u16 = 256;
/// Bytes per RX buffer (RCTL BSIZE 16384 with BSEX): the largest frame.
pub const BUFFER_SIZE: usize = 16384;

/// Bytes of DMA window the driver's ring and buffers take.
pub const fn dma_bytes_needed() -> u64 {
    let ring = (RING_SLOTS as u64 * 16 + 4095) & !4095;
    ring + RING_SLOTS as u64 * BUFFER_SIZE as u64
}

/// The smallest shared region that holds the debug NIC (2 MiB aligned).
pub const fn min_shared_size() -> u64 {
    let need = dma_window_offset() + dma_bytes_needed();
    (need + (2 << 20) - 1) & !((2 << 20) - 1)
}
/// Register slots (the e1000 crate's `Register::ALL.len()` must fit).
pub const NIC_REGISTER_SLOTS: usize = 32;

#[repr(C, align(64))]
pub struct PaddedU32(pub AtomicU32);

#[repr(C, align(4096))]
pub struct NicRegisters(pub [PaddedU32; NIC_REGISTER_SLOTS]);

/// Phases of a run, in [`RunControl::phase`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum RunPhase {
    Idle = 0,
    /// Support node filled the config; the target should reset and arm.
    Configured = 1,
    /// Target reset its counters and waits for frames.
    Armed = 2,
    /// Support node finished injecting; `sent` and device drops are final.
    Injected = 3,
    /// Target accounted for every frame (or gave up); results are final.
    Complete = 4,
    /// Target could not take the run (no memory for its raw samples).
    Refused = 5,
}

impl RunPhase {
    pub fn from_raw(v: u32) -> Option<RunPhase> {
        Some(match v {
            0 => RunPhase::Idle,
            1 => RunPhase::Configured,
            2 => RunPhase::Armed,
            3 => RunPhase::Injected,
            4 => RunPhase::Complete,
            5 => RunPhase::Refused,
            _ => return None,
        })
    }
}

/// Why a frame did not reach the application, as counted in [`RunControl::drops`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum DropReason {
    /// Device: the ring had no free descriptor (the NIC's MPC).
    RingFull = 0,
    /// Device: receiver disabled, bad ring configuration, DMA address outside
    /// the window, or a frame the device refused (size).
    DeviceRefused = 1,
    /// Driver: a completed descriptor it would not follow (bad length, no
    /// EOP, error bits, changed buffer address, DMA error).
    BadDescriptor = 2,
    /// Driver: no free socket buffer.
    SocketBufferFull = 3,
    /// Stack: the UDP/IP stack did not deliver it (socket full, not for us).
    Stack = 4,
    /// Application: payload check failed (checksum, length).
    BadChecksum = 5,
    /// Application: a sequence number seen before.
    Duplicate = 6,
    /// Application: an intact payload stamped with another run's id (left
    /// over from an abandoned run, or sent with a wrong id), never counted
    /// as this run's delivery.
    StaleRun = 7,
}

impl DropReason {
    pub const COUNT: usize = 8;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::RingFull,
        DropReason::DeviceRefused,
        DropReason::BadDescriptor,
        DropReason::SocketBufferFull,
        DropReason::Stack,
        DropReason::BadChecksum,
        DropReason::Duplicate,
        DropReason::StaleRun,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::RingFull => "ring_full",
            DropReason::DeviceRefused => "device_refused",
            DropReason::BadDescriptor => "bad_descriptor",
            DropReason::SocketBufferFull => "socket_buffer_full",
            DropReason::Stack => "stack",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::Duplicate => "duplicate",
            DropReason::StaleRun => "stale_run",
        }
    }

    /// Counted by the support node's device model (the frame never
    /// reached the target); every other reason the target counts.
    pub fn by_device(self) -> bool {
        matches!(self, DropReason::RingFull | DropReason::DeviceRefused)
    }
}

/// One generator run. Config fields are written by the support node before
/// `phase` becomes Configured; counters by their owner as noted.
#[repr(C, align(64))]
#[derive(Default)]
pub struct RunControl {
    pub phase: AtomicU32,
    pub run_id: AtomicU32,
    pub size: AtomicU32,
    pub count: AtomicU32,
    /// `mint_traffic::PacketKind` as 0 = udp, 1 = raw.
    pub kind: AtomicU32,
    pub seed: AtomicU64,
    /// Non-zero: the target prints its raw samples on its console at the end.
    pub dump_samples: AtomicU32,
    /// Support: frames handed to the device.
    pub sent: AtomicU64,
    /// Target: frames the application accepted (unique, intact).
    pub delivered: AtomicU64,
    pub out_of_order: AtomicU64,
    /// Drops by [`DropReason`]; device reasons by the support node, the
    /// rest by the target.
    pub drops: [AtomicU64; DropReason::COUNT],
    /// Target: interrupts handled, and IPIs the support node sent.
    pub interrupts: AtomicU64,
    pub ipis_sent: AtomicU64,
    /// Target: TSC of the first injection seen and of the last delivery.
    pub first_inject_tsc: AtomicU64,
    pub last_delivery_tsc: AtomicU64,
    pub delivered_bytes: AtomicU64,
    /// Target: frames it has looked at so far; the support node keeps
    /// waiting for Complete as long as this moves.
    pub progress: AtomicU64,
    /// Target: set once its raw samples are printed (when asked).
    pub samples_done: AtomicU32,
    /// Target: times its timer tick found the posted-IRQ flag set for
    /// longer than [`LOST_IPI_TICKS`] ticks with no interrupt taken, and
    /// serviced the ring itself (a lost IPI recovered).
    pub recoveries: AtomicU64,
    /// Support: IPIs it deliberately did not send although it set the
    /// posted flag (fault injection: every Nth IPI "lost").
    pub ipis_forgotten: AtomicU64,
    /// How the target's driver takes the NIC's interrupts this run
    /// ([`MODERATION_NONE`], [`MODERATION_ITR`], [`MODERATION_NAPI`]); the
    /// ITR interval in ns when ITR.
    pub moderation: AtomicU32,
    pub itr_ns: AtomicU32,
    /// Where the target takes each frame: [`DELIVER_APP`] or
    /// [`DELIVER_DRIVER`].
    pub deliver: AtomicU32,
}

/// `RunControl::deliver`: to the application's payload check.
pub const DELIVER_APP: u32 = 0;
/// `RunControl::deliver`: counted at the driver and released.
pub const DELIVER_DRIVER: u32 = 1;

/// `RunControl::moderation`: one interrupt per posted edge.
pub const MODERATION_NONE: u32 = 0;
/// `RunControl::moderation`: the driver programs ITR with `itr_ns`.
pub const MODERATION_ITR: u32 = 1;
/// `RunControl::moderation`: NAPI (masked polling from the receive loop).
pub const MODERATION_NAPI: u32 = 2;

/// The target's timer ticks (100 Hz) the posted-IRQ flag may stay set
/// with no interrupt taken before the target assumes the IPI was lost and
/// polls the ring itself: between 2 and 3 tick periods (20-30 ms).
pub const LOST_IPI_TICKS: u32 = 2;

/// Local APIC errors each node saw (its APIC-error interrupt, vector 0xFE):
/// how many, and every error status (ESR) bit seen. Node-wide, not only
/// the NIC's; kept here so the debug NIC's report can show them.
#[repr(C, align(64))]
pub struct ApicErrors {
    pub count: [AtomicU64; crate::shared::MAX_NODES],
    /// ESR bits seen, OR-ed (SDM vol. 3, 11.5.3: 0x04 send accept error,
    /// 0x08 receive accept error, 0x20 send illegal vector, 0x40 received
    /// illegal vector, 0x80 illegal register address).
    pub status: [AtomicU32; crate::shared::MAX_NODES],
}

impl ApicErrors {
    /// Node `node` (an index) took an APIC-error interrupt with ESR `esr`.
    pub fn record(&self, node: usize, esr: u32) {
        if let (Some(c), Some(s)) = (self.count.get(node), self.status.get(node)) {
            c.fetch_add(1, Ordering::Relaxed);
            s.fetch_or(esr, Ordering::Relaxed);
        }
    }

    /// Errors of every node.
    pub fn total(&self) -> u64 {
        self.count.iter().map(|c| c.load(Ordering::Acquire)).sum()
    }
}

/// The debug NIC's shared state.
#[repr(C, align(4096))]
pub struct DebugNic {
    pub regs: NicRegisters,
    // Which node attaches the driver is node 0's alone to say: it is
    // `Header::debug_nic_target`, on node 0's read-only page.
    /// Set by the driver when its ring is programmed (node id + 1; 0 = none).
    pub driver_ready: AtomicU32,
    pub irq_pending: PaddedU32,
    /// TSC at which the support node sent its last IPI; the target's handler
    /// takes it (swaps in 0) to time IPI-to-handler latency.
    pub ipi_sent_tsc: PaddedU64,
    pub run: RunControl,
    pub apic_errors: ApicErrors,
}

#[repr(C, align(64))]
pub struct PaddedU64(pub AtomicU64);

impl RunControl {
    pub fn phase(&self) -> Option<RunPhase> {
        RunPhase::from_raw(self.phase.load(Ordering::Acquire))
    }

    pub fn set_phase(&self, p: RunPhase) {
        self.phase.store(p as u32, Ordering::Release);
    }

    /// Moves the run from `from` to `to` only if it is still in `from`
    /// (the phase has two writers: a stale writer must not overwrite the
    /// other side's newer phase). Whether it moved.
    pub fn advance_phase(&self, from: RunPhase, to: RunPhase) -> bool {
        self.phase
            .compare_exchange(from as u32, to as u32, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops[r as usize].load(Ordering::Acquire)
    }

    pub fn count_drop(&self, r: DropReason, n: u64) {
        self.drops[r as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Clears every counter (support node, before Configured).
    pub fn reset_counters(&self) {
        for c in [
            &self.sent,
            &self.delivered,
            &self.out_of_order,
            &self.interrupts,
            &self.ipis_sent,
            &self.first_inject_tsc,
            &self.last_delivery_tsc,
            &self.delivered_bytes,
            &self.progress,
            &self.recoveries,
            &self.ipis_forgotten,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        for d in &self.drops {
            d.store(0, Ordering::Relaxed);
        }
        self.samples_done.store(0, Ordering::Relaxed);
    }

    /// Drops counted before a frame reaches the stack, while the run goes
    /// on: by the device (ring full, refused) and by the driver (a bad
    /// descriptor, no socket buffer). The rest the target counts at the
    /// run's end.
    pub fn drops_before_stack(&self) -> u64 {
        [
            DropReason::RingFull,
            DropReason::DeviceRefused,
            DropReason::BadDescriptor,
            DropReason::SocketBufferFull,
        ]
        .iter()
        .map(|&r| self.drop_count(r))
        .sum()
    }

    /// Frames neither delivered nor dropped with a reason.
    pub fn unaccounted(&self) -> i64 {
        let dropped: u64 = DropReason::ALL.iter().map(|&r| self.drop_count(r)).sum();
        self.sent.load(Ordering::Acquire) as i64
            - self.delivered.load(Ordering::Acquire) as i64
            - dropped as i64
    }
}

/// Offset of the DMA window in a shared region: the first 64 KiB boundary
/// after the fixed layout.
pub const fn dma_window_offset() -> u64 {
    let fixed = core::mem::size_of::<crate::shared::SharedRegion>() as u64;
    (fixed + 0xFFFF) & !0xFFFF
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_counts_only_what_never_reached_the_target() {
        for r in DropReason::ALL {
            let expected = matches!(r, DropReason::RingFull | DropReason::DeviceRefused);
            assert_eq!(r.by_device(), expected, "{}", r.as_str());
        }
    }

    #[test]
    fn registers_do_not_share_cache_lines() {
        assert_eq!(core::mem::size_of::<PaddedU32>(), 64);
        assert!(core::mem::size_of::<NicRegisters>() >= NIC_REGISTER_SLOTS * 64);
        assert_eq!(core::mem::offset_of!(DebugNic, irq_pending) % 64, 0);
    }

    #[test]
    fn phases_round_trip_and_reject_garbage() {
        for p in [
            RunPhase::Idle,
            RunPhase::Configured,
            RunPhase::Armed,
            RunPhase::Injected,
            RunPhase::Complete,
            RunPhase::Refused,
        ] {
            assert_eq!(RunPhase::from_raw(p as u32), Some(p));
        }
        assert_eq!(RunPhase::from_raw(9), None);
    }

    #[test]
    fn dma_window_is_aligned_and_after_the_fixed_part() {
        let off = dma_window_offset();
        assert_eq!(off % 0x10000, 0);
        assert!(off >= core::mem::size_of::<crate::shared::SharedRegion>() as u64);
        assert!(
            off < 4 << 20,
            "the smallest shared region keeps a DMA window"
        );
    }

    #[test]
    fn min_shared_size_fits_ring_and_buffers() {
        let min = min_shared_size();
        assert_eq!(min % (2 << 20), 0);
        assert!(min - dma_window_offset() >= dma_bytes_needed());
        assert!(dma_bytes_needed() >= 256 * 16384);
    }
}
