//! The shared region: the only memory two nodes both map.
//!
//! Layout (offsets from the region's base; every node maps it at
//! [`SHARED_VIRT`]):
//!
//! | offset | what | written by |
//! |---|---|---|
//! | 0x0000 | [`Header`]: magic, version, TSC rate, node table, `go`, faults to inject, TSC rate source, cross-core TSC sync lines | node 0 (a sync line's answer: its node) |
//! | 0x1000 | [`NodeSlot`] × [`MAX_NODES`]: state, heartbeat, crash reason, ping samples | the slot's node (node 0's monitor may declare a silent node crashed) |
//! | ...    | [`Mailbox`] × MAX_NODES × MAX_NODES, indexed `[to][from]` | producer: `from`; consumer: `to` |
//! | ...    | [`crate::debug_nic::DebugNic`]: e1000 register page, posted-IRQ flag, run control | see that module |
//! | [`crate::debug_nic::dma_window_offset`].. | DMA window: the target driver's RX ring and buffers | device: buffers, write-back; driver: ring setup |
//!
//! Every field is an atomic: the peer is another kernel that may be faulty,
//! so nothing here is read as a plain reference to a Rust type with
//! invariants, and every value read from a peer is validated before use.
//! Node 0 zeroes the region, fills the header and publishes
//! [`Header::magic`] last; a node whose view of magic or
//! [`ABI_VERSION`] differs refuses to run.

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use mint_mailbox::Mailbox;

use crate::node::NodeState;

/// "MINTSHRD", little endian.
pub const SHARED_MAGIC: u64 = u64::from_le_bytes(*b"MINTSHRD");
/// Bumped whenever this layout changes.
pub const ABI_VERSION: u32 = 4;
/// Nodes a region can describe (one ISA UART per node: COM1..COM4).
pub const MAX_NODES: usize = 4;
/// Messages per mailbox.
pub const MAILBOX_SLOTS: usize = 64;
/// Ping round trips each node measures to each peer.
pub const PINGS_PER_PEER: usize = 32;
/// Bytes of crash reason a slot keeps.
pub const REASON_LEN: usize = 120;
/// Virtual address at which every node maps the shared region.
pub const SHARED_VIRT: u64 = 0x40_0000_0000;

/// A node-to-node mailbox as laid out in the region.
pub type NodeMailbox = Mailbox<MAILBOX_SLOTS>;

/// Run-wide facts and controls, owned by node 0.
#[repr(C, align(4096))]
pub struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub node_count: AtomicU32,
    /// Region size in bytes.
    pub size: AtomicU64,
    /// TSC ticks per second, calibrated by node 0 against the PIT.
    pub tsc_hz: AtomicU64,
    /// Local APIC ID of each node's core (the IPI destination).
    pub apic_ids: [AtomicU32; MAX_NODES],
    /// Set by node 0 once every node is up: start the ping round.
    pub go: AtomicU32,
    /// Fault each node is asked to inject into itself (`FaultKind` as u32).
    pub inject_fault: [AtomicU32; MAX_NODES],
    /// Where `tsc_hz` came from: index into `mint_timing::Source::ALL`
    /// plus 1 (0 = not said), so other nodes can say whose figure they use.
    pub tsc_source: AtomicU32,
    /// Node 0's cross-core TSC check with each node (see [`TscSyncLine`]).
    pub tsc_sync: [TscSyncLine; MAX_NODES],
}

/// One cache line node 0 and one other node exchange TSC stamps through:
/// node 0 writes `request` (round number; [`TSC_SYNC_DONE`] ends the
/// exchange), the node answers with its TSC in `remote_tsc` and the round
/// number in `answer` (release, after `remote_tsc`).
#[repr(C, align(64))]
pub struct TscSyncLine {
    pub request: AtomicU64,
    pub remote_tsc: AtomicU64,
    pub answer: AtomicU64,
}

/// `TscSyncLine::request` value that ends the exchange.
pub const TSC_SYNC_DONE: u64 = u64::MAX;

/// One node's public status.
#[repr(C, align(4096))]
pub struct NodeSlot {
    /// `NodeState` as u32.
    pub state: AtomicU32,
    /// Set when this node finished its ping round.
    pub pings_done: AtomicU32,
    /// Incremented by the node's APIC timer; a node that stops counting is
    /// stuck (interrupts off, or dead).
    pub heartbeat: AtomicU64,
    /// TSC when the node entered Running.
    pub running_tsc: AtomicU64,
    pub reason_len: AtomicU32,
    pub reason: [AtomicU8; REASON_LEN],
    /// Round-trip times (TSC ticks) of this node's pings, per peer.
    pub ping_rtt: [[AtomicU64; PINGS_PER_PEER]; MAX_NODES],
    pub ping_count: [AtomicU32; MAX_NODES],
}

/// The whole region's fixed part.
#[repr(C)]
pub struct SharedRegion {
    pub header: Header,
    pub nodes: [NodeSlot; MAX_NODES],
    /// `mailboxes[to][from]`.
    pub mailboxes: [[NodeMailbox; MAX_NODES]; MAX_NODES],
    /// The debug NIC (support node <-> target node's e1000 driver).
    pub debug_nic: crate::debug_nic::DebugNic,
}

