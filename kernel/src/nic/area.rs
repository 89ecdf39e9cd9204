//! The real e1000's NIC area at the end of the shared region
//! (`mint_abi::real_nic`): its RX ring and buffers, which every node that
//! may own the NIC reaches (the owner and its standby nodes: a hand-over
//! moves the driver, never the ring), and each node's seen map.

use core::sync::atomic::AtomicU64;

use mint_abi::NodeId;
use mint_abi::real_nic::{self, AREA_SIZE, RING_OFFSET, RING_SLOTS, SEEN_BYTES};
use mint_abi::shared::SHARED_VIRT;
use mint_e1000::{Contiguous, DmaError};

use super::dma::PhysBytes;
use super::shared_backend::AtomicRing;

/// The NIC area of this node's shared region: `None` when the region is
/// too small to hold it (node 0 refuses such a plan before booting).
pub fn bytes() -> Option<PhysBytes> {
    let (phys, size) = crate::node::shared_window();
    let off = real_nic::area_offset(size)?;
    // SAFETY: every node maps the whole shared region read-write at
    // SHARED_VIRT for its whole life; the NIC area, the region's last
    // `AREA_SIZE` bytes, lies above the fixed layout and the debug NIC's
    // ring and buffers (`area_offset` checks it; the debug window ends
    // where the area starts, `debug_window_end`), and is reached only
    // through volatile copies, the ring's atomics and the seen maps' atomics.
    Some(unsafe { PhysBytes::new(SHARED_VIRT + off, phys + off, AREA_SIZE) })
}

/// The RX ring in the area, with its physical address.
pub fn ring(area: &PhysBytes) -> Result<(AtomicRing, u64), DmaError> {
    let phys = area.phys + RING_OFFSET;
    Ok((AtomicRing::in_window(area, phys, RING_SLOTS)?, phys))
}

/// Where the ring's buffers are.
pub fn buffers(area: &PhysBytes) -> Contiguous {
    Contiguous {
        base: area.phys + real_nic::BUFFERS_OFFSET,
        stride: real_nic::BUFFER_SIZE as u64,
    }
}

/// One node's seen map (`mint_target::SeenMap`): its node writes it,
/// node 0 reads it after the run (see `mint_abi::real_nic`).
pub type SeenMap = mint_target::SeenMap<'static>;

/// Node `node`'s seen map in `area`.
pub fn seen_map(area: &PhysBytes, node: NodeId) -> Option<SeenMap> {
    let off = real_nic::seen_offset(node.index());
    let part = area.part(area.phys + off, SEEN_BYTES as usize).ok()?;
    // SAFETY: `part` is inside the NIC area (checked by `part`), which
    // stays mapped for good; it starts page aligned (SEEN_OFFSET is a
    // multiple of 4096 and the area is 2 MiB aligned), as AtomicU64
    // needs 8; any bits are a valid AtomicU64, and the one other party
    // (node 0, or a faulty peer) reaches it only with atomics too.
    let words = unsafe {
        core::slice::from_raw_parts(part.as_ptr() as *const AtomicU64, (SEEN_BYTES / 8) as usize)
    };
    Some(SeenMap::new(words))
}
