//! This node's view of the shared region, mapped at `SHARED_VIRT`.

use mint_abi::NodeId;
use mint_abi::shared::{Header, NodeMailbox, NodeSlot, SHARED_VIRT, SharedRegion};

/// The shared region.
pub fn region() -> &'static SharedRegion {
    // SAFETY: every node maps the region at SHARED_VIRT (read-write) before
    // calling this, for its whole life; `SharedRegion` is all atomics, so
    // concurrent access by other nodes is defined behaviour.
    unsafe { &*(SHARED_VIRT as *const SharedRegion) }
}

pub fn header() -> &'static Header {
    &region().header
}

pub fn slot(node: NodeId) -> &'static NodeSlot {
    &region().nodes[node.index()]
}

/// The mailbox carrying messages from `from` to `to`.
pub fn mailbox(to: NodeId, from: NodeId) -> &'static NodeMailbox {
    &region().mailboxes[to.index()][from.index()]
}