/// Bytes of the region this layout occupies; the rest is for later users.
pub const SHARED_FIXED_SIZE: usize = core::mem::size_of::<SharedRegion>();

impl NodeSlot {
    /// This slot's state, or `None` when the value is garbage.
    pub fn state(&self) -> Option<NodeState> {
        NodeState::from_raw(self.state.load(Ordering::Acquire))
    }

    pub fn set_state(&self, s: NodeState) {
        self.state.store(s as u32, Ordering::Release);
    }

    /// Records why the node stopped, then marks it crashed (reason first,
    /// so a reader that sees Crashed sees the reason).
    pub fn record_crash(&self, reason: &str) {
        self.write_reason(reason);
        self.set_state(NodeState::Crashed);
    }

    /// Declares a node crashed from outside (the monitor), unless it already
    /// reported its own end. Returns whether this call made the change.
    /// The reason is written only when this call made the change, so a
    /// reason the node recorded itself is never overwritten.
    pub fn declare_crashed_from(&self, from: NodeState, reason: &str) -> bool {
        let changed = self
            .state
            .compare_exchange(
                from as u32,
                NodeState::Crashed as u32,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if changed {
            self.write_reason(reason);
        }
        changed
    }

    fn write_reason(&self, reason: &str) {
        let bytes = reason.as_bytes();
        let n = bytes.len().min(REASON_LEN);
        for (cell, b) in self.reason.iter().zip(&bytes[..n]) {
            cell.store(*b, Ordering::Relaxed);
        }
        self.reason_len.store(n as u32, Ordering::Release);
    }

    /// Copies the reason into `out`, returning the valid prefix (lossy on
    /// invalid UTF-8: the writer may be broken).
    pub fn reason<'a>(&self, out: &'a mut [u8; REASON_LEN]) -> &'a str {
        let n = (self.reason_len.load(Ordering::Acquire) as usize).min(REASON_LEN);
        for (b, cell) in out.iter_mut().zip(&self.reason[..n]) {
            *b = cell.load(Ordering::Relaxed);
        }
        match core::str::from_utf8(&out[..n]) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&out[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl Header {
    /// Whether node 0 has published a header this build understands.
    pub fn is_valid(&self) -> bool {
        self.magic.load(Ordering::Acquire) == SHARED_MAGIC
            && self.version.load(Ordering::Acquire) == ABI_VERSION
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layout_is_fixed() {
        // The offsets are the ABI: a change here must bump ABI_VERSION.
        assert_eq!(size_of::<Header>(), 4096);
        assert_eq!(size_of::<TscSyncLine>(), 64);
        assert_eq!(offset_of!(Header, tsc_sync) % 64, 0);
        assert_eq!(offset_of!(SharedRegion, nodes), 0x1000);
        assert_eq!(size_of::<NodeSlot>() % 4096, 0);
        assert_eq!(offset_of!(SharedRegion, mailboxes) % 64, 0);
        assert_eq!(size_of::<NodeMailbox>(), 128 + MAILBOX_SLOTS * 32);
        const {
            assert!(
                SHARED_FIXED_SIZE < 4 << 20,
                "fits the smallest shared region"
            )
        };
    }

    #[test]
    fn crash_reason_round_trip_and_truncation() {
        let slot: NodeSlot = unsafe_free_zeroed_slot();
        slot.set_state(NodeState::Running);
        slot.record_crash("page fault at 0x200000");
        assert_eq!(slot.state(), Some(NodeState::Crashed));
        let mut buf = [0u8; REASON_LEN];
        assert_eq!(slot.reason(&mut buf), "page fault at 0x200000");
        let long = "x".repeat(500);
        slot.record_crash(&long);
        assert_eq!(slot.reason(&mut buf).len(), REASON_LEN);
    }

    #[test]
    fn monitor_does_not_overwrite_a_reported_crash() {
        let slot = unsafe_free_zeroed_slot();
        slot.set_state(NodeState::Running);
        assert!(slot.declare_crashed_from(NodeState::Running, "heartbeat lost"));
        slot.set_state(NodeState::Halted);
        assert!(!slot.declare_crashed_from(NodeState::Running, "heartbeat lost"));
        assert_eq!(slot.state(), Some(NodeState::Halted));
    }

    #[test]
    fn garbage_state_is_rejected() {
        let slot = unsafe_free_zeroed_slot();
        slot.state.store(77, Ordering::Relaxed);
        assert_eq!(slot.state(), None);
    }

    fn unsafe_free_zeroed_slot() -> NodeSlot {
        NodeSlot {
            state: AtomicU32::new(0),
            pings_done: AtomicU32::new(0),
            heartbeat: AtomicU64::new(0),
            running_tsc: AtomicU64::new(0),
            reason_len: AtomicU32::new(0),
            reason: [const { AtomicU8::new(0) }; REASON_LEN],
            ping_rtt: [const { [const { AtomicU64::new(0) }; PINGS_PER_PEER] }; MAX_NODES],
            ping_count: [const { AtomicU32::new(0) }; MAX_NODES],
        }
    }
}
