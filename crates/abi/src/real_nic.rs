//! The real e1000's shared state: where its RX ring and buffers live, and
//! what each node that may own it (the plan's owner and its standby nodes)
//! publishes about the frames it received.
//!
//! A device the interrupt layer can hand from one node to another must be
//! reachable by every node that may own it, so its ring and buffers are
//! not in any node's partition but in the last [`AREA_SIZE`] bytes of the
//! shared region (the *NIC area*): the ring at [`RING_OFFSET`], the
//! buffers at [`BUFFERS_OFFSET`], then one *seen map* per node: bit `s`
//! set when that node's application accepted sequence number `s` of the
//! current run. Node 0 ANDs the maps to count frames two owners both
//! delivered (duplicates across a hand-over) and ORs them to find what
//! nobody delivered. Each map has exactly one writer (its node) and one
//! reader (node 0, after the run).
//!
//! The per-node receive accounting ([`RealNic::receivers`]) is a
//! `RunControl` each: node 0 configures all of them, node `k` writes only
//! `receivers[k]`'s results, so two owners never write one counter.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::debug_nic::RunControl;
use crate::shared::MAX_NODES;

/// Descriptors in the real NIC's RX ring.
pub const RING_SLOTS: u16 = 256;
/// Bytes per RX buffer: a standard Ethernet frame fits (RCTL BSIZE 2048).
pub const BUFFER_SIZE: usize = 2048;
/// Frames a run may have: the seen maps' size in bits.
pub const SEEN_FRAMES: u32 = 1 << 20;
/// Bytes of one node's seen map.
pub const SEEN_BYTES: u64 = SEEN_FRAMES as u64 / 8;

/// Offsets inside the NIC area.
pub const RING_OFFSET: u64 = 0;
pub const BUFFERS_OFFSET: u64 = 4096;
pub const SEEN_OFFSET: u64 = BUFFERS_OFFSET + RING_SLOTS as u64 * BUFFER_SIZE as u64;
/// Bytes the NIC area takes at the end of the shared region (2 MiB, so
/// the region's size rules stay the same).
pub const AREA_SIZE: u64 = 2 << 20;

const _: () = {
    assert!(RING_SLOTS as u64 * 16 <= BUFFERS_OFFSET);
    assert!(SEEN_OFFSET + MAX_NODES as u64 * SEEN_BYTES <= AREA_SIZE);
    assert!(SEEN_OFFSET.is_multiple_of(4096));
};

/// Offset of the NIC area in a shared region of `shared_size` bytes, if
/// the region is large enough to keep its fixed part and the whole of the
/// debug NIC's ring and buffers below it (the debug NIC's DMA window then
/// ends where the area starts: `debug_window_end`).
pub const fn area_offset(shared_size: u64) -> Option<u64> {
    let floor = crate::debug_nic::dma_window_offset() + crate::debug_nic::dma_bytes_needed();
    if shared_size < floor + AREA_SIZE {
        return None;
    }
    Some(shared_size - AREA_SIZE)
}

/// Where the debug NIC's DMA window ends in a region of `shared_size`
/// bytes: at the NIC area, or the region's end when it has none.
pub const fn debug_window_end(shared_size: u64) -> u64 {
    match area_offset(shared_size) {
        Some(off) => off,
        None => shared_size,
    }
}

/// Offset of node `index`'s seen map inside the NIC area.
pub const fn seen_offset(index: usize) -> u64 {
    SEEN_OFFSET + index as u64 * SEEN_BYTES
}

/// The real NIC's fixed shared state, in the region's open part.
#[repr(C, align(4096))]
pub struct RealNic {
    /// Receive accounting, by receiving node.
    pub receivers: [RunControl; MAX_NODES],
    /// Device interrupts, by node (each node writes its own line).
    pub irq: [DeviceIrqs; MAX_NODES],
}

/// What a node's interrupt entry saw of the devices the layer routes.
#[repr(C, align(64))]
pub struct DeviceIrqs {
    /// The NIC's interrupts this node serviced as its owner.
    pub serviced: AtomicU64,
    /// TSC at the entry of the last one (0: none yet).
    pub last_serviced_tsc: AtomicU64,
    /// The NIC's interrupts taken while quiesced for a hand-over: ended
    /// (EOI) without touching the device, whose causes stay for the next
    /// owner (never serviced twice).
    pub deferred: AtomicU64,
    /// Interrupts on a layer vector this node has no device bound to, or
    /// for a device it no longer owns: misrouted.
    pub stray: AtomicU64,
    /// Attached / detached notices this node acted on.
    pub attached: AtomicU64,
    pub detached: AtomicU64,
    /// Notices (or acks) refused: forged, malformed, or disagreeing with
    /// the routing table node 0 published.
    pub bad_notices: AtomicU64,
}

impl DeviceIrqs {
    pub fn reset(&self) {
        for c in [
            &self.serviced,
            &self.last_serviced_tsc,
            &self.deferred,
            &self.stray,
            &self.attached,
            &self.detached,
            &self.bad_notices,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_area_sits_at_the_end_and_needs_room() {
        assert_eq!(area_offset(16 << 20), Some((16 << 20) - AREA_SIZE));
        assert_eq!(area_offset(AREA_SIZE), None);
        assert_eq!(seen_offset(1) - seen_offset(0), SEEN_BYTES);
        // The debug NIC's ring and buffers end before the area starts.
        let min = crate::debug_nic::min_shared_size();
        assert_eq!(area_offset(min), None, "too small for both");
        assert_eq!(debug_window_end(min), min);
        let size = 16 << 20;
        let start = crate::debug_nic::dma_window_offset();
        assert!(start + crate::debug_nic::dma_bytes_needed() <= debug_window_end(size));
        assert_eq!(debug_window_end(size), size - AREA_SIZE);
        assert!(seen_offset(MAX_NODES) <= AREA_SIZE);
    }
}
